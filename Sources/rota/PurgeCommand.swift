import ArgumentParser
import Foundation
import Rota

/// `rota purge`: deletes old finished tasks and their attempts.
struct PurgeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "purge",
        abstract: "Delete finished tasks (and their attempts) older than a duration.",
        discussion: """
            Never deletes scheduled or running tasks. Without --state, purges succeeded,
            dead and cancelled tasks that finished before the cutoff.

            Examples:
              rota purge --older-than 30d
              rota purge --older-than 7d --state succeeded
              rota purge --older-than 90d --state dead --state cancelled
            """
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var output: OutputOptions

    @Option(name: .long, help: ArgumentHelp("Purge tasks that finished longer ago than this (90s, 15m, 2h, 7d).", valueName: "duration"))
    var olderThan: String

    @Option(name: .long, help: ArgumentHelp("Only this state (repeatable): succeeded, dead, cancelled.", valueName: "state"),
            completion: .list(["succeeded", "dead", "cancelled"]))
    var state: [String] = []

    func run() async throws {
        let age = try TimeText.parseDuration(olderThan, field: "--older-than")
        let states = try parseStates(state)
        if let bad = states.first(where: { !$0.isTerminal }) {
            throw CLIError.usage("--state: \(bad) tasks are never purged; only succeeded, dead or cancelled")
        }
        let cutoff = Date(unixMillis: Date().unixMillis - age)
        let count = try await global.withStore(.existing, quickCheck: false) { try await $0.purge(olderThan: cutoff, states: states) }
        if output.json {
            printJSON(.object([
                ("purged", .int(count)),
                ("finished_before", .instant(cutoff)),
                ("states", .array((states.isEmpty ? [.succeeded, .dead, .cancelled] : states).map { .string($0.rawValue) })),
            ]))
        } else {
            print("purged \(count) task\(count == 1 ? "" : "s") finished before \(TimeText.humanInstant(cutoff))")
        }
    }
}
