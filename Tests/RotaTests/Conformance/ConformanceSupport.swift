import Foundation
import Testing
@testable import Rota

/// The instant every conformance test counts from: a whole minute (2100-01-01T00:00:00Z), later than the
/// wall clock, so what a store stamps with the wall clock (an enqueue without `runAt`, a batch's
/// `on_complete` task) is due at it. Tests pass explicit instants everywhere the API takes one.
let conformanceT0 = Date(unixMillis: 4_102_444_800_000)

/// The instant `seconds` after ``conformanceT0`` (whole milliseconds, as stores keep them).
func at(_ seconds: Double) -> Date {
    Date(unixMillis: conformanceT0.unixMillis + Int64((seconds * 1000).rounded()))
}

extension TaskStore {
    /// Claims everything due in `queue` at `now` for `worker` (up to `limit`).
    func claimDue(_ queue: String = "default", names: [String]? = nil, worker: String = "w1", limit: Int = 100,
                  leaseUntil: Date = at(3600), now: Date = at(0)) async throws -> [ClaimedTask] {
        try await claim([ClaimRequest(queue: queue, names: names, limit: limit)], worker: worker, leaseUntil: leaseUntil, now: now)
    }

    /// Claims the one due task of `queue` (there must be one).
    func claimOne(_ queue: String = "default", names: [String]? = nil, worker: String = "w1",
                  leaseUntil: Date = at(3600), now: Date = at(0),
                  sourceLocation: SourceLocation = #_sourceLocation) async throws -> ClaimedTask {
        let claimed = try await claimDue(queue, names: names, worker: worker, limit: 1, leaseUntil: leaseUntil, now: now)
        return try #require(claimed.first, "a due task to claim", sourceLocation: sourceLocation)
    }

    /// The task, which must exist.
    func existing(_ id: TaskID, sourceLocation: SourceLocation = #_sourceLocation) async throws -> TaskRecord {
        try #require(try await task(id), "task \(id) should exist", sourceLocation: sourceLocation)
    }

    /// Every task, newest first.
    func allTasks() async throws -> [TaskRecord] { try await list(TaskFilter(limit: 100_000)) }

    /// The state of each task, in order.
    func states(_ ids: [TaskID]) async throws -> [TaskState?] {
        var states: [TaskState?] = []
        for id in ids { states.append(try await task(id)?.state) }
        return states
    }

    /// Non-zero counts per state, from `stats`.
    func nonZeroStates(now: Date = at(0)) async throws -> [TaskState: Int] {
        try await stats(now: now).states.filter { $0.value > 0 }
    }

    /// A snapshot of everything the store holds, through the protocol only.
    func snapshot(now: Date = at(0)) async throws -> StoreSnapshot { try await StoreSnapshot(self, now: now) }
}

extension ClaimedTask {
    /// The end of this attempt by `worker` at `finishedAt`.
    func completing(_ resolution: Completion.Resolution, worker: String = "w1", at finishedAt: Date) -> Completion {
        Completion(taskID: id, attempt: attempt, worker: worker, startedAt: startedAt, finishedAt: finishedAt, resolution: resolution)
    }
}

/// Everything a store holds, read through the protocol: for "nothing was written" checks on any store.
struct StoreSnapshot: Equatable, CustomStringConvertible {
    var tasks: [TaskRecord]
    var attempts: [TaskID: [AttemptRecord]]
    var stats: StoreStats
    var batches: [BatchRecord]
    var schedules: [ScheduleRecord]
    var workers: [WorkerRecord]

    init(_ store: some TaskStore, now: Date) async throws {
        tasks = try await store.allTasks()
        var attempts: [TaskID: [AttemptRecord]] = [:]
        for task in tasks { attempts[task.id] = try await store.attempts(of: task.id) }
        self.attempts = attempts
        stats = try await store.stats(now: now)
        batches = try await store.batches(limit: 1_000)
        schedules = try await store.schedules()
        workers = try await store.workers()
    }

    var description: String {
        "\(tasks.count) tasks, \(attempts.values.map(\.count).reduce(0, +)) attempts, \(batches.count) batches, "
            + "\(schedules.count) schedules, \(workers.count) workers"
    }
}

/// Five tasks of one queue, one in each state: scheduled, running (claimed by `w1`), succeeded, dead and
/// cancelled (their attempts ended at `finishedAt`).
struct TasksInEveryState {
    var scheduled: TaskID
    var running: TaskID
    var succeeded: TaskID
    var dead: TaskID
    var cancelled: TaskID

    var all: [TaskID] { [scheduled, running, succeeded, dead, cancelled] }
    var finished: [TaskID] { [succeeded, dead, cancelled] }

    /// Names: `s0` (scheduled) … `s4` (cancelled). All were due at `at(-60)` and claimed at `at(-1)`.
    static func make(_ store: some TaskStore, queue: String = "default", maxAttempts: Int = 1,
                     finishedAt: Date = at(0)) async throws -> TasksInEveryState {
        let ids = try await store.enqueue((0..<5).map {
            TaskSpec(name: "s\($0)", queue: queue, runAt: at(-60), maxAttempts: maxAttempts)
        }).map(\.id)
        let claimed = try await store.claimDue(queue, names: ["s1", "s2", "s3", "s4"], now: at(-1))
        func attempt(_ id: TaskID) throws -> ClaimedTask { try #require(claimed.first { $0.id == id }) }
        let applied = try await store.complete([
            try attempt(ids[2]).completing(.succeeded(result: "true"), at: finishedAt),
            try attempt(ids[3]).completing(.dead(outcome: .failed, error: "boom"), at: finishedAt),
            try attempt(ids[4]).completing(.cancelled(reason: "stop"), at: finishedAt),
        ])
        #expect(applied == [true, true, true])
        return TasksInEveryState(scheduled: ids[0], running: ids[1], succeeded: ids[2], dead: ids[3], cancelled: ids[4])
    }
}

/// Parses JSON text, for comparing JSON values whatever their formatting.
func jsonValue(_ text: String?) -> NSObject? {
    guard let text else { return nil }
    return (try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])) as? NSObject
}
