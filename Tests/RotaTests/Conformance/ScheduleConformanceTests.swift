import Foundation
import Testing
@testable import Rota

@Suite("Store conformance: schedules and cron fires")
struct ScheduleConformanceTests {
    /// The first whole minute after `date` (what `* * * * *` fires at).
    private static func nextMinute(after date: Date) -> Date {
        Date(timeIntervalSince1970: (date.timeIntervalSince1970 / 60).rounded(.down) * 60 + 60)
    }

    private func spec(_ name: String = "every-minute", expression: String = "* * * * *", missed: MissedRunPolicy = .skip,
                      overlap: OverlapPolicy = .allow) -> ScheduleSpec {
        ScheduleSpec(name: name, expression: expression, taskName: "exec", payload: #"{"argv":["true"]}"#,
                     missed: missed, overlap: overlap, source: "test.cron:1")
    }

    /// Syncs `specs` at `at(0)`, each first firing at `at(60)`.
    @discardableResult
    private func sync(_ store: some TaskStore, _ specs: [ScheduleSpec], now: Date = at(0)) async throws -> ScheduleSyncResult {
        try await store.syncSchedules(specs, now: now, firstFire: { _ in Self.nextMinute(after: now) })
    }

    /// Fires what is due at `now` by the schedules' cron expressions (grace 30 s).
    @discardableResult
    private func fire(_ store: some TaskStore, at now: Date) async throws -> [EnqueueResult] {
        try await store.fireDueSchedules(now: now) { FirePlan.plan(for: $0, now: now, grace: 30) }
    }

    private func fired(_ store: some TaskStore, schedule: String = "every-minute") async throws -> [TaskRecord] {
        try await store.list(TaskFilter(schedule: schedule, limit: 10_000)).reversed()
    }

    // MARK: Sync

    @Test(arguments: StoreKind.all)
    func aSyncAddsChangesAndDeactivatesSchedules(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        var result = try await sync(f.store, [spec("a"), spec("b")])
        #expect(result.added.sorted() == ["a", "b"] && result.changed.isEmpty && result.removed.isEmpty)
        var changedB = spec("b")
        changedB.queue = "other"
        result = try await sync(f.store, [spec("a"), changedB], now: at(1))
        #expect(result.added.isEmpty && result.changed == ["b"] && result.removed.isEmpty)
        result = try await sync(f.store, [changedB], now: at(2))
        #expect(result.added.isEmpty && result.changed.isEmpty && result.removed == ["a"])
        let all = try await f.store.schedules()
        #expect(all.map(\.spec.name) == ["b", "a"])  // active ones first
        #expect(all.map(\.active) == [true, false])
        #expect(all.first?.spec == changedB)
        #expect(try await f.store.nextScheduleFire() == at(60))
    }

    @Test(arguments: StoreKind.all)
    func aSyncOfTheSameSpecsChangesNothing(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        try await sync(f.store, [spec("a"), spec("b")])
        let before = try await f.store.schedules()
        let result = try await sync(f.store, [spec("b"), spec("a")], now: at(30))
        #expect(result == ScheduleSyncResult(added: [], changed: [], removed: []))
        #expect(try await f.store.schedules() == before)
    }

    @Test(arguments: StoreKind.all)
    func schedulesAreListedActiveFirstThenByName(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        try await sync(f.store, ["d", "b", "c", "a"].map { spec($0) })
        try await sync(f.store, ["d", "b"].map { spec($0) })
        #expect(try await f.store.schedules().map(\.spec.name) == ["b", "d", "a", "c"])
    }

    @Test(arguments: StoreKind.all)
    func aNewTimingRecomputesTheNextFireAndOtherChangesKeepIt(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        try await sync(f.store, [spec("a")])
        #expect(try await f.store.schedules().first?.nextFireAt == at(60))
        var other = spec("a")
        other.priority = 4
        _ = try await f.store.syncSchedules([other], now: at(10), firstFire: { _ in at(999) })
        #expect(try await f.store.schedules().first?.nextFireAt == at(60))
        #expect(try await f.store.schedules().first?.spec.priority == 4)
        var retimed = other
        retimed.expression = "*/5 * * * *"
        let result = try await f.store.syncSchedules([retimed], now: at(20), firstFire: { _ in at(300) })
        #expect(result.changed == ["a"])
        #expect(try await f.store.schedules().first?.nextFireAt == at(300))
        var rezoned = retimed
        rezoned.timeZone = "Europe/Berlin"
        _ = try await f.store.syncSchedules([rezoned], now: at(30), firstFire: { _ in at(600) })
        #expect(try await f.store.schedules().first?.nextFireAt == at(600))
    }

