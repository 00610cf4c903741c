import Foundation

/// What to do about fire instants that passed while no scheduler was running.
///
/// A fire instant is *missed* when it is more than the grace period (see
/// ``CronExpression/dueFires(nextFire:now:in:missed:grace:)``) in the past when a scheduler gets to it.
/// Its text form, used in schedule files and in JSON, is `skip`, `once` or `all:N`.
public enum MissedRunPolicy: Sendable, Hashable, Codable, CustomStringConvertible {
    /// Do not run missed instants; carry on with the next one (the default).
    case skip
    /// Run one catch-up: the most recent missed instant.
    case once
    /// Run every missed instant, but at most the `cap` most recent ones.
    case all(cap: Int)

    /// The cap `all` gets when none is written: 100.
    public static let defaultCap = 100
    /// The largest cap accepted for `all`.
    public static let maximumCap = 100_000

    /// Parses `skip`, `once`, `all` (cap ``defaultCap``) or `all:N` (1 ≤ N ≤ ``maximumCap``), ignoring case.
    /// - Returns: `nil` for anything else.
    public init?(parsing text: String) {
        let t = text.lowercased()
        switch t {
        case "skip": self = .skip
        case "once": self = .once
        case "all": self = .all(cap: MissedRunPolicy.defaultCap)
        default:
            guard t.hasPrefix("all:"), let n = Int(t.dropFirst(4)), n >= 1, n <= MissedRunPolicy.maximumCap else {
                return nil
            }
            self = .all(cap: n)
        }
    }

    /// `skip`, `once` or `all:N`.
    public var description: String {
        switch self {
        case .skip: return "skip"
        case .once: return "once"
        case .all(let cap): return "all:\(cap)"
        }
    }

    /// Decodes the text form (`skip`, `once`, `all:N`).
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let policy = MissedRunPolicy(parsing: text) else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "expected skip, once, all or all:N, got \(text)"))
        }
        self = policy
    }

    /// Encodes the text form (`skip`, `once`, `all:N`).
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// What to do when a schedule fires while its previous run is still scheduled or running.
public enum OverlapPolicy: String, Sendable, Hashable, Codable, CaseIterable, CustomStringConvertible {
    /// Fire anyway; runs may overlap (the default).
    case allow
    /// Do not fire this instant.
    case skip

    /// `allow` or `skip`.
    public var description: String { rawValue }
}

/// What a schedule runs when it fires.
public enum ScheduleAction: Sendable, Hashable, Codable {
    /// Run a command on the process pool: `argv[0]` is the program (looked up in `PATH` when it has no
    /// slash), the rest its arguments. No shell is involved.
    case exec(argv: [String])
    /// Enqueue the registered task `name` with `payload`, a JSON text (`{}` when none was written).
    case task(name: String, payload: String)
}

/// One schedule, as read from a schedule file: when it fires, what it runs, and its policies.
///
/// Optional properties that are `nil` mean "not set in the file": the scheduler applies its own defaults.
public struct ScheduleDefinition: Sendable, Hashable, Codable {
    /// The schedule's name, unique across all loaded files.
    public var name: String
    /// The cron expression text (5 or 6 fields, or an `@` macro); see ``CronExpression``.
    public var expression: String
    /// The IANA identifier of the zone the expression is read in (default `UTC`).
    public var timeZone: String
    /// The queue the fired tasks go to (default ``ScheduleFiles/defaultQueue``).
    public var queue: String
    /// What runs at each fire.
    public var action: ScheduleAction
    /// The maximum number of attempts of each fired task (`RETRIES=`/`retries=`), or `nil` for the default.
    public var maxAttempts: Int?
    /// The time limit of one attempt in whole seconds (`TIMEOUT=`/`timeout=`), or `nil` for none/the default.
    public var timeoutSeconds: Int?
    /// The priority of the fired tasks (`PRIORITY=`/`priority=`), or `nil` for the default.
    public var priority: Int?
    /// The missed-run policy (default ``MissedRunPolicy/skip``).
    public var missed: MissedRunPolicy
    /// The overlap policy (default ``OverlapPolicy/allow``).
    public var overlap: OverlapPolicy
    /// The most each fire's task is delayed, in whole seconds (`JITTER=`/`jitter=`), or `nil` for no delay.
    /// The delay of one fire is fixed by the schedule's name and the fire instant (see `FireJitter` in Rota).
    public var jitterSeconds: Int?
    /// The file the schedule was read from.
    public var file: String
    /// The 1-based line of the schedule in ``file``.
    public var line: Int

