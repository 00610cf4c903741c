import Foundation
import Rota

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
            let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
            if Self.isValid(trimmed) {
                out += trimmed
            } else {
                Self.quote(text, into: &out)
            }
        }
    }

    private static func isValid(_ text: String) -> Bool {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])) != nil
    }

    private static func quote(_ text: String, into out: inout String) {
        out += "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
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
    func json(now: Date) -> JSON {
        .object([
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
        ])
    }
}