    @Test(arguments: StoreKind.all)
    func aRemovedScheduleDefinedAgainIsActiveWithAFreshNextFire(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        try await sync(f.store, [spec("a")])
        try await sync(f.store, [], now: at(10))
        #expect(try await f.store.nextScheduleFire() == nil)
        _ = try await f.store.syncSchedules([spec("a")], now: at(200), firstFire: { _ in at(240) })
        let record = try #require(try await f.store.schedules().first)
        #expect(record.active)
        #expect(record.nextFireAt == at(240))
        #expect(try await f.store.nextScheduleFire() == at(240))
    }

    @Test(arguments: StoreKind.all)
    func aSyncWithABadSpecIsRefusedAndWritesNothing(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        try await sync(f.store, [spec("keep")])
        let before = try await f.store.snapshot()
        var noTask = spec("bad")
        noTask.taskName = ""
        var negative = spec("bad")
        negative.priority = -1
        var badPayload = spec("bad")
        badPayload.payload = "{"
        for bad in [noTask, negative, badPayload] {
            let error = await rotaError { try await sync(f.store, [spec("new"), bad], now: at(5)) }
            #expect(error?.code == .invalidInput)
        }
        #expect(try await f.store.snapshot() == before)
    }

    @Test(arguments: StoreKind.all)
    func aScheduleReadsBackWithItsWholeSpec(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        var stored = ScheduleSpec(name: "policies", expression: "30 2 * * 1-5", timeZone: "Europe/Berlin", taskName: "report",
                                  payload: #"{"kind":"daily"}"#, queue: "reports", priority: 3, maxAttempts: 7,
                                  timeout: .seconds(90), missed: .all(cap: 7), overlap: .skip, source: "ops.cron:12")
        _ = try await f.store.syncSchedules([stored], now: at(0), firstFire: { FirePlan.firstFire(of: $0, after: at(0)) })
        var record = try #require(try await f.store.schedules().first)
        #expect(record.spec == stored)
        #expect(record.active)
        #expect(record.lastFireAt == nil)
        #expect(record.nextFireAt == FirePlan.firstFire(of: stored, after: at(0)))
        stored.missed = .once
        stored.timeout = nil
        stored.source = nil
        _ = try await f.store.syncSchedules([stored], now: at(0), firstFire: { FirePlan.firstFire(of: $0, after: at(0)) })
        record = try #require(try await f.store.schedules().first)
        #expect(record.spec == stored)
    }

    // MARK: Fires

    @Test(arguments: StoreKind.all)
    func eachInstantFiresExactlyOnceEvenWhenAskedAgain(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        try await sync(f.store, [spec()])
        #expect(try await fire(f.store, at: at(59)).isEmpty)  // not due yet
        let first = try await fire(f.store, at: at(61))
        #expect(first.count == 1 && first[0].inserted)
        #expect(try await fire(f.store, at: at(61)).isEmpty)
        // A clock that goes back does not fire the same instant again.
        #expect(try await fire(f.store, at: at(30)).isEmpty)
        #expect(try await fire(f.store, at: at(61)).isEmpty)
        let tasks = try await fired(f.store)
        #expect(tasks.map(\.id) == [first[0].id])
        #expect(tasks.first?.fireAt == at(60))
    }

    @Test(arguments: StoreKind.all)
    func aFiredTaskCarriesTheSchedulesTaskAndItsInstant(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let schedule = ScheduleSpec(name: "nightly", expression: "* * * * *", taskName: "report", payload: #"{"k":1}"#,
                                    queue: "reports", priority: 4, maxAttempts: 6, timeout: .seconds(45))
        try await sync(f.store, [schedule])
        let result = try #require(try await fire(f.store, at: at(65)).first)
        let task = try await f.store.existing(result.id)
        #expect(task.name == "report")
        #expect(task.payload == #"{"k":1}"#)
        #expect(task.queue == "reports")
        #expect(task.priority == 4)
        #expect(task.maxAttempts == 6)
        #expect(task.timeout == .seconds(45))
        #expect(task.schedule == "nightly")
        #expect(task.fireAt == at(60))
        #expect(task.runAt == at(60))
        #expect(task.state == .scheduled && task.attempts == 0)
        #expect(try await f.store.claimDue("reports", now: at(65)).map(\.id) == [result.id])
    }

