import Foundation
import Testing
@testable import Rota
@testable import RotaSQLiteStore
import RotaSQLite

/// `task_counts` (what `rota stats` reads) must agree with the tasks table after every kind of change: the
/// triggers count most of them, the store counts the two hot transitions (migration 0003) and its inserts (0005).
@Suite("SQLiteTaskStore: task counts")
struct TaskCountsTests {
    /// Records an issue for every count that disagrees with the table.
    private func expectCountsAgree(_ store: SQLiteTaskStore, _ step: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let wrong = try store.countMismatches()
        #expect(wrong.isEmpty, "after \(step): \(wrong)", sourceLocation: sourceLocation)
        let wrongBatches = try store.batchCountMismatches()
        #expect(wrongBatches.isEmpty, "after \(step): \(wrongBatches)", sourceLocation: sourceLocation)
    }

    private func states(_ store: SQLiteTaskStore) async throws -> [TaskState: Int] {
        try await store.stats(now: Date()).states.filter { $0.value > 0 }
    }

    @Test func countsAgreeAfterEveryKindOfChange() async throws {
        let f = try StoreFixture()
        let store = f.store
        // Enqueue: one, a multi-row chunk (>= 32), a known unique key (not inserted), two queues and names.
        _ = try await store.enqueue(TaskSpec(name: "a", uniqueKey: "k"))
        _ = try await store.enqueue(TaskSpec(name: "a", uniqueKey: "k"))
        _ = try await store.enqueue((0..<70).map { TaskSpec(name: $0 % 2 == 0 ? "a" : "b", queue: $0 % 3 == 0 ? "q" : "default") })
        try expectCountsAgree(store, "enqueue")
        #expect(try await states(store) == [.scheduled: 71])

        // Claim from two queues, then complete: successes in multi-row chunks and one at a time, and every
        // other resolution.
        let claimed = try await store.claimAll(limitless: true) + store.claimAll("q", limitless: true)
        try expectCountsAgree(store, "claim")
        #expect(try await states(store) == [.running: 71])
        var completions = claimed.prefix(45).map { Completion($0, .succeeded(result: "1")) }
        completions.append(Completion(claimed[45], .retry(outcome: .failed, error: "again", runAt: Date())))
        completions.append(Completion(claimed[46], .dead(outcome: .failed, error: "no")))
        completions.append(Completion(claimed[47], .cancelled(reason: "asked")))
        completions.append(Completion(claimed[48], .handBack(reason: "shutdown")))
        _ = try await store.complete(completions)
        try expectCountsAgree(store, "complete (store API)")
        // The scheduler's batch form, with a success whose lease is gone (not applied, not counted).
        let rest = Array(claimed[49...])
        let late = Completion(taskID: rest[0].id, attempt: rest[0].attempt, worker: "someone-else", startedAt: Date(),
                              finishedAt: Date(), resolution: .succeeded(result: nil))
        // Half carry their queue and name (as the scheduler's do), half are read back.
        var late2 = Completion(rest[1], worker: "someone-else", .succeeded(result: nil))
        late2.queueAndName = QueueAndName(queue: rest[1].queue, name: rest[1].name)
        let successes = rest.dropFirst(2).enumerated().map { index, task in
            var completion = Completion(task, .succeeded(result: nil))
            if index % 2 == 0 { completion.queueAndName = QueueAndName(queue: task.queue, name: task.name) }
            return completion
        }
        let applied = try store.completeSync([late, late2] + successes)
        #expect(applied.prefix(2) == [false, false])
        #expect(applied.dropFirst(2).allSatisfy { $0 })
        try expectCountsAgree(store, "completeBatch")

        // Lease recovery (expired, and of a dead worker), cancel, retry, retry all, purge.
        _ = try await store.recoverExpiredLeases(now: instant(3600))
        try expectCountsAgree(store, "recoverExpiredLeases")
        let again = try await store.claimAll(worker: "w2", limitless: true)
        #expect(!again.isEmpty)
        _ = try await store.recoverLeases(ofWorkers: ["w2"], now: Date(), reason: "gone")
        try expectCountsAgree(store, "recoverLeases")
        let scheduled = try await store.list(TaskFilter(states: [.scheduled], limit: 1)).map(\.id)
        let running = try await store.claimAll(limitless: false).map(\.id)
        _ = try await store.cancel(scheduled + running, now: Date())
        try expectCountsAgree(store, "cancel")
        let dead = try await store.list(TaskFilter(states: [.dead], limit: 1)).map(\.id)
        _ = try await store.retry(dead, now: Date())
        _ = try await store.retryAll(state: .cancelled, queue: nil, now: Date())
        try expectCountsAgree(store, "retry")
        _ = try await store.purge(olderThan: instant(3600), states: [])
        try expectCountsAgree(store, "purge")
        #expect(try await states(store)[.succeeded] == nil)
    }

