import ArgumentParser
import Foundation
import Rota

/// `rota retry`: makes dead or cancelled tasks scheduled again, due now.
struct RetryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retry",
        abstract: "Run dead or cancelled tasks again.",
        discussion: """
            Each task retried is scheduled, due now, with at least one more attempt.

            Give task ids, or --state dead (or cancelled) to retry every task in that
            state, optionally of one queue. A task that is scheduled, running or
            succeeded is not retried: its reason is printed, it is left as it was, and
            the exit status is 1 (the other ids are still retried).

            Examples:
              rota retry 42 43
              rota retry --state dead --queue mail
              rota list --state dead --since 12h --json \\
                  | jq -r '.[].id' | xargs rota retry
            """
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var output: OutputOptions

    @Argument(help: ArgumentHelp("The ids of the tasks to retry.", valueName: "id"))
    var ids: [Int64] = []

    @Option(name: .long, help: ArgumentHelp("Retry every task in this state: dead or cancelled.", valueName: "state"),
            completion: .list(["dead", "cancelled"]))
    var state: String?

    @Option(name: .long, help: ArgumentHelp("With --state: only tasks of this queue.", valueName: "queue"))
    var queue: String?

    func run() async throws {
        if let state {
            guard ids.isEmpty else { throw CLIError.usage("give task ids or --state, not both") }
            let states = try parseStates([state])
            guard states.count == 1, let only = states.first, only == .dead || only == .cancelled else {
                throw CLIError.usage("--state: only dead or cancelled tasks can be retried, not \(state)")
            }
            let count = try await global.withStore(.existing, quickCheck: false) {
                try await $0.retryAll(state: only, queue: queue, now: Date())
            }
            if output.json {
                printJSON(.object([("retried", .int(count)), ("state", .string(only.rawValue)), ("queue", .string(queue))]))
            } else {
                print("retried \(count) \(only) task\(count == 1 ? "" : "s")\(queue.map { " of queue \($0)" } ?? "")")
            }
            return
        }
        if queue != nil { throw CLIError.usage("--queue goes with --state (rota retry --state dead --queue Q)") }
        guard !ids.isEmpty else { throw CLIError.usage("give task ids, or --state dead [--queue Q]") }
        let outcomes = try await global.withStore(.existing, quickCheck: false) { try await $0.retry(ids, now: Date()) }
        var refused = 0
        var results: [JSON] = []
        for id in ids {
            let outcome = outcomes[id] ?? .notFound
            let (status, reason): (String, String?)
            switch outcome {
            case .rescheduled:
                (status, reason) = ("retried", nil)
            case .notRetryable(let state):
                refused += 1
                let why = state == .succeeded ? "it succeeded" : "it is \(state)"
                (status, reason) = ("refused", "\(why); only dead or cancelled tasks can be retried")
            case .notFound:
                refused += 1
                (status, reason) = ("not_found", "no such task")
            }
            results.append(.object([("id", .int(id)), ("status", .string(status)), ("reason", .string(reason))]))
            if !output.json {
                if let reason { printError("task \(id) not retried: \(reason)") } else { print("task \(id) retried") }
            }
        }
        if output.json { printJSON(.array(results)) }
        if refused > 0 { throw ExitCode(ExitCodes.failure) }
    }
}