    @Test(arguments: StoreKind.all)
    func aJitteredFireRunsAtItsInstantPlusTheDerivedDelayAndStillFiresOnce(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let other = try f.openAnother()
        var jittered = spec("spread")
        jittered.jitter = .seconds(50)
        try await sync(f.store, [jittered])
        // Two schedulers at the same instants, and each asked twice (a restart): one task per instant.
        var inserted: [EnqueueResult] = []
        for minute in 1...5 {
            let now = at(Double(minute * 60) + 1)
            for store in [f.store, other, f.store] {
                inserted += try await fire(store, at: now).filter(\.inserted)
            }
        }
        #expect(inserted.count == 5)
        let tasks = try await fired(f.store, schedule: "spread")
        #expect(tasks.map(\.fireAt) == (1...5).map { at(Double($0 * 60)) })
        for task in tasks {
            let fireAt = try #require(task.fireAt)
            let delay = FireJitter.delayMillis(schedule: "spread", fireAt: fireAt.unixMillis, jitterMillis: 50_000)
            #expect(task.runAt == Date(unixMillis: fireAt.unixMillis + delay), "\(task)")
            #expect(delay >= 0 && delay <= 50_000)
        }
        #expect(Set(tasks.map { $0.runAt.unixMillis - $0.fireAt!.unixMillis }).count > 1)  // not one fixed delay
        // It runs at its run_at, not at its fire instant.
        let first = try #require(tasks.first)
        if first.runAt > at(60) {
            #expect(try await f.store.claimDue("default", now: at(60)).isEmpty)
        }
        #expect(try await f.store.claimDue("default", now: first.runAt).map(\.id).contains(first.id))
    }

    @Test(arguments: StoreKind.all)
    func aChangedJitterIsAChangedScheduleThatKeepsItsNextFire(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        var jittered = spec("spread")
        jittered.jitter = .seconds(30)
        try await sync(f.store, [jittered])
        #expect(try await f.store.schedules().first?.spec.jitter == .seconds(30))
        jittered.jitter = .milliseconds(45_500)
        var result = try await sync(f.store, [jittered], now: at(10))
        #expect(result.changed == ["spread"])
        var record = try #require(try await f.store.schedules().first)
        #expect(record.spec == jittered)
        #expect(record.nextFireAt == at(60))
        jittered.jitter = nil
        result = try await sync(f.store, [jittered], now: at(20))
        #expect(result.changed == ["spread"])
        record = try #require(try await f.store.schedules().first)
        #expect(record.spec.jitter == nil)
        result = try await sync(f.store, [jittered], now: at(30))
        #expect(result.changed.isEmpty)
    }

    @Test(arguments: StoreKind.all)
    func aFireAdvancesTheNextFireAndRecordsTheLast(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        try await sync(f.store, [spec()])
        try await fire(f.store, at: at(61))
        var record = try #require(try await f.store.schedules().first)
        #expect(record.nextFireAt == at(120))
        #expect(record.lastFireAt == at(60))
        #expect(try await f.store.nextScheduleFire() == at(120))
        try await fire(f.store, at: at(125))
        record = try #require(try await f.store.schedules().first)
        #expect(record.nextFireAt == at(180))
        #expect(record.lastFireAt == at(120))
        #expect(try await fired(f.store).map(\.fireAt) == [at(60), at(120)])
    }

    @Test(arguments: StoreKind.all)
    func everyInstantOfAPlanIsEnqueuedOnceAndAReplayedPlanAddsNothing(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        try await sync(f.store, [spec()])
        let instants = [at(60), at(90)]
        // The plan leaves the schedule due at its first instant, so it is asked again and plans the same fires.
        let first = try await f.store.fireDueSchedules(now: at(100)) { _ in FirePlan(fires: instants, nextFireAt: at(60)) }
        #expect(first.map(\.inserted) == [true, true])
        let again = try await f.store.fireDueSchedules(now: at(100)) { _ in FirePlan(fires: instants, nextFireAt: at(120)) }
        #expect(again.map(\.inserted) == [false, false])
        #expect(again.map(\.id) == first.map(\.id))
        #expect(try await fired(f.store).map(\.fireAt) == instants)
        #expect(try await f.store.stats(now: at(100)).states[.scheduled] == 2)
    }

    @Test(arguments: StoreKind.all)
    func missedFiresFollowEachSchedulesPolicy(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        try await sync(f.store, [spec("skip", missed: .skip), spec("once", missed: .once), spec("all", missed: .all(cap: 4))])
        // Down ten minutes; the last fire is 45 s late (more than the grace).
        let fires = try await fire(f.store, at: at(10 * 60 + 45))
        #expect(fires.count == 5)
        #expect(try await fired(f.store, schedule: "skip").isEmpty)
        #expect(try await fired(f.store, schedule: "once").map(\.fireAt) == [at(600)])
        #expect(try await fired(f.store, schedule: "all").map(\.fireAt) == [420, 480, 540, 600].map { at($0) })
        for record in try await f.store.schedules() {
            #expect(record.nextFireAt == at(660), "\(record.spec.name)")
        }
    }

