import Foundation
import Testing
@testable import Rota
@testable import RotaSQLiteStore
import RotaSQLite

@Suite("SQLiteTaskStore: enqueue")
struct SQLiteTaskStoreEnqueueTests {
    @Test func enqueueStoresEveryFieldOfTheSpec() async throws {
        let f = try StoreFixture()
        let runAt = instant(60)
        let fireAt = instant(-5)
        let before = Date(unixMillis: Date().unixMillis)
        let spec = TaskSpec(name: "email.send", payload: #"{"to":"a@b.c"}"#, queue: "mail", priority: 7, runAt: runAt,
                            maxAttempts: 5, timeout: .seconds(30), uniqueKey: "k1", schedule: "nightly", fireAt: fireAt)
        let result = try await f.store.enqueue(spec)
        #expect(result.inserted)

        let task = try await f.store.record(result.id)
        #expect(task.id == result.id)
        #expect(task.name == "email.send")
        #expect(task.queue == "mail")
        #expect(task.payload == #"{"to":"a@b.c"}"#)
        #expect(task.state == .scheduled)
        #expect(task.priority == 7)
        #expect(task.runAt == runAt)
        #expect(task.attempts == 0)
        #expect(task.maxAttempts == 5)
        #expect(task.timeout == .seconds(30))
        #expect(task.uniqueKey == "k1")
        #expect(task.schedule == "nightly")
        #expect(task.fireAt == fireAt)
        #expect(task.batch == nil && task.batchItem == nil)
        #expect(task.leaseOwner == nil && task.leaseUntil == nil && task.startedAt == nil)
        #expect(task.cancelRequested == false)
        #expect(task.finishedAt == nil && task.lastError == nil && task.result == nil)
        #expect(task.createdAt >= before && task.createdAt <= Date())
        #expect(task.updatedAt == task.createdAt)
    }

    @Test func enqueueWithoutRunAtIsDueNowAndUsesDefaults() async throws {
        let f = try StoreFixture()
        let before = Date(unixMillis: Date().unixMillis)
        let id = try await f.store.enqueue(TaskSpec(name: "exec")).id
        let task = try await f.store.record(id)
        #expect(task.queue == "default")
        #expect(task.payload == "{}")
        #expect(task.priority == 0)
        #expect(task.maxAttempts == 3)
        #expect(task.timeout == nil)
        #expect(task.runAt >= before && task.runAt <= Date())
        #expect(try await f.store.claimAll().map(\.id) == [id])
    }

    @Test func enqueueManyWritesAllInOrderInOneCall() async throws {
        let f = try StoreFixture()
        let specs = (0..<5).map { TaskSpec(name: "job", payload: "{\"i\":\($0)}") }
        let results = try await f.store.enqueue(specs)
        #expect(results.count == 5)
        #expect(results.allSatisfy { $0.inserted })
        #expect(results.map(\.id) == results.map(\.id).sorted())
        #expect(Set(results.map(\.id)).count == 5)
        for (index, result) in results.enumerated() {
            #expect(try await f.store.record(result.id).payload == "{\"i\":\(index)}")
        }
        #expect(try f.dump().count("tasks") == 5)
    }

    @Test func enqueueManyOfNothingWritesNothing() async throws {
        let f = try StoreFixture()
        #expect(try await f.store.enqueue([TaskSpec]()) == [])
        #expect(try f.dump().count("tasks") == 0)
    }

    @Test func enqueueManyIsAllOrNothingWhenTheDatabaseRefusesOneRow() async throws {
        let f = try StoreFixture()
        _ = try await f.store.enqueue(TaskSpec(name: "existing"))
        let before = try f.dump()
        // Batch 999 does not exist: the foreign key refuses the third row after two were inserted.
        let specs = [TaskSpec(name: "a"), TaskSpec(name: "b"), TaskSpec(name: "c", batchID: 999, batchItem: "1")]
        let error = try #require(await rotaError { _ = try await f.store.enqueue(specs) })
        #expect(error.code == .invalidInput)
        #expect(error.field == "tasks[2].batch_id")
        #expect(error.message.contains("999"))
        #expect(try f.dump() == before)
        let single = try #require(await rotaError { _ = try await f.store.enqueue(TaskSpec(name: "c", batchID: 999)) })
        #expect(single.code == .invalidInput)
        #expect(single.field == "batch_id")
        #expect(try f.dump() == before)
        // The store is still usable after the rollback.
        #expect(try await f.store.enqueue(TaskSpec(name: "d")).inserted)
    }

