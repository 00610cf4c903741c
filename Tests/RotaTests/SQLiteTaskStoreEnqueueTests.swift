import Foundation
import Testing
@testable import Rota
@testable import RotaSQLiteStore
import RotaSQLite

/// Enqueue as only SQLite shows it: its file, its connections, its foreign key. What every store does at enqueue
/// is in Conformance/EnqueueConformanceTests.swift.
@Suite("SQLiteTaskStore: enqueue")
struct SQLiteTaskStoreEnqueueTests {
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
