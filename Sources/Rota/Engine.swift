import Foundation
import Logging
import NIOPosix
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The scheduler's core: one dedicated OS thread that claims due tasks in batches, dispatches them to
/// their executors, group-commits their completions, heartbeats, recovers leases and drains at shutdown.
///
/// All store calls on the hot path (claim, complete) run on this thread with the store's synchronous
/// forms, so SQLite never blocks the cooperative pool and there is no actor hop per task: handlers hand
/// their completion to a locked buffer and the loop flushes many in one transaction.
final class Engine: @unchecked Sendable {
    struct Settings: Sendable {
        var workerID: String
        var host: String
        var pid: Int32
        var queues: [String: Int]
        var threadPoolSize: Int
        var maxProcesses: Int
        var pollInterval: Duration
        var watchInterval: Duration?
        var checkpointInterval: Duration?
        var leaseDuration: Duration
        var heartbeatInterval: Duration
        var recoveryInterval: Duration
        var shutdownGrace: Duration
        var cancelWait: Duration
        var completionLinger: Duration
        var maxClaimBatch: Int
        var untilEmpty: Bool
        var maxStoreBackoff: Duration
        var purgeFinishedAfter: Duration?
    }

    enum StopReason: Sendable { case cancelRequested, shutdown }

    /// One attempt in flight. Mutable fields are guarded by the engine's lock.
    final class Running: @unchecked Sendable {
        let task: ClaimedTask
        let entry: HandlerEntry
        let flag = CancellationFlag()
        var handle: Task<Void, Never>?
        var stopReason: StopReason?
        init(task: ClaimedTask, entry: HandlerEntry) {
            self.task = task
            self.entry = entry
        }
    }

    let settings: Settings
    let store: any TaskStore
    /// The store's optional capabilities, discovered once.
    let blockingTurns: (any ClaimTurnBlocking)?
    /// Records attempt ends in a transaction of their own beside the claim turn (``ConcurrentWriting``).
    let flushesBesideClaims: Bool
    let commitWatching: (any CommitWatching)?
    let checkpointing: (any BackgroundCheckpointing)?
    let handlers: [String: HandlerEntry]
    let pools: Pools
    let logger: Logger
    /// Called once on the loop thread when it has registered the worker and starts serving.
    let onServing: [@Sendable () -> Void]
    /// When the loop last woke up to work (`DispatchTime` uptime nanoseconds); 0 before it serves and after
    /// it stopped. Written by the loop thread only.
    private let lastTurn = Atomic<UInt64>(0)
    private let clock = ContinuousClock()

    // MARK: State and its locking rule
    //
    // The engine's mutable state is in two places, and each has one rule:
    // - `shared` (the loop thread, handlers finishing, and control calls from any thread meet there) is read
    //   and written only while holding `lock`; `lock` is held only for those reads and writes (never across
    //   a store call, a handler or a log line), and the loop thread waits on it for work.
    // - the loop thread's own state (`stats`, `checkpointer`, and the locals of `loop()`) is touched only by
    //   the loop thread, so it needs no lock.
    // `Running`'s mutable fields belong to `shared` too (read and written under `lock`).

    /// What the loop thread shares with other threads; guarded by `lock`.
    private struct Shared {
        /// Attempt ends waiting for the next group commit, and when the first of them came.
        var completions: [Completion] = []
        var firstPendingAt: ContinuousClock.Instant?
        /// Attempts in flight.
        var running: [TaskID: Running] = [:]
        /// A wake-up not yet seen by the loop (an enqueue, a finish, a control call).
        var wakeRequested = false
        /// When the shutdown grace ends, once a shutdown was asked for.
        var shutdownDeadline: ContinuousClock.Instant?
        /// The loop has stopped.
        var finished = false
        /// The slots of each queue served (``serve(queue:concurrency:)`` changes them while it runs) and the
        /// attempts in flight per queue and pool: what the next claim turn is planned from.
        var planner: ClaimPlanner
        /// Whether the worker row has yet to show a change of the queues served.
        var queuesChanged = false
        /// The claim turn's number (rotates the first queue).
        var claimTurn = 0
        /// A commit watcher reported a change (the loop then looks at the store's commit version for a while).
        var commitEvent = false
        /// Claimed suspects (tasks lost ``TaskSpec/suspectAfterLosses`` times, run in process): each waits
        /// until nothing else runs here and then runs alone, so that losing it again is its own doing. No
        /// claim is made while one waits.
        var suspects: [Running] = []
        /// A group of attempt ends being recorded beside the claims (``ConcurrentWriting``), and the outcome
        /// of the last one, for the loop to take.
        var flushInFlight = false
        var flushOutcome: (ends: [Completion], result: Result<[Bool], any Error>)?
    }
    private let lock = NSCondition()
    private var shared: Shared

    // Loop-thread state.
    private struct LoopStats {
        var claims = 0, claimed = 0, flushes = 0, flushed = 0, waits = 0
        var claimTime = Duration.zero, flushTime = Duration.zero
    }
    private var stats = LoopStats()
    private let loopExecutor = LoopExecutor()
    private var checkpointer: (any BackgroundWork)?

