import Foundation
import Rota
import RotaSQLite
import Synchronization

/// WAL checkpoints on a thread and connection of their own, while a scheduler runs.
///
/// By default SQLite checkpoints inside the commit that takes the WAL past 1,000 pages: that commit copies
/// the pages into the database file and syncs it, a stall of milliseconds on whichever call made it (a claim,
/// a completion flush, an enqueue). With this running, the store's own connection does not checkpoint; this
/// thread runs `PRAGMA wal_checkpoint(PASSIVE)` every `interval` instead (it never waits for readers or
/// writers), on the machine's other core. Other processes' connections keep SQLite's default.
final class BackgroundCheckpointer: @unchecked Sendable {
    private let condition = NSCondition()
    private var stopping = false
    private var done = false
    /// Checkpoint passes finished (guarded by `condition`), for ``waitForPasses(_:)``.
    private var passes = 0
    private let onFailure: @Sendable (any Error) -> Void
    /// True while the thread sleeps with no deadline, for want of commits (see ``poke()``).
    private let idle = Atomic<Bool>(false)
    /// Used only by the thread (after `init` hands it over).
    private let connection: Connection

    /// `commits` counts the store's own commits: a pass with none since the last one is skipped (counted as
    /// a pass all the same), so an idle scheduler's checkpointer costs a wake-up and nothing more.
    fileprivate init(connection: Connection, interval: Duration, commits: @escaping @Sendable () -> Int,
                     onFailure: @escaping @Sendable (any Error) -> Void) {
        self.onFailure = onFailure
        self.connection = connection
        let thread = Thread { [self] in
            var seen = -1
            defer {
                condition.lock()
                done = true
                condition.broadcast()
                condition.unlock()
            }
            while true {
                condition.lock()
                if !stopping { _ = condition.wait(until: Date().addingTimeInterval(interval.seconds)) }
                // No commit of the store's since the last pass: nothing to checkpoint, so sleep until the
                // next commit pokes (an idle scheduler's checkpointer then wakes for nothing). `idle` is set
                // before the look, under the lock `poke()` takes, so no commit's poke is lost.
                idle.store(true, ordering: .sequentiallyConsistent)
                while !stopping && commits() == seen {
                    passes += 1
                    condition.broadcast()
                    condition.wait()
                }
                idle.store(false, ordering: .sequentiallyConsistent)
                let stop = stopping
                condition.unlock()
                if stop { return }
                seen = commits()
                do {
                    // (busy, frames in the WAL, frames checkpointed). A writer starts the WAL over once every
                    // frame is checkpointed; under a steady stream of commits a passive checkpoint may never
                    // catch up, so past `restartFrames` one RESTART checkpoint (which briefly waits for the
                    // writer and readers, up to the busy timeout) makes the next commit start it over.
                    // (Even a passive pass that caught up is no guarantee: the WAL kept growing to 42 MB in
                    // CheckpointTests when the restart waited for a pass that fell behind.)
                    let frames = try self.connection.queryFirst("PRAGMA wal_checkpoint(PASSIVE)") { $0.int(1) } ?? 0
                    if frames >= Self.restartFrames {
                        _ = try self.connection.queryFirst("PRAGMA wal_checkpoint(RESTART)") { $0.int(0) }
                    }
                    condition.lock()
                    passes += 1
                    condition.broadcast()
                    condition.unlock()
                } catch {
                    self.onFailure(error)
                    return
                }
            }
        }
        thread.name = "rota-checkpoint"
        thread.start()
    }

    /// Wakes the thread if it sleeps for want of commits: the store calls it after each of its commits
    /// (one atomic load when the thread is awake).
    func poke() {
        guard idle.load(ordering: .sequentiallyConsistent) else { return }
        condition.lock()
        condition.broadcast()
        condition.unlock()
    }

    /// WAL frames (pages) past which a checkpoint also restarts the WAL: about 16 MiB of 4 KiB pages.
    static let restartFrames = 4_000

    /// Waits until `count` more checkpoint passes have finished, so at least `count - 1` of them started
    /// after this call (a test's way to wait for the checkpointer's own progress). Returns early, false,
    /// when the checkpointer stops first.
    @discardableResult
    func waitForPasses(_ count: Int) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        let target = passes + count
        while passes < target, !done { condition.wait() }
        return passes >= target
    }

    /// Stops the thread and waits for it (at most one checkpoint's time).
    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        while !done { condition.wait() }
        condition.unlock()
    }
}

extension SQLiteTaskStore {
    /// SQLite's default: checkpoint in the commit that takes the WAL past this many pages.
    static let defaultAutoCheckpointPages = 1_000

    /// Moves this store's WAL checkpoints to a background thread (see ``BackgroundCheckpointer``) until
    /// ``stopBackgroundCheckpoints(_:)``. Returns nil for a read-only store. If a background checkpoint
    /// fails, the store's connection checkpoints by itself again (the WAL never grows unchecked) and
    /// `onFailure` is told.
    func startBackgroundCheckpoints(interval: Duration,
                                    onFailure: @escaping @Sendable (any Error) -> Void = { _ in }) throws -> BackgroundCheckpointer? {
        if configuration.access == .readOnly { return nil }
        let connection = try Connection(path: path, options: .init(
            mode: .readWrite, synchronous: configuration.durability == .full ? .full : .normal,
            busyTimeout: .milliseconds(100), quickCheck: false))
        try read { db in try db.execute("PRAGMA wal_autocheckpoint = 0") }
        let checkpointer = BackgroundCheckpointer(connection: connection, interval: interval, commits: { [self] in commitCount }) { [self] error in
            try? read { db in try db.execute("PRAGMA wal_autocheckpoint = \(Self.defaultAutoCheckpointPages)") }
            onFailure(error)
        }
        checkpointers.withLock { $0.append(checkpointer) }
        return checkpointer
    }

    /// Stops background checkpoints and gives the store's connection back its own.
    func stopBackgroundCheckpoints(_ checkpointer: BackgroundCheckpointer) {
        checkpointers.withLock { $0.removeAll { $0 === checkpointer } }
        checkpointer.stop()
        try? read { db in try db.execute("PRAGMA wal_autocheckpoint = \(Self.defaultAutoCheckpointPages)") }
    }
}

extension SQLiteTaskStore: BackgroundCheckpointing {
    /// Moves this store's WAL checkpoints to a thread of their own (see ``BackgroundCheckpointer``); nil for
    /// a read-only store. Stopping gives the store's connection back its own checkpoints.
    public func startBackgroundCheckpoints(interval: Duration,
                                           onError: @escaping @Sendable (any Error) -> Void) throws -> (any BackgroundWork)? {
        guard let checkpointer = try startBackgroundCheckpoints(interval: interval, onFailure: onError) else { return nil }
        return CheckpointWork(store: self, checkpointer: checkpointer)
    }

    private struct CheckpointWork: BackgroundWork {
        let store: SQLiteTaskStore
        let checkpointer: BackgroundCheckpointer
        func stop() { store.stopBackgroundCheckpoints(checkpointer) }
    }
}
