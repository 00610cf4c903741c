import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Runs tasks from a ``TaskStore``: claims due tasks in batches, runs each on its handler's executor
/// (async, thread pool or process pool), records every attempt, retries with backoff, extends leases
/// with heartbeats, recovers the tasks of dead workers and drains gracefully at shutdown.
///
/// ```swift
/// struct Resize: Codable, Sendable { var path: String; var width: Int }
///
/// let store = try SQLiteTaskStore(path: "rota.db")
/// let scheduler = Scheduler(store: store, configuration: .init(queues: ["default": 16]))
/// try await scheduler.register("image.resize", retry: .exponentialJitter(maxAttempts: 5)) { (job: Resize, context) in
///     context.logger.info("resizing \(job.path)")
///     return try await resize(job)
/// }
/// try await scheduler.enqueue("image.resize", payload: Resize(path: "a.png", width: 200))
/// try await scheduler.run()          // or add it to a ServiceGroup
/// ```
///
/// Several schedulers (in one process or many) may share one database: claims are atomic, so an attempt
/// never runs twice at once. Delivery is at least once: a worker that dies mid-attempt leaves a `lost`
/// attempt and the task runs again.
///
/// A `Sendable` final class, safe to call from any thread or task. Its own mutable state is small and each
/// part has one guard: the handler registry and the pending queue changes are each behind a `Mutex`, and
/// `started` is an atomic. The running loop's state belongs to its engine, which states its own locking
/// rule. No method holds one of these guards while it calls out (into the store, a handler or the engine).
public final class Scheduler: Service, Sendable {
    /// How a scheduler runs.
    public struct Configuration: Sendable {
        /// The queues to serve and the concurrency (slots) of each.
        public var queues: [String: Int]
        /// Threads of the thread pool (blocking handlers and ``TaskContext/runBlocking(_:)``).
        public var threadPoolSize: Int
        /// Child processes at most at a time (`exec` tasks and ``TaskContext/runCommand(_:timeout:)``).
        public var maxProcesses: Int
        /// How often the store is polled for tasks enqueued by other processes (in-process enqueues wake
        /// the scheduler at once; future `run_at`s are waited for exactly).
        public var pollInterval: Duration
        /// How often an idle scheduler looks for commits by other processes (`PRAGMA data_version`, a read of
        /// the WAL's shared memory: no query of the tasks). A commit makes it claim at once, so a task enqueued
        /// by the CLI starts within about this long instead of ``pollInterval``. nil (or zero): poll only.
        public var watchInterval: Duration?
        /// How often a thread of its own checkpoints the WAL (SQLite store), so no claim, flush or enqueue of
        /// this process stalls on a checkpoint. nil (or zero): SQLite's default (the commit that fills 1,000
        /// pages does it).
        public var checkpointInterval: Duration?
        /// How long a claim holds a task before another worker may recover it. Heartbeats extend it.
        public var leaseDuration: Duration
        /// How often the worker heartbeats (extending its leases and picking up cancel requests).
        public var heartbeatInterval: Duration
        /// How often expired leases (of any worker) are recovered.
        public var recoveryInterval: Duration
        /// At shutdown, how long running tasks may take to finish before they are cancelled and handed back.
        public var shutdownGrace: Duration
        /// After cancelling, how long to wait for handlers to stop before handing their tasks back anyway.
        public var cancelWait: Duration
        /// For `exec`: after SIGTERM to a timed-out or cancelled command's group, how long until SIGKILL.
        public var killGrace: Duration
        /// Group commit: the longest a finished attempt waits to be flushed with others (under load;
        /// when every running attempt has finished, the flush is immediate).
        public var completionLinger: Duration
        /// The largest claim per queue in one transaction.
        public var maxClaimBatch: Int
        /// Stop (and return from ``Scheduler/run()``) once no task it can run is scheduled or running.
        public var untilEmpty: Bool
        /// The longest wait between retries when the store is busy or full.
        public var maxStoreBackoff: Duration
        /// How much of a command's stdout and stderr is kept (their last bytes).
        public var outputTailBytes: Int
        /// Deletes succeeded, dead and cancelled tasks (with their attempts) once they finished longer ago than
        /// this, at each lease-recovery tick: by the cluster's leader where the store elects one (PostgreSQL),
        /// by every scheduler otherwise. nil (the default): finished tasks stay until `rota purge`.
        public var purgeFinishedAfter: Duration?

