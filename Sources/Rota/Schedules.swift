import Foundation

/// What to do with fires missed while no scheduler ran.
public enum MissedRunPolicy: String, Sendable, Codable, CaseIterable {
    /// Run none of the missed fires; only a fire that is on time (late by less than the grace) runs. The default.
    case skip
    /// Run one catch-up: the latest missed fire.
    case once
    /// Run every missed fire, up to the schedule's cap (the most recent ones).
    case all
}

/// What to do when a schedule fires while its previous run is still scheduled or running.
public enum OverlapPolicy: String, Sendable, Codable, CaseIterable {
    /// Fire anyway. The default.
    case allow
    /// Do not fire; the instant is skipped.
    case skip
}

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
    /// Missed-run policy.
    public var missed: MissedRunPolicy
    /// The most catch-up runs for ``MissedRunPolicy/all``.
    public var missedCap: Int
    /// Overlap policy.
    public var overlap: OverlapPolicy
    /// Where it was defined (`file:line`).
    public var source: String?

    /// Creates a schedule.
    public init(name: String, expression: String, timeZone: String = "UTC", taskName: String, payload: String = "{}",
                queue: String = "default", priority: Int = 0, maxAttempts: Int = 3, timeout: Duration? = nil,
                missed: MissedRunPolicy = .skip, missedCap: Int = 100, overlap: OverlapPolicy = .allow, source: String? = nil) {
        self.name = name; self.expression = expression; self.timeZone = timeZone; self.taskName = taskName
        self.payload = payload; self.queue = queue; self.priority = priority; self.maxAttempts = maxAttempts
        self.timeout = timeout; self.missed = missed; self.missedCap = missedCap; self.overlap = overlap
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
    /// Decides which fires of a due schedule run now.
    ///
    /// - Parameters:
    ///   - due: the stored next fire instant (at or before `now`).
    ///   - now: the current instant.
    ///   - policy: the missed-run policy; `cap` bounds ``MissedRunPolicy/all``.
    ///   - grace: a fire late by at most this much is on time, not missed (the scheduler's own polling delay).
    ///   - next: the cron expression's next instant strictly after a given one, or nil when there is none.
    /// - Returns: the fires to enqueue and the next instant after `now`.
    public static func plan(due: Date, now: Date, policy: MissedRunPolicy, cap: Int, grace: Duration,
                            next: (Date) -> Date?) -> FirePlan {
        // Every instant in [due, now], keeping at most `keep` of the latest; bounded in steps so a long
        // downtime on a per-second schedule cannot stall the scheduler.
        let keep = policy == .all ? max(1, cap) : 1
        var latest: [Date] = []
        var instant: Date? = due
        var steps = 0
        while let current = instant, current <= now, steps < 5_000_000 {
            latest.append(current)
            if latest.count > keep { latest.removeFirst(latest.count - keep) }
            instant = next(current)
            steps += 1
        }
        while let current = instant, current <= now { instant = next(current) }  // only after the step bound
        let graceSeconds = Double(grace.milliseconds) / 1000
        let onTime = latest.last.map { now.timeIntervalSince($0) <= graceSeconds } ?? false
        let fires: [Date]
        switch policy {
        case .skip: fires = onTime ? [latest.last!] : []
        case .once: fires = latest.last.map { [$0] } ?? []
        case .all: fires = latest
        }
        return FirePlan(fires: fires, nextFireAt: instant)
    }
}
