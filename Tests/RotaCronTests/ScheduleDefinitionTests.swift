import Foundation
import Testing
@testable import RotaCron

@Suite struct ScheduleDefinitionTests {
    @Test func missedRunPolicyText() {
        #expect(MissedRunPolicy(parsing: "skip") == .skip)
        #expect(MissedRunPolicy(parsing: "ONCE") == .once)
        #expect(MissedRunPolicy(parsing: "all") == .all(cap: 100))
        #expect(MissedRunPolicy(parsing: "all:20") == .all(cap: 20))
        for bad in ["", "al", "all:", "all:0", "all:-1", "all:100001", "all:x", "never"] {
            #expect(MissedRunPolicy(parsing: bad) == nil, "\(bad)")
        }
        #expect(MissedRunPolicy.all(cap: 20).description == "all:20")
        #expect(OverlapPolicy(rawValue: "skip") == .skip)
    }

    @Test func codableRoundTrip() throws {
        let definitions = [
            ScheduleDefinition(
                name: "a", expression: "0 3 * * *", timeZone: "Europe/Berlin", queue: "q",
                action: .exec(argv: ["echo", "hi there"]), maxAttempts: 5, timeoutSeconds: 90, priority: -1,
                missed: .all(cap: 7), overlap: .skip, file: "x.cron", line: 4),
            ScheduleDefinition(name: "b", expression: "@hourly", action: .task(name: "feeds.refresh", payload: #"{"limit":1}"#)),
        ]
        let data = try JSONEncoder().encode(definitions)
        let text = String(decoding: data, as: UTF8.self)
        #expect(text.contains(#""missed":"all:7""#))
        #expect(text.contains(#""overlap":"skip""#))
        #expect(try JSONDecoder().decode([ScheduleDefinition].self, from: data) == definitions)
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(MissedRunPolicy.self, from: Data(#""sometimes""#.utf8))
        }
    }

    @Test func defaultsAndHelpers() throws {
        let d = ScheduleDefinition(name: "n", expression: "*/5 * * * *", action: .exec(argv: ["true"]))
        #expect(d.timeZone == "UTC")
        #expect(d.queue == "default")
        #expect(d.missed == .skip)
        #expect(d.overlap == .allow)
        #expect(d.maxAttempts == nil && d.timeout == nil && d.priority == nil)
        #expect(d.zone == TimeZone(identifier: "UTC"))
        #expect(try d.cronExpression() == CronExpression("*/5 * * * *"))
        var bad = d
        bad.timeZone = "Nowhere/Land"
        #expect(bad.zone == nil)
        #expect(throws: ScheduleFileError.self) { try bad.dueFires(nextFire: utc("2024-01-01T00:00:00Z"), now: utc("2024-01-01T00:00:00Z")) }
    }

    // MARK: Due fires and missed-run policies (every 10 minutes, UTC)

    func due(_ missed: MissedRunPolicy, next: String, now: String, grace: TimeInterval = 60) throws -> ([String], Bool, String?) {
        let d = ScheduleDefinition(name: "n", expression: "*/10 * * * *", action: .exec(argv: ["true"]), missed: missed)
        let r = try d.dueFires(nextFire: utc(next), now: utc(now), grace: grace)
        return (r.due.map(iso), r.skippedMissed, r.nextFire.map(iso))
    }

    @Test func nothingDueBeforeNextFire() throws {
        let r = try due(.all(cap: 100), next: "2024-01-01T12:10:00Z", now: "2024-01-01T12:05:00Z")
        #expect(r.0.isEmpty)
        #expect(r.1 == false)
        #expect(r.2 == "2024-01-01T12:10:00Z")
    }

    @Test func onTimeFireRunsUnderEveryPolicy() throws {
        for policy in [MissedRunPolicy.skip, .once, .all(cap: 3)] {
            let r = try due(policy, next: "2024-01-01T12:00:00Z", now: "2024-01-01T12:00:30Z")
            #expect(r.0 == ["2024-01-01T12:00:00Z"], "\(policy)")
            #expect(r.1 == false)
            #expect(r.2 == "2024-01-01T12:10:00Z")
        }
        // Exactly at the instant.
        #expect(try due(.skip, next: "2024-01-01T12:00:00Z", now: "2024-01-01T12:00:00Z").0 == ["2024-01-01T12:00:00Z"])
    }

    @Test func skipDropsMissedRuns() throws {
        let r = try due(.skip, next: "2024-01-01T10:00:00Z", now: "2024-01-01T12:05:00Z")
        #expect(r.0.isEmpty)
        #expect(r.1)
        #expect(r.2 == "2024-01-01T12:10:00Z")
        // The instant just reached still runs.
        let s = try due(.skip, next: "2024-01-01T10:00:00Z", now: "2024-01-01T12:00:20Z")
        #expect(s.0 == ["2024-01-01T12:00:00Z"])
        #expect(s.1)
    }

    @Test func onceRunsOneCatchUp() throws {
        let r = try due(.once, next: "2024-01-01T10:00:00Z", now: "2024-01-01T12:05:00Z")
        #expect(r.0 == ["2024-01-01T12:00:00Z"])
        #expect(r.1)
        let s = try due(.once, next: "2024-01-01T10:00:00Z", now: "2024-01-01T12:00:20Z")
        #expect(s.0 == ["2024-01-01T11:50:00Z", "2024-01-01T12:00:00Z"])
        // A single missed instant: nothing is skipped.
        let t = try due(.once, next: "2024-01-01T12:00:00Z", now: "2024-01-01T12:05:00Z")
        #expect(t.0 == ["2024-01-01T12:00:00Z"])
        #expect(t.1 == false)
    }

    @Test func allRunsEveryMissedUpToTheCap() throws {
        let r = try due(.all(cap: 100), next: "2024-01-01T10:00:00Z", now: "2024-01-01T12:05:00Z")
        #expect(r.0.count == 13)
        #expect(r.0.first == "2024-01-01T10:00:00Z")
        #expect(r.0.last == "2024-01-01T12:00:00Z")
        #expect(r.1 == false)
        let capped = try due(.all(cap: 3), next: "2024-01-01T10:00:00Z", now: "2024-01-01T12:05:00Z")
        #expect(capped.0 == ["2024-01-01T11:40:00Z", "2024-01-01T11:50:00Z", "2024-01-01T12:00:00Z"])
        #expect(capped.1)
        #expect(capped.2 == "2024-01-01T12:10:00Z")
    }

    @Test(.timeLimit(.minutes(1))) func longDowntimeIsCheap() throws {
        // A per-second schedule down for 24 years (757 million fires): only bisection, not enumeration, finishes
        // within the time limit (a hang guard, not a speed figure: the search takes milliseconds).
        let expr = try CronExpression("* * * * * *")
        let zone = TimeZone(identifier: "America/New_York")!
        let result = expr.dueFires(nextFire: utc("2000-01-01T00:00:00Z"), now: utc("2024-01-01T00:00:00Z"), in: zone,
                                   missed: .all(cap: 5), grace: 0)
        // Five missed (the cap) plus the on-time instant at `now`.
        #expect(result.due.map(iso) == ["2023-12-31T23:59:55Z", "2023-12-31T23:59:56Z", "2023-12-31T23:59:57Z", "2023-12-31T23:59:58Z",
                                         "2023-12-31T23:59:59Z", "2024-01-01T00:00:00Z"])
        #expect(result.skippedMissed)
        #expect(result.nextFire.map(iso) == "2024-01-01T00:00:01Z")
    }

    @Test func graceZeroAndFixedTimeDST() throws {
        // 02:30 New York on the spring-forward day runs at 03:00 EDT (07:00Z); a scheduler polling at 07:00:05 runs it.
        let expr = try CronExpression("30 2 * * *")
        let zone = TimeZone(identifier: "America/New_York")!
        let next = try #require(expr.next(after: utc("2024-03-09T12:00:00Z"), in: zone))
        #expect(iso(next) == "2024-03-10T07:00:00Z")
        let r = expr.dueFires(nextFire: next, now: utc("2024-03-10T07:00:05Z"), in: zone, missed: .skip)
        #expect(r.due.map(iso) == ["2024-03-10T07:00:00Z"])
        #expect(r.nextFire.map(iso) == "2024-03-11T06:30:00Z")
    }
}
