import Foundation
import Testing
@testable import Rota

/// The delay `jitter=` gives a fire: a pure function of the schedule's name and the fire instant.
@Suite struct FireJitterTests {
    @Test func fnv1a64MatchesTheReferenceVectors() {
        #expect(FireJitter.fnv1a64(Array("".utf8)) == 0xcbf2_9ce4_8422_2325)
        #expect(FireJitter.fnv1a64(Array("a".utf8)) == 0xaf63_dc4c_8601_ec8c)
        #expect(FireJitter.fnv1a64(Array("foobar".utf8)) == 0x8594_4171_f739_67e8)
    }

    /// Pinned values (computed independently, in Python, from the documented definition): a change here
    /// moves every jittered task of every deployment, and schedulers of two versions would disagree.
    @Test func theDelayOfAFixedNameAndInstantIsPinned() {
        #expect(FireJitter.hash(schedule: "nightly-backup", fireAt: 1_800_000_000_000) == 0x4772_8cd1_124b_e63f)
        #expect(FireJitter.delayMillis(schedule: "nightly-backup", fireAt: 1_800_000_000_000, jitterMillis: 300_000) == 140_539)
        #expect(FireJitter.delayMillis(schedule: "nightly-backup", fireAt: 1_800_000_060_000, jitterMillis: 300_000) == 130_495)
        #expect(FireJitter.delayMillis(schedule: "fleet-report", fireAt: 1_800_000_000_000, jitterMillis: 90_000) == 85_130)
    }

    @Test func theDelayIsWithinTheJitterAndDiffersAcrossInstantsAndNames() {
        let jitter: Int64 = 90_000
        var delays: [Int64] = []
        for minute in 0..<2000 {
            let delay = FireJitter.delayMillis(schedule: "spread", fireAt: 1_800_000_000_000 + Int64(minute) * 60_000, jitterMillis: jitter)
            #expect(delay >= 0 && delay <= jitter)
            delays.append(delay)
        }
        #expect(Set(delays).count > 1900)  // neighbouring instants spread out
        // The whole range is used: some delay in each tenth of it.
        #expect(Set(delays.map { $0 * 10 / (jitter + 1) }) == Set(0..<10))
        // Another schedule at the same instants gets other delays.
        let other = (0..<2000).map {
            FireJitter.delayMillis(schedule: "spread2", fireAt: 1_800_000_000_000 + Int64($0) * 60_000, jitterMillis: jitter)
        }
        #expect(other != delays)
        // A jitter of 1 ms gives 0 or 1; none gives 0.
        #expect(Set((0..<100).map { FireJitter.delayMillis(schedule: "x", fireAt: Int64($0), jitterMillis: 1) }) == [0, 1])
        #expect(FireJitter.delayMillis(schedule: "x", fireAt: 5, jitterMillis: 0) == 0)
    }

    @Test func aSpecRunsItsFireAtTheInstantPlusItsDelay() {
        var spec = ScheduleSpec(name: "nightly-backup", expression: "0 3 * * *", taskName: "exec")
        let fire = Date(unixMillis: 1_800_000_000_000)
        #expect(spec.runAt(forFire: fire) == fire)
        spec.jitter = .seconds(300)
        #expect(spec.delayMillis(forFire: fire) == 140_539)
        #expect(spec.runAt(forFire: fire) == Date(unixMillis: 1_800_000_140_539))
    }
}
