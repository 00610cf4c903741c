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
    /// the WAL stays bounded under a stream of commits (without any checkpoint, these 5,000 commits of 2 KiB
    /// payloads leave a WAL of about 70 MB).
    ///
    /// How far the WAL grows between two passes depends on how soon the checkpointer's thread is scheduled,
    /// which no test can promise (a loaded machine once let it reach 35.2 MB). So every 100 commits the
    /// writer waits for the checkpointer's own progress: two more finished passes, the second of which
    /// started after those commits. What is then guaranteed is the code's own bound: a pass that finds
    /// `restartFrames` frames or more restarts the WAL, so it never holds much more than `restartFrames`
    /// plus the frames of 100 commits (the file keeps its largest size; it is not truncated).
    @Test func backgroundCheckpointsKeepTheWALBoundedAndStopCleanly() throws {
        let f = try StoreFixture(.init(durability: .normal))
        let checkpointer = try #require(try f.store.startBackgroundCheckpoints(interval: .milliseconds(5)))
        #expect(try autoCheckpointPages(f.store) == 0)
        let spec = TaskSpec(name: "a", payload: "\"" + String(repeating: "x", count: 2_048) + "\"")
        var largest: Int64 = 0
        var largestCommitGrowth: Int64 = 0
        for commit in 1...5_000 {
            let before = f.store.walSizeBytes()
            _ = try f.store.enqueueSync([spec])
            let after = f.store.walSizeBytes()
            largest = max(largest, after)
            largestCommitGrowth = max(largestCommitGrowth, after - before)
            if commit % 100 == 0 { #expect(checkpointer.waitForPasses(2)) }
        }
        f.store.stopBackgroundCheckpoints(checkpointer)
        #expect(try autoCheckpointPages(f.store) == Int64(SQLiteTaskStore.defaultAutoCheckpointPages))
        // The WAL header (32 bytes), then frames of a 24-byte header and one 4 KiB page.
        let frame: Int64 = 24 + 4_096
        let bound = 32 + Int64(BackgroundCheckpointer.restartFrames) * frame + 101 * max(largestCommitGrowth, frame)
        #expect(largest <= bound, "the WAL grew to \(largest) bytes (bound \(bound))")
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
