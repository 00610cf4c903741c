import ArgumentParser
import Foundation
import Rota

/// `rota batch`: restart-safe batch processing.
struct BatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "batch",
        abstract: "Submit and follow batches: tasks submitted once, each completed once.",
        subcommands: [Submit.self, Status.self, List.self, Retry.self, Cancel.self]
    )

    struct Submit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Submit a batch from a JSON-lines file (or - for stdin).",
            discussion: """
                Each line is one task: {"name": "NAME", "payload": {...}} for a handler, or
                {"argv": ["cmd", "arg"]} (optionally with "env" and "cwd") for a command. A
                line may add "key" (the item's identity; default: its line number), "queue"
                and "priority". Blank lines are skipped. Submission is restart-safe: run the
                same command again after a crash and only the missing items are added. Every
                line is checked before anything is written.

                Examples:
                  rota batch submit --name resize-2026-11 items.jsonl
                  seq 1 1000 | jq -c '{argv: ["echo", (. | tostring)]}' \\
                      | rota batch submit --name echo-1k -
                  rota batch submit --name nightly \\
                      --on-complete '{"name": "exec", "payload": {"argv": ["notify"]}}' \\
                      items.jsonl
                """
        )
        @OptionGroup var global: GlobalOptions
        @Option(help: "The batch's unique name.") var name: String
        @Option(help: "The default queue for its items.") var queue: String = "default"
        @Option(parsing: .unconditional, help: "Attempts per item.") var maxAttempts: Int = 3
        @Option(parsing: .unconditional, help: "Priority of its items (higher runs first).") var priority: Int = 0
        @Option(help: #"A task to enqueue once every item finished, JSON {"name", "payload"?, "queue"?}."#)
        var onComplete: String?
        @Argument(help: "The JSON-lines file, or - for standard input.") var file: String

        func validate() throws {
            if maxAttempts < 1 { throw ValidationError("--max-attempts must be at least 1, got \(maxAttempts)") }
            if priority < 0 { throw ValidationError("--priority must be 0 or more, got \(priority)") }
        }

        func run() async throws {
            let label = file == "-" ? "<stdin>" : file
            let data = try readInput(file)
            // Pass 1: check every line; nothing is written when one is bad.
            var errors: [String] = []
            var count = 0
            var firstLineOfKey: [String: Int] = [:]  // an item's identity may appear once in a file
            forEachLine(data) { number, line in
                do {
                    let spec = try BatchLine.parse(line, number: number, defaults: self)
                    if let key = spec.batchItem, let first = firstLineOfKey.updateValue(number, forKey: key) {
                        firstLineOfKey[key] = first
                        let mine = key == "line:\(number)" ? "this line's default key" : "key"
                        let theirs = key == "line:\(first)" ? "the default key" : "the key"
                        throw BatchLine.LineError(message: "\(mine) \"\(key)\" is already \(theirs) of line \(first); each item needs its own")
                    }
                    count += 1
                } catch {
                    let message = (error as? BatchLine.LineError)?.message ?? "\(error)"
                    if errors.count < 20 { errors.append("\(label):\(number): \(message)") }
                    else if errors.count == 20 { errors.append("(more errors not shown)") }
                }
            }
            if !errors.isEmpty {
                throw CLIError.usage(errors.joined(separator: "\n") + "\nnothing was submitted")
            }
            if count == 0 { throw CLIError.usage("\(label) has no items") }
            // Pass 2: write in large transactions; items already present (a resumed submission) are skipped.
            try await global.withStore(.create) { store in try await submit(data, count: count, to: store) }
        }

        /// Writes the `count` checked items of `data` into the batch, 10,000 per transaction (an item already
        /// in the batch, from an earlier run of the same submission, is skipped), then seals it.
        private func submit(_ data: Data, count: Int, to store: any TaskStore) async throws {
            var committed = 0  // items in transactions that committed (added now or already present)
            var added = 0
            do {
                let batch = try await store.openBatch(name: name, queue: queue, onComplete: onComplete)
                var chunk: [TaskSpec] = []
                chunk.reserveCapacity(10_000)
                for (number, line) in Lines(data) {
                    guard let spec = try? BatchLine.parse(line, number: number, defaults: self) else { continue }
                    chunk.append(spec)
                    if chunk.count == 10_000 {
                        added += try await store.addBatchItems(batch.id, chunk)
                        committed += chunk.count
                        chunk.removeAll(keepingCapacity: true)
                    }
                }
                if !chunk.isEmpty {
                    added += try await store.addBatchItems(batch.id, chunk)
                    committed += chunk.count
                }
                let sealed = try await store.sealBatch(batch.id)
                print("batch \(name): \(count) item\(count == 1 ? "" : "s"), \(added) added, \(count - added) already present; \(sealed.finished)/\(sealed.total) finished")
            } catch {
                guard let full = FullDisk.failure(error, database: global.db) else { throw error }
                let written = committed == count
                    ? "batch \(name): all \(count) items are in the database (\(added) added by this run), but the batch was not sealed (its completion cannot fire yet)"
                    : "batch \(name): \(committed) of \(count) items were committed before the failure (\(added) added by this run); the other \(count - committed) were not written"
                throw CLIError.failure(FullDisk.message(
                    full, database: global.db, written: written,
                    afterRerun: ": it resumes, adding only the items not yet in the batch, then seals it"))
            }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a batch's progress: counts per state, rate and ETA.",
            discussion: """
                Warns when scheduled items wait for a worker: no live worker handles their
                name, or none that handles it serves their queue.

                Examples:
                  rota batch status resize-2026-11
                  # a live progress bar until it completes:
                  rota batch status resize-2026-11 --watch
                  rota batch status resize-2026-11 --json
                """
        )
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The batch's name.") var name: String
        @Flag(help: "Print JSON.") var json = false
        @Flag(help: "Redraw every second until the batch completes.") var watch = false

        func run() async throws {
            try await global.withStore(.readOnly) { store in try await show(store) }
        }

        /// Prints the batch's status, again every second with `--watch` until it completes.
        private func show(_ store: any TaskStore) async throws {
            let tty = isatty(STDOUT_FILENO) == 1
            var printedLines = 0
            while true {
                let status = try await store.batchStatus(name)
                let waiting = (status.states[.scheduled] ?? 0) > 0
                    ? try await store.unhandledTasks(now: Date(), batch: status.batch.id) : []
                if json {
                    print(BatchFormat.json(status, unhandled: waiting))
                } else {
                    let text = BatchFormat.human(status, unhandled: waiting, tty: tty)
                    if watch && tty && printedLines > 0 { print("\u{1B}[\(printedLines)F\u{1B}[J", terminator: "") }
                    print(text)
                    printedLines = text.split(separator: "\n", omittingEmptySubsequences: false).count
                }
                fflush(nil)  // piped output shows each refresh as it happens
                if !watch || status.batch.completedAt != nil { break }
                try await Task.sleep(for: .seconds(1))
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List batches, newest first.",
                                                        discussion: "Example: rota batch list --json")
        @OptionGroup var global: GlobalOptions
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let batches = try await global.withStore(.readOnly) { try await $0.batches() }
            if json {
                print("[" + batches.map(BatchFormat.json).joined(separator: ",") + "]")
                return
            }
            let terminal = Terminal.current
            var table = Table([
                .init(title: "NAME", flexible: true, minWidth: 12),
                .init(title: "QUEUE", flexible: true, minWidth: 8, dropOrder: 2),
                .init(title: "FINISHED", right: true),
                .init(title: "STATUS"),
                .init(title: "CREATED", dropOrder: 1),
            ])
            let now = Date()
            for batch in batches {
                table.append([
                    .init(batch.name), .init(batch.queue), .init("\(batch.finished)/\(batch.total)"),
                    .init(batch.phase),
                    .init(TimeText.relative(batch.createdAt, now: now)),
                ])
            }
            writeLines(table.render(width: terminal.width, bold: terminal.bold))
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Retry a batch's dead items.",
                                                        discussion: "Example: rota batch retry resize-2026-11")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The batch's name.") var name: String
        @Flag(help: "Print JSON: {\"batch\": NAME, \"rescheduled\": N}.") var json = false

        func run() async throws {
            let count = try await global.withStore(.existing) { try await $0.retryBatch(name) }
            if json {
                print(BatchFormat.jsonText(["batch": name, "rescheduled": count]))
            } else {
                print("batch \(name): \(count) dead items scheduled again")
            }
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Cancel a batch: cancel scheduled items, ask running ones to stop.",
                                                        discussion: "Example: rota batch cancel resize-2026-11")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The batch's name.") var name: String
        @Flag(help: "Print JSON: {\"batch\": NAME, \"cancelled\": N, \"requested\": N}.") var json = false

        func run() async throws {
            let result = try await global.withStore(.existing) { try await $0.cancelBatch(name) }
            if json {
                print(BatchFormat.jsonText(["batch": name, "cancelled": result.cancelled, "requested": result.requested]))
            } else {
                print("batch \(name): \(result.cancelled) cancelled, \(result.requested) running asked to stop")
            }
        }
    }
}

