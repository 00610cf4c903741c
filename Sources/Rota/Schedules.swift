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
    /// Where it was defined (`file:line`).
    public var source: String?

    /// Creates a schedule.
    public init(name: String, expression: String, timeZone: String = "UTC", taskName: String, payload: String = "{}",
                queue: String = "default", priority: Int = 0, maxAttempts: Int = 3, timeout: Duration? = nil,
                missed: MissedRunPolicy = .skip, overlap: OverlapPolicy = .allow, source: String? = nil) {
        self.name = name; self.expression = expression; self.timeZone = timeZone; self.taskName = taskName
        self.payload = payload; self.queue = queue; self.priority = priority; self.maxAttempts = maxAttempts
        self.timeout = timeout; self.missed = missed; self.overlap = overlap
        self.source = source
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
