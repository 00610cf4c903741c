import Foundation
import Testing
@testable import Rota

@Suite("Store conformance: claims")
struct ClaimConformanceTests {
    @Test(arguments: StoreKind.all)
    func aClaimTakesHigherPriorityFirstThenEarlierRunAtThenLowerID(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        _ = try await f.store.enqueue([
            TaskSpec(name: "p0-old", priority: 0, runAt: at(-30)),
            TaskSpec(name: "p5-new", priority: 5, runAt: at(-10)),
            TaskSpec(name: "p5-old-a", priority: 5, runAt: at(-20)),
            TaskSpec(name: "p0-new", priority: 0, runAt: at(-5)),
            TaskSpec(name: "p9", priority: 9, runAt: at(-1)),
            TaskSpec(name: "p5-old-b", priority: 5, runAt: at(-20)),
        ])
        let claimed = try await f.store.claimDue(now: at(0))
        #expect(claimed.map(\.name) == ["p9", "p5-old-a", "p5-old-b", "p5-new", "p0-old", "p0-new"])
    }

    @Test(arguments: StoreKind.all)
    func claimsOfOneTaskAtATimeFollowTheSameOrder(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        _ = try await f.store.enqueue([
            TaskSpec(name: "low", priority: 1, runAt: at(-30)),
            TaskSpec(name: "high-late", priority: 3, runAt: at(-1)),
            TaskSpec(name: "high-early", priority: 3, runAt: at(-2)),
            TaskSpec(name: "tie-second", priority: 1, runAt: at(-30)),
        ])
        var order: [String] = []
        for _ in 0..<5 { order += try await f.store.claimDue(limit: 1, now: at(0)).map(\.name) }
        #expect(order == ["high-early", "high-late", "low", "tie-second"])
    }

    @Test(arguments: StoreKind.all)
    func aTaskNotYetDueIsNotClaimedWhateverItsPriority(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let due = try await f.store.enqueue(TaskSpec(name: "due", runAt: at(-1))).id
        let exactlyNow = try await f.store.enqueue(TaskSpec(name: "now", runAt: at(0))).id
        let later = try await f.store.enqueue(TaskSpec(name: "later", priority: 9, runAt: at(60))).id
        let claimed = try await f.store.claimDue(now: at(0))
        #expect(Set(claimed.map(\.id)) == [due, exactlyNow])
        #expect(try await f.store.existing(later).state == .scheduled)
        #expect(try await f.store.claimDue(now: at(59.999)).isEmpty)
        #expect(try await f.store.claimDue(now: at(60)).map(\.id) == [later])
    }

    @Test(arguments: StoreKind.all)
    func aClaimTakesAtMostItsLimit(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        _ = try await f.store.enqueue((0..<7).map { TaskSpec(name: "t\($0)", runAt: at(0)) })
        let first = try await f.store.claimDue(limit: 3)
        #expect(first.count == 3)
        #expect(try await f.store.claimDue(limit: 0).isEmpty)
        let rest = try await f.store.claimDue(limit: 10)
        #expect(rest.count == 4)
        #expect(Set(first.map(\.id)).isDisjoint(with: rest.map(\.id)))
        #expect(try await f.store.stats(now: at(0)).states[.running] == 7)
    }

    @Test(arguments: StoreKind.all)
    func aClaimTakesOnlyTheNamesItHandles(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let ids = try await f.store.enqueue(["a", "b", "c"].map { TaskSpec(name: $0, runAt: at(0)) }).map(\.id)
        #expect(try await f.store.claimDue(names: []).isEmpty)
        #expect(try await f.store.claimDue(names: ["zzz"]).isEmpty)
        let claimed = try await f.store.claimDue(names: ["a", "c"])
        #expect(Set(claimed.map(\.id)) == [ids[0], ids[2]])
        #expect(try await f.store.existing(ids[1]).state == .scheduled)
        #expect(try await f.store.claimDue(names: nil).map(\.id) == [ids[1]])
    }