/// Calls `body` with each line's 1-based number and bytes, skipping blank lines.
func forEachLine(_ data: Data, _ body: (Int, Data.SubSequence) -> Void) {
    for (number, line) in Lines(data) { body(number, line) }
}

/// The lines of `data` that are not blank, each with its 1-based number, without their newline.
struct Lines: Sequence, IteratorProtocol {
    private let data: Data
    private var start: Data.Index
    private var number = 0

    init(_ data: Data) {
        self.data = data
        start = data.startIndex
    }

    mutating func next() -> (number: Int, line: Data.SubSequence)? {
        while start < data.endIndex {
            number += 1
            let end = data[start...].firstIndex(of: UInt8(ascii: "\n")) ?? data.endIndex
            let line = data[start..<end]
            start = end == data.endIndex ? end : data.index(after: end)
            if line.contains(where: { $0 != 0x20 && $0 != 0x09 && $0 != 0x0D }) { return (number, line) }
        }
        return nil
    }
}

/// One line of a batch file, turned into a task. Payloads are copied from the line's bytes, never
/// re-encoded, so a million lines are read in seconds.
enum BatchLine {
    struct LineError: Error { var message: String }

    static let fieldNames = ["name", "payload", "argv", "env", "cwd", "key", "queue", "priority"]
    static let fields = fieldNames.joined(separator: ", ")

