import Foundation
import Testing
@testable import Rota
@testable import RotaSQLiteStore
import RotaSQLite

@Suite("SQLiteTaskStore: background checkpoints")
struct CheckpointTests {
    private func autoCheckpointPages(_ store: SQLiteTaskStore) throws -> Int64 {
        try store.withConnection { db in try db.scalarInt("PRAGMA wal_autocheckpoint") ?? -1 }
    }

    /// With checkpoints moved to their own thread, the store's connection never checkpoints in a commit, and
    /// the WAL still stays bounded under a steady stream of commits (without any checkpoint, these 5,000
    /// commits of 2 KiB payloads leave a WAL of about 70 MB).
    @Test func backgroundCheckpointsKeepTheWALBoundedAndStopCleanly() throws {
        let f = try StoreFixture(.init(durability: .normal))
        let checkpointer = try #require(try f.store.startBackgroundCheckpoints(interval: .milliseconds(5)))
        #expect(try autoCheckpointPages(f.store) == 0)
        let spec = TaskSpec(name: "a", payload: "\"" + String(repeating: "x", count: 2_048) + "\"")
        var largest: Int64 = 0
        for _ in 0..<5_000 {
            _ = try f.store.enqueueSync([spec])
            largest = max(largest, f.store.walSizeBytes())
        }
        f.store.stopBackgroundCheckpoints(checkpointer)
        #expect(try autoCheckpointPages(f.store) == Int64(SQLiteTaskStore.defaultAutoCheckpointPages))
        #expect(largest < 35_000_000, "the WAL grew to \(largest) bytes")
        #expect(try f.store.integrityCheck() == ["ok"])
        #expect(try f.store.countMismatches().isEmpty)
    }

    @Test func aReadOnlyStoreHasNoCheckpointer() throws {
        let f = try StoreFixture()
        let reader = try SQLiteTaskStore(path: f.path, configuration: .init(access: .readOnly))
        #expect(try reader.startBackgroundCheckpoints(interval: .milliseconds(5)) == nil)
    }
}
