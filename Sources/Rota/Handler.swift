import Foundation
import Logging

/// Where a task's handler runs.
public enum ExecutorKind: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// Swift concurrency: `async` handlers, for I/O-bound work. Bounded by the queue's concurrency.
    case async
    /// Dedicated OS threads (a `NIOThreadPool`): synchronous handlers that may block, never on the
    /// cooperative pool. Bounded by the pool's thread count and the queue's concurrency.
    case threadPool
    /// Child processes (the built-in `exec` task): crash-isolated commands. Bounded by the pool's
    /// process limit and the queue's concurrency.
    case process

    /// Its name: `async`, `threadPool` or `process`.
    public var description: String { rawValue }
}

/// A payload or result with no content: `{}` in the database. Handlers that use it skip JSON coding.
///
/// ```swift
/// try await scheduler.register("cache.flush") { (_: Empty, context) in Empty() }
/// ```
public struct Empty: Codable, Sendable, Equatable {
    /// Creates the empty value.
    public init() {}
}

/// How one attempt ended, before the retry policy turns it into a ``Completion/Resolution``.
enum AttemptEnd: Sendable {
    case success(result: String?)
    case failure(outcome: AttemptOutcome, error: String, retryable: Bool)
}

/// A registered handler, type-erased: payload and result are JSON text.
struct HandlerEntry: Sendable {
    enum Body: Sendable {
        /// Runs on Swift concurrency (the async and process executors).
        case async(@Sendable (_ payload: String, _ context: TaskContext) async throws -> String?)
        /// Runs on a pool thread.
        case blocking(@Sendable (_ payload: String, _ context: TaskContext) throws -> String?)
    }

    var name: String
    var executor: ExecutorKind
    var queue: String
    var retry: RetryPolicy
    var timeout: Duration?
    var priority: Int
    /// The default poison limit of its tasks (nil: ``TaskSpec/defaultPoisonLimit``).
    var poisonLimit: Int? = nil
    var body: Body
}

/// JSON coding of payloads and results, with a fast path for ``Empty``.
enum PayloadCoding {
    static func decode<P: Decodable>(_ type: P.Type, from text: String, task name: String) throws -> P {
        if P.self == Empty.self { return Empty() as! P }
        do {
            return try JSONDecoder().decode(P.self, from: Data(text.utf8))
        } catch {
            throw PayloadError(message: "the payload of \(name) is not a valid \(P.self): \(describe(error)); payload: \(text.prefix(200))")
        }
    }

    static func encode<R: Encodable>(_ value: R, task name: String) throws -> String? {
        if R.self == Empty.self { return nil }
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            return String(decoding: try encoder.encode(value), as: UTF8.self)
        } catch {
            throw ResultEncodingError(message: "the result of \(name) (\(R.self)) cannot be encoded as JSON: \(describe(error))")
        }
    }

    static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, let context):
            return "missing key '\(path(context.codingPath + [key]))'"
        case DecodingError.typeMismatch(let type, let context):
            return "'\(path(context.codingPath))' is not a \(type)"
        case DecodingError.valueNotFound(let type, let context):
            return "'\(path(context.codingPath))' is null, expected \(type)"
        case DecodingError.dataCorrupted(let context):
            return context.codingPath.isEmpty ? "not valid JSON" : "'\(path(context.codingPath))': \(context.debugDescription)"
        case EncodingError.invalidValue(let value, let context):
            return "\(value) at '\(path(context.codingPath))': \(context.debugDescription)"
        default:
            return "\(error)"
        }
    }

    private static func path(_ keys: [any CodingKey]) -> String {
        keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
    }
}

/// A payload that cannot be decoded: retrying cannot help.
struct PayloadError: NonRetryable, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// A result that cannot be encoded: the attempt fails and the task follows its retry policy.
struct ResultEncodingError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// An attempt that ran past its timeout.
struct AttemptTimeout: Error, CustomStringConvertible {
    var limit: Duration
    var description: String { "timed out after \(limit)" }
}
