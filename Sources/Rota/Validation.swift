import Foundation

/// Task specs that passed validation: the only form a ``TaskStore`` accepts, so a store never writes a
/// spec that validation refused and every store refuses the same specs with the same words.
///
/// ```swift
/// let specs = try ValidatedSpecs([TaskSpec(name: "report", payload: "{}")], maxPayloadBytes: 1 << 20)
/// ```
public struct ValidatedSpecs: Sendable, Equatable {
    /// The specs, unchanged, in order.
    public let specs: [TaskSpec]

    /// Validates every spec (see ``TaskSpec/validate(maxPayloadBytes:)``).
    /// - Throws: ``RotaError`` `.invalidInput`; with more than one spec the field names the spec,
    ///   e.g. `tasks[3].priority`.
    public init(_ specs: [TaskSpec], maxPayloadBytes: Int) throws {
        for (index, spec) in specs.enumerated() {
            do { try spec.validate(maxPayloadBytes: maxPayloadBytes) } catch let error as RotaError where specs.count > 1 {
                throw RotaError(error.code, field: error.field.map { "tasks[\(index)].\($0)" }, error.message)
            }
        }
        self.specs = specs
    }

    /// The number of specs.
    public var count: Int { specs.count }
}

extension TaskSpec {
    /// Checks the spec as every store requires it: a name and a queue that are not blank, a priority of 0
    /// or more, at least one attempt, a positive timeout, a non-empty unique key when one is given, and a
    /// payload that is one JSON value of at most `maxPayloadBytes` bytes.
    /// - Throws: ``RotaError`` `.invalidInput` naming the field.
    public func validate(maxPayloadBytes: Int) throws {
        if name.isBlank {
            throw RotaError(.invalidInput, field: "name", "must not be empty")
        }
        if queue.isBlank {
            throw RotaError(.invalidInput, field: "queue", "must not be empty")
        }
        if priority < 0 {
            throw RotaError(.invalidInput, field: "priority", "must be 0 or more (higher runs first), got \(priority)")
        }
        if maxAttempts < 1 {
            throw RotaError(.invalidInput, field: "max_attempts", "must be at least 1, got \(maxAttempts)")
        }
        if let timeout, timeout.milliseconds <= 0 {
            throw RotaError(.invalidInput, field: "timeout", "must be positive, got \(timeout)")
        }
        if let uniqueKey, uniqueKey.isEmpty {
            throw RotaError(.invalidInput, field: "unique_key", "must not be empty when given")
        }
        if let poisonLimit, poisonLimit < 1 {
            throw RotaError(.invalidInput, field: "poison_limit", "must be at least 1, got \(poisonLimit)")
        }
        let size = payload.utf8.count
        if size > maxPayloadBytes {
            throw RotaError(.invalidInput, field: "payload", "is \(size) bytes, over the limit of \(maxPayloadBytes) bytes")
        }
        try Self.validateJSON(payload, field: "payload")
    }

    /// Throws ``RotaError`` `.invalidInput` unless `text` is one JSON value.
    static func validateJSON(_ text: String, field: String) throws {
        if let problem = JSONText.validate(text) {
            throw RotaError(.invalidInput, field: field, "is not valid JSON (\(problem)): \(text.prefix(80))")
        }
    }
}

extension String {
    /// True when the string is empty or only whitespace.
    public var isBlank: Bool { !unicodeScalars.contains { !$0.properties.isWhitespace } }
}
