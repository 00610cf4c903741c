import Foundation
import Rota
import RotaSQLiteStore

/// A JSON value for `--json` output: ordered objects (stable field order), and stored JSON text embedded as is.
indirect enum JSON: Sendable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSON])
    case object([(String, JSON)])
    /// JSON text from the database (a payload or a result), embedded verbatim when it is valid JSON,
    /// as a string otherwise.
    case raw(String)

    static func string(_ value: String?) -> JSON { value.map { .string($0) } ?? .null }
    static func int(_ value: Int) -> JSON { .int(Int64(value)) }
    static func int(_ value: Int?) -> JSON { value.map { .int(Int64($0)) } ?? .null }
    static func instant(_ date: Date?) -> JSON { date.map { .string(TimeText.iso($0)) } ?? .null }
    static func raw(_ text: String?) -> JSON { text.map { .raw($0) } ?? .null }

    /// The JSON text, pretty-printed with two-space indents (or on one line when `compact`).
    func rendered(compact: Bool = false) -> String {
        var out = ""
        write(to: &out, indent: compact ? nil : 0)
        return out
    }

    private func write(to out: inout String, indent: Int?) {
        let pad = indent.map { String(repeating: "  ", count: $0 + 1) } ?? ""
        let closePad = indent.map { String(repeating: "  ", count: $0) } ?? ""
        let open = indent == nil ? "" : "\n"
        let separator = indent == nil ? "," : ",\n"
        let inner = indent.map { $0 + 1 }
        switch self {
        case .null: out += "null"
        case .bool(let value): out += value ? "true" : "false"
        case .int(let value): out += String(value)
        case .double(let value):
            out += value.isFinite ? String(value) : "null"
        case .string(let value): Self.quote(value, into: &out)
        case .array(let items):
            if items.isEmpty { out += "[]"; return }
            out += "[" + open
            for (index, item) in items.enumerated() {
                out += pad
                item.write(to: &out, indent: inner)
                out += index == items.count - 1 ? open : separator
            }
            out += closePad + "]"
        case .object(let fields):
            if fields.isEmpty { out += "{}"; return }
            out += "{" + open
            for (index, (key, value)) in fields.enumerated() {
                out += pad
                Self.quote(key, into: &out)
                out += indent == nil ? ":" : ": "
                value.write(to: &out, indent: inner)
                out += index == fields.count - 1 ? open : separator
            }
            out += closePad + "}"
        case .raw(let text):
            let trimmed = Self.trimmed(text)
            if Self.isValid(trimmed) {
                out += trimmed
            } else {
                Self.quote(text, into: &out)
            }
        }
    }

    /// `text` without JSON whitespace around it.
    private static func trimmed(_ text: String) -> Substring {
        func isSpace(_ c: Character) -> Bool { c == " " || c == "\n" || c == "\r" || c == "\t" || c == "\r\n" }
        guard let first = text.firstIndex(where: { !isSpace($0) }), let last = text.lastIndex(where: { !isSpace($0) }) else {
            return text[text.endIndex...]
        }
        return text[first...last]
    }

    private static func isValid(_ text: Substring) -> Bool {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])) != nil
    }

    private static func quote(_ text: String, into out: inout String) {
        out += "\""
        // Fast path: nothing to escape (the common case), appended whole.
        if !text.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
            out += text
            out += "\""
            return
        }
        var pending = text.utf8.startIndex
        var index = pending
        let utf8 = text.utf8
        while index != utf8.endIndex {
            let byte = utf8[index]
            let escape: String?
            switch byte {
            case UInt8(ascii: "\""): escape = "\\\""
            case UInt8(ascii: "\\"): escape = "\\\\"
            case UInt8(ascii: "\n"): escape = "\\n"
            case UInt8(ascii: "\r"): escape = "\\r"
            case UInt8(ascii: "\t"): escape = "\\t"
            case 0..<0x20:
                let hex = String(byte, radix: 16)
                escape = "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: escape = nil
            }
            if let escape {
                out += text[pending..<index]
                out += escape
                pending = utf8.index(after: index)
            }
            index = utf8.index(after: index)
        }
        out += text[pending..<utf8.endIndex]
        out += "\""
    }
}

/// Prints `value` as JSON on standard output.
func printJSON(_ value: JSON) {
    writeOut(value.rendered() + "\n")
}

extension TaskRecord {
    /// The task object of `--json` output. Field names are a contract.
    var json: JSON {
        .object([
            ("id", .int(id)),
            ("name", .string(name)),
            ("queue", .string(queue)),
            ("state", .string(state.rawValue)),
            ("priority", .int(priority)),
            ("attempts", .int(attempts)),
            ("max_attempts", .int(maxAttempts)),
            ("losses", .int(Int64(losses))),
            ("solo_losses", .int(Int64(soloLosses))),
            ("poison_limit", .int(Int64(poisonLimit))),
            ("run_at", .instant(runAt)),
            ("created_at", .instant(createdAt)),
            ("updated_at", .instant(updatedAt)),
            ("started_at", .instant(startedAt)),
            ("finished_at", .instant(finishedAt)),
            ("timeout_ms", timeout.map { .int($0.milliseconds) } ?? .null),
            ("unique_key", .string(uniqueKey)),
            ("batch", .string(batch)),
            ("batch_item", .string(batchItem)),
            ("schedule", .string(schedule)),
            ("fire_at", .instant(fireAt)),
            ("lease_owner", .string(leaseOwner)),
            ("lease_until", .instant(leaseUntil)),
            ("cancel_requested", .bool(cancelRequested)),
            ("last_error", .string(lastError)),
            ("payload", .raw(payload)),
            ("result", .raw(result)),
        ])
    }
}

extension AttemptRecord {
    /// One entry of `attempts_log`.
    var json: JSON {
        .object([
            ("attempt", .int(attempt)),
            ("worker", .string(worker)),
            ("started_at", .instant(startedAt)),
            ("finished_at", .instant(finishedAt)),
            ("duration_ms", duration.map { .int($0.milliseconds) } ?? .null),
            ("outcome", .string(outcome.rawValue)),
            ("error", .string(error)),
            ("result", .raw(result)),
        ])
    }
}

extension WorkerRecord {
    /// A worker object of `rota workers --json` and `rota stats --json`.
    /// - Parameter leader: the cluster's leader (a store that elects one: PostgreSQL), nil otherwise.
    func json(now: Date, leader: String? = nil) -> JSON {
        var fields: [(String, JSON)] = [
            ("id", .string(id)),
            ("host", .string(host)),
            ("pid", .int(Int64(pid))),
            ("status", .string(status(now: now).rawValue)),
            ("live", .bool(isLive(now: now))),
            ("queues", .array(queues.map { .string($0) })),
            ("task_names", .array(taskNames.map { .string($0) })),
            ("concurrency", .int(concurrency)),
            ("started_at", .instant(startedAt)),
            ("heartbeat_at", .instant(heartbeatAt)),
            ("heartbeat_age_ms", .int(max(0, now.unixMillis - heartbeatAt.unixMillis))),
            ("stopped_at", .instant(stoppedAt)),
        ]
        if let leader { fields.append(("leader", .bool(leader == id))) }
        return .object(fields)
    }
}
