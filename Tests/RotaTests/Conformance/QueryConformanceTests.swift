import Foundation
import Testing
@testable import Rota

@Suite("Store conformance: queries, stats and counts")
struct QueryConformanceTests {
    // MARK: task, attempts, list

    @Test(arguments: StoreKind.all)
    func aMissingTaskIsNilWithNoAttempts(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        #expect(try await f.store.task(1) == nil)
        #expect(try await f.store.attempts(of: 1) == [])
        let id = try await f.store.enqueue(TaskSpec(name: "a")).id
        #expect(try await f.store.task(id + 1) == nil)
    }

    @Test(arguments: StoreKind.all)
    func attemptsAreListedInAttemptOrder(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let id = try await f.store.enqueue(TaskSpec(name: "job", runAt: at(0), maxAttempts: 3)).id
        for n in 1...3 {
            let now = at(Double(n))
            let claimed = try await f.store.claimOne(now: now)
            #expect(claimed.attempt == n)
            let resolution: Completion.Resolution = n < 3 ? .retry(outcome: .failed, error: "e\(n)", runAt: now) : .succeeded(result: "\(n)")
            _ = try await f.store.complete([claimed.completing(resolution, at: now.addingTimeInterval(0.5))])
        }
        let attempts = try await f.store.attempts(of: id)
        #expect(attempts.map(\.attempt) == [1, 2, 3])
        #expect(attempts.map(\.outcome) == [.failed, .failed, .succeeded])
        #expect(attempts.map(\.error) == ["e1", "e2", nil])
        #expect(attempts.map(\.result) == [nil, nil, "3"])
        #expect(attempts.map(\.startedAt) == [at(1), at(2), at(3)])
        #expect(attempts.map(\.finishedAt) == [at(1.5), at(2.5), at(3.5)])
        #expect(attempts.allSatisfy { $0.taskID == id && $0.worker == "w1" })
        #expect(try await f.store.existing(id).result == "3")
        #expect(try await f.store.existing(id).lastError == "e2")
    }

    @Test(arguments: StoreKind.all)
    func aListIsNewestFirstLimitedAndPagedByID(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let ids = try await f.store.enqueue((0..<10).map { TaskSpec(name: "t\($0)") }).map(\.id)
        #expect(try await f.store.list(TaskFilter()).map(\.id) == ids.reversed())
        #expect(try await f.store.list(TaskFilter(limit: 3)).map(\.id) == Array(ids.reversed().prefix(3)))
        #expect(try await f.store.list(TaskFilter(limit: 0)).isEmpty)
        #expect(try await f.store.list(TaskFilter(limit: 3, beforeID: ids[7])).map(\.id) == [ids[6], ids[5], ids[4]])
        #expect(try await f.store.list(TaskFilter(beforeID: ids[0])).isEmpty)
        // Paging through all of them, three at a time.
        var paged: [TaskID] = []
        var before: TaskID? = nil
        while true {
            let page = try await f.store.list(TaskFilter(limit: 3, beforeID: before)).map(\.id)
            if page.isEmpty { break }
            paged += page
            before = page.last
        }
        #expect(paged == ids.reversed())
    }

    @Test(arguments: StoreKind.all)
    func aListFiltersByState(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let s = try await TasksInEveryState.make(f.store)
        #expect(try await f.store.list(TaskFilter(states: [.running])).map(\.id) == [s.running])
        #expect(try await f.store.list(TaskFilter(states: [.dead, .scheduled])).map(\.id) == [s.dead, s.scheduled])
        #expect(try await f.store.list(TaskFilter(states: [.scheduled, .dead, .scheduled])).map(\.id) == [s.dead, s.scheduled])
        #expect(try await f.store.list(TaskFilter(states: [.succeeded])).first?.result == "true")
        #expect(try await f.store.list(TaskFilter(states: TaskState.allCases)).map(\.id) == s.all.reversed())
        #expect(try await f.store.list(TaskFilter(states: [.running, .succeeded, .cancelled], limit: 2)).map(\.id) == [s.cancelled, s.succeeded])
    }