    @Test(arguments: StoreKind.all)
    func queuesAreSeparateAndEachRequestHasItsOwnLimit(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let mail = try await f.store.enqueue(TaskSpec(name: "x", queue: "mail", priority: 9, runAt: at(0))).id
        let reports = try await f.store.enqueue(TaskSpec(name: "x", queue: "reports", runAt: at(0))).id
        #expect(try await f.store.claimDue("default").isEmpty)
        #expect(try await f.store.claimDue("reports").map(\.id) == [reports])
        #expect(try await f.store.existing(mail).state == .scheduled)
        let more = try await f.store.enqueue([TaskSpec(name: "x", queue: "mail", runAt: at(0)),
                                              TaskSpec(name: "x", queue: "reports", runAt: at(0)),
                                              TaskSpec(name: "x", queue: "reports", runAt: at(0))]).map(\.id)
        let claimed = try await f.store.claim([ClaimRequest(queue: "mail", names: nil, limit: 5),
                                               ClaimRequest(queue: "reports", names: nil, limit: 1)],
                                              worker: "w1", leaseUntil: at(30), now: at(0))
        #expect(claimed.filter { $0.queue == "mail" }.map(\.id).sorted() == [mail, more[0]])
        #expect(claimed.filter { $0.queue == "reports" }.map(\.id) == [more[1]])
        // Per request, highest priority first; requests in order.
        #expect(claimed.map(\.queue) == ["mail", "mail", "reports"])
        #expect(claimed.first?.id == mail)
    }

    @Test(arguments: StoreKind.all)
    func twoRequestsForOneQueueWithDifferentNamesAreBothServed(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        _ = try await f.store.enqueue((0..<3).map { _ in TaskSpec(name: "exec", runAt: at(0)) }
                                      + (0..<3).map { _ in TaskSpec(name: "mail", runAt: at(0)) })
        let claimed = try await f.store.claim([ClaimRequest(queue: "default", names: ["exec"], limit: 2),
                                               ClaimRequest(queue: "default", names: ["mail"], limit: 5)],
                                              worker: "w1", leaseUntil: at(30), now: at(0))
        #expect(claimed.map(\.name) == ["exec", "exec", "mail", "mail", "mail"])
    }

    @Test(arguments: StoreKind.all)
    func aSharedBudgetLimitsTheRequestsOfOneTurnTogether(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        _ = try await f.store.enqueue((0..<5).map { _ in TaskSpec(name: "exec", runAt: at(0)) }
                                      + (0..<5).map { _ in TaskSpec(name: "mail", runAt: at(0)) })
        // Queue "default" has 6 free slots, the process pool 4: exec takes 4 of the slots, mail the 2 left.
        let slots = ClaimBudget(key: "queue:default", limit: 6), processes = ClaimBudget(key: "pool:process", limit: 4)
        let turn = try await f.store.completeAndClaim([], [
            ClaimRequest(queue: "default", names: ["exec"], limit: 10, budgets: [slots, processes]),
            ClaimRequest(queue: "default", names: ["mail"], limit: 10, budgets: [slots]),
        ], worker: "w1", leaseUntil: at(30), now: at(0))
        #expect(turn.claimed.filter { $0.name == "exec" }.count == 4)
        #expect(turn.claimed.filter { $0.name == "mail" }.count == 2)
        #expect(turn.applied == [])
        #expect(turn.filled)
        #expect(try await f.store.stats(now: at(0)).states[.running] == 6)
    }

    @Test(arguments: StoreKind.all)
    func aBudgetTakesItsLimitFromTheFirstRequestNamingIt(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        _ = try await f.store.enqueue((0..<6).map { TaskSpec(name: "n\($0 % 3)", runAt: at(0)) })
        // The second and third requests name the key with other limits: what is left of the first's 3 counts.
        let claimed = try await f.store.claim([
            ClaimRequest(queue: "default", names: ["n0"], limit: 10, budgets: [ClaimBudget(key: "pool", limit: 3)]),
            ClaimRequest(queue: "default", names: ["n1"], limit: 10, budgets: [ClaimBudget(key: "pool", limit: 100)]),
            ClaimRequest(queue: "default", names: ["n2"], limit: 10, budgets: [ClaimBudget(key: "pool", limit: 100)]),
        ], worker: "w1", leaseUntil: at(30), now: at(0))
        #expect(claimed.map(\.name) == ["n0", "n0", "n1"])
    }