    @Test func uniqueKeyReturnsTheExistingTaskWithoutInserting() async throws {
        let f = try StoreFixture()
        let first = try await f.store.enqueue(TaskSpec(name: "report", payload: #"{"v":1}"#, uniqueKey: "report-2026-11-25"))
        let before = try f.dump()
        let second = try await f.store.enqueue(TaskSpec(name: "report", payload: #"{"v":2}"#, uniqueKey: "report-2026-11-25"))
        #expect(first.inserted)
        #expect(second == EnqueueResult(id: first.id, inserted: false))
        #expect(try f.dump() == before)
        #expect(try await f.store.record(first.id).payload == #"{"v":1}"#)
        // Another key is another task.
        let third = try await f.store.enqueue(TaskSpec(name: "report", uniqueKey: "report-2026-11-26"))
        #expect(third.inserted && third.id != first.id)
    }

    @Test func uniqueKeyDedupesWithinOneBulkEnqueue() async throws {
        let f = try StoreFixture()
        let results = try await f.store.enqueue([
            TaskSpec(name: "a", uniqueKey: "same"), TaskSpec(name: "b"), TaskSpec(name: "c", uniqueKey: "same"),
        ])
        #expect(results[0].inserted && results[1].inserted)
        #expect(results[2] == EnqueueResult(id: results[0].id, inserted: false))
        #expect(try f.dump().count("tasks") == 2)
    }

    @Test func uniqueKeyOfAFinishedTaskStillReturnsIt() async throws {
        let f = try StoreFixture()
        let id = try await f.store.enqueue(TaskSpec(name: "once", uniqueKey: "once")).id
        _ = try await f.store.cancel([id], now: Date())
        #expect(try await f.store.enqueue(TaskSpec(name: "once", uniqueKey: "once")) == EnqueueResult(id: id, inserted: false))
    }

    @Test func batchItemDedupesWithinItsBatch() async throws {
        let f = try StoreFixture()
        let db = try f.connection()
        try db.run("INSERT INTO batches(id, name, created_at) VALUES (1, 'import', 0), (2, 'other', 0)")
        let first = try await f.store.enqueue(TaskSpec(name: "row", payload: #"{"line":1}"#, batchID: 1, batchItem: "line-1"))
        let again = try await f.store.enqueue(TaskSpec(name: "row", payload: #"{"line":1}"#, batchID: 1, batchItem: "line-1"))
        let nextItem = try await f.store.enqueue(TaskSpec(name: "row", batchID: 1, batchItem: "line-2"))
        let otherBatch = try await f.store.enqueue(TaskSpec(name: "row", batchID: 2, batchItem: "line-1"))
        #expect(first.inserted)
        #expect(again == EnqueueResult(id: first.id, inserted: false))
        #expect(nextItem.inserted && nextItem.id != first.id)
        #expect(otherBatch.inserted && otherBatch.id != first.id)
        let task = try await f.store.record(first.id)
        #expect(task.batch == "import")
        #expect(task.batchItem == "line-1")
        #expect(try f.dump().count("tasks") == 3)
    }

    @Test func scheduleFireDedupesPerScheduleAndInstant() async throws {
        let f = try StoreFixture()
        let fire = instant(0)
        let first = try await f.store.enqueue(TaskSpec(name: "tick", schedule: "every-minute", fireAt: fire))
        let again = try await f.store.enqueue(TaskSpec(name: "tick", schedule: "every-minute", fireAt: fire))
        let nextFire = try await f.store.enqueue(TaskSpec(name: "tick", schedule: "every-minute", fireAt: fire.addingTimeInterval(60)))
        let otherSchedule = try await f.store.enqueue(TaskSpec(name: "tick", schedule: "hourly", fireAt: fire))
        #expect(first.inserted)
        #expect(again == EnqueueResult(id: first.id, inserted: false))
        #expect(nextFire.inserted && nextFire.id != first.id)
        #expect(otherSchedule.inserted && otherSchedule.id != first.id)
        #expect(try f.dump().count("tasks") == 3)
    }

    @Test func enqueuedTaskIsVisibleToASecondStoreRightAway() async throws {
        let f = try StoreFixture()
        let second = try SQLiteTaskStore(path: f.path)
        let id = try await f.store.enqueue(TaskSpec(name: "durable", payload: #"{"x":1}"#)).id
        let seen = try await second.record(id)
        #expect(seen.name == "durable")
        #expect(seen.payload == #"{"x":1}"#)
        // And a plain connection reading the file sees the committed row.
        let db = try f.connection(.readOnly)
        #expect(try db.scalarInt("SELECT count(*) FROM tasks WHERE id = ?", [.integer(id)]) == 1)
        // The other store can claim it.
        #expect(try await second.claimAll().map(\.id) == [id])
    }

    @Test func theStoreRunsInWALModeWithForeignKeys() async throws {
        let f = try StoreFixture()
        let db = try f.connection()
        #expect(try db.journalMode().lowercased() == "wal")
        let version = try f.store.schemaVersion()
        #expect(version.applied == version.known && version.known >= 1)
        let pragmas = try f.store.withConnection { db in
            (try db.scalarInt("PRAGMA foreign_keys"), try db.scalarInt("PRAGMA synchronous"))
        }
        #expect(pragmas.0 == 1)
        #expect(pragmas.1 == 2) // FULL
    }
}