    @Test func countsAgreeForBatchesAndScheduleFires() async throws {
        let f = try StoreFixture()
        let store = f.store
        let batch = try await store.openBatch(name: "b", onComplete: #"{"name":"done"}"#)
        _ = try await store.addBatchItems(batch.id, (0..<10).map { TaskSpec(name: "item", batchID: batch.id, batchItem: "\($0)") })
        // Submitted again (a restarted submission): the items already there are neither inserted nor counted.
        await #expect(try store.addBatchItems(batch.id, (5..<12).map { TaskSpec(name: "item", batchID: batch.id, batchItem: "\($0)") }) == 2)
        _ = try await store.sealBatch(batch.id)
        await #expect(try store.batch(named: "b")?.total == 12)
        try expectCountsAgree(store, "batch submit")
        let claimed = try await store.claimAll(names: ["item"], limitless: true)
        _ = try store.completeSync(claimed.map { Completion($0, .succeeded(result: nil)) })
        // The batch's on_complete task is inserted by the batches_complete trigger, which counts it.
        try expectCountsAgree(store, "batch completion")
        #expect(try await states(store) == [.succeeded: 12, .scheduled: 1])
        _ = try await store.cancelBatch("b")
        _ = try await store.retryBatch("b")
        try expectCountsAgree(store, "batch cancel and retry")

        _ = try await store.syncSchedules([ScheduleSpec(name: "tick", expression: "* * * * *", taskName: "tick")],
                                    now: instant(-120), firstFire: { _ in instant(-60) })
        // Two instants fire; then the same two again (the schedule moved back): those insert and count nothing.
        let instants = [instant(-60), instant(-30)]
        let fired = try await store.fireDueSchedules(now: Date()) { _ in FirePlan(fires: instants, nextFireAt: instant(60)) }
        #expect(fired.map(\.inserted) == [true, true])
        try expectCountsAgree(store, "schedule fire")
        try f.connection().execute("UPDATE schedules SET next_fire_at = \(instant(-60).unixMillis)")
        let refired = try await store.fireDueSchedules(now: Date()) { _ in FirePlan(fires: instants, nextFireAt: instant(60)) }
        #expect(refired.map(\.inserted) == [false, false])
        try expectCountsAgree(store, "schedule fire again")

        // A completing batch whose on_complete task's unique key is taken inserts nothing and counts nothing.
        let second = try await store.openBatch(name: "c", onComplete: #"{"name":"done","queue":"other"}"#)
        _ = try await store.addBatchItems(second.id, [TaskSpec(name: "item", batchID: second.id, batchItem: "0")])
        _ = try await store.sealBatch(second.id)
        _ = try await store.enqueue(TaskSpec(name: "squatter", uniqueKey: "rota:batch-complete:\(second.id)"))
        let last = try await store.claimAll(names: ["item"], limitless: true)
        _ = try store.completeSync(last.map { Completion($0, .succeeded(result: nil)) })
        await #expect(try store.batch(named: "c")?.completedAt != nil)
        #expect(try await store.list(TaskFilter(queue: "other")).isEmpty)
        try expectCountsAgree(store, "batch completion with its key taken")
    }

    @Test func aHandEditIsReportedAndRecountRepairsIt() async throws {
        let f = try StoreFixture()
        _ = try await f.store.enqueue((0..<5).map { _ in TaskSpec(name: "a") })
        // A state edited by hand without a column the triggers watch (migration 6): counts go wrong.
        let db = try f.connection()
        try db.execute("UPDATE tasks SET state = 'running' WHERE id <= 2")
        let wrong = try f.store.countMismatches()
        #expect(wrong == [
            CountMismatch(queue: "default", name: "a", state: "running", counted: 0, actual: 2),
            CountMismatch(queue: "default", name: "a", state: "scheduled", counted: 5, actual: 3),
        ])
        #expect(try f.store.recount() == 2)
        #expect(try f.store.countMismatches().isEmpty)
        #expect(try await f.store.stats(now: Date()).states[.running] == 2)
        // Edits by hand that name a column the triggers watch (run_at, last_error, queue, name) are counted
        // by them (migration 6), and deletes always are.
        try db.execute("UPDATE tasks SET state = 'dead', finished_at = 1, last_error = 'by hand' WHERE id = 3")
        try db.execute("DELETE FROM tasks WHERE id = 4")
        #expect(try f.store.countMismatches().isEmpty)
        // A task inserted by hand is not (the store counts its own inserts, migration 5).
        try db.execute("INSERT INTO tasks(name, run_at, created_at, updated_at) VALUES ('a', 1, 1, 1)")
        #expect(try f.store.countMismatches() == [
            CountMismatch(queue: "default", name: "a", state: "scheduled", counted: 1, actual: 2),
        ])
        #expect(try f.store.recount() == 1)
        #expect(try f.store.countMismatches().isEmpty)
        // A batch item inserted by hand is not added to its batch's total (migration 7); recount repairs it.
        let batch = try await f.store.openBatch(name: "b")
        _ = try await f.store.addBatchItems(batch.id, [TaskSpec(name: "a", batchItem: "1")])
        try db.execute("INSERT INTO tasks(name, run_at, created_at, updated_at, batch_id, batch_item) VALUES ('a', 1, 1, 1, \(batch.id), '2')")
        #expect(try f.store.batchCountMismatches() == [BatchCountMismatch(batch: "b", field: "total", counted: 1, actual: 2)])
        #expect(try f.store.recount() == 2) // the scheduled count of (default, a) and the batch
        #expect(try f.store.batchCountMismatches().isEmpty)
        #expect(try f.store.countMismatches().isEmpty)
    }

    /// Listing one state picks an index or a walk of the table from the counts; both give newest first.
    @Test func listingAStateIsNewestFirstWhetherTheStateIsRareOrCommon() async throws {
        let f = try StoreFixture()
        let store = f.store
        let ids = try await store.enqueue((0..<100).map { _ in TaskSpec(name: "a") }).map(\.id)
        // 100 scheduled: common. Run 97 of them to success: then 3 scheduled (rare) and 97 succeeded (common).
        #expect(try await store.list(TaskFilter(states: [.scheduled], limit: 5)).map(\.id) == Array(ids.reversed().prefix(5)))
        let claimed = try await store.claim([ClaimRequest(queue: "default", names: nil, limit: 97)], worker: "w1",
                                            leaseUntil: instant(30), now: Date())
        _ = try store.completeSync(claimed.map { Completion($0, .succeeded(result: nil)) })
        #expect(try await store.list(TaskFilter(states: [.scheduled])).map(\.id) == [ids[99], ids[98], ids[97]])
        #expect(try await store.list(TaskFilter(states: [.succeeded], limit: 2)).map(\.id) == [ids[96], ids[95]])
        // Succeeded becomes rare (3 of 1,100) once a backlog arrives; scheduled is common.
        _ = try store.recount()
        _ = try await store.purge(olderThan: instant(60), states: [.succeeded])
        _ = try await store.enqueue((0..<3).map { _ in TaskSpec(name: "a") })
        let more = try await store.claim([ClaimRequest(queue: "default", names: nil, limit: 3)], worker: "w1",
                                         leaseUntil: instant(30), now: Date())
        _ = try store.completeSync(more.map { Completion($0, .succeeded(result: nil)) })
        let backlog = try await store.enqueue((0..<1_000).map { _ in TaskSpec(name: "a") }).map(\.id)
        #expect(try await store.list(TaskFilter(states: [.succeeded])).map(\.id) == more.map(\.id).sorted(by: >))
        #expect(try await store.list(TaskFilter(states: [.scheduled], limit: 2)).map(\.id) == [backlog[999], backlog[998]])
        #expect(try await store.list(TaskFilter(states: [.succeeded, .scheduled], limit: 4)).map(\.id)
                == [backlog[999], backlog[998], backlog[997], backlog[996]])
        #expect(try await store.list(TaskFilter(states: [.succeeded], queue: "default", name: "a")).count == 3)
    }

    /// Without tasks_state, the queries of rare states must still use an index (never scan the table).
    @Test func rareStateQueriesUseTheirPartialIndexes() throws {
        let f = try StoreFixture()
        let db = try f.connection()
        func plan(_ sql: String) throws -> String {
            let statement = try db.prepare("EXPLAIN QUERY PLAN " + sql) // parameters left unbound (NULL)
            var details: [String] = []
            while try statement.step() { details.append(statement.string(3)) }
            return details.joined(separator: "\n")
        }
        #expect(try plan("SELECT id FROM tasks WHERE state = 'running' AND lease_owner = 'w'").contains("tasks_running"))
        #expect(try plan("SELECT id FROM tasks WHERE state = 'running' AND lease_until < 5").contains("tasks_running"))
        #expect(try plan("SELECT id FROM tasks WHERE state = 'dead' ORDER BY id DESC").contains("tasks_dead"))
        #expect(try plan("SELECT id FROM tasks WHERE state = 'cancelled' AND queue = 'q'").contains("tasks_cancelled"))
        let oldest = try plan(SQLiteTaskStore.firstDueAtMostPrioritySQL)
        #expect(oldest.contains("tasks_due") && !oldest.contains("TEMP B-TREE"), "\(oldest)")
    }

    /// A database at `path` migrated through step `version`, with `sql` run on it and the worker row of a
    /// scheduler that heartbeated just now (an older rota, still running).
    private static func databaseWithLiveOldScheduler(at path: String, migratedThrough version: Int, _ sql: String = "") throws {
        let db = try Connection(path: path, options: .init(quickCheck: false))
        try db.enableWAL()
        _ = try Migrator.migrate(db, with: SQLiteTaskStore.migrations.filter { $0.version <= version })
        let now = Date().unixMillis
        try db.execute(sql + "INSERT INTO workers(id, host, pid, started_at, heartbeat_at) VALUES ('old', 'h', 1, \(now), \(now));")
    }

    /// Migration 3 moves the counting of claims and successes into the store: an older scheduler still
    /// running on the file would leave them uncounted, so the upgrade waits until none is live.
    @Test func migration3IsRefusedWhileAnOlderSchedulerIsLiveAndCountsStayRight() async throws {
        let dir = try StoreTempDir()
        let path = dir.path()
        try Self.databaseWithLiveOldScheduler(at: path, migratedThrough: 2, """
            INSERT INTO tasks(name, payload, run_at, created_at, updated_at) VALUES ('a', '{}', 1, 1, 1), ('a', '{}', 1, 1, 1);
            """)
        let error = await rotaError { _ = try SQLiteTaskStore(path: path) }
        #expect(error?.message.contains("stop them, then migrate it") == true, "\(String(describing: error))")
        #expect(try Connection(path: path, options: .init(mode: .readOnly, quickCheck: false))
            .scalarInt("SELECT max(version) FROM rota_migrations") == 2)
        try Connection(path: path, options: .init(quickCheck: false)).execute("UPDATE workers SET stopped_at = heartbeat_at")
        let store = try SQLiteTaskStore(path: path)
        #expect(try store.schemaVersion().applied == SQLiteTaskStore.migrations.map(\.version).max())
        let claimed = try await store.claimAll(limitless: true)
        _ = try store.completeSync([Completion(claimed[0], .succeeded(result: nil))])
        #expect(try store.countMismatches().isEmpty)
        #expect(try await store.stats(now: Date()).states.filter { $0.value > 0 } == [.running: 1, .succeeded: 1])
    }

    /// Migration 5 moves the counting of inserted tasks into the store: it too waits until no older
    /// scheduler is live (one would insert its cron fires uncounted).
    @Test func migration5IsRefusedWhileAnOlderSchedulerIsLive() async throws {
        let dir = try StoreTempDir()
        let path = dir.path()
        try Self.databaseWithLiveOldScheduler(at: path, migratedThrough: 4)
        let error = await rotaError { _ = try SQLiteTaskStore(path: path) }
        #expect(error?.message.contains("needs migration 5") == true, "\(String(describing: error))")
        try Connection(path: path, options: .init(quickCheck: false)).execute("UPDATE workers SET stopped_at = heartbeat_at")
        let store = try SQLiteTaskStore(path: path)
        #expect(try store.schemaVersion().applied == SQLiteTaskStore.migrations.map(\.version).max())
        _ = try await store.enqueue([TaskSpec(name: "a"), TaskSpec(name: "a", queue: "q")])
        #expect(try store.countMismatches().isEmpty)
        #expect(try await store.stats(now: Date()).states[.scheduled] == 2)
    }

    /// The instants are compared exactly (to the millisecond the store keeps), from one `now`: an age read
    /// off the clock later would depend on how long the calls took.
    @Test func theOldestDueTaskIsFoundAcrossPriorities() async throws {
        let f = try StoreFixture()
        let now = Date()
        _ = try await f.store.enqueue([
            TaskSpec(name: "a", priority: 5, runAt: instant(-10, from: now)),
            TaskSpec(name: "a", priority: 0, runAt: instant(-30, from: now)),
            TaskSpec(name: "a", priority: 2, runAt: instant(-20, from: now)),
            TaskSpec(name: "a", queue: "other", priority: 1, runAt: instant(-40, from: now)),
            TaskSpec(name: "a", queue: "later", runAt: instant(600, from: now)),
        ])
        #expect(try await f.store.stats(now: now).oldestDueAt == instant(-40, from: now))
        try f.connection().execute("DELETE FROM tasks WHERE queue = 'other'")
        #expect(try await f.store.stats(now: now).oldestDueAt == instant(-30, from: now))
        // The highest priority there is counts too.
        _ = try await f.store.enqueue(TaskSpec(name: "a", priority: .max, runAt: instant(-50, from: now)))
        #expect(try await f.store.stats(now: now).oldestDueAt == instant(-50, from: now))
    }
}

extension SQLiteTaskStore {
    /// Claims every due task of `queue` (`limitless`: up to 10,000, else 1).
    fileprivate func claimAll(_ queue: String = "default", names: [String]? = nil, worker: String = "w1",
                              limitless: Bool) async throws -> [ClaimedTask] {
        try await claim([ClaimRequest(queue: queue, names: names, limit: limitless ? 10_000 : 1)], worker: worker,
                        leaseUntil: instant(30), now: Date())
    }
}