    /// Creates a schedule definition.
    /// - Parameters:
    ///   - name: Unique schedule name.
    ///   - expression: Cron expression text.
    ///   - timeZone: IANA zone identifier.
    ///   - queue: Queue of the fired tasks.
    ///   - action: What runs.
    ///   - maxAttempts: Maximum attempts per fired task, `nil` for the default.
    ///   - timeoutSeconds: Time limit of an attempt in seconds, `nil` for the default.
    ///   - priority: Priority of fired tasks, `nil` for the default.
    ///   - missed: Missed-run policy.
    ///   - overlap: Overlap policy.
    ///   - jitterSeconds: The most a fire's task is delayed, in seconds, `nil` for none.
    ///   - file: Source file.
    ///   - line: Source line (1-based).
    public init(
        name: String, expression: String, timeZone: String = "UTC", queue: String = ScheduleFiles.defaultQueue,
        action: ScheduleAction, maxAttempts: Int? = nil, timeoutSeconds: Int? = nil, priority: Int? = nil,
        missed: MissedRunPolicy = .skip, overlap: OverlapPolicy = .allow, jitterSeconds: Int? = nil,
        file: String = "", line: Int = 0
    ) {
        self.name = name
        self.expression = expression
        self.timeZone = timeZone
        self.queue = queue
        self.action = action
        self.maxAttempts = maxAttempts
        self.timeoutSeconds = timeoutSeconds
        self.priority = priority
        self.missed = missed
        self.overlap = overlap
        self.jitterSeconds = jitterSeconds
        self.file = file
        self.line = line
    }

    /// ``jitterSeconds`` as a `Duration`.
    public var jitter: Duration? { jitterSeconds.map { .seconds($0) } }

    /// ``timeoutSeconds`` as a `Duration`.
    public var timeout: Duration? { timeoutSeconds.map { .seconds($0) } }

    /// Parses ``expression``.
    /// - Throws: ``CronError`` (never for a definition that came from ``ScheduleFiles``, which validated it).
    public func cronExpression() throws -> CronExpression { try CronExpression(expression) }

    /// The zone named by ``timeZone``, or `nil` if the identifier is unknown.
    public var zone: TimeZone? { TimeZone(identifier: timeZone) }

    /// The fire instants due at `now` under this schedule's missed-run policy; see
    /// ``CronExpression/dueFires(nextFire:now:in:missed:grace:)``.
    /// - Throws: ``CronError`` if the expression is invalid, or ``ScheduleFileError`` if the zone is unknown.
    public func dueFires(nextFire: Date, now: Date, grace: TimeInterval = 60) throws -> DueFires {
        guard let zone else {
            throw ScheduleFileError(file: file, line: line, column: 1, message: "unknown time zone \"\(timeZone)\"")
        }
        return try cronExpression().dueFires(nextFire: nextFire, now: now, in: zone, missed: missed, grace: grace)
    }
}

/// The outcome of ``CronExpression/dueFires(nextFire:now:in:missed:grace:)``: what to enqueue now and
/// where the schedule goes next.
public struct DueFires: Sendable, Equatable {
    /// The fire instants to enqueue now, in increasing order (each one a distinct `(schedule, instant)`).
    public var due: [Date]
    /// Whether missed instants were left out by the policy (all of them for `skip`, all but the latest
    /// for `once`, those beyond the cap for `all`).
    public var skippedMissed: Bool
    /// The schedule's next fire instant to store: the first one strictly after `now`, or `nil` when the
    /// expression has no fire within 50 years.
    public var nextFire: Date?