    static func parse(_ line: Data.SubSequence, number: Int, defaults: BatchCommand.Submit) throws -> TaskSpec {
        try line.withUnsafeBytes { raw in
            try parse(raw.bindMemory(to: UInt8.self), number: number, defaults: defaults)
        }
    }

    static func parse(_ bytes: UnsafeBufferPointer<UInt8>, number: Int, defaults: BatchCommand.Submit) throws -> TaskSpec {
        let members: [(key: String, kind: JSONText.Kind, range: Range<Int>)]
        switch JSONText.members(bytes) {
        case .success(let value): members = value
        case .failure(let error):
            throw LineError(message: #"not a JSON object like {"name": ..., "payload": {...}} or {"argv": [...]} ("# + error.description + ")")
        }
        func text(_ range: Range<Int>) -> String { String(decoding: UnsafeBufferPointer(rebasing: bytes[range]), as: UTF8.self) }
        func string(_ range: Range<Int>) -> String? { JSONText.string(UnsafeBufferPointer(rebasing: bytes[range])) }
        var found: [String: (kind: JSONText.Kind, range: Range<Int>)] = [:]
        for member in members {
            guard fieldNames.contains(member.key) else {
                throw LineError(message: "unknown field \"\(member.key)\" (expected \(fields))")
            }
            found[member.key] = (member.kind, member.range)
        }
        let name: String
        let payload: String
        if let argv = found["argv"] {
            guard argv.kind == .array, let elements = JSONText.elements(UnsafeBufferPointer(rebasing: bytes[argv.range])),
                  !elements.isEmpty, elements.allSatisfy({ $0.kind == .string }) else {
                throw LineError(message: "\"argv\" must be a non-empty array of strings")
            }
            if found["name"] != nil || found["payload"] != nil {
                throw LineError(message: "a line has either \"argv\" (a command) or \"name\" and \"payload\" (a task), not both")
            }
            var exec = #"{"argv":"# + text(argv.range)
            if let env = found["env"] {
                guard env.kind == .object, case .success(let vars) = JSONText.members(UnsafeBufferPointer(rebasing: bytes[env.range])),
                      vars.allSatisfy({ $0.kind == .string }) else {
                    throw LineError(message: "\"env\" must be an object of strings")
                }
                exec += #","env":"# + text(env.range)
            }
            if let cwd = found["cwd"] {
                guard cwd.kind == .string else { throw LineError(message: "\"cwd\" must be a string") }
                exec += #","cwd":"# + text(cwd.range)
            }
            name = "exec"
            payload = exec + "}"
        } else if let value = found["name"] {
            guard value.kind == .string, let decoded = string(value.range), !decoded.isBlank else {
                throw LineError(message: "\"name\" must be a non-empty string")
            }
            if found["env"] != nil || found["cwd"] != nil {
                throw LineError(message: "\"env\" and \"cwd\" belong to commands (lines with \"argv\")")
            }
            name = decoded
            payload = found["payload"].map { text($0.range) } ?? "{}"
        } else {
            throw LineError(message: #"needs "name" (a task) or "argv" (a command)"#)
        }
        var key = "line:\(number)"
        if let value = found["key"] {
            guard value.kind == .string, let decoded = string(value.range), !decoded.isEmpty else {
                throw LineError(message: "\"key\" must be a non-empty string")
            }
            key = decoded
        }
        var queue = defaults.queue
        if let value = found["queue"] {
            guard value.kind == .string, let decoded = string(value.range), !decoded.isEmpty else {
                throw LineError(message: "\"queue\" must be a non-empty string")
            }
            queue = decoded
        }
        var priority = defaults.priority
        if let value = found["priority"] {
            guard value.kind == .number, let parsed = Int(text(value.range)), parsed >= 0 else {
                throw LineError(message: "\"priority\" must be an integer, 0 or more")
            }
            priority = parsed
        }
        return TaskSpec(name: name, payload: payload, queue: queue, priority: priority, maxAttempts: defaults.maxAttempts, batchItem: key)
    }
}

/// Output for batch commands.
enum BatchFormat {
    static func iso(_ date: Date) -> String { TimeText.iso(date) }

    static func json(_ batch: BatchRecord) -> String {
        jsonText(fields(batch))
    }

    static func fields(_ batch: BatchRecord) -> [String: Any] {
        var object: [String: Any] = [
            "name": batch.name, "queue": batch.queue, "total": batch.total, "finished": batch.finished,
            "remaining": max(0, batch.total - batch.finished), "sealed": batch.sealed,
            "created_at": iso(batch.createdAt), "completed_at": batch.completedAt.map(iso) ?? NSNull(),
        ]
        object["on_complete"] = batch.onComplete.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) } ?? NSNull()
        return object
    }

