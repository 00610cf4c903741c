import ArgumentParser
import Foundation
import Rota

/// `rota show ID`: one task with its payload, every attempt and its result.
struct ShowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Show a task: its payload, every attempt and its result.",
        discussion: """
            Each attempt shows its start, finish, duration, outcome, error and result.

            Examples:
              rota show 42
              rota show 42 --json \\
                  | jq '.attempts_log[] | select(.outcome != "succeeded") | .error'
            """
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var output: OutputOptions

    @Argument(help: ArgumentHelp("The task's id.", valueName: "id"))
    var id: Int64

    func run() async throws {
        let (found, attempts) = try await global.withStore(.readOnly) { store in
            (try await store.task(id), try await store.attempts(of: id))
        }
        guard let task = found else {
            throw CLIError.failure("no task \(id) in \(global.displayName)")
        }
        let now = Date()
        if output.json {
            guard case .object(var fields) = task.json else { return }
            fields.append(("attempts_log", .array(attempts.map(\.json))))
            printJSON(.object(fields))
            return
        }
        let terminal = Terminal.current
        var lines: [String] = []
        let stateText = terminal.paint(task.state.rawValue, state: task.state)
            + (task.cancelRequested && task.state == .running ? " (cancel requested)" : "")
        lines.append(terminal.bold("Task \(task.id)") + "  \(task.name)  \(stateText)")
        func instant(_ date: Date?) -> String? {
            date.map { "\(TimeText.humanInstant($0)) (\(TimeText.relative($0, now: now)))" }
        }
        let fields: [(String, String?)] = [
            ("queue", task.queue),
            ("priority", String(task.priority)),
            ("attempts", "\(task.attempts) of \(task.maxAttempts)"),
            ("lost", task.losses == 0 ? nil : "\(task.losses) with their worker (not counted in attempts); "
                + "\(task.soloLosses) while running alone, poison limit \(task.poisonLimit)"),
            ("run at", instant(task.runAt)),
            ("created", instant(task.createdAt)),
            ("updated", instant(task.updatedAt)),
            ("started", task.state == .running ? instant(task.startedAt) : nil),
            ("finished", instant(task.finishedAt)),
            ("timeout", task.timeout.map { TimeText.formatDuration(millis: $0.milliseconds) }),
            ("worker", task.leaseOwner),
            ("lease until", instant(task.leaseUntil)),
            ("unique key", task.uniqueKey),
            ("batch", task.batch.map { name in task.batchItem.map { "\(name) (item \($0))" } ?? name }),
            ("schedule", task.schedule.map { name in task.fireAt.map { "\(name) (fired for \(TimeText.humanInstant($0)))" } ?? name }),
            ("last error", task.lastError),
        ]
        for case let (label, value?) in fields {
            lines.append("  " + label.padding(toLength: 12, withPad: " ", startingAt: 0) + indentContinuation(value, by: 14))
        }
        lines.append("")
        lines.append(terminal.bold("Payload"))
        lines.append("  " + indentContinuation(task.payload, by: 2))
        lines.append("")
        if attempts.isEmpty {
            lines.append(terminal.bold("Attempts") + "  none finished yet")
        } else {
            lines.append(terminal.bold("Attempts"))
            var table = Table([
                .init(title: "#", right: true),
                .init(title: "WORKER", flexible: true, minWidth: 8, dropOrder: 3),
                .init(title: "STARTED", dropOrder: 2),
                .init(title: "FINISHED", dropOrder: 4),
                .init(title: "DURATION", right: true),
                .init(title: "OUTCOME"),
                .init(title: "ERROR / RESULT", flexible: true, minWidth: 12, dropOrder: 1),
            ])
            for attempt in attempts {
                let outcome = attempt.outcome
                table.append([
                    .init(String(attempt.attempt)),
                    .init(attempt.worker ?? "-"),
                    .init(attempt.startedAt.map(TimeText.humanInstant) ?? "-"),
                    .init(TimeText.relative(attempt.finishedAt, now: now)),
                    .init(attempt.duration.map { TimeText.formatDuration(millis: $0.milliseconds) } ?? "-"),
                    .init(outcome.rawValue, paint: { [terminal] in terminal.paint($0, code: outcomeColor(outcome)) }),
                    .init(attempt.error ?? attempt.result ?? ""),
                ])
            }
            lines += table.render(width: terminal.width.map { $0 - 2 }, bold: terminal.bold).map { "  " + $0 }
        }
        if let result = task.result {
            lines.append("")
            lines.append(terminal.bold("Result"))
            lines.append("  " + indentContinuation(result, by: 2))
        }
        writeLines(lines)
    }

    /// `text` with every line after the first indented by `spaces`, so multi-line values stay in their column.
    private func indentContinuation(_ text: String, by spaces: Int) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false)
            .joined(separator: "\n" + String(repeating: " ", count: spaces))
    }
}