    /// Creates a value.
    public init(due: [Date], skippedMissed: Bool, nextFire: Date?) {
        self.due = due
        self.skippedMissed = skippedMissed
        self.nextFire = nextFire
    }
}

extension CronExpression {
    /// Which fire instants a scheduler should run at `now`, given the schedule's stored next fire.
    ///
    /// The instants from `nextFire` up to `now` (inclusive) are due. Those within `grace` seconds of `now`
    /// are *on time* and always run (a scheduler that polls a little late does not lose them). Older ones
    /// are *missed* (the scheduler was down or stalled) and follow `missed`:
    /// - ``MissedRunPolicy/skip``: none of them runs;
    /// - ``MissedRunPolicy/once``: only the most recent missed instant runs (one catch-up);
    /// - ``MissedRunPolicy/all(cap:)``: every missed instant runs, at most the `cap` most recent ones.
    ///
    /// Store ``DueFires/nextFire`` (the first fire strictly after `now`) in the same transaction that enqueues
    /// ``DueFires/due`` with a unique `(schedule, instant)`, and a restart never fires an instant twice.
    /// - Parameters:
    ///   - nextFire: The schedule's first instant not yet fired. If it is after `now`, nothing is due.
    ///   - now: The current instant.
    ///   - timeZone: The schedule's zone.
    ///   - missed: The missed-run policy.
    ///   - grace: How late, in seconds, an instant may be run and still count as on time (default 60).
    public func dueFires(
        nextFire: Date, now: Date, in timeZone: TimeZone, missed: MissedRunPolicy, grace: TimeInterval = 60
    ) -> DueFires {
        guard nextFire <= now else { return DueFires(due: [], skippedMissed: false, nextFire: nextFire) }
        var cursor = ZoneCursor(timeZone)
        let first = Int(nextFire.timeIntervalSince1970.rounded(.up)) // first candidate second
        let nowSecond = CronExpression.seconds(now)
        let onTimeFrom = max(first, Int(now.addingTimeInterval(-max(0, grace)).timeIntervalSince1970.rounded(.up)))
        var due: [Int] = []
        // On time: [onTimeFrom, now].
        var t = onTimeFrom - 1
        while due.count < 100_000, let n = next(after: t, cursor: &cursor), n <= nowSecond {
            due.append(n)
            t = n
        }
        // Missed: [first, onTimeFrom).
        var missedRuns: [Int] = []
        var skipped = false
        if first < onTimeFrom, let earliest = next(after: first - 1, cursor: &cursor), earliest < onTimeFrom {
            let take: Int
            switch missed {
            case .skip: take = 0
            case .once: take = 1
            case .all(let cap): take = max(0, cap)
            }
            var before = onTimeFrom
            while missedRuns.count < take, let p = previous(before: before, notBefore: first, cursor: &cursor) {
                missedRuns.append(p)
                before = p
            }
            skipped = missedRuns.isEmpty || (missedRuns.last! > earliest)
        }
        let all = (missedRuns.reversed() + due).map { Date(timeIntervalSince1970: TimeInterval($0)) }
        let following = next(after: nowSecond, cursor: &cursor).map { Date(timeIntervalSince1970: TimeInterval($0)) }
        return DueFires(due: all, skippedMissed: skipped, nextFire: following)
    }

    /// The last fire in `[notBefore, before)` (Unix seconds), found by bisection over `next(after:)`.
    func previous(before: Int, notBefore: Int, cursor: inout ZoneCursor) -> Int? {
        let end = before - 1
        guard end >= notBefore, var found = next(after: notBefore - 1, cursor: &cursor), found <= end else { return nil }
        var low = found
        var high = end
        while low < high {
            let mid = low + (high - low + 1) / 2
            if let n = next(after: mid - 1, cursor: &cursor), n <= end {
                low = n
                found = n
            } else {
                high = mid - 1
            }
        }
        return found
    }
}
