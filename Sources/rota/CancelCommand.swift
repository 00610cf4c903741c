import ArgumentParser
import Foundation
import Rota

/// `rota cancel`: cancels scheduled tasks, asks running ones to stop.
struct CancelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel",
        abstract: "Cancel tasks: scheduled ones at once, running ones are asked to stop.",
        discussion: """
            A task that already finished (succeeded, dead or cancelled) is not changed:
            its reason is printed and the exit status is 1 (the other ids are still
            cancelled).

            Examples:
              rota cancel 42
              rota list --state scheduled --name report.build --json \\
                  | jq -r '.[].id' | xargs rota cancel
            """
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var output: OutputOptions

    @Argument(help: ArgumentHelp("The ids of the tasks to cancel.", valueName: "id"))
    var ids: [Int64] = []

    func run() async throws {
        guard !ids.isEmpty else { throw CLIError.usage("give the ids of the tasks to cancel") }
        let outcomes = try await global.withStore(.existing, quickCheck: false) { try await $0.cancel(ids, now: Date()) }
        var refused = 0
        var results: [JSON] = []
        for id in ids {
            let (status, note): (String, String)
            switch outcomes[id] ?? .notFound {
            case .cancelled:
                (status, note) = ("cancelled", "task \(id) cancelled")
            case .requested:
                (status, note) = ("stop_requested", "task \(id) is running: its worker was asked to stop it")
            case .notCancellable(let state):
                refused += 1
                (status, note) = ("refused", "task \(id) not cancelled: it is already \(state)")
            case .notFound:
                refused += 1
                (status, note) = ("not_found", "task \(id) not cancelled: no such task")
            }
            results.append(.object([("id", .int(id)), ("status", .string(status)), ("message", .string(note))]))
            if !output.json {
                if status == "refused" || status == "not_found" { printError(note) } else { print(note) }
            }
        }
        if output.json { printJSON(.array(results)) }
        if refused > 0 { throw ExitCode(ExitCodes.failure) }
    }
}
