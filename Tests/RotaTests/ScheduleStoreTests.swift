import Foundation
import Testing
@testable import Rota
@testable import RotaSQLiteStore

/// Every-minute schedule arithmetic without the cron module: fires on whole minutes.
private func nextMinute(after date: Date) -> Date {
    Date(timeIntervalSince1970: (date.timeIntervalSince1970 / 60).rounded(.down) * 60 + 60)
}

private func plan(_ record: ScheduleRecord, now: Date) -> FirePlan {
    FirePlan.plan(for: record, now: now, grace: 30)
}

private let t0 = Date(timeIntervalSince1970: 1_800_000_000)  // a whole minute

/// Durable cron fires in the store: exactly once per instant, missed-run and overlap policies.
@Suite final class ScheduleStoreTests: @unchecked Sendable {
    private let directory: String
    private let store: SQLiteTaskStore

    init() throws {
        directory = NSTemporaryDirectory() + "rota-schedule-tests-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        store = try SQLiteTaskStore(path: directory + "/rota.db", configuration: .init(durability: .normal))
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }


    private func spec(_ name: String = "every-minute", missed: MissedRunPolicy = .skip,
                      overlap: OverlapPolicy = .allow) -> ScheduleSpec {
        ScheduleSpec(name: name, expression: "* * * * *", taskName: "exec", payload: #"{"argv":["true"]}"#,
                     missed: missed, overlap: overlap, source: "test.cron:1")
    }

    @Test func syncAddsChangesAndDeactivates() async throws {
        var result = try await store.syncSchedules([spec("a"), spec("b")], now: t0, firstFire: { _ in nextMinute(after: t0) })
        #expect(result.added.sorted() == ["a", "b"])
        var changedB = spec("b")
        changedB.queue = "other"
        result = try await store.syncSchedules([spec("a"), changedB], now: t0, firstFire: { _ in nextMinute(after: t0) })
        #expect(result.added.isEmpty && result.changed == ["b"] && result.removed.isEmpty)
        result = try await store.syncSchedules([changedB], now: t0, firstFire: { _ in nextMinute(after: t0) })
        #expect(result.removed == ["a"])
        let all = try await store.schedules()
        #expect(all.map(\.spec.name) == ["b", "a"])
        #expect(all.first { $0.spec.name == "a" }?.active == false)
        #expect(all.first { $0.spec.name == "b" }?.spec.queue == "other")
    }

    @Test func eachInstantFiresExactlyOnceEvenWhenAskedTwice() async throws {
        _ = try await store.syncSchedules([spec()], now: t0, firstFire: { _ in nextMinute(after: t0) })
        let at = t0.addingTimeInterval(61)
        let first = try await store.fireDueSchedules(now: at) { plan($0, now: at) }
        let second = try await store.fireDueSchedules(now: at) { plan($0, now: at) }
        #expect(first.count == 1 && first[0].inserted)
        #expect(second.isEmpty)
        // A clock that jumps back does not fire the same instant again.
        let back = try await store.fireDueSchedules(now: t0.addingTimeInterval(61)) { plan($0, now: t0.addingTimeInterval(61)) }
        #expect(back.isEmpty)
        let tasks = try await syncList(schedule: "every-minute")
        #expect(tasks.count == 1)
        #expect(tasks[0].fireAt == t0.addingTimeInterval(60))
    }

    @Test func twoStoresOnOneFileNeverFireTheSameInstantTwice() async throws {
        let other = try SQLiteTaskStore(path: directory + "/rota.db", configuration: .init(durability: .normal))
        _ = try await store.syncSchedules([spec()], now: t0, firstFire: { _ in nextMinute(after: t0) })
        var total = 0
        for minute in 1...20 {
            let at = t0.addingTimeInterval(Double(minute * 60) + 1)
            await total += try store.fireDueSchedules(now: at) { plan($0, now: at) }.filter(\.inserted).count
            await total += try other.fireDueSchedules(now: at) { plan($0, now: at) }.filter(\.inserted).count
        }
        #expect(total == 20)
        #expect(try await syncList(schedule: "every-minute").count == 20)
    }