    init(settings: Settings, store: any TaskStore, handlers: [String: HandlerEntry], pools: Pools, logger: Logger,
         onServing: [@Sendable () -> Void] = []) {
        self.settings = settings
        self.onServing = onServing
        self.store = store
        self.blockingTurns = store as? any ClaimTurnBlocking
        self.flushesBesideClaims = store is any ConcurrentWriting
        self.commitWatching = store as? any CommitWatching
        self.checkpointing = store as? any BackgroundCheckpointing
        self.handlers = handlers
        self.pools = pools
        var logger = logger
        logger[metadataKey: "worker"] = "\(settings.workerID)"
        self.logger = logger
        var names: [ExecutorKind: [String]] = [:]
        for entry in handlers.values { names[entry.executor, default: []].append(entry.name) }
        self.shared = Shared(planner: ClaimPlanner(
            queueSlots: settings.queues, namesByExecutor: names.mapValues { $0.sorted() },
            threadPoolSize: settings.threadPoolSize, maxProcesses: settings.maxProcesses, maxClaimBatch: settings.maxClaimBatch))
    }

    // MARK: Control (any thread)

    /// Runs the loop on its own thread until it has drained and stopped.
    func run() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let thread = Thread { [self] in
                self.loop()
                continuation.resume()
            }
            thread.name = "rota-scheduler"
            thread.start()
        }
    }

    /// With a commit watcher, how long after a reported change the commit version is looked at, and how
    /// often the store is polled all the same (a safety net: every commit is reported).
    static let commitWindow = Duration.milliseconds(250)
    static let watchedPollInterval = Duration.seconds(5)

    /// A commit watcher saw a change: the loop looks at the commit version for a while.
    private func commitSeen() {
        lock.lock()
        if !shared.commitEvent {
            shared.commitEvent = true
            lock.signal()
        }
        lock.unlock()
    }

    /// Wakes the loop: new work may be due (an in-process enqueue).
    func wake() {
        lock.lock()
        shared.wakeRequested = true
        lock.signal()
        lock.unlock()
    }

    /// Stops claiming; running attempts get `grace` to finish, then are cancelled and handed back.
    /// A second call with a shorter grace shortens it.
    func requestShutdown(grace: Duration) {
        lock.lock()
        let deadline = clock.now.advanced(by: grace)
        shared.shutdownDeadline = min(shared.shutdownDeadline ?? deadline, deadline)
        shared.wakeRequested = true
        lock.signal()
        lock.unlock()
    }

    /// Sets the slots of `queue`, adding it if it is new; 0 stops claiming from it (attempts in flight
    /// finish). The loop claims with them from its next turn and updates the worker row.
    func serve(queue: String, concurrency: Int) {
        lock.lock()
        shared.planner.queueSlots[queue] = concurrency
        shared.queuesChanged = true
        shared.wakeRequested = true
        lock.signal()
        lock.unlock()
    }

    /// The queues served now and their slots.
    var servedQueues: [String: Int] {
        lock.lock()
        defer { lock.unlock() }
        return shared.planner.queueSlots.filter { $0.value > 0 }
    }

    /// The names of the queues served now (for the loop thread's store queries).
    private func currentQueueNames() -> [String] {
        lock.lock()
        defer { lock.unlock() }
        return shared.planner.servedQueues
    }

    /// The worker row for the queues served now.
    private func workerRecord(now: Date) -> WorkerRecord {
        lock.lock()
        let names = shared.planner.servedQueues
        let slots = shared.planner.queueSlots.values.reduce(0) { $0 + max($1, 0) }
        lock.unlock()
        return WorkerRecord(id: settings.workerID, host: settings.host, pid: settings.pid, queues: names,
                            taskNames: allNames, concurrency: slots, startedAt: now, heartbeatAt: now)
    }

    /// How long ago the loop last woke up to work, or `nil` when it is not serving (not started yet, or
    /// stopped). While it serves it wakes at least every heartbeat interval (every store retry while the
    /// store fails), so a much longer time means it is stuck.
    var sinceLastTurn: Duration? {
        let last = lastTurn.load(ordering: .relaxed)
        guard last != 0 else { return nil }
        let now = DispatchTime.now().uptimeNanoseconds
        return .nanoseconds(Int64(now > last ? now - last : 0))
    }

    /// The number of attempts in flight (for tests and stats).
    var runningCount: Int {
        lock.lock()
        defer { lock.unlock() }
        return shared.running.count
    }

    // MARK: The loop

    private enum Phase { case running, draining, cancelling(ContinuousClock.Instant) }

    private func loop() {
        logger.debug("scheduler starting", metadata: ["queues": "\(settings.queues)"])
        guard startup() else {
            finishLoop(flushing: [])
            return
        }
        do {
            if let interval = settings.checkpointInterval {
                checkpointer = try checkpointing?.startBackgroundCheckpoints(interval: interval) { [logger] error in
                    logger.warning("background WAL checkpoint failed; commits checkpoint by themselves again",
                                   metadata: ["error": "\(error)"])
                }
            }
        } catch {
            logger.warning("WAL checkpoints stay in the commits: no background checkpoint connection", metadata: ["error": "\(error)"])
        }
        lastTurn.store(DispatchTime.now().uptimeNanoseconds, ordering: .relaxed)
        for hook in onServing { hook() }
        var phase = Phase.running
        var nextPoll = clock.now
        var nextDue: ContinuousClock.Instant?
        var nextHeartbeat = clock.now.advanced(by: settings.heartbeatInterval)
        var nextRecovery = clock.now
        var isLeader = false
        var mayHaveMore = true
        var poolSaturated = false
        var retryAt: ContinuousClock.Instant?
        var backoff = Duration.zero
        var nextEmptyCheck = clock.now
        var carried: [Completion] = []
        // Watching for other processes' commits (a store that can tell): the last version seen, and when to look.
        // With a watcher (inotify on SQLite's WAL), nothing is polled while nothing changes: a change opens a
        // short window in which the version is looked at every watch interval (a commit's file write comes
        // just before the commit is visible), and the store is polled only rarely, as a safety net. Without
        // one, the version is looked at every watch interval and the store polled every poll interval.
        let watchInterval = commitWatching == nil ? nil : settings.watchInterval
        let commitWatch = watchInterval == nil ? nil : commitWatching?.watchCommits { [weak self] in self?.commitSeen() }
        defer { commitWatch?.stop() }
        let pollInterval = commitWatch == nil ? settings.pollInterval : max(settings.pollInterval, Self.watchedPollInterval)
        var watchUntil = clock.now
        var watchGap = Duration.milliseconds(1)
        var nextWatch = watchInterval.map { clock.now.advanced(by: $0) }
        var dataVersion: Int64? = try? commitWatching?.externalCommitVersion()
        if commitWatch != nil {
            logger.debug("watching the store for other processes' commits", metadata: ["poll": "\(pollInterval)"])
        }
        defer {
            logger.debug("scheduler loop stats", metadata: [
                "claims": "\(stats.claims)", "claimed": "\(stats.claimed)", "claim_time": "\(stats.claimTime)",
                "flushes": "\(stats.flushes)", "flushed": "\(stats.flushed)", "flush_time": "\(stats.flushTime)",
                "waits": "\(stats.waits)"])
        }

        func storeFailed(_ error: any Error, _ what: String) {
            backoff = backoff == .zero ? .milliseconds(10) : min(backoff * 2, settings.maxStoreBackoff)
            retryAt = clock.now.advanced(by: backoff)
            logger.warning("store error while \(what); retrying in \(backoff)", metadata: ["error": "\(error)"])
        }
        func storeSucceeded() {
            backoff = .zero
            retryAt = nil
        }

        while true {
            // Wait until there is something to do.
            lock.lock()
            var now = clock.now
            while true {
                now = clock.now
                let inBackoff = retryAt.map { now < $0 } ?? false
                var deadline = now.advanced(by: .seconds(3600))
                func due(_ instant: ContinuousClock.Instant?) -> Bool {
                    guard let instant else { return false }
                    if now >= instant { return true }
                    deadline = min(deadline, instant)
                    return false
                }
                if shared.wakeRequested { break }
                if let retryAt, inBackoff { deadline = min(deadline, retryAt) }
                let pendingCount = shared.completions.count + carried.count
                // Lingering: completions wait a moment for more to share their commit. A commit seen elsewhere
                // (or a planned look for one) does not cut that short: the turn that records them claims too.
                // Cutting it short made every commit of this scheduler (which the file watch reports) end the
                // next linger, so busy schedulers committed in smaller groups.
                var lingering = false
                if !inBackoff, pendingCount > 0 {
                    if case .running = phase, pendingCount < shared.running.count, let first = shared.firstPendingAt ?? (carried.isEmpty ? nil : now) {
                        if due(first.advanced(by: settings.completionLinger)) { break }
                        lingering = true
                    } else {
                        break
                    }
                }
                if shared.commitEvent && !lingering { break }
                if case .running = phase, !inBackoff {
                    if !shared.suspects.isEmpty && shared.running.isEmpty { break }
                    if shared.suspects.isEmpty && shared.planner.claimable > 0 {
                        if mayHaveMore { break }
                        if due(nextPoll) || due(nextDue) || (!lingering && due(nextWatch)) { break }
                    }
                    if due(nextHeartbeat) || due(nextRecovery) { break }
                }
                // While the store is backing off, only its retry instant (or a wake) ends the wait.
                if case .draining = phase, !inBackoff {
                    if (shared.running.isEmpty && !shared.flushInFlight) || due(shared.shutdownDeadline) || due(nextHeartbeat) { break }
                }
                if case .cancelling(let hard) = phase, !inBackoff {
                    if (shared.running.isEmpty && !shared.flushInFlight) || due(hard) { break }
                }
                stats.waits += 1
                _ = lock.wait(until: Date().addingTimeInterval((deadline - now).seconds + 0.000_05))
            }
            lastTurn.store(DispatchTime.now().uptimeNanoseconds, ordering: .relaxed)
            let woke = shared.wakeRequested
            shared.wakeRequested = false
            let flushed = shared.flushOutcome
            shared.flushOutcome = nil
            let flushInFlight = shared.flushInFlight
            if shared.commitEvent {
                shared.commitEvent = false
                watchUntil = now.advanced(by: Self.commitWindow)
                watchGap = .milliseconds(1)
                nextWatch = now  // a later look already planned (an earlier change's window) comes now

            }
            let queuesChangedNow = shared.queuesChanged
            shared.queuesChanged = false
            var batch = carried
            carried = []
            let inBackoff = retryAt.map { now < $0 } ?? false
            if !inBackoff {
                batch += shared.completions
                shared.completions.removeAll(keepingCapacity: true)
                shared.firstPendingAt = nil
            }
            let requestedDeadline = shared.shutdownDeadline
            let runningNow = shared.running.count
            lock.unlock()

            // Shutdown phases.
            switch phase {
            case .running:
                if requestedDeadline != nil {
                    phase = .draining
                    logger.debug("scheduler draining", metadata: ["running": "\(runningNow)"])
                    batch += handBackSuspects()
                }
            case .draining, .cancelling:
                break
            }
            if case .draining = phase, let deadline = requestedDeadline, runningNow > 0, now >= deadline {
                logger.debug("grace period over; cancelling running tasks", metadata: ["running": "\(runningNow)"])
                cancelAll(reason: .shutdown)
                phase = .cancelling(now.advanced(by: settings.cancelWait))
            }
            if case .cancelling(let hard) = phase, runningNow > 0, now >= hard {
                batch += forceHandBack()
            }

            // Group commit. While running, the flush waits for the claim below and shares its transaction
            // (one commit, and the pages both touch go to the WAL once); `flushPending()` writes it alone.
            var pending: [Completion] = []
            func flushPending() {
                guard !pending.isEmpty else { return }
                let flushing = pending
                pending = []
                do {
                    let t0 = clock.now
                    let applied = try complete(flushing)
                    stats.flushTime += clock.now - t0
                    recordFlush(flushing, applied)
                    storeSucceeded()
                } catch {
                    carried = flushing + carried
                    storeFailed(error, "recording \(flushing.count) completions")
                }
            }
            // A group recorded beside the claims came back: counted, or carried into the next turn.
            if let flushed {
                switch flushed.result {
                case .success(let applied):
                    recordFlush(flushed.ends, applied)
                    // Until empty: those may have been the last; the next claim turn checks.
                    if settings.untilEmpty { mayHaveMore = true }
                case .failure(let error):
                    batch = flushed.ends + batch
                    storeFailed(error, "recording \(flushed.ends.count) completions")
                }
            }
            if !batch.isEmpty {
                // Until empty: an attempt's end may be the last one; the claim turn that records it checks.
                if settings.untilEmpty { mayHaveMore = true }
                if inBackoff {
                    carried = batch
                } else {
                    pending = batch
                    // An attempt ended: a pool that was full has a free slot for the tasks due for it.
                    if poolSaturated {
                        poolSaturated = false
                        mayHaveMore = true
                    }
                    if case .running = phase {} else { flushPending() }
                }
            }

            // Stopped?
            let isShuttingDown: Bool
            if case .running = phase { isShuttingDown = false } else { isShuttingDown = true }
            if isShuttingDown {
                lock.lock()
                let empty = shared.running.isEmpty && shared.completions.isEmpty && !shared.flushInFlight
                lock.unlock()
                if empty && carried.isEmpty {
                    finishLoop(flushing: [])
                    return
                }
                if case .cancelling(let hard) = phase, now >= hard.advanced(by: settings.maxStoreBackoff * 2) {
                    finishLoop(flushing: carried)
                    return
                }
            }
            if retryAt.map({ clock.now < $0 }) ?? false {
                carried = pending + carried
                continue
            }

            // A queue added or changed: the worker row shows it (`rota workers`).
            if queuesChangedNow {
                flushPending()
                do {
                    let record = workerRecord(now: Date())
                    try blocking { [store] in try await store.registerWorker(record) }
                    logger.notice("serving queues", metadata: ["queues": "\(record.queues)"])
                } catch {
                    lock.lock()
                    shared.queuesChanged = true
                    lock.unlock()
                    storeFailed(error, "recording the queues served")
                    continue
                }
                mayHaveMore = true
            }

            // Heartbeat: extends leases and picks up cancel requests.
            now = clock.now
            if now >= nextHeartbeat || now >= nextRecovery { flushPending() }
            if now >= nextHeartbeat {
                do {
                    let worker = settings.workerID
                    let leaseUntil = Date().addingTimeInterval(settings.leaseDuration.seconds)
                    let cancelled = try blocking { [store] in try await store.heartbeat(worker: worker, now: Date(), leaseUntil: leaseUntil) }
                    storeSucceeded()
                    nextHeartbeat = now.advanced(by: settings.heartbeatInterval)
                    if !cancelled.isEmpty { cancel(ids: cancelled, reason: .cancelRequested) }
                } catch {
                    storeFailed(error, "heartbeating")
                    continue
                }
            }
            if case .running = phase {} else { continue }

            // Recover expired leases (other workers that died): the cluster's leader does, where the store
            // elects one (several hosts); every scheduler does, where it does not.
            if now >= nextRecovery {
                var purges = false
                do {
                    var leads = true
                    if let elector = store as? any LeaderElecting {
                        let worker = settings.workerID
                        let until = Date().addingTimeInterval(settings.leaseDuration.seconds)
                        leads = try blocking { try await elector.lead(worker: worker, now: Date(), until: until) }
                        if leads != isLeader {
                            isLeader = leads
                            logger.notice(leads ? "leads the cluster's maintenance" : "no longer leads the cluster's maintenance")
                        }
                    }
                    let recovered = leads ? try blocking { [store] in try await store.recoverExpiredLeases(now: Date()) } : []
                    storeSucceeded()
                    nextRecovery = now.advanced(by: settings.recoveryInterval)
                    if !recovered.isEmpty {
                        logger.notice("recovered tasks with expired leases", metadata: ["tasks": "\(recovered)"])
                        mayHaveMore = true
                    }
                    purges = leads
                } catch {
                    storeFailed(error, "recovering expired leases")
                    continue
                }
                // Retention: finished tasks older than the configured age go, by the same scheduler.
                if purges, let keep = settings.purgeFinishedAfter {
                    do {
                        let before = Date().addingTimeInterval(-keep.seconds)
                        let purged = try blocking { [store] in try await store.purge(olderThan: before, states: []) }
                        storeSucceeded()
                        if purged > 0 {
                            logger.info("purged finished tasks", metadata: ["tasks": "\(purged)", "finished_before": "\(before)"])
                        }
                    } catch {
                        storeFailed(error, "purging finished tasks")
                        continue
                    }
                }
            }

            // A suspect waiting while nothing else runs here: it runs alone now (and nothing is claimed).
            if let suspect = takeSuspectIfIdle() {
                flushPending()
                do {
                    let task = suspect.task, worker = settings.workerID
                    let marked = try blocking { [store] in
                        try await store.markRunningAlone(task.id, attempt: task.attempt, worker: worker)
                    }
                    storeSucceeded()
                    if marked {
                        logger.notice("running a task alone: it was lost with its worker before", metadata: [
                            "task": "\(task.id)", "name": "\(task.name)", "losses": "\(task.losses)"])
                        start([suspect])
                    }
                } catch {
                    lock.lock()
                    shared.suspects.insert(suspect, at: 0)
                    lock.unlock()
                    storeFailed(error, "marking a task to run alone")
                }
                continue
            }

            // Claim up to the free slots (with the pending completions, in one transaction).
            let requests = claimRequests()
            var committedElsewhere = false
            if let watchInterval, let commitWatching, let watch = nextWatch, now >= watch {
                // Watched: look again only while the window a change opened lasts.
                // in the window (a commit usually shows within a sync's time: a few dozen cheap looks, not one
                // every interval for a whole poll period).
                if commitWatch != nil {
                    nextWatch = now >= watchUntil ? nil : now.advanced(by: watchGap)
                    // Every millisecond for the first 40 ms of the window (a FULL commit shows a sync or two
                    // after its write), then at doubling gaps.
                    if now >= watchUntil.advanced(by: Self.commitWindow * -1 + .milliseconds(40)) {
                        watchGap = min(watchGap * 2, max(watchInterval, .milliseconds(1)) * 8)
                    }
                } else {
                    nextWatch = now.advanced(by: watchInterval)
                }
                if let version = try? commitWatching.externalCommitVersion() {
                    committedElsewhere = dataVersion.map { $0 != version } ?? false
                    dataVersion = version
                }
            }
            let polled = now >= nextPoll || (nextDue.map { now >= $0 } ?? false) || committedElsewhere
            if requests.isEmpty || !(mayHaveMore || polled || woke) {
                flushPending()
                if requests.isEmpty, now >= nextPoll { nextPoll = now.advanced(by: pollInterval) }
                continue
            }
            let claimed: [ClaimedTask]
            let filled: Bool
            do {
                let leaseUntil = Date().addingTimeInterval(settings.leaseDuration.seconds)
                let t0 = clock.now
                var flushing = pending
                pending = []
                if flushesBesideClaims, !flushing.isEmpty, !flushInFlight, case .running = phase {
                    // Recorded on another connection while this turn claims; its end wakes the loop.
                    flushBeside(flushing)
                    flushing = []
                }
                do {
                    let turn = try completeAndClaim(flushing, requests, leaseUntil: leaseUntil)
                    if !flushing.isEmpty { recordFlush(flushing, turn.applied) }
                    claimed = turn.claimed
                    filled = turn.filled
                } catch {
                    carried = flushing + carried
                    throw error
                }
                stats.claims += 1
                stats.claimed += claimed.count
                stats.claimTime += clock.now - t0
                storeSucceeded()
            } catch {
                storeFailed(error, "claiming tasks")
                continue
            }
            // A request that came back full (its limit, or what its budgets had left) may have more behind it.
            mayHaveMore = filled
            if !claimed.isEmpty { dispatch(claimed) }
            now = clock.now
            nextPoll = now.advanced(by: pollInterval)
            if !filled {
                nextDue = nil
                // Only the names an executor with free slots runs: a task due for a full pool is claimed once
                // an attempt ends (below), not by waking every millisecond for a claim that cannot take it.
                let (queueNames, names, saturated) = claimableNames()
                poolSaturated = saturated
                if !names.isEmpty, let next = try? blocking({ [store] in
                    try await store.nextRunAt(queues: queueNames, names: names)
                }) {
                    // A task that came due between the claim and this query is claimed on the next turn.
                    let wait = max(next.timeIntervalSinceNow, 0)
                    nextDue = now.advanced(by: .milliseconds(Int64(wait * 1000) + 1))
                }
                if settings.untilEmpty, claimed.isEmpty, now < nextEmptyCheck {
                    // Look again soon, not at the next (watched, slow) poll.
                    nextDue = min(nextDue ?? nextEmptyCheck, nextEmptyCheck)
                } else if settings.untilEmpty, claimed.isEmpty {
                    nextEmptyCheck = now.advanced(by: settings.pollInterval)
                    // Until the store is empty: another look at the poll interval (the commit watch's slow
                    // poll would make the last task's end wait seconds to be seen).
                    nextDue = min(nextDue ?? nextEmptyCheck, nextEmptyCheck)
                    lock.lock()
                    let idle = shared.running.isEmpty && shared.completions.isEmpty && !shared.flushInFlight
                    lock.unlock()
                    if idle, carried.isEmpty,
                       let left = try? blocking({ [store, allNames] in
                           try await store.countUnfinished(queues: queueNames, names: allNames)
                       }), left == 0 {
                        logger.debug("nothing left to run; stopping (untilEmpty)")
                        requestShutdown(grace: .zero)
                    }
                }
            }
        }
    }

    private var allNames: [String] { handlers.keys.sorted() }

    /// The requests of a claim turn (see ``ClaimPlanner``); each turn starts from the next queue.
    private func claimRequests() -> [ClaimRequest] {
        lock.lock()
        defer { lock.unlock() }
        if !shared.suspects.isEmpty { return [] }
        shared.claimTurn &+= 1
        return shared.planner.requests(turn: shared.claimTurn)
    }

    /// The queues served and the task names an executor with free slots runs (lock taken), and whether
    /// some pool with handlers is full.
    private func claimableNames() -> (queues: [String], names: [String], poolFull: Bool) {
        lock.lock()
        defer { lock.unlock() }
        let (names, full) = shared.planner.claimableNames()
        return (shared.planner.servedQueues, names, full)
    }

    // MARK: Dispatch and finish

    /// Starts claimed tasks; a suspect (lost before, run in process) waits to run alone instead.
    private func dispatch(_ claimed: [ClaimedTask]) {
        var runs: [Running] = []
        runs.reserveCapacity(claimed.count)
        var suspects: [Running] = []
        for task in claimed {
            guard let entry = handlers[task.name] else { continue }
            let run = Running(task: task, entry: entry)
            if task.losses >= TaskSpec.suspectAfterLosses && entry.executor != .process {
                suspects.append(run)
            } else {
                runs.append(run)
            }
        }
        if !suspects.isEmpty {
            lock.lock()
            shared.suspects += suspects
            lock.unlock()
        }
        start(runs)
    }

    /// The first waiting suspect, taken, when nothing runs here; nil otherwise.
    private func takeSuspectIfIdle() -> Running? {
        lock.lock()
        defer { lock.unlock() }
        guard shared.running.isEmpty, !shared.suspects.isEmpty else { return nil }
        return shared.suspects.removeFirst()
    }

    /// Hands back the suspects still waiting (at shutdown): due again at once, no attempt used up.
    private func handBackSuspects() -> [Completion] {
        lock.lock()
        let waiting = shared.suspects
        shared.suspects.removeAll()
        lock.unlock()
        let now = Date()
        return waiting.map {
            Completion(taskID: $0.task.id, attempt: $0.task.attempt, worker: settings.workerID, startedAt: $0.task.startedAt,
                       finishedAt: now, resolution: .handBack(reason: "handed back: the scheduler shut down before it could run alone"))
        }
    }

    /// Runs attempts on their executors.
    private func start(_ runs: [Running]) {
        var started: [Running] = []
        started.reserveCapacity(runs.count)
        lock.lock()
        for run in runs {
            let task = run.task, entry = run.entry
            shared.running[task.id] = run
            shared.planner.busyByQueue[task.queue, default: 0] += 1
            if entry.executor == .threadPool { shared.planner.busyThreads += 1 }
            if entry.executor == .process { shared.planner.busyProcesses += 1 }
            started.append(run)
        }
        lock.unlock()
        var handles: [Task<Void, Never>] = []
        handles.reserveCapacity(started.count)
        for run in started {
            handles.append(Task { await self.execute(run) })
        }
        lock.lock()
        for (run, handle) in zip(started, handles) {
            run.handle = handle
            if run.stopReason != nil { handle.cancel() }
        }
        lock.unlock()
    }

    private func execute(_ run: Running) async {
        let task = run.task
        let context = TaskContext(
            taskID: task.id, name: task.name, queue: task.queue, attempt: task.attempt, maxAttempts: task.maxAttempts,
            startedAt: task.startedAt, timeout: task.timeout ?? run.entry.timeout,
            baseLogger: logger, flag: run.flag, pools: pools)
        let end: AttemptEnd
        switch run.entry.body {
        case .async(let body):
            if run.entry.executor == .process {
                end = await AsyncExecutor.runDirect(body, task.payload, context)
            } else {
                end = await AsyncExecutor.run(body, task.payload, context, timeout: context.timeout)
            }
        case .blocking(let body):
            end = await ThreadPoolExecutor.run(body, task.payload, context, on: pools.threads, timeout: context.timeout) {
                self.releaseExecutorSlot(.threadPool)
            }
        }
        finish(run, end)
    }

    private func releaseExecutorSlot(_ executor: ExecutorKind) {
        lock.lock()
        if executor == .threadPool { shared.planner.busyThreads -= 1 }
        if executor == .process { shared.planner.busyProcesses -= 1 }
        lock.signal()
        lock.unlock()
    }

    private func finish(_ run: Running, _ end: AttemptEnd) {
        let task = run.task
        let now = Date()
        // Read under the lock below; a stop reason set after this read loses the race to the result,
        // which is recorded as it is (a success stays a success).
        lock.lock()
        let reason = run.stopReason
        lock.unlock()
        let resolution: Completion.Resolution
        switch (end, reason) {
        case (.success(let result), _):
            resolution = .succeeded(result: result)
        case (.failure, .shutdown?):
            resolution = .handBack(reason: "handed back: the scheduler shut down before the attempt finished")
        case (.failure, .cancelRequested?):
            resolution = .cancelled(reason: "cancelled on request while running")
        case (.failure(let outcome, let error, let retryable), nil):
            let policy = run.entry.retry
            if !retryable || !policy.retries || task.attempt >= task.maxAttempts {
                resolution = .dead(outcome: outcome, error: error)
            } else {
                let delay = policy.delay(afterAttempt: task.attempt)
                resolution = .retry(outcome: outcome, error: error, runAt: now.addingTimeInterval(delay.seconds))
            }
        }
        if case .failure(let outcome, let error, _) = end {
            logger.debug("attempt failed", metadata: [
                "task": "\(task.id)", "attempt": "\(task.attempt)", "name": "\(task.name)", "queue": "\(task.queue)",
                "outcome": "\(outcome)", "error": "\(error)"])
        }
        var completion = Completion(taskID: task.id, attempt: task.attempt, worker: settings.workerID,
                                    startedAt: task.startedAt, finishedAt: now, resolution: resolution)
        completion.queueAndName = QueueAndName(queue: task.queue, name: task.name)
        lock.lock()
        // Gone when it was already handed back at the end of a shutdown: its late result is discarded.
        guard let current = shared.running[task.id], current === run else {
            lock.unlock()
            return
        }
        shared.running.removeValue(forKey: task.id)
        if shared.completions.isEmpty { shared.firstPendingAt = clock.now }
        shared.completions.append(completion)
        shared.planner.busyByQueue[task.queue, default: 0] -= 1
        if run.entry.executor == .process { shared.planner.busyProcesses -= 1 }
        // Wake the loop only when it has something to do: the first pending completion starts the
        // group-commit clock, and the flush is due once as many have finished as are still shared.running.
        if shared.completions.count == 1 || shared.completions.count >= shared.running.count { lock.signal() }
        lock.unlock()
    }

    private func cancel(ids: [TaskID], reason: StopReason) {
        lock.lock()
        for id in ids {
            guard let run = shared.running[id], run.stopReason == nil else { continue }
            run.stopReason = reason
            run.flag.set()
            run.handle?.cancel()
        }
        lock.unlock()
        logger.info("cancelling running tasks on request", metadata: ["tasks": "\(ids)"])
    }

    private func cancelAll(reason: StopReason) {
        lock.lock()
        for run in shared.running.values where run.stopReason == nil {
            run.stopReason = reason
            run.flag.set()
            run.handle?.cancel()
        }
        lock.unlock()
    }

    /// Hands back every attempt still running (its handler ignored cancellation): its result is discarded.
    private func forceHandBack() -> [Completion] {
        let now = Date()
        lock.lock()
        defer { lock.unlock() }
        let runs = Array(shared.running.values)
        shared.running.removeAll()
        for run in runs {
            shared.planner.busyByQueue[run.task.queue, default: 0] -= 1
            if run.entry.executor == .process { shared.planner.busyProcesses -= 1 }
        }
        if !runs.isEmpty {
            logger.warning("handlers did not stop after cancellation; handing their tasks back",
                           metadata: ["tasks": "\(runs.map(\.task.id))"])
        }
        return runs.map {
            Completion(taskID: $0.task.id, attempt: $0.task.attempt, worker: settings.workerID, startedAt: $0.task.startedAt,
                       finishedAt: now, resolution: .handBack(reason: "handed back: the scheduler shut down before the attempt finished"))
        }
    }

    // MARK: Start and stop

    /// Registers the worker and releases the leases of dead workers on this host. Retries store errors
    /// with backoff; returns false if a shutdown was requested first.
    private func startup() -> Bool {
        var backoff = Duration.milliseconds(10)
        while true {
            do {
                let record = workerRecord(now: Date())
                try blocking { [store] in try await store.registerWorker(record) }
                let workers = try blocking { [store] in try await store.workers() }
                let dead = workers.filter {
                    $0.host == settings.host && $0.stoppedAt == nil && $0.id != settings.workerID && Self.processIsGone($0.pid)
                }
                for worker in dead {
                    let reason = "lost: worker \(worker.id) (pid \(worker.pid) on \(worker.host)) is gone"
                    let recovered = try blocking { [store] in
                        try await store.recoverLeases(ofWorkers: [worker.id], now: Date(), reason: reason)
                    }
                    try blocking { [store] in try await store.stopWorker(worker.id, at: Date()) }
                    if !recovered.isEmpty {
                        logger.notice("released the leases of a dead worker", metadata: [
                            "dead_worker": "\(worker.id)", "tasks": "\(recovered.count)"])
                    }
                }
                return true
            } catch {
                logger.warning("store error while starting; retrying in \(backoff)", metadata: ["error": "\(error)"])
                lock.lock()
                if shared.shutdownDeadline != nil {
                    lock.unlock()
                    return false
                }
                stats.waits += 1
                _ = lock.wait(until: Date().addingTimeInterval(backoff.seconds))
                lock.unlock()
                backoff = min(backoff * 2, settings.maxStoreBackoff)
            }
        }
    }

    /// True when no process has `pid` (kill(pid, 0) fails with ESRCH).
    static func processIsGone(_ pid: Int32) -> Bool {
        guard pid > 0 else { return false }
        return kill(pid, 0) == -1 && errno == ESRCH
    }

    private func finishLoop(flushing leftovers: [Completion]) {
        lastTurn.store(0, ordering: .relaxed)
        if let checkpointer {
            checkpointer.stop()
            self.checkpointer = nil
        }
        if !leftovers.isEmpty {
            do { _ = try complete(leftovers) } catch {
                logger.error("could not record completions at shutdown; their leases will expire and the tasks run again",
                             metadata: ["error": "\(error)", "tasks": "\(leftovers.map(\.taskID))"])
            }
        }
        do {
            let worker = settings.workerID
            try blocking { [store] in try await store.stopWorker(worker, at: Date()) }
            if let elector = store as? any LeaderElecting {
                try blocking { try await elector.resign(worker: worker) }
            }
        } catch {
            logger.warning("could not mark the worker stopped", metadata: ["error": "\(error)"])
        }
        lock.lock()
        shared.finished = true
        lock.unlock()
        logger.debug("scheduler stopped")
    }

    // MARK: Store access

    private func complete(_ ends: [Completion]) throws -> [Bool] {
        try completeAndClaim(ends, [], leaseUntil: Date()).applied
    }

    /// Records `ends` and claims for `requests`: the store's turn, in one transaction where it can.
    /// A store that may block runs it right here on the loop thread; another through ``blocking(_:)``.
    private func completeAndClaim(_ ends: [Completion], _ requests: [ClaimRequest], leaseUntil: Date) throws -> ClaimTurn {
        let worker = settings.workerID
        if let blockingTurns {
            return try blockingTurns.completeAndClaimBlocking(ends, requests, worker: worker, leaseUntil: leaseUntil, now: Date())
        }
        return try blocking { [store] in
            try await store.completeAndClaim(ends, requests, worker: worker, leaseUntil: leaseUntil, now: Date())
        }
    }

    /// Records `ends` in a transaction of their own, beside the loop's claim turn (``ConcurrentWriting``); the
    /// loop takes the outcome (``Shared/flushOutcome``) when the end wakes it. One at a time.
    private func flushBeside(_ ends: [Completion]) {
        lock.lock()
        shared.flushInFlight = true
        lock.unlock()
        let worker = settings.workerID
        Task { [store] in
            let result: Result<[Bool], any Error>
            do {
                result = .success(try await store.completeAndClaim(ends, [], worker: worker, leaseUntil: Date(), now: Date()).applied)
            } catch {
                result = .failure(error)
            }
            self.flushEnded(ends, result)
        }
    }

    /// Hands a flush's outcome to the loop and wakes it.
    private func flushEnded(_ ends: [Completion], _ result: Result<[Bool], any Error>) {
        lock.lock()
        shared.flushInFlight = false
        shared.flushOutcome = (ends, result)
        shared.wakeRequested = true
        lock.signal()
        lock.unlock()
    }

    /// Counts a flush and warns of completions whose lease was lost.
    private func recordFlush(_ ends: [Completion], _ applied: [Bool]) {
        stats.flushes += 1
        stats.flushed += ends.count
        for (completion, ok) in zip(ends, applied) where !ok {
            logger.warning("completion ignored: the lease was lost (the task was recovered)",
                           metadata: ["task": "\(completion.taskID)", "attempt": "\(completion.attempt)"])
        }
    }

    /// Runs an async store call from the loop thread, on the loop thread: the task prefers the loop's own
    /// executor, whose jobs this thread runs until the call is done. So heartbeats and lease recovery never
    /// wait for the cooperative pool (a pool saturated by handlers cannot let leases expire).
    private func blocking<T: Sendable>(_ operation: @escaping @Sendable () async throws -> T) throws -> T {
        let box = ResultBox<T>()
        let executor = loopExecutor
        Task(executorPreference: executor) {
            let result: Result<T, any Error>
            do { result = .success(try await operation()) } catch { result = .failure(error) }
            box.set(result)
            executor.wake()
        }
        executor.run(until: { box.isSet })
        return try box.get()
    }
}

