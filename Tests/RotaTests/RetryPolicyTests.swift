import Foundation
import Testing
@testable import Rota
@testable import RotaSQLiteStore

@Suite("RetryPolicy")
struct RetryPolicyTests {
    /// A deterministic generator (SplitMix64).
    struct Seeded: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    @Test func exponentialJitterCapsDoubleFromTheBaseUpToTheMaximum() {
        let policy = RetryPolicy.exponentialJitter(maxAttempts: 10, base: .milliseconds(100), maxBackoff: .seconds(1))
        #expect(policy.maxDelay(afterAttempt: 1) == .milliseconds(100))
        #expect(policy.maxDelay(afterAttempt: 2) == .milliseconds(200))
        #expect(policy.maxDelay(afterAttempt: 3) == .milliseconds(400))
        #expect(policy.maxDelay(afterAttempt: 4) == .milliseconds(800))
        #expect(policy.maxDelay(afterAttempt: 5) == .seconds(1))
        #expect(policy.maxDelay(afterAttempt: 60) == .seconds(1))
    }

    @Test func fullJitterDrawsUniformlyBetweenZeroAndTheCap() {
        let policy = RetryPolicy.exponentialJitter(maxAttempts: 10, base: .milliseconds(100), maxBackoff: .seconds(1))
        var generator = Seeded(state: 42)
        for attempt in 1...6 {
            let delays = (0..<2000).map { _ in policy.delay(afterAttempt: attempt, using: &generator) }
            let cap = policy.maxDelay(afterAttempt: attempt)
            #expect(delays.allSatisfy { $0 >= .zero && $0 <= cap })
            // Full jitter: the draws spread over the whole range, not bunched at the cap.
            let mean = delays.map { Double($0.milliseconds) }.reduce(0, +) / Double(delays.count)
            #expect(abs(mean - Double(cap.milliseconds) / 2) < Double(cap.milliseconds) * 0.1)
            #expect(delays.contains { $0 < cap / 10 })
        }
    }

    @Test func dontRetryNeverRetriesAndDefaultsToOneAttempt() {
        #expect(RetryPolicy.dontRetry.retries == false)
        #expect(RetryPolicy.none.maxAttempts == 1)
        #expect(RetryPolicy.default.retries)
    }

    @Test func fixedAlwaysWaitsTheSame() {
        let policy = RetryPolicy.fixed(maxAttempts: 4, delay: .milliseconds(250))
        #expect((1...5).map { policy.delay(afterAttempt: $0) }.allSatisfy { $0 == .milliseconds(250) })
        #expect(policy.maxAttempts == 4)
    }
}