    @Test func missedSkipRunsNothingAfterDowntime() async throws {
        _ = try await store.syncSchedules([spec(missed: .skip)], now: t0, firstFire: { _ in nextMinute(after: t0) })
        let at = t0.addingTimeInterval(10 * 60 + 45)  // down ten minutes; the last fire is 45 s late (> grace)
        await #expect(try store.fireDueSchedules(now: at) { plan($0, now: at) }.isEmpty)
        await #expect(try store.schedules()[0].nextFireAt == t0.addingTimeInterval(11 * 60))
    }

    @Test func missedOnceRunsOneCatchUp() async throws {
        _ = try await store.syncSchedules([spec(missed: .once)], now: t0, firstFire: { _ in nextMinute(after: t0) })
        let at = t0.addingTimeInterval(10 * 60 + 45)
        let fired = try await store.fireDueSchedules(now: at) { [at] in plan($0, now: at) }
        #expect(fired.count == 1)
        #expect(try await syncList(schedule: "every-minute").map(\.fireAt) == [t0.addingTimeInterval(600)])
    }

    @Test func missedAllRunsEveryMissedFireUpToTheCap() async throws {
        _ = try await store.syncSchedules([spec(missed: .all(cap: 4))], now: t0, firstFire: { _ in nextMinute(after: t0) })
        let at = t0.addingTimeInterval(10 * 60 + 45)
        await #expect(try store.fireDueSchedules(now: at) { plan($0, now: at) }.count == 4)
        #expect(try await syncList(schedule: "every-minute").compactMap(\.fireAt).sorted()
                == [7, 8, 9, 10].map { t0.addingTimeInterval(Double($0 * 60)) })
    }

    @Test func overlapSkipDoesNotFireWhileThePreviousRunIsPending() async throws {
        _ = try await store.syncSchedules([spec(overlap: .skip)], now: t0, firstFire: { _ in nextMinute(after: t0) })
        var at = t0.addingTimeInterval(61)
        do {
            let fired = try await store.fireDueSchedules(now: at) { [at] in plan($0, now: at) }
            #expect(fired.count == 1)
        }
        at = t0.addingTimeInterval(121)
        do {
            let fired = try await store.fireDueSchedules(now: at) { [at] in plan($0, now: at) }
            #expect(fired.isEmpty)  // first run still scheduled
        }
        let claimed = try store.claimSync([ClaimRequest(queue: "default", names: nil, limit: 10)], worker: "w",
                                          leaseUntil: at.addingTimeInterval(60), now: at)
        try store.completeSync(claimed.map {
            Completion(taskID: $0.id, attempt: $0.attempt, worker: "w", startedAt: at, finishedAt: at, resolution: .succeeded(result: nil))
        })
        at = t0.addingTimeInterval(181)
        do {
            let fired = try await store.fireDueSchedules(now: at) { [at] in plan($0, now: at) }
            #expect(fired.count == 1)
        }
    }

    @Test func aScheduleStoredWithItsPoliciesReadsBackTheSame() async throws {
        var stored = spec("policies", missed: .all(cap: 7), overlap: .skip)
        stored.timeout = .seconds(90)
        stored.timeZone = "Europe/Berlin"
        _ = try await store.syncSchedules([stored], now: t0, firstFire: { FirePlan.firstFire(of: $0, after: t0) })
        let record = try await #require(try store.schedules().first)
        #expect(record.spec == stored)
        #expect(record.nextFireAt == t0.addingTimeInterval(60))
    }

    private func syncList(schedule: String) async throws -> [TaskRecord] {
        try await store.list(TaskFilter(schedule: schedule, limit: 10_000)).reversed()
    }
}