        /// Creates a configuration.
        public init(
            queues: [String: Int] = ["default": 16],
            threadPoolSize: Int = max(2, ProcessInfo.processInfo.activeProcessorCount),
            maxProcesses: Int = max(2, ProcessInfo.processInfo.activeProcessorCount * 2),
            pollInterval: Duration = .milliseconds(50),
            watchInterval: Duration? = .milliseconds(5),
            checkpointInterval: Duration? = .milliseconds(100),
            leaseDuration: Duration = .seconds(60),
            heartbeatInterval: Duration = .seconds(10),
            recoveryInterval: Duration = .seconds(15),
            shutdownGrace: Duration = .seconds(30),
            cancelWait: Duration = .seconds(10),
            killGrace: Duration = .seconds(5),
            completionLinger: Duration = .milliseconds(2),
            maxClaimBatch: Int = 512,
            untilEmpty: Bool = false,
            maxStoreBackoff: Duration = .seconds(2),
            outputTailBytes: Int = 16 * 1024
        ) {
            self.queues = queues
            self.threadPoolSize = threadPoolSize
            self.maxProcesses = maxProcesses
            self.pollInterval = pollInterval
            self.watchInterval = watchInterval
            self.checkpointInterval = checkpointInterval
            self.leaseDuration = leaseDuration
            self.heartbeatInterval = heartbeatInterval
            self.recoveryInterval = recoveryInterval
            self.shutdownGrace = shutdownGrace
            self.cancelWait = cancelWait
            self.killGrace = killGrace
            self.completionLinger = completionLinger
            self.maxClaimBatch = maxClaimBatch
            self.untilEmpty = untilEmpty
            self.maxStoreBackoff = maxStoreBackoff
            self.outputTailBytes = outputTailBytes
        }
    }

    /// The store it runs tasks from.
    public let store: any TaskStore
    /// Its configuration.
    public let configuration: Configuration
    /// This worker's id in the `workers` table (host, pid and a random part).
    public let workerID: String
    let logger: Logger
    let pools: Pools
    private let registry = Mutex<[String: HandlerEntry]>([:])
    private let engineBox = Mutex<(engine: Engine?, pendingGrace: Duration?, queues: [String: Int])>((nil, nil, [:]))
    private let started = Atomic<Bool>(false)
    private let servingHooks = Mutex<[@Sendable () -> Void]>([])

    /// Creates a scheduler over `store`. Register handlers, then call ``run()``.
    ///
    /// - Parameters:
    ///   - store: the task store (usually a ``SQLiteTaskStore``; give each scheduler its own).
    ///   - configuration: queues, pools, intervals.
    ///   - logger: where lifecycle events (debug) and problems (warning, error) go.
    public init(store: any TaskStore, configuration: Configuration = Configuration(),
                logger: Logger = Logger(label: "rota.scheduler")) {
        self.store = store
        self.configuration = configuration
        self.logger = logger
        let host = ProcessInfo.processInfo.hostName
        let pid = ProcessInfo.processInfo.processIdentifier
        let random = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        self.workerID = "\(host):\(pid):\(random)"
        self.pools = Pools(threads: configuration.threadPoolSize, processes: configuration.maxProcesses,
                           killGrace: configuration.killGrace, outputTailBytes: configuration.outputTailBytes)
    }

    deinit {
        pools.threads.shutdownGracefully { _ in }
    }

    // MARK: Handlers