    @Test(arguments: StoreKind.all)
    func anExhaustedBudgetSkipsTheRequestsThatNameIt(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        _ = try await f.store.enqueue((0..<4).map { _ in TaskSpec(name: "a", runAt: at(0)) }
                                      + (0..<4).map { _ in TaskSpec(name: "b", queue: "other", runAt: at(0)) })
        let pool = ClaimBudget(key: "pool", limit: 2)
        let claimed = try await f.store.claim([
            ClaimRequest(queue: "default", names: nil, limit: 10, budgets: [pool]),
            ClaimRequest(queue: "other", names: nil, limit: 10, budgets: [pool]),
            ClaimRequest(queue: "other", names: nil, limit: 1),
        ], worker: "w1", leaseUntil: at(30), now: at(0))
        #expect(claimed.map(\.queue) == ["default", "default", "other"])
    }

    @Test(arguments: StoreKind.all)
    func filledSaysWhetherARequestTookAllItCould(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        func turn(_ requests: [ClaimRequest]) async throws -> ClaimTurn {
            try await f.store.completeAndClaim([], requests, worker: "w1", leaseUntil: at(30), now: at(0))
        }
        // Nothing due.
        #expect(try await turn([ClaimRequest(queue: "default", names: nil, limit: 5)]).filled == false)
        #expect(try await turn([]) == ClaimTurn(applied: [], claimed: [], filled: false))
        _ = try await f.store.enqueue((0..<10).map { _ in TaskSpec(name: "a", runAt: at(0)) })
        // Fewer due than the limit: all taken, not filled.
        _ = try await f.store.enqueue((0..<2).map { _ in TaskSpec(name: "b", runAt: at(0)) })
        var result = try await turn([ClaimRequest(queue: "default", names: ["b"], limit: 5)])
        #expect(result.claimed.count == 2 && !result.filled)
        // Exactly its limit: filled (more may be due).
        result = try await turn([ClaimRequest(queue: "default", names: ["a"], limit: 3)])
        #expect(result.claimed.count == 3 && result.filled)
        // What its budget had left: filled.
        result = try await turn([ClaimRequest(queue: "default", names: ["a"], limit: 5, budgets: [ClaimBudget(key: "k", limit: 2)])])
        #expect(result.claimed.count == 2 && result.filled)
        // A limit of 0 takes nothing and is not filled.
        result = try await turn([ClaimRequest(queue: "default", names: ["a"], limit: 0)])
        #expect(result.claimed.isEmpty && !result.filled)
        // One of two requests filled is enough.
        result = try await turn([ClaimRequest(queue: "default", names: ["zzz"], limit: 5),
                                 ClaimRequest(queue: "default", names: ["a"], limit: 1)])
        #expect(result.claimed.count == 1 && result.filled)
    }

    @Test(arguments: StoreKind.all)
    func aClaimStartsAnAttemptUnderTheWorkersLease(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let id = try await f.store.enqueue(TaskSpec(name: "job", payload: #"{"n":1}"#, queue: "q", priority: 2, runAt: at(-5),
                                                    maxAttempts: 4, timeout: .milliseconds(1500))).id
        let claimed = try await f.store.claimOne("q", worker: "worker-a", leaseUntil: at(31), now: at(1))
        #expect(claimed == ClaimedTask(id: id, name: "job", queue: "q", payload: #"{"n":1}"#, attempt: 1, maxAttempts: 4,
                                       timeout: .milliseconds(1500), priority: 2, runAt: at(-5), startedAt: at(1)))
        let task = try await f.store.existing(id)
        #expect(task.state == .running)
        #expect(task.attempts == 1)
        #expect(task.leaseOwner == "worker-a")
        #expect(task.leaseUntil == at(31))
        #expect(task.startedAt == at(1))
        #expect(task.updatedAt == at(1))
        #expect(task.finishedAt == nil)
        // A running task is not claimed again, and no attempt is recorded until it ends.
        #expect(try await f.store.claimDue("q", worker: "worker-b", now: at(2)).isEmpty)
        #expect(try await f.store.attempts(of: id).isEmpty)
    }
}
