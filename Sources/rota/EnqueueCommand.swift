import ArgumentParser
import Foundation
import Rota

/// `rota enqueue`: adds one task and prints its id.
struct EnqueueCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enqueue",
        abstract: "Enqueue a task and print its id.",
        discussion: """
            Creates the database when it does not exist. With --unique, enqueuing a key
            that is already known prints the existing task's id and says so on stderr
            (exit 0): safe to repeat.

            --payload takes the JSON itself, @FILE to read it from a file, or - to read
            it from standard input: a payload larger than the kernel's limit on
            command-line arguments (128 KiB) goes through a file or a pipe.

            Examples:
              rota enqueue email.send --payload '{"to": "ops@example.com"}' \\
                  --queue mail --priority 5
              rota enqueue report.build --payload @report.json    (from a file)
              jq -c . big.json | rota enqueue report.build --payload -    (stdin)
              rota enqueue exec \\
                  --payload '{"argv": ["/usr/local/bin/backup", "--full"]}' --timeout 30m
              rota enqueue --exec -- /usr/local/bin/backup --full      (the same, shorter)
              rota enqueue --exec --in 15m --max-attempts 5 \\
                  -- curl -fsS https://example.com/ping
              rota enqueue report.build --at 2026-12-01T06:00:00Z --unique report-2026-12
            """
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var output: OutputOptions

    @Argument(help: ArgumentHelp("The task's name (its handler), e.g. exec or email.send.", valueName: "name"))
    var name: String?

    @Flag(name: .long, help: "Enqueue an `exec` task running the command given after `--`.")
    var exec = false

    @Argument(parsing: .postTerminator, help: ArgumentHelp("With --exec: the command and its arguments, after `--`.", valueName: "command"))
    var command: [String] = []

    @Option(name: .long, help: ArgumentHelp("The payload: JSON, @FILE (read from FILE) or - (stdin); default {}.", valueName: "json"))
    var payload: String?

    @Option(name: .long, help: ArgumentHelp("The queue.", valueName: "queue"))
    var queue: String = "default"

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("0 or more; higher runs first among due tasks.", valueName: "n"))
    var priority: Int = 0

    @Option(name: .long, help: ArgumentHelp("When it becomes due, ISO-8601 with a zone (2026-12-01T06:00:00Z).", valueName: "instant"))
    var at: String?

    @Option(name: .customLong("in"), help: ArgumentHelp("Due after this duration (90s, 15m, 2h, 7d).", valueName: "duration"))
    var delay: String?

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("Attempts it may use, 1 or more (1 means no retry).", valueName: "n"))
    var maxAttempts: Int = 3

    @Option(name: .long, help: ArgumentHelp(
        "Losses while running alone (it crashed its scheduler) before it is dead (default 2).", valueName: "n"))
    var poisonLimit: Int?

    @Option(name: .long, help: ArgumentHelp("Time limit of one attempt (90s, 15m, 2h).", valueName: "duration"))
    var timeout: String?

    @Option(name: .long, help: ArgumentHelp("A unique key: enqueuing it again returns the existing task.", valueName: "key"))
    var unique: String?

    /// The task spec the arguments describe.
    /// - Throws: ``CLIError/usage(_:)`` for contradicting or malformed arguments.
    func spec(now: Date) throws -> TaskSpec {
        let taskName: String
        let given = try payload.map(readPayload)
        var payloadText = given?.text ?? "{}"
        if exec {
            if let name, name != "exec" {
                throw CLIError.usage("--exec enqueues an exec task; put the command after `--` (rota enqueue --exec -- \(name) …)")
            }
            guard !command.isEmpty else {
                throw CLIError.usage("--exec needs a command after `--`, e.g. rota enqueue --exec -- echo hello")
            }
            if payload != nil { throw CLIError.usage("--exec and --payload contradict each other; use one") }
            taskName = "exec"
            payloadText = JSON.object([("argv", .array(command.map { .string($0) }))]).rendered(compact: true)
        } else {
            guard let name else {
                throw CLIError.usage("missing the task's name: rota enqueue NAME [--payload JSON], or rota enqueue --exec -- CMD ARG…")
            }
            if !command.isEmpty {
                throw CLIError.usage("arguments after `--` are only for --exec (got \(command.joined(separator: " ")))")
            }
            taskName = name
        }
        try checkJSON(payloadText, field: given?.field ?? "--payload")
        if priority < 0 { throw CLIError.usage("--priority: must be 0 or more (higher runs first), got \(priority)") }
        if maxAttempts < 1 { throw CLIError.usage("--max-attempts: must be 1 or more, got \(maxAttempts)") }
        if let poisonLimit, poisonLimit < 1 { throw CLIError.usage("--poison-limit: must be 1 or more, got \(poisonLimit)") }
        if at != nil, delay != nil { throw CLIError.usage("--at and --in contradict each other; use one") }
        var runAt: Date? = nil
        if let at { runAt = try TimeText.parseInstant(at, field: "--at") }
        if let delay { runAt = Date(unixMillis: now.unixMillis + (try TimeText.parseDuration(delay, field: "--in"))) }
        var limit: Duration? = nil
        if let timeout {
            let ms = try TimeText.parseDuration(timeout, field: "--timeout")
            if ms <= 0 { throw CLIError.usage("--timeout: must be more than 0") }
            limit = .milliseconds(ms)
        }
        if let unique, unique.isEmpty { throw CLIError.usage("--unique: the key must not be empty") }
        return TaskSpec(name: taskName, payload: payloadText, queue: queue, priority: priority, runAt: runAt,
                        maxAttempts: maxAttempts, timeout: limit, uniqueKey: unique, poisonLimit: poisonLimit)
    }

    /// The payload text `--payload` gives, and how to name it in a message: the JSON itself, the contents
    /// of a file (`@FILE`), or standard input (`-`). Trailing whitespace (a file's last newline) is dropped.
    /// - Throws: ``CLIError/usage(_:)`` naming the file and why it cannot be read, or input that is not UTF-8.
    func readPayload(_ option: String) throws -> (text: String, field: String) {
        let data: Data
        let field: String
        if option == "-" {
            field = "--payload - (standard input)"
            data = try readInput("-", field: "--payload -")
        } else if option.hasPrefix("@") {
            let path = String(option.dropFirst())
            field = "--payload @\(path)"
            if path.isEmpty { throw CLIError.usage("--payload @: name the file after @, e.g. --payload @payload.json") }
            data = try readInput(path, field: field)
        } else {
            return (option, "--payload")
        }
        guard var text = String(validating: data, as: UTF8.self) else {
            throw CLIError.usage("\(field): not UTF-8 text (JSON payloads are UTF-8)")
        }
        while let last = text.utf8.last, last == 0x20 || last == 0x0A || last == 0x0D || last == 0x09 { text.removeLast() }
        return (text, field)
    }

    func run() async throws {
        let spec = try spec(now: Date())
        let result = try await global.withStore(.create, quickCheck: false) { store in
            do {
                return try await store.enqueue(spec)
            } catch {
                guard let full = FullDisk.failure(error, database: global.db) else { throw error }
                throw CLIError.failure(FullDisk.message(
                    full, database: global.db,
                    written: "nothing was written: the task was not enqueued (\(spec.name), \(spec.payload.utf8.count) bytes of payload)"))
            }
        }
        if !result.inserted {
            printNote("rota: existing task \(result.id) already has unique key '\(spec.uniqueKey ?? "")'; nothing enqueued")
        }
        if output.json {
            printJSON(.object([("id", .int(result.id)), ("inserted", .bool(result.inserted))]))
        } else {
            print(result.id)
        }
    }
}
