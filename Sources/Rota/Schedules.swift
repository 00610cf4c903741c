import Foundation
@_exported import RotaCron

/// A schedule as the schedule files define it: when, what, and how.
public struct ScheduleSpec: Sendable, Equatable {
    /// The schedule's unique name.
    public var name: String
    /// The cron expression.
    public var expression: String
    /// The IANA time zone the expression is read in.
    public var timeZone: String
    /// The task to enqueue at each fire (`exec` for commands).
    public var taskName: String
    /// The task's payload, JSON text.
    public var payload: String
    /// The task's queue.
    public var queue: String
    /// The task's priority.
    public var priority: Int
    /// The task's max attempts.
    public var maxAttempts: Int
    /// The task's per-attempt timeout.
    public var timeout: Duration?
    /// Missed-run policy (`skip`, `once`, `all(cap:)`).
    public var missed: MissedRunPolicy
    /// Overlap policy.
    public var overlap: OverlapPolicy
    /// The most each fire's task is delayed past its fire instant (`jitter=`), or nil for no delay. The
    /// delay of one fire is ``FireJitter/delayMillis(schedule:fireAt:jitter:)``: fixed per schedule name and
    /// instant, so every scheduler and every restart agrees on it.
    public var jitter: Duration?
    /// Where it was defined (`file:line`).
    public var source: String?

    /// Creates a schedule.
    public init(name: String, expression: String, timeZone: String = "UTC", taskName: String, payload: String = "{}",
                queue: String = "default", priority: Int = 0, maxAttempts: Int = 3, timeout: Duration? = nil,
                missed: MissedRunPolicy = .skip, overlap: OverlapPolicy = .allow, jitter: Duration? = nil,
                source: String? = nil) {
        self.name = name; self.expression = expression; self.timeZone = timeZone; self.taskName = taskName
        self.payload = payload; self.queue = queue; self.priority = priority; self.maxAttempts = maxAttempts
        self.timeout = timeout; self.missed = missed; self.overlap = overlap; self.jitter = jitter
        self.source = source
    }

    /// The delay of the task fired at `fireAt`, in milliseconds: 0 without a jitter, else
    /// ``FireJitter/delayMillis(schedule:fireAt:jitter:)``.
    public func delayMillis(forFire fireAt: Date) -> Int64 {
        guard let jitter, jitter.milliseconds > 0 else { return 0 }
        return FireJitter.delayMillis(schedule: name, fireAt: fireAt.unixMillis, jitterMillis: jitter.milliseconds)
    }

    /// When the task fired at `fireAt` runs: `fireAt` plus its delay (whole milliseconds, as stores keep them).
    public func runAt(forFire fireAt: Date) -> Date {
        Date(unixMillis: fireAt.unixMillis + delayMillis(forFire: fireAt))
    }
}

/// The delay a schedule's `jitter=` gives one fire: pseudo-random, but a pure function of the schedule's
/// name and the fire instant, so restarts, several schedulers and every store agree on it without storing it.
///
/// The delay is `h mod (jitter + 1)` milliseconds, in `[0, jitter]`, where `h` is the 64-bit FNV-1a hash of
/// the name's UTF-8 bytes, a 0 byte, and the fire instant's Unix milliseconds as 8 little-endian bytes,
/// passed through MurmurHash3's 64-bit finalizer (so that neighbouring instants spread over the whole range).
/// No clock and no per-process seed (not Swift's `Hasher`) is involved.
public enum FireJitter {
    /// The 64-bit FNV-1a hash of `bytes`.
    public static func fnv1a64<Bytes: Sequence>(_ bytes: Bytes) -> UInt64 where Bytes.Element == UInt8 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return hash
    }

    /// MurmurHash3's 64-bit finalizer: every input bit affects every output bit.
    public static func mix(_ value: UInt64) -> UInt64 {
        var h = value
        h ^= h >> 33
        h = h &* 0xff51_afd7_ed55_8ccd
        h ^= h >> 33
        h = h &* 0xc4ce_b9fe_1a85_ec53
        h ^= h >> 33
        return h
    }

    /// The hash of a schedule's fire: FNV-1a 64 of `schedule` (UTF-8), a 0 byte and `fireAt` (Unix ms,
    /// 8 bytes little-endian), mixed by ``mix(_:)``.
    public static func hash(schedule: String, fireAt: Int64) -> UInt64 {
        var bytes = Array(schedule.utf8)
        bytes.append(0)
        withUnsafeBytes(of: fireAt.littleEndian) { bytes.append(contentsOf: $0) }
        return mix(fnv1a64(bytes))
    }

    /// The delay, in milliseconds within `[0, jitterMillis]`, of the task `schedule` fires at `fireAt`
    /// (Unix milliseconds); 0 when `jitterMillis` is 0 or less.
    public static func delayMillis(schedule: String, fireAt: Int64, jitterMillis: Int64) -> Int64 {
        guard jitterMillis > 0 else { return 0 }
        return Int64(hash(schedule: schedule, fireAt: fireAt) % (UInt64(jitterMillis) + 1))
    }
}