    @Test(arguments: StoreKind.all)
    func overlapSkipDoesNotFireWhileThePreviousRunIsUnfinished(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        try await sync(f.store, [spec(overlap: .skip)])
        #expect(try await fire(f.store, at: at(61)).count == 1)
        #expect(try await fire(f.store, at: at(121)).isEmpty)  // the first run is still scheduled
        let claimed = try await f.store.claimOne(now: at(121))
        #expect(try await fire(f.store, at: at(181)).isEmpty)  // and now running
        _ = try await f.store.complete([claimed.completing(.succeeded(result: nil), at: at(182))])
        #expect(try await fire(f.store, at: at(241)).count == 1)
        #expect(try await fired(f.store).map(\.fireAt) == [at(60), at(240)])
    }

    @Test(arguments: StoreKind.all)
    func overlapSkipFiresOnlyTheLastOfSeveralMissedInstants(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        try await sync(f.store, [spec(missed: .all(cap: 5), overlap: .skip)])
        let fires = try await fire(f.store, at: at(5 * 60 + 45))
        #expect(fires.count == 1)
        #expect(try await fired(f.store).map(\.fireAt) == [at(300)])
    }

    @Test(arguments: StoreKind.all)
    func anInactiveScheduleNeverFires(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        try await sync(f.store, [spec("a"), spec("b")])
        try await sync(f.store, [spec("b")], now: at(1))
        let fires = try await fire(f.store, at: at(61))
        #expect(fires.count == 1)
        #expect(try await fired(f.store, schedule: "a").isEmpty)
        #expect(try await fired(f.store, schedule: "b").count == 1)
    }

    @Test(arguments: StoreKind.all)
    func aScheduleWithoutANextFireIsNeverDueAgain(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        try await sync(f.store, [spec()])
        let fires = try await f.store.fireDueSchedules(now: at(61)) { _ in FirePlan(fires: [at(60)], nextFireAt: nil) }
        #expect(fires.count == 1)
        #expect(try await f.store.schedules().first?.nextFireAt == nil)
        #expect(try await f.store.nextScheduleFire() == nil)
        let later = try await f.store.fireDueSchedules(now: at(100_000)) { _ in
            Issue.record("a schedule without a next fire was planned")
            return FirePlan(fires: [at(99_960)], nextFireAt: nil)
        }
        #expect(later.isEmpty)
    }

    @Test(arguments: StoreKind.all)
    func theNextScheduleFireIsTheEarliestOfTheActiveSchedules(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        #expect(try await f.store.nextScheduleFire() == nil)
        let firsts = ["a": at(300), "b": at(120), "c": at(60)]
        _ = try await f.store.syncSchedules(["a", "b", "c"].map { spec($0) }, now: at(0), firstFire: { firsts[$0.name] })
        #expect(try await f.store.nextScheduleFire() == at(60))
        _ = try await f.store.syncSchedules(["a", "b"].map { spec($0) }, now: at(0), firstFire: { firsts[$0.name] })
        #expect(try await f.store.nextScheduleFire() == at(120))
    }

    // MARK: Several schedulers

    @Test(arguments: StoreKind.all)
    func twoHandlesOnOneDatabaseNeverFireTheSameInstantTwice(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let other = try f.openAnother()
        try await sync(f.store, [spec()])
        var inserted = 0
        for minute in 1...20 {
            let now = at(Double(minute * 60) + 1)
            inserted += try await fire(f.store, at: now).filter(\.inserted).count
            inserted += try await fire(other, at: now).filter(\.inserted).count
        }
        #expect(inserted == 20)
        #expect(try await fired(f.store).map(\.fireAt) == (1...20).map { at(Double($0 * 60)) })
    }

    @Test(arguments: StoreKind.all)
    func twoSchedulersFiringAtOnceEnqueueExactlyOneTaskPerInstant(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let handles = [f.store, try f.openAnother()]
        try await sync(f.store, [spec("a"), spec("b", missed: .all(cap: 3))])
        for minute in 1...15 {
            // Every few minutes both come back late, with missed instants to catch up on.
            let now = at(Double(minute * 60) + (minute % 4 == 0 ? 50 : 1))
            let inserted = try await withThrowingTaskGroup(of: [EnqueueResult].self) { group in
                for store in handles {
                    group.addTask { try await store.fireDueSchedules(now: now) { FirePlan.plan(for: $0, now: now, grace: 30) } }
                }
                var all: [EnqueueResult] = []
                for try await results in group { all += results }
                return all.filter(\.inserted)
            }
            // "b" fires its instant; "a" (missed: skip) too, unless it came back later than the grace.
            #expect(inserted.count == (minute % 4 == 0 ? 1 : 2), "minute \(minute)")
        }
        for name in ["a", "b"] {
            let instants = try await fired(f.store, schedule: name).compactMap(\.fireAt)
            #expect(Set(instants).count == instants.count, "\(name): an instant fired twice")
            #expect(instants == instants.sorted())
        }
        // "b" (missed: all) has every minute; no instant of either is missing or doubled.
        #expect(try await fired(f.store, schedule: "b").compactMap(\.fireAt) == (1...15).map { at(Double($0 * 60)) })
    }
}