    static func json(_ status: BatchStatus, unhandled: [UnhandledTasks] = []) -> String {
        var object = fields(status.batch)
        object["unhandled"] = unhandled.map {
            ["queue": $0.queue, "name": $0.name, "scheduled": $0.scheduled,
             "reason": $0.reason] as [String: Any]
        }
        object["states"] = Dictionary(uniqueKeysWithValues: status.states.map { ($0.key.rawValue, $0.value) })
        object["rate_per_second"] = status.rate ?? NSNull()
        object["eta_seconds"] = status.eta ?? NSNull()
        return jsonText(object)
    }

    static func jsonText(_ object: [String: Any]) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    static func human(_ status: BatchStatus, unhandled: [UnhandledTasks] = [], tty: Bool) -> String {
        let batch = status.batch
        let fraction = batch.total == 0 ? 0 : Double(batch.finished) / Double(batch.total)
        let width = 30
        let filled = Int((fraction * Double(width)).rounded(.down))
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let phase = batch.phase
        let states = TaskState.allCases.map { "\($0.rawValue) \(status.states[$0] ?? 0)" }.joined(separator: "  ")
        let rate = status.rate.map { String(format: "%.1f/s", $0) } ?? "-"
        let eta = status.eta.map { formatSeconds($0) } ?? "-"
        var text = """
            batch \(batch.name) (\(phase), queue \(batch.queue))
              [\(bar)] \(String(format: "%3.0f", fraction * 100))%  \(batch.finished)/\(batch.total)
              \(states)
              rate \(rate)  eta \(eta)
            """
        let warning = tty ? Terminal.current.paint("warning:", code: "33") : "warning:"
        for group in unhandled {
            text += "\n" + warning + " " + (group.nameHandledElsewhere
                ? unservedWarning(group)
                : "no live worker handles \(group.name) (\(group.scheduled) scheduled in queue \(group.queue))")
        }
        return text
    }

    static func formatSeconds(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        if s < 60 { return "\(s)s" }
        if s < 3600 { return "\(s / 60)m\(s % 60)s" }
        return "\(s / 3600)h\(s % 3600 / 60)m"
    }
}
