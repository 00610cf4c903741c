import ArgumentParser
import Foundation
import Rota

/// `rota list`: tasks, newest first, filtered.
struct ListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List tasks, newest first.",
        discussion: """
            With no filter, lists tasks in every state. Filters combine (AND); --state may
            be repeated (or comma-separated) and matches any of the states given.

            Examples:
              rota list                                  the newest tasks, a screenful
              rota list --state dead --since 12h         what failed in the last 12 hours
              rota list --state scheduled --state running --queue mail
              rota list --name exec --limit 1000 --json  for scripts (jq '.[].id')
              rota list --all --json                     every task
            """
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var output: OutputOptions

    @Option(name: .long, help: ArgumentHelp("Only tasks in this state (repeatable): \(stateNames.joined(separator: ", ")).", valueName: "state"),
            completion: .list(stateNames))
    var state: [String] = []

    @Option(name: .long, help: ArgumentHelp("Only tasks of this queue.", valueName: "queue"))
    var queue: String?

    @Option(name: .long, help: ArgumentHelp("Only tasks with this name (handler), e.g. exec.", valueName: "name"))
    var name: String?

    @Option(name: .long, help: ArgumentHelp("Only tasks of this batch.", valueName: "batch"))
    var batch: String?

    @Option(name: .long, help: ArgumentHelp("Only tasks fired by this schedule.", valueName: "schedule"))
    var schedule: String?

    @Option(name: .long, help: ArgumentHelp("Only tasks created within this duration (90s, 15m, 2h, 7d).", valueName: "duration"))
    var since: String?

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("Only tasks with an id below this (to page back).", valueName: "id"))
    var before: Int64?

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("At most this many tasks (default: a screenful; 0 for no limit).", valueName: "n"))
    var limit: Int?

    @Flag(name: .long, help: "Every matching task (same as --limit 0).")
    var all = false

    func run() async throws {
        let states = try parseStates(state)
        let sinceMillis = try since.map { try TimeText.parseDuration($0, field: "--since") }
        if let limit, limit < 0 { throw CLIError.usage("--limit: must be 0 (no limit) or more, got \(limit)") }
        if all, let limit, limit != 0 { throw CLIError.usage("--all and --limit \(limit) contradict each other") }
        let terminal = Terminal.current
        let wanted: Int? = all || limit == 0 ? nil : (limit ?? (terminal.isTTY ? terminal.screenful : 50))
        let now = Date()
        let filter = TaskFilter(
            states: states, queue: queue, name: name, batch: batch, schedule: schedule,
            createdSince: sinceMillis.map { Date(unixMillis: now.unixMillis - $0) },
            limit: wanted.map { $0 == Int.max ? $0 : $0 + 1 } ?? Int.max, beforeID: before)
        var tasks = try await global.withStore(.readOnly) { try await $0.list(filter) }
        var more = false
        if let wanted, tasks.count > wanted {
            tasks.removeLast(tasks.count - wanted)
            more = true
        }
        if output.json {
            printJSON(.array(tasks.map(\.json)))
        } else {
            if tasks.isEmpty {
                print("No tasks match.")
            } else {
                writeLines(Self.table(tasks, now: now, terminal: terminal))
            }
        }
        if more, let last = tasks.last {
            printNote("(the newest \(tasks.count) shown; more match: pass --limit N, --all, or --before \(last.id) for the next page)")
        }
    }

    /// The human table of tasks.
    static func table(_ tasks: [TaskRecord], now: Date, terminal: Terminal) -> [String] {
        var table = Table([
            .init(title: "ID", right: true),
            .init(title: "STATE"),
            .init(title: "NAME", flexible: true, minWidth: 8),
            .init(title: "QUEUE", flexible: true, minWidth: 6, dropOrder: 3),
            .init(title: "PRI", right: true, dropOrder: 6),
            .init(title: "ATT", right: true, dropOrder: 4),
            .init(title: "RUN AT", dropOrder: 2),
            .init(title: "CREATED", dropOrder: 5),
            .init(title: "FINISHED", dropOrder: 7),
            .init(title: "LAST ERROR", flexible: true, minWidth: 10, dropOrder: 1),
        ])
        for task in tasks {
            let state = task.state
            let stateText = task.cancelRequested && state == .running ? "running (cancel requested)" : state.rawValue
            table.append([
                .init(String(task.id)),
                .init(stateText, paint: { [terminal] in terminal.paint($0, state: state) }),
                .init(task.name),
                .init(task.queue),
                .init(String(task.priority)),
                .init("\(task.attempts)/\(task.maxAttempts)"),
                .init(TimeText.relative(task.runAt, now: now)),
                .init(TimeText.relative(task.createdAt, now: now)),
                .init(task.finishedAt.map { TimeText.relative($0, now: now) } ?? "-"),
                .init(task.lastError ?? ""),
            ])
        }
        return table.render(width: terminal.width, bold: terminal.bold)
    }
}
