/// Plans one claim turn of a scheduler: which tasks to ask the store for, from each queue's free slots and
/// the free slots of the thread and process pools. A pure value: the engine fills it under its lock, and
/// tests check the plans without a store or a thread.
///
/// A turn's requests are served in order in one transaction, with budgets (``ClaimBudget``) for each
/// queue's free slots and each pool's free threads or processes:
/// 1. for the thread and process pools, an even share of the pool's free slots to every queue with free
///    slots, starting from the turn's first queue (the turn number rotates it, so no queue always goes
///    first);
/// 2. then, where several queues share a pool, each may take what the pool has left: a share a queue did
///    not use goes to the next one instead of idling for the turn;
/// 3. then each queue's async handlers, with what is left of the queue's slots (an exec request that comes
///    back short leaves its slots to them).
struct ClaimPlanner: Sendable, Equatable {
    /// The slots of each queue served (0: not claimed from).
    var queueSlots: [String: Int]
    /// Attempts in flight per queue.
    var busyByQueue: [String: Int] = [:]
    /// The task names each executor runs, sorted.
    var namesByExecutor: [ExecutorKind: [String]]
    /// Threads of the thread pool, and attempts in flight on it.
    var threadPoolSize: Int
    var busyThreads = 0
    /// Processes of the process pool, and attempts in flight on it.
    var maxProcesses: Int
    var busyProcesses = 0
    /// The largest claim per queue in one turn.
    var maxClaimBatch: Int

    /// The queues with slots, sorted.
    var servedQueues: [String] { queueSlots.filter { $0.value > 0 }.keys.sorted() }

    /// The free slots of an executor's pool; async handlers have no pool (`Int.max`).
    func freeSlots(_ executor: ExecutorKind) -> Int {
        switch executor {
        case .async: return .max
        case .process: return maxProcesses - busyProcesses
        case .threadPool: return threadPoolSize - busyThreads
        }
    }

    /// The requests of turn number `turn` (see the type's description); empty when nothing can be claimed.
    func requests(turn: Int) -> [ClaimRequest] {
        let queues = servedQueues
        guard !queues.isEmpty else { return [] }
        let first = ((turn % queues.count) + queues.count) % queues.count
        let order = Array(queues[first...] + queues[..<first])
        var wanting: [(queue: String, free: Int, budget: ClaimBudget)] = []
        for queue in order {
            let free = min(queueSlots[queue, default: 0] - busyByQueue[queue, default: 0], maxClaimBatch)
            if free > 0 { wanting.append((queue, free, ClaimBudget(key: "queue:" + queue, limit: free))) }
        }
        if wanting.isEmpty { return [] }
        var requests: [ClaimRequest] = []
        for (executor, key) in [(ExecutorKind.process, "pool:process"), (.threadPool, "pool:threads")] {
            guard let names = namesByExecutor[executor] else { continue }
            let poolFree = freeSlots(executor)
            guard poolFree > 0 else { continue }
            let pool = ClaimBudget(key: key, limit: poolFree)
            let share = (poolFree + wanting.count - 1) / wanting.count
            for want in wanting {
                requests.append(ClaimRequest(queue: want.queue, names: names, limit: min(want.free, share),
                                             budgets: [want.budget, pool]))
            }
            if wanting.count > 1 && share < poolFree {
                for want in wanting where want.free > share {
                    requests.append(ClaimRequest(queue: want.queue, names: names, limit: min(want.free, poolFree),
                                                 budgets: [want.budget, pool]))
                }
            }
        }
        if let names = namesByExecutor[.async] {
            for want in wanting {
                requests.append(ClaimRequest(queue: want.queue, names: names, limit: want.free, budgets: [want.budget]))
            }
        }
        return requests
    }

    /// How many tasks a turn could claim now (the sum of its requests' limits; budgets may cap it lower).
    var claimable: Int { requests(turn: 0).reduce(0) { $0 + $1.limit } }

    /// The task names an executor with free slots runs (sorted), and whether some pool with handlers is
    /// full: the names whose next due task is worth waking for.
    func claimableNames() -> (names: [String], poolFull: Bool) {
        var names: [String] = []
        var full = false
        for (executor, entries) in namesByExecutor {
            if executor == .async || freeSlots(executor) > 0 { names += entries } else { full = true }
        }
        return (names.sorted(), full)
    }
}