/// A schedule as stored: its spec and its durable firing state.
public struct ScheduleRecord: Sendable, Equatable {
    /// The definition.
    public var spec: ScheduleSpec
    /// False once it was removed from the files (its history stays queryable).
    public var active: Bool
    /// The next instant it fires.
    public var nextFireAt: Date?
    /// The last instant it fired.
    public var lastFireAt: Date?
    /// When it was first loaded.
    public var createdAt: Date
    /// When it last changed.
    public var updatedAt: Date

    /// Creates a record (used by stores).
    public init(spec: ScheduleSpec, active: Bool, nextFireAt: Date?, lastFireAt: Date?, createdAt: Date, updatedAt: Date) {
        self.spec = spec; self.active = active; self.nextFireAt = nextFireAt; self.lastFireAt = lastFireAt
        self.createdAt = createdAt; self.updatedAt = updatedAt
    }
}

/// What a due schedule does now, as its cron expression and missed-run policy decide.
public struct FirePlan: Sendable, Equatable {
    /// The fire instants to enqueue a task for (each at most once, ever).
    public var fires: [Date]
    /// The next instant after now; nil when the expression matches nothing more.
    public var nextFireAt: Date?

    /// Creates a plan.
    public init(fires: [Date], nextFireAt: Date?) {
        self.fires = fires
        self.nextFireAt = nextFireAt
    }
}

/// What a schedule sync changed.
public struct ScheduleSyncResult: Sendable, Equatable {
    /// Schedules new to the database.
    public var added: [String]
    /// Schedules whose definition changed.
    public var changed: [String]
    /// Schedules no longer in the files (deactivated; history kept).
    public var removed: [String]

    /// Creates a result.
    public init(added: [String], changed: [String], removed: [String]) {
        self.added = added; self.changed = changed; self.removed = removed
    }
}

extension FirePlan {
    /// Plans the fires of a due schedule with its cron expression, zone and missed-run policy.
    ///
    /// - Parameters:
    ///   - record: the due schedule.
    ///   - now: the current instant.
    ///   - grace: a fire late by at most this much is on time (runs under every policy), not missed.
    /// - Returns: the plan; a schedule whose expression or zone no longer parses fires nothing and stops.
    public static func plan(for record: ScheduleRecord, now: Date, grace: TimeInterval) -> FirePlan {
        guard let due = record.nextFireAt, let zone = TimeZone(identifier: record.spec.timeZone),
              let expression = try? CronExpression(record.spec.expression) else {
            return FirePlan(fires: [], nextFireAt: nil)
        }
        let fires = expression.dueFires(nextFire: due, now: now, in: zone, missed: record.spec.missed, grace: grace)
        return FirePlan(fires: fires.due, nextFireAt: fires.nextFire)
    }

    /// The first fire of `spec` strictly after `now`, or nil when its expression or zone is invalid.
    public static func firstFire(of spec: ScheduleSpec, after now: Date) -> Date? {
        guard let zone = TimeZone(identifier: spec.timeZone), let expression = try? CronExpression(spec.expression) else { return nil }
        return expression.next(after: now, in: zone)
    }
}