    /// Registers an async handler (Swift concurrency) for tasks named `name`.
    ///
    /// - Parameters:
    ///   - name: the task name, e.g. `email.send`.
    ///   - payload: the payload type (decoded from the task's JSON; ``Empty`` skips decoding).
    ///   - queue: the default queue for tasks enqueued through this scheduler.
    ///   - retry: the backoff between attempts and the default number of attempts.
    ///   - timeout: the default time limit of one attempt; past it the handler is cancelled.
    ///   - priority: the default priority for tasks enqueued through this scheduler.
    ///   - poisonLimit: the default poison limit of its tasks: how many times one may be lost while running
    ///     alone (it crashed this process) before it is `dead` (nil: ``TaskSpec/defaultPoisonLimit``).
    ///   - handler: the work; its result is stored as JSON (``Empty`` stores nothing).
    /// - Throws: ``RotaError`` `.invalidState` once the scheduler runs, `.invalidInput` for an empty name.
    public func register<Payload: Decodable & Sendable, Output: Encodable & Sendable>(
        _ name: String, payload: Payload.Type = Payload.self, queue: String = "default",
        retry: RetryPolicy = .default, timeout: Duration? = nil, priority: Int = 0, poisonLimit: Int? = nil,
        handler: @escaping @Sendable (Payload, TaskContext) async throws -> Output
    ) throws {
        try add(HandlerEntry(name: name, executor: .async, queue: queue, retry: retry, timeout: timeout, priority: priority,
                             poisonLimit: poisonLimit,
                             body: .async { text, context in
                                 let value = try PayloadCoding.decode(Payload.self, from: text, task: name)
                                 return try PayloadCoding.encode(try await handler(value, context), task: name)
                             }))
    }

    /// Registers a synchronous, possibly blocking handler that runs on the thread pool, never on the
    /// cooperative pool. Past its timeout its result is discarded and the attempt fails (the thread
    /// finishes the call; check ``TaskContext/isCancelled`` in long loops).
    ///
    /// ```swift
    /// try scheduler.registerBlocking("pdf.render") { (doc: Doc, context) in try Renderer().render(doc) }
    /// ```
    /// - Parameters: as ``register(_:payload:queue:retry:timeout:priority:poisonLimit:handler:)``.
    /// - Throws: ``RotaError`` `.invalidState` once the scheduler runs, `.invalidInput` for an empty name.
    public func registerBlocking<Payload: Decodable & Sendable, Output: Encodable & Sendable>(
        _ name: String, payload: Payload.Type = Payload.self, queue: String = "default",
        retry: RetryPolicy = .default, timeout: Duration? = nil, priority: Int = 0, poisonLimit: Int? = nil,
        handler: @escaping @Sendable (Payload, TaskContext) throws -> Output
    ) throws {
        try add(HandlerEntry(name: name, executor: .threadPool, queue: queue, retry: retry, timeout: timeout, priority: priority,
                             poisonLimit: poisonLimit,
                             body: .blocking { text, context in
                                 let value = try PayloadCoding.decode(Payload.self, from: text, task: name)
                                 return try PayloadCoding.encode(try handler(value, context), task: name)
                             }))
    }

    /// Registers the built-in `exec` task: runs `{"argv": [...], "env": {...}, "cwd": "..."}` on the process
    /// pool in its own process group. Exit 0 succeeds with `{"exit_code":0,"stdout":"…","stderr":"…"}` (the
    /// output tails); any other status fails with the status and the stderr tail. Past the timeout the group
    /// gets SIGTERM, then SIGKILL after ``Configuration/killGrace``, and the attempt is `timed_out`.
    ///
    /// - Parameters:
    ///   - name: the task name (`exec` by default).
    ///   - queue: the default queue for tasks enqueued through this scheduler.
    ///   - retry: the backoff between attempts and the default number of attempts.
    ///   - timeout: the default time limit of one attempt.
    /// - Throws: ``RotaError`` `.invalidState` once the scheduler runs.
    public func registerExec(_ name: String = "exec", queue: String = "default",
                                         retry: RetryPolicy = .default, timeout: Duration? = nil) throws {
        let pool = pools.processes
        try add(HandlerEntry(name: name, executor: .process, queue: queue, retry: retry, timeout: timeout, priority: 0,
                             body: .async { text, context in
                                 let command = try PayloadCoding.decode(ExecCommand.self, from: text, task: name)
                                 let result = try await pool.run(command, timeout: context.timeout)
                                 guard result.succeeded else {
                                     var message = "\(command.argv.first ?? "") failed with \(result.statusDescription)"
                                     let stderr = result.stderr.suffix(4096).trimmingCharacters(in: .whitespacesAndNewlines)
                                     if !stderr.isEmpty { message += "; stderr: \(stderr)" }
                                     throw ExecError(message)
                                 }
                                 return try PayloadCoding.encode(result, task: name)
                             }))
    }