    @Test(arguments: StoreKind.all)
    func aListOfOneStateIsNewestFirstAcrossManyTasks(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let ids = try await f.store.enqueue((0..<100).map { _ in TaskSpec(name: "a", runAt: at(0)) }).map(\.id)
        #expect(try await f.store.list(TaskFilter(states: [.scheduled], limit: 5)).map(\.id) == Array(ids.reversed().prefix(5)))
        let claimed = try await f.store.claimDue(limit: 97)
        _ = try await f.store.complete(claimed.map { $0.completing(.succeeded(result: nil), at: at(1)) })
        #expect(try await f.store.list(TaskFilter(states: [.scheduled])).map(\.id) == [ids[99], ids[98], ids[97]])
        #expect(try await f.store.list(TaskFilter(states: [.succeeded], limit: 2)).map(\.id) == [ids[96], ids[95]])
        #expect(try await f.store.list(TaskFilter(states: [.succeeded, .scheduled], limit: 4)).map(\.id)
                == [ids[99], ids[98], ids[97], ids[96]])
        #expect(try await f.store.list(TaskFilter(states: [.succeeded], queue: "default", name: "a", limit: 1_000)).count == 97)
    }

    @Test(arguments: StoreKind.all)
    func aListFiltersByQueueNameAndSchedule(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let ids = try await f.store.enqueue([
            TaskSpec(name: "email", queue: "mail"),
            TaskSpec(name: "report", queue: "reports", schedule: "nightly", fireAt: at(0)),
            TaskSpec(name: "email", queue: "reports"),
        ]).map(\.id)
        #expect(try await f.store.list(TaskFilter(queue: "reports")).map(\.id) == [ids[2], ids[1]])
        #expect(try await f.store.list(TaskFilter(name: "email")).map(\.id) == [ids[2], ids[0]])
        #expect(try await f.store.list(TaskFilter(queue: "reports", name: "email")).map(\.id) == [ids[2]])
        #expect(try await f.store.list(TaskFilter(schedule: "nightly")).map(\.id) == [ids[1]])
        #expect(try await f.store.list(TaskFilter(name: "nope")).isEmpty)
        #expect(try await f.store.list(TaskFilter(states: [.running], queue: "reports")).isEmpty)
    }

    @Test(arguments: StoreKind.all)
    func aListFiltersByBatchName(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let a = try await f.store.openBatch(name: "import-a")
        let b = try await f.store.openBatch(name: "import-b")
        let ids = try await f.store.enqueue([
            TaskSpec(name: "row", batchID: a.id, batchItem: "1"), TaskSpec(name: "row", batchID: b.id, batchItem: "1"),
            TaskSpec(name: "row", batchID: a.id, batchItem: "2"), TaskSpec(name: "row"),
        ]).map(\.id)
        let inA = try await f.store.list(TaskFilter(batch: "import-a"))
        #expect(inA.map(\.id) == [ids[2], ids[0]])
        #expect(inA.allSatisfy { $0.batch == "import-a" })
        #expect(try await f.store.list(TaskFilter(batch: "missing")).isEmpty)
    }

    @Test(arguments: StoreKind.all)
    func aListFiltersByCreationInstant(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let ids = try await f.store.enqueue([TaskSpec(name: "a"), TaskSpec(name: "b")]).map(\.id)
        let created = try await f.store.existing(ids[0]).createdAt
        #expect(try await f.store.list(TaskFilter(createdSince: created)).count == 2)  // at or after
        #expect(try await f.store.list(TaskFilter(createdSince: created.addingTimeInterval(-3600))).count == 2)
        #expect(try await f.store.list(TaskFilter(createdSince: created.addingTimeInterval(3600))).isEmpty)
    }

    @Test(arguments: StoreKind.all)
    func aListSinceAnInstantLeavesOutTheTasksCreatedBeforeIt(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let old = try await f.store.enqueue(TaskSpec(name: "email", queue: "mail")).id
        let oldCreatedAt = try await f.store.existing(old).createdAt
        // A store stamps creation with the wall clock, in whole milliseconds: the next tasks come later.
        try await Task.sleep(for: .milliseconds(20))
        let ids = try await f.store.enqueue([TaskSpec(name: "report", queue: "reports"), TaskSpec(name: "email", queue: "reports")]).map(\.id)
        let justAfterOld = Date(unixMillis: oldCreatedAt.unixMillis + 1)
        try #require(try await f.store.existing(ids[0]).createdAt >= justAfterOld, "the later tasks were created later")
        #expect(try await f.store.list(TaskFilter(createdSince: justAfterOld)).map(\.id) == [ids[1], ids[0]])
        #expect(try await f.store.list(TaskFilter(createdSince: oldCreatedAt.addingTimeInterval(-3600))).map(\.id) == [ids[1], ids[0], old])
    }

    // MARK: stats

    @Test(arguments: StoreKind.all)
    func theStatsOfAnEmptyStoreAreZero(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let stats = try await f.store.stats(now: at(0))
        #expect(stats.states == Dictionary(uniqueKeysWithValues: TaskState.allCases.map { ($0, 0) }))
        #expect(stats.queues.isEmpty)
        #expect(stats.oldestDueAt == nil)
        #expect(stats.finishedLastMinute == 0 && stats.finishedLastHour == 0)
        #expect(stats.scheduledByName.isEmpty)
    }

    @Test(arguments: StoreKind.all)
    func statsCountStatesQueuesAndThroughput(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        // Finished 30 s ago: succeeded, dead, cancelled (a cancel is not throughput).
        _ = try await TasksInEveryState.make(f.store, queue: "a", finishedAt: at(-30))
        // Finished 30 min ago, and 2 h ago.
        _ = try await TasksInEveryState.make(f.store, queue: "b", finishedAt: at(-1800))
        _ = try await TasksInEveryState.make(f.store, queue: "b", finishedAt: at(-7200))
        _ = try await f.store.enqueue(TaskSpec(name: "later", queue: "a", runAt: at(600)))

        let stats = try await f.store.stats(now: at(0))
        #expect(stats.states == [.scheduled: 4, .running: 3, .succeeded: 3, .dead: 3, .cancelled: 3])
        #expect(stats.queues == ["a": [.scheduled: 2, .running: 1, .succeeded: 1, .dead: 1, .cancelled: 1],
                                 "b": [.scheduled: 2, .running: 2, .succeeded: 2, .dead: 2, .cancelled: 2]])
        #expect(stats.oldestDueAt == at(-60))  // the s0 tasks were due at at(-60); the later one is not due
        #expect(stats.finishedLastMinute == 2)
        #expect(stats.finishedLastHour == 4)
        #expect(stats.scheduledByName == ["s0": 3, "later": 1])
        // Seen an hour later, nothing finished recently.
        let later = try await f.store.stats(now: at(7200))
        #expect(later.finishedLastMinute == 0 && later.finishedLastHour == 0)
        #expect(later.oldestDueAt == at(-60))
    }

    @Test(arguments: StoreKind.all)
    func theOldestDueTaskIsFoundAcrossQueuesAndPrioritiesAndIgnoresFutureOnes(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        _ = try await f.store.enqueue(TaskSpec(name: "later", runAt: at(60)))
        #expect(try await f.store.stats(now: at(0)).oldestDueAt == nil)
        _ = try await f.store.enqueue([
            TaskSpec(name: "a", priority: 5, runAt: at(-10)),
            TaskSpec(name: "a", priority: 0, runAt: at(-30)),
            TaskSpec(name: "a", priority: 2, runAt: at(-20)),
            TaskSpec(name: "a", queue: "other", priority: 1, runAt: at(-40)),
        ])
        #expect(try await f.store.stats(now: at(0)).oldestDueAt == at(-40))
        _ = try await f.store.enqueue(TaskSpec(name: "a", priority: .max, runAt: at(-50)))
        #expect(try await f.store.stats(now: at(0)).oldestDueAt == at(-50))
        // Running tasks are not waiting.
        _ = try await f.store.claimDue("other", now: at(0))
        _ = try await f.store.claimDue(limit: 1, now: at(0))  // the priority .max one
        #expect(try await f.store.stats(now: at(0)).oldestDueAt == at(-30))
    }

    @Test(arguments: StoreKind.all)
    func statsAgreeWithTheTasksAfterEveryKindOfChange(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let store = f.store
        func expectStatsAgree(_ step: String, now: Date = at(0), sourceLocation: SourceLocation = #_sourceLocation) async throws {
            let tasks = try await store.allTasks()
            let stats = try await store.stats(now: now)
            var states = Dictionary(uniqueKeysWithValues: TaskState.allCases.map { ($0, 0) })
            var queues: [String: [TaskState: Int]] = [:]
            var byName: [String: Int] = [:]
            for task in tasks {
                states[task.state, default: 0] += 1
                queues[task.queue, default: [:]][task.state, default: 0] += 1
                if task.state == .scheduled { byName[task.name, default: 0] += 1 }
            }
            #expect(stats.states == states, "after \(step)", sourceLocation: sourceLocation)
            #expect(stats.queues == queues, "after \(step)", sourceLocation: sourceLocation)
            #expect(stats.scheduledByName == byName, "after \(step)", sourceLocation: sourceLocation)
            let due = tasks.filter { $0.state == .scheduled && $0.runAt <= now }.map(\.runAt).min()
            #expect(stats.oldestDueAt == due, "after \(step)", sourceLocation: sourceLocation)
        }
        _ = try await store.enqueue(TaskSpec(name: "a", runAt: at(0), uniqueKey: "k"))
        _ = try await store.enqueue(TaskSpec(name: "a", runAt: at(0), uniqueKey: "k"))
        var specs: [TaskSpec] = []
        for index in 0..<70 {
            let name = index % 2 == 0 ? "a" : "b", queue = index % 3 == 0 ? "q" : "default"
            specs.append(TaskSpec(name: name, queue: queue, runAt: at(Double(-index))))
        }
        _ = try await store.enqueue(specs)
        try await expectStatsAgree("enqueue")
        let claimed = try await store.claimDue(limit: 1_000) + store.claimDue("q", limit: 1_000)
        try await expectStatsAgree("claim")
        var completions = claimed.prefix(45).map { $0.completing(.succeeded(result: "1"), at: at(1)) }
        completions.append(claimed[45].completing(.retry(outcome: .failed, error: "again", runAt: at(1)), at: at(1)))
        completions.append(claimed[46].completing(.dead(outcome: .failed, error: "no"), at: at(1)))
        completions.append(claimed[47].completing(.cancelled(reason: "asked"), at: at(1)))
        completions.append(claimed[48].completing(.handBack(reason: "shutdown"), at: at(1)))
        completions.append(claimed[49].completing(.succeeded(result: nil), worker: "someone-else", at: at(1)))
        _ = try await store.complete(completions)
        try await expectStatsAgree("complete")
        _ = try await store.recoverExpiredLeases(now: at(7200))
        try await expectStatsAgree("recoverExpiredLeases")
        let again = try await store.claimDue(worker: "w2", limit: 1_000, now: at(7200))
        #expect(!again.isEmpty)
        _ = try await store.recoverLeases(ofWorkers: ["w2"], now: at(7201), reason: "gone")
        try await expectStatsAgree("recoverLeases")
        let scheduled = try await store.list(TaskFilter(states: [.scheduled], limit: 1)).map(\.id)
        let running = try await store.claimDue(limit: 1, now: at(7202)).map(\.id)
        _ = try await store.cancel(scheduled + running, now: at(7203))
        try await expectStatsAgree("cancel")
        let dead = try await store.list(TaskFilter(states: [.dead], limit: 1)).map(\.id)
        _ = try await store.retry(dead, now: at(7204))
        _ = try await store.retryAll(state: .cancelled, queue: nil, now: at(7204))
        try await expectStatsAgree("retry")
        _ = try await store.purge(olderThan: at(7200), states: [])
        try await expectStatsAgree("purge")
        #expect(try await store.stats(now: at(0)).states[.succeeded] == 0)
    }

    // MARK: countUnfinished and nextRunAt

    @Test(arguments: StoreKind.all)
    func countUnfinishedCountsScheduledAndRunningTasksOfTheQueuesAndNames(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        _ = try await TasksInEveryState.make(f.store)
        _ = try await f.store.enqueue([
            TaskSpec(name: "a", runAt: at(0)), TaskSpec(name: "a", runAt: at(3600)), TaskSpec(name: "b", runAt: at(0)),
            TaskSpec(name: "a", queue: "other", runAt: at(0)),
        ])
        _ = try await f.store.claimDue(names: ["b"])
        #expect(try await f.store.countUnfinished(queues: ["default"], names: ["a"]) == 2)
        #expect(try await f.store.countUnfinished(queues: ["default"], names: ["a", "b"]) == 3)
        #expect(try await f.store.countUnfinished(queues: ["default"], names: nil) == 5)  // with s0 and s1
        #expect(try await f.store.countUnfinished(queues: ["default", "other"], names: ["a", "b"]) == 4)
        #expect(try await f.store.countUnfinished(queues: ["other"], names: nil) == 1)
        #expect(try await f.store.countUnfinished(queues: ["nope"], names: nil) == 0)
        #expect(try await f.store.countUnfinished(queues: [], names: nil) == 0)
        #expect(try await f.store.countUnfinished(queues: ["default"], names: []) == 0)
    }

    @Test(arguments: StoreKind.all)
    func nextRunAtIsTheEarliestRunAtOfTheQueuesScheduledTasks(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        #expect(try await f.store.nextRunAt(queues: ["default"], names: nil) == nil)
        _ = try await f.store.enqueue([
            TaskSpec(name: "a", queue: "q1", priority: 5, runAt: at(300)),
            TaskSpec(name: "b", queue: "q1", priority: 0, runAt: at(100)),
            TaskSpec(name: "c", queue: "q2", runAt: at(50)),
            TaskSpec(name: "d", queue: "q3", runAt: at(-10)),
        ])
        #expect(try await f.store.nextRunAt(queues: ["q1"], names: nil) == at(100))
        #expect(try await f.store.nextRunAt(queues: ["q1", "q2"], names: nil) == at(50))
        #expect(try await f.store.nextRunAt(queues: ["q3", "q1"], names: nil) == at(-10))  // due or not
        #expect(try await f.store.nextRunAt(queues: ["nope"], names: nil) == nil)
        #expect(try await f.store.nextRunAt(queues: [], names: nil) == nil)
    }

    @Test(arguments: StoreKind.all)
    func nextRunAtCountsOnlyTheNamesTheWorkerCanClaim(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        _ = try await f.store.enqueue([
            TaskSpec(name: "unhandled", queue: "q", runAt: at(10)),
            TaskSpec(name: "handled", queue: "q", runAt: at(100)),
        ])
        #expect(try await f.store.nextRunAt(queues: ["q"], names: ["handled"]) == at(100))
        #expect(try await f.store.nextRunAt(queues: ["q"], names: ["handled", "unhandled"]) == at(10))
        #expect(try await f.store.nextRunAt(queues: ["q"], names: ["other"]) == nil)
        #expect(try await f.store.nextRunAt(queues: ["q"], names: []) == nil)
        #expect(try await f.store.nextRunAt(queues: ["q"], names: nil) == at(10))
    }

    @Test(arguments: StoreKind.all)
    func nextRunAtIgnoresRunningAndFinishedTasks(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let ids = try await f.store.enqueue([TaskSpec(name: "a", runAt: at(-10)), TaskSpec(name: "b", runAt: at(-5)),
                                             TaskSpec(name: "c", runAt: at(20))]).map(\.id)
        _ = try await f.store.claimDue(names: ["a"], now: at(0))
        _ = try await f.store.cancel([ids[1]], now: at(0))
        #expect(try await f.store.nextRunAt(queues: ["default"], names: nil) == at(20))
        _ = try await f.store.cancel([ids[2]], now: at(0))
        #expect(try await f.store.nextRunAt(queues: ["default"], names: nil) == nil)
    }
}
