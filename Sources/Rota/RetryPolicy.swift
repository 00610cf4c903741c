import Foundation

/// When a failed attempt runs again: a backoff between attempts and the default number of attempts.
///
/// A task's own `max_attempts` (``TaskSpec/maxAttempts``) decides how many attempts it gets; the policy
/// gives the delay before each retry and the default `maxAttempts` for tasks enqueued through the Swift API
/// without one. ``dontRetry`` never retries, whatever the task's `max_attempts`.
///
/// ```swift
/// try await scheduler.register("feeds.refresh", retry: .exponentialJitter(maxAttempts: 5, base: .seconds(1),
///                                                                         maxBackoff: .seconds(60))) { … }
/// ```
public struct RetryPolicy: Sendable, Equatable, CustomStringConvertible {
    enum Kind: Sendable, Equatable {
        case exponentialJitter(base: Duration, maxBackoff: Duration)
        case fixed(Duration)
        case never
    }

    let kind: Kind
    /// The default number of attempts (first run included) for tasks enqueued without one.
    public let maxAttempts: Int

    /// Exponential backoff with full jitter, capped: the delay before attempt `n + 1` is uniformly random in
    /// `0 ... min(maxBackoff, base × 2^(n-1))`.
    ///
    /// - Parameters:
    ///   - maxAttempts: attempts by default, first run included (at least 1).
    ///   - base: the cap of the first delay.
    ///   - maxBackoff: the largest delay ever chosen.
    public static func exponentialJitter(maxAttempts: Int = 3, base: Duration = .seconds(1),
                                         maxBackoff: Duration = .seconds(300)) -> RetryPolicy {
        RetryPolicy(kind: .exponentialJitter(base: base, maxBackoff: maxBackoff), maxAttempts: max(1, maxAttempts))
    }

    /// A fixed delay between attempts.
    /// - Parameters:
    ///   - maxAttempts: attempts by default, first run included (at least 1).
    ///   - delay: the delay before every retry.
    public static func fixed(maxAttempts: Int = 3, delay: Duration) -> RetryPolicy {
        RetryPolicy(kind: .fixed(delay), maxAttempts: max(1, maxAttempts))
    }

    /// Never retry: the first failure makes the task `dead`.
    public static let dontRetry = RetryPolicy(kind: .never, maxAttempts: 1)

    /// Same as ``dontRetry``.
    public static let none = dontRetry

    /// The default: exponential backoff with full jitter from 1 s, capped at 5 min, 3 attempts.
    public static let `default` = exponentialJitter()

    /// True when the policy may retry at all.
    public var retries: Bool { kind != .never }

    /// The largest delay the policy may choose before the attempt after `attempt` (1-based).
    public func maxDelay(afterAttempt attempt: Int) -> Duration {
        switch kind {
        case .never: return .zero
        case .fixed(let delay): return delay
        case .exponentialJitter(let base, let cap):
            let exponent = min(max(attempt - 1, 0), 40)
            let baseMs = Double(base.milliseconds)
            let ms = min(Double(cap.milliseconds), baseMs * pow(2, Double(exponent)))
            return .milliseconds(Int64(ms))
        }
    }

    /// The delay before the attempt after `attempt` (1-based), drawn with `generator`.
    public func delay(afterAttempt attempt: Int, using generator: inout some RandomNumberGenerator) -> Duration {
        switch kind {
        case .never: return .zero
        case .fixed(let delay): return delay
        case .exponentialJitter:
            let cap = maxDelay(afterAttempt: attempt).milliseconds
            return cap <= 0 ? .zero : .milliseconds(Int64.random(in: 0...cap, using: &generator))
        }
    }

    /// The delay before the attempt after `attempt` (1-based), drawn with the system generator.
    public func delay(afterAttempt attempt: Int) -> Duration {
        var generator = SystemRandomNumberGenerator()
        return delay(afterAttempt: attempt, using: &generator)
    }

    /// The policy as written in Swift, e.g. `exponentialJitter(maxAttempts: 3, …)`.
    public var description: String {
        switch kind {
        case .never: "dontRetry"
        case .fixed(let delay): "fixed(maxAttempts: \(maxAttempts), delay: \(delay))"
        case .exponentialJitter(let base, let cap):
            "exponentialJitter(maxAttempts: \(maxAttempts), base: \(base), maxBackoff: \(cap))"
        }
    }
}

/// Throw this (or any error conforming to ``NonRetryable``) from a handler to make the task `dead` at
/// once, whatever attempts it has left.
///
/// ```swift
/// guard let user = try await users.find(payload.id) else {
///     throw NonRetryableError("no user \(payload.id)")
/// }
/// ```
public struct NonRetryableError: NonRetryable, CustomStringConvertible {
    /// What went wrong.
    public let message: String
    /// Creates the error.
    public init(_ message: String) { self.message = message }
    /// The message.
    public var description: String { message }
}

/// An error that says "do not retry": the task becomes `dead` at the first failure.
public protocol NonRetryable: Error, Sendable {}