    private func add(_ entry: HandlerEntry) throws {
        if entry.name.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            throw RotaError(.invalidInput, field: "name", "a handler's task name must not be empty")
        }
        if started.load(ordering: .relaxed) {
            throw RotaError(.invalidState, "handlers must be registered before the scheduler runs (\(entry.name))")
        }
        registry.withLock { $0[entry.name] = entry }
    }

    /// The task names this scheduler has handlers for.
    public var taskNames: [String] { registry.withLock { $0.keys.sorted() } }

    // MARK: Enqueue

    /// Builds a ``TaskSpec`` for `name`, filling what is not given from the handler's defaults (queue,
    /// priority, attempts, timeout), for ``enqueue(_:)-(TaskSpec)`` or bulk ``enqueue(_:)-([TaskSpec])``.
    ///
    /// - Parameters:
    ///   - name: the task name.
    ///   - payload: encoded as JSON.
    ///   - queue, priority, maxAttempts, timeout: override the handler's defaults.
    ///   - at: when it becomes due; `after` is relative to now; neither means now.
    ///   - uniqueKey: makes the enqueue idempotent.
    /// - Throws: ``RotaError`` `.coding` when the payload cannot be encoded.
    public func spec<Payload: Encodable & Sendable>(
        _ name: String, payload: Payload, queue: String? = nil, priority: Int? = nil, at: Date? = nil,
        after: Duration? = nil, maxAttempts: Int? = nil, timeout: Duration? = nil, uniqueKey: String? = nil
    ) throws -> TaskSpec {
        let entry = registry.withLock { $0[name] }
        let json: String
        if Payload.self == Empty.self {
            json = "{}"
        } else {
            do {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                json = String(decoding: try encoder.encode(payload), as: UTF8.self)
            } catch {
                throw RotaError(.coding, field: "payload", "cannot encode the payload of \(name): \(PayloadCoding.describe(error))")
            }
        }
        let runAt = at ?? after.map { Date().addingTimeInterval($0.seconds) }
        return TaskSpec(name: name, payload: json, queue: queue ?? entry?.queue ?? "default",
                        priority: priority ?? entry?.priority ?? 0, runAt: runAt,
                        maxAttempts: maxAttempts ?? entry?.retry.maxAttempts ?? 3,
                        timeout: timeout ?? entry?.timeout, uniqueKey: uniqueKey, poisonLimit: entry?.poisonLimit)
    }

    /// Enqueues a task; durable when the call returns. A due task wakes this scheduler at once.
    ///
    /// ```swift
    /// let id = try await scheduler.enqueue("email.send", payload: Email(to: "a@b.c"), after: .seconds(30))
    /// ```
    /// - Parameters: as ``spec(_:payload:queue:priority:at:after:maxAttempts:timeout:uniqueKey:)``.
    /// - Returns: the task's id (the existing one for a known unique key).
    /// - Throws: ``RotaError`` `.invalidInput` naming the field, `.coding`, `.busy`, `.full`.
    @discardableResult
    public func enqueue<Payload: Encodable & Sendable>(
        _ name: String, payload: Payload, queue: String? = nil, priority: Int? = nil, at: Date? = nil,
        after: Duration? = nil, maxAttempts: Int? = nil, timeout: Duration? = nil, uniqueKey: String? = nil
    ) async throws -> TaskID {
        try await enqueue(spec(name, payload: payload, queue: queue, priority: priority, at: at, after: after,
                               maxAttempts: maxAttempts, timeout: timeout, uniqueKey: uniqueKey)).id
    }

    /// Enqueues a task with an empty payload (`{}`).
    /// - Returns: the task's id.
    @discardableResult
    public func enqueue(
        _ name: String, queue: String? = nil, priority: Int? = nil, at: Date? = nil, after: Duration? = nil,
        maxAttempts: Int? = nil, timeout: Duration? = nil, uniqueKey: String? = nil
    ) async throws -> TaskID {
        try await enqueue(name, payload: Empty(), queue: queue, priority: priority, at: at, after: after,
                          maxAttempts: maxAttempts, timeout: timeout, uniqueKey: uniqueKey)
    }

    /// Enqueues one task as specified.
    /// - Returns: its id, and whether it was inserted (false for a known unique key).
    @discardableResult
    public func enqueue(_ spec: TaskSpec) async throws -> EnqueueResult {
        let result = try await store.enqueue(spec)
        wakeIfDue(spec)
        return result
    }

    /// Enqueues many tasks in one transaction: all or none.
    @discardableResult
    public func enqueue(_ specs: [TaskSpec]) async throws -> [EnqueueResult] {
        let results = try await store.enqueue(specs)
        if !specs.isEmpty { engineBox.withLock { $0.engine }?.wake() }
        return results
    }

    /// Wakes the loop: a due task is claimed at once, a future one sets its timer.
    private func wakeIfDue(_ spec: TaskSpec) {
        wake()
    }

    /// Tells the running scheduler that tasks may be due: it claims at once instead of at its next poll.
    /// Enqueues through this scheduler do it by themselves; call it after writing to the store some other
    /// way in this process (a ``ScheduleService`` firing: `schedules.onFire { _ in scheduler.wake() }`).
    public func wake() {
        engineBox.withLock { $0.engine }?.wake()
    }

    /// Calls `hook` once, when ``run()`` has registered this worker in the store and starts claiming: from
    /// then on the scheduler serves its queues (a service manager's readiness, systemd's `READY=1`). It runs
    /// on the scheduler's own thread: keep it short. Register hooks before ``run()``; a run that is shut
    /// down before it could register its worker never calls them.
    ///
    /// ```swift
    /// scheduler.onServing { logger.notice("serving") }
    /// ```
    public func onServing(_ hook: @escaping @Sendable () -> Void) {
        servingHooks.withLock { $0.append(hook) }
    }

    // MARK: Queries

    /// One task, or nil.
    public func task(_ id: TaskID) async throws -> TaskRecord? { try await store.task(id) }

    /// A task's finished attempts, in order (each with its outcome, error or result).
    public func attempts(of id: TaskID) async throws -> [AttemptRecord] { try await store.attempts(of: id) }

    /// How long ago the running scheduler's loop last woke up to work, or `nil` when it is not serving (not
    /// started, still registering its worker, or stopped). While it serves, the loop wakes at least every
    /// ``Configuration/heartbeatInterval`` (every ``Configuration/maxStoreBackoff`` while the store fails), so
    /// a time well above that means it is stuck: what a watchdog asks (`rota run` feeds systemd's only
    /// while this stays under half of `WATCHDOG_USEC`).
    public var loopIdleTime: Duration? { engineBox.withLock { $0.engine }?.sinceLastTurn }

    /// Attempts in flight in this scheduler right now.
    public var runningCount: Int { engineBox.withLock { $0.engine }?.runningCount ?? 0 }

    /// Serves `queue` with `concurrency` slots from now on: adds a queue, or changes the slots of one it
    /// serves; 0 stops claiming from it (attempts in flight finish). Before ``run()`` it changes what
    /// ``Configuration/queues`` said; while it runs, the next claim uses it and the worker row
    /// (`rota workers`) shows it. The thread pool and the process pool keep their sizes.
    ///
    /// ```swift
    /// try scheduler.serve(queue: "reports", concurrency: 4)   // e.g. when a reloaded schedule names it
    /// ```
    /// - Throws: ``RotaError`` `.invalidInput` for an empty queue name or a negative concurrency.
    public func serve(queue: String, concurrency: Int) throws {
        if queue.trimmingCharacters(in: .whitespaces).isEmpty {
            throw RotaError(.invalidInput, field: "queue", "a queue name must not be empty")
        }
        if concurrency < 0 {
            throw RotaError(.invalidInput, field: "concurrency", "the concurrency of queue \(queue) must be 0 or more, got \(concurrency)")
        }
        let engine = engineBox.withLock { box -> Engine? in
            if box.engine == nil { box.queues[queue] = concurrency }
            return box.engine
        }
        engine?.serve(queue: queue, concurrency: concurrency)
    }

    /// The queues this scheduler serves now and the slots of each (those with 1 or more).
    public var servedQueues: [String: Int] {
        let (engine, changes) = engineBox.withLock { ($0.engine, $0.queues) }
        if let engine { return engine.servedQueues }
        return configuration.queues.merging(changes) { $1 }.filter { $0.value > 0 }
    }

    // MARK: Run and stop

    /// Runs until shut down: by ``shutdown(grace:)``, a graceful shutdown of its `ServiceGroup`, the
    /// cancellation of the calling task (no grace), or, with ``Configuration/untilEmpty``, when nothing is
    /// left. At shutdown it stops claiming, lets running attempts finish within the grace, then cancels
    /// the rest and hands their tasks back (due again at once, the attempt recorded as `cancelled`).
    ///
    /// - Throws: ``RotaError`` `.invalidState` if it already ran, `.invalidInput` if no handler is registered.
    public func run() async throws {
        if started.exchange(true, ordering: .relaxed) {
            throw RotaError(.invalidState, "a scheduler runs once; create a new one")
        }
        let handlers = registry.withLock { $0 }
        if handlers.isEmpty {
            throw RotaError(.invalidInput, field: "handlers", "register at least one handler before running the scheduler")
        }
        let changes = engineBox.withLock { $0.queues }
        let queues = configuration.queues.merging(changes) { $1 }.filter { $0.value > 0 }
        if queues.isEmpty {
            throw RotaError(.invalidInput, field: "queues", "serve at least one queue with a concurrency of 1 or more")
        }
        let host = ProcessInfo.processInfo.hostName
        let settings = Engine.Settings(
            workerID: workerID, host: host, pid: ProcessInfo.processInfo.processIdentifier, queues: queues,
            threadPoolSize: max(1, configuration.threadPoolSize), maxProcesses: max(1, configuration.maxProcesses),
            pollInterval: configuration.pollInterval, watchInterval: configuration.watchInterval.flatMap { $0 > .zero ? $0 : nil },
            checkpointInterval: configuration.checkpointInterval.flatMap { $0 > .zero ? $0 : nil }, leaseDuration: configuration.leaseDuration,
            heartbeatInterval: configuration.heartbeatInterval, recoveryInterval: configuration.recoveryInterval,
            shutdownGrace: configuration.shutdownGrace, cancelWait: configuration.cancelWait,
            completionLinger: configuration.completionLinger, maxClaimBatch: max(1, configuration.maxClaimBatch),
            untilEmpty: configuration.untilEmpty, maxStoreBackoff: configuration.maxStoreBackoff,
            purgeFinishedAfter: configuration.purgeFinishedAfter)
        let engine = Engine(settings: settings, store: store, handlers: handlers, pools: pools, logger: logger,
                            onServing: servingHooks.withLock { $0 })
        let pending = engineBox.withLock { box -> Duration? in
            // A serve(queue:concurrency:) between the snapshot above and now, applied before any later one
            // can reach the engine (the engine never takes this lock).
            for (queue, concurrency) in box.queues where changes[queue] != concurrency {
                engine.serve(queue: queue, concurrency: concurrency)
            }
            box.engine = engine
            return box.pendingGrace
        }
        if let pending { engine.requestShutdown(grace: pending) }
        let grace = configuration.shutdownGrace
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await engine.run()
            } onGracefulShutdown: {
                engine.requestShutdown(grace: grace)
            }
        } onCancel: {
            engine.requestShutdown(grace: .zero)
        }
        pools.shutdown()  // drained: the thread pool's threads end now, not at deinit
    }

    /// Asks a running scheduler to stop: no more claims; running attempts get `grace` (the configured
    /// ``Configuration/shutdownGrace`` when nil) to finish, then are cancelled and handed back. Calling it
    /// again with a shorter grace shortens the wait. ``run()`` returns once drained.
    public func shutdown(grace: Duration? = nil) {
        let grace = grace ?? configuration.shutdownGrace
        let engine = engineBox.withLock { box -> Engine? in
            if box.engine == nil { box.pendingGrace = min(box.pendingGrace ?? grace, grace) }
            return box.engine
        }
        engine?.requestShutdown(grace: grace)
    }
}
