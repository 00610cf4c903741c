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

            On PostgreSQL one live worker leads the cluster (it recovers expired leases): it is
            marked "leader" (JSON: "leader": true); the line under the table says until when its
            lease lasts.

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
        let (all, leader, elects) = try await global.withStore(.readOnly) { store in
            let workers = try await store.workers()
            guard let electing = store as? any LeaderElecting else { return (workers, nil as (worker: String, until: Date)?, false) }
            return (workers, try await electing.leader(), true)
        }
        var workers = all
        if live { workers = workers.filter { $0.isLive(now: now) } }
        // A lapsed lease leads nothing: the next maintenance tick of a live scheduler takes it.
        let current = leader.flatMap { $0.until > now ? $0 : nil }
        if output.json {
            printJSON(.array(workers.map { $0.json(now: now, leader: elects ? (current?.worker ?? "") : nil) }))
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
            let shown = worker.id == current?.worker ? "\(status.rawValue) leader" : status.rawValue
            table.append([
                .init(worker.id),
                .init(shown, paint: { [terminal] in terminal.paint($0, code: code) }),
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
        if elects {
            if let current {
                print("Leader: \(current.worker), its lease ends \(TimeText.relative(current.until, now: now)).")
            } else {
                print("Leader: none (a live scheduler takes the lead at its next maintenance tick).")
            }
        }
    }
}