/// A result set once from one thread and read from another.
final class ResultBox<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var result: Result<T, any Error>?
    func set(_ value: Result<T, any Error>) { lock.withLock { result = value } }
    var isSet: Bool { lock.withLock { result != nil } }
    func get() throws -> T { try lock.withLock { result! }.get() }
}

/// A task executor whose jobs run on the thread that calls ``run(until:)`` (the engine's loop thread).
final class LoopExecutor: TaskExecutor, @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    /// Wakes ``run(until:)`` to re-check its condition.
    func wake() {
        condition.lock()
        condition.signal()
        condition.unlock()
    }

    /// Runs enqueued jobs on the calling thread until `done()` holds.
    func run(until done: () -> Bool) {
        while true {
            condition.lock()
            while jobs.isEmpty && !done() { condition.wait() }
            if jobs.isEmpty {
                condition.unlock()
                return
            }
            let batch = jobs
            jobs.removeAll(keepingCapacity: true)
            condition.unlock()
            for job in batch { job.runSynchronously(on: asUnownedTaskExecutor()) }
        }
    }
}

/// A continuation resumed once, by whichever of several racers comes first.
final class OneShot<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T, Never>?
        var value: T?
        var resumed = false
        var onResume: [@Sendable () -> Void] = []
    }
    private let state = Mutex(State())

    func install(_ continuation: CheckedContinuation<T, Never>) {
        let value = state.withLock { state -> T? in
            if let value = state.value, !state.resumed {
                state.resumed = true
                return value
            }
            state.continuation = continuation
            return nil
        }
        if let value { continuation.resume(returning: value) }
    }

    func resume(_ value: T) {
        let (continuation, hooks) = state.withLock { state -> (CheckedContinuation<T, Never>?, [@Sendable () -> Void]) in
            guard !state.resumed, state.value == nil else { return (nil, []) }
            guard let continuation = state.continuation else {
                state.value = value
                return (nil, state.onResume)
            }
            state.resumed = true
            state.continuation = nil
            return (continuation, state.onResume)
        }
        continuation?.resume(returning: value)
        for hook in hooks { hook() }
    }

    func onResume(_ hook: @escaping @Sendable () -> Void) {
        let runNow = state.withLock { state -> Bool in
            if state.resumed || state.value != nil { return true }
            state.onResume.append(hook)
            return false
        }
        if runNow { hook() }
    }
}

extension Duration {
    /// The duration in seconds, as a `TimeInterval`.
    package var seconds: TimeInterval {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
