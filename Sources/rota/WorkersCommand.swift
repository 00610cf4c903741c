import ArgumentParser
import Foundation
import Rota

/// `rota workers`: live and dead workers with their last heartbeat.
struct WorkersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workers",
        abstract: "List workers (schedulers): live, dead, stopped, with last heartbeat.",
        discussion: """
            A worker is live when it heartbeated in the last \(TimeText.formatDuration(millis: WorkerRecord.livenessWindow.milliseconds)) \
            (three \(TimeText.formatDuration(millis: WorkerRecord.heartbeatInterval.milliseconds)) heartbeat
            intervals) and has not stopped; dead when it never stopped cleanly but stopped
            heartbeating.

            Examples:
              rota workers
              rota workers --json | jq '.[] | select(.status == "live") | .id'
            """
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var output: OutputOptions

    @Flag(name: .long, help: "Only live workers.")
    var live = false

    func run() async throws {
        let now = Date()
        var workers = try await global.withStore(.readOnly) { try await $0.workers() }
        if live { workers = workers.filter { $0.isLive(now: now) } }
        if output.json {
            printJSON(.array(workers.map { $0.json(now: now) }))
            return
        }
        if workers.isEmpty {
            print(live ? "No live workers." : "No workers have run on this database.")
            return
        }
        let terminal = Terminal.current
        var table = Table([
            .init(title: "ID", flexible: true, minWidth: 12),
            .init(title: "STATUS"),
            .init(title: "HOST", flexible: true, minWidth: 8, dropOrder: 3),
            .init(title: "PID", right: true, dropOrder: 4),
            .init(title: "QUEUES", flexible: true, minWidth: 8, dropOrder: 2),
            .init(title: "TASKS", flexible: true, minWidth: 8, dropOrder: 1),
            .init(title: "SLOTS", right: true, dropOrder: 6),
            .init(title: "STARTED", dropOrder: 5),
            .init(title: "HEARTBEAT"),
        ])
        for worker in workers {
            let status = worker.status(now: now)
            let code = status == .live ? "32" : status == .dead ? "31" : "90"
            table.append([
                .init(worker.id),
                .init(status.rawValue, paint: { [terminal] in terminal.paint($0, code: code) }),
                .init(worker.host),
                .init(String(worker.pid)),
                .init(worker.queues.joined(separator: ",")),
                .init(worker.taskNames.joined(separator: ",")),
                .init(String(worker.concurrency)),
                .init(TimeText.relative(worker.startedAt, now: now)),
                .init(TimeText.relative(worker.heartbeatAt, now: now)),
            ])
        }
        writeLines(table.render(width: terminal.width, bold: terminal.bold))
    }
}
