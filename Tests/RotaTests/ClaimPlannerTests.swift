import Testing
@testable import Rota

/// Claim planning, a pure value: which requests a turn makes from queue slots and pool slots.
@Suite struct ClaimPlannerTests {
    private func planner(_ slots: [String: Int], async: [String] = [], threads: [String] = [], exec: [String] = [],
                         threadPool: Int = 4, processes: Int = 4, maxBatch: Int = 512) -> ClaimPlanner {
        var names: [ExecutorKind: [String]] = [:]
        if !async.isEmpty { names[.async] = async }
        if !threads.isEmpty { names[.threadPool] = threads }
        if !exec.isEmpty { names[.process] = exec }
        return ClaimPlanner(queueSlots: slots, namesByExecutor: names, threadPoolSize: threadPool,
                            maxProcesses: processes, maxClaimBatch: maxBatch)
    }

    @Test func anAsyncQueueAsksForItsFreeSlots() {
        var p = planner(["default": 8], async: ["a", "b"])
        #expect(p.requests(turn: 0) == [ClaimRequest(queue: "default", names: ["a", "b"], limit: 8,
                                                     budgets: [ClaimBudget(key: "queue:default", limit: 8)])])
        p.busyByQueue["default"] = 6
        #expect(p.requests(turn: 0).map(\.limit) == [2])
        p.busyByQueue["default"] = 8
        #expect(p.requests(turn: 0).isEmpty)
        #expect(p.claimable == 0)
    }

    @Test func aQueueWithoutSlotsIsNotClaimedFrom() {
        let p = planner(["a": 0, "b": 2], async: ["x"])
        #expect(p.servedQueues == ["b"])
        #expect(p.requests(turn: 0).map(\.queue) == ["b"])
    }

    @Test func theLargestClaimPerQueueIsCapped() {
        let p = planner(["default": 10_000], async: ["x"], maxBatch: 512)
        #expect(p.requests(turn: 0).map(\.limit) == [512])
    }

    @Test func poolRequestsComeFirstAndShareThePoolBudget() {
        let p = planner(["default": 8], async: ["a"], exec: ["exec"], processes: 3)
        let requests = p.requests(turn: 0)
        #expect(requests.map(\.names) == [["exec"], ["a"]])
        #expect(requests[0].limit == 3)
        #expect(requests[0].budgets == [ClaimBudget(key: "queue:default", limit: 8), ClaimBudget(key: "pool:process", limit: 3)])
        // The async request shares the queue's budget: what exec takes, async cannot.
        #expect(requests[1].budgets == [ClaimBudget(key: "queue:default", limit: 8)])
    }

    @Test func queuesShareAPoolEvenlyThenTakeWhatIsLeft() {
        let p = planner(["a": 8, "b": 8], threads: ["t"], threadPool: 4)
        let requests = p.requests(turn: 0)
        // An even share of 2 each, then each may take up to the whole pool's rest.
        #expect(requests.map(\.queue) == ["a", "b", "a", "b"])
        #expect(requests.map(\.limit) == [2, 2, 4, 4])
        #expect(requests.allSatisfy { $0.budgets.contains(ClaimBudget(key: "pool:threads", limit: 4)) })
    }

    @Test func eachTurnStartsFromTheNextQueue() {
        let p = planner(["a": 1, "b": 1, "c": 1], async: ["x"])
        #expect(p.requests(turn: 0).map(\.queue) == ["a", "b", "c"])
        #expect(p.requests(turn: 1).map(\.queue) == ["b", "c", "a"])
        #expect(p.requests(turn: 2).map(\.queue) == ["c", "a", "b"])
        #expect(p.requests(turn: 3).map(\.queue) == ["a", "b", "c"])
    }

    @Test func aFullPoolIsNotAskedForAndItsNamesAreNotWaitedFor() {
        var p = planner(["default": 8], async: ["a"], threads: ["t"], threadPool: 2)
        p.busyThreads = 2
        p.busyByQueue["default"] = 2
        #expect(p.requests(turn: 0).map(\.names) == [["a"]])
        let (names, full) = p.claimableNames()
        #expect(names == ["a"] && full)
        p.busyThreads = 1
        #expect(p.claimableNames().names == ["a", "t"])
        #expect(!p.claimableNames().poolFull)
    }
}
