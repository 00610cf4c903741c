import ArgumentParser
import Foundation
import Rota

/// `rota stats`: counts per state and queue, the oldest due task, throughput, workers.
struct StatsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Counts per state and queue, oldest due task age, throughput, workers.",
        discussion: """
            Warns about scheduled tasks that no live worker can run: no live worker
            handles their name, or none that handles it serves their queue (a worker is
            live when it heartbeated in the last \(TimeText.formatDuration(millis: WorkerRecord.livenessWindow.milliseconds)) and has not stopped).

            Examples:
              rota stats
              rota stats --json | jq '.states.dead'
            """
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let now = Date()
        let (stats, workers, unserved) = try await global.withStore(.readOnly) { store in
            (try await store.stats(now: now), try await store.workers(), try await store.unhandledTasks(now: now, batch: nil))
        }
        let live = workers.filter { $0.isLive(now: now) }
        // Names no live worker handles in any queue: their groups, summed per name.
        let unhandled = Dictionary(unserved.filter { !$0.nameHandledElsewhere }.map { ($0.name, $0.scheduled) }, uniquingKeysWith: +)
            .sorted { $0.key < $1.key }
        if output.json {
            printJSON(Self.json(stats, workers: workers, unhandled: unhandled, unserved: unserved, now: now))
            return
        }
        let terminal = Terminal.current
        var lines: [String] = []
        let total = stats.states.values.reduce(0, +)
        lines.append(terminal.bold("Tasks") + "  \(total) in all")
        var states = Table([.init(title: "STATE")] + [.init(title: "COUNT", right: true)])
        for state in TaskState.allCases {
            states.append([.init(state.rawValue, paint: { [terminal] in terminal.paint($0, state: state) }),
                           .init(String(stats.states[state] ?? 0))])
        }
        lines += states.render(width: terminal.width, bold: terminal.bold).map { "  " + $0 }
        lines.append("")
        if stats.queues.isEmpty {
            lines.append(terminal.bold("Queues") + "  none")
        } else {
            lines.append(terminal.bold("Queues"))
            var queues = Table([.init(title: "QUEUE", flexible: true, minWidth: 8)]
                + TaskState.allCases.map { Table.Column(title: $0.rawValue.uppercased(), right: true) })
            for (queue, counts) in stats.queues.sorted(by: { $0.key < $1.key }) {
                queues.append([.init(queue)] + TaskState.allCases.map { .init(String(counts[$0] ?? 0)) })
            }
            lines += queues.render(width: terminal.width.map { $0 - 2 }, bold: terminal.bold).map { "  " + $0 }
        }
        lines.append("")
        if let oldest = stats.oldestDueAt {
            lines.append(terminal.bold("Oldest due") + "  \(TimeText.formatAge(millis: now.unixMillis - oldest.unixMillis)) waiting (due \(TimeText.humanInstant(oldest)))")
        } else {
            lines.append(terminal.bold("Oldest due") + "  nothing is due")
        }
        lines.append(terminal.bold("Throughput") + "  \(stats.finishedLastMinute) finished in the last minute, \(stats.finishedLastHour) in the last hour")
        let dead = workers.filter { $0.status(now: now) == .dead }
        var workerLine = terminal.bold("Workers") + "  \(live.count) live"
        if !dead.isEmpty { workerLine += ", \(dead.count) dead (no heartbeat; see rota workers)" }
        lines.append(workerLine)
        for worker in live {
            lines.append("  \(worker.id)  \(worker.host) pid \(worker.pid)  queues \(worker.queues.joined(separator: ","))  heartbeat \(TimeText.relative(worker.heartbeatAt, now: now))")
        }
        let shown = 12
        for (name, count) in unhandled.prefix(shown) {
            lines.append(terminal.paint("warning:", code: "33") + " no live worker handles \(name) (\(count) scheduled)")
        }
        if unhandled.count > shown {
            lines.append(terminal.paint("warning:", code: "33")
                + " and \(unhandled.count - shown) more task names no live worker handles (rota stats --json lists them all)")
        }
        let queueMissing = unserved.filter(\.nameHandledElsewhere)
        for group in queueMissing.prefix(shown) {
            lines.append(terminal.paint("warning:", code: "33") + " " + unservedWarning(group))
        }
        if queueMissing.count > shown {
            lines.append(terminal.paint("warning:", code: "33")
                + " and \(queueMissing.count - shown) more queue and name pairs no live worker serves (rota stats --json lists them all)")
        }
        writeLines(lines)
    }

    static func json(_ stats: StoreStats, workers: [WorkerRecord], unhandled: [(key: String, value: Int)],
                     unserved: [UnhandledTasks], now: Date) -> JSON {
        func counts(_ values: [TaskState: Int]) -> JSON {
            .object(TaskState.allCases.map { ($0.rawValue, .int(values[$0] ?? 0)) })
        }
        let live = workers.filter { $0.isLive(now: now) }
        return .object([
            ("states", counts(stats.states)),
            ("total", .int(stats.states.values.reduce(0, +))),
            ("queues", .object(stats.queues.sorted { $0.key < $1.key }.map { ($0.key, counts($0.value)) })),
            ("oldest_due_at", .instant(stats.oldestDueAt)),
            ("oldest_due_age_ms", stats.oldestDueAt.map { .int(now.unixMillis - $0.unixMillis) } ?? .null),
            ("throughput", .object([
                ("last_minute", .int(stats.finishedLastMinute)),
                ("last_hour", .int(stats.finishedLastHour)),
            ])),
            ("workers", .object(WorkerStatus.allCases.map { status in
                (status.rawValue, .int(workers.filter { $0.status(now: now) == status }.count))
            })),
            ("live_workers", .array(live.map { $0.json(now: now) })),
            ("unhandled_names", .array(unhandled.map { .object([("name", .string($0.key)), ("scheduled", .int($0.value))]) })),
            ("unhandled", unhandledJSON(unserved)),
            ("generated_at", .instant(now)),
        ])
    }
}

/// "no live worker serves queue Q for NAME (N scheduled)", for a group whose name a live worker handles elsewhere.
func unservedWarning(_ group: UnhandledTasks) -> String {
    "no live worker that handles \(group.name) serves queue \(group.queue) (\(group.scheduled) scheduled)"
}

/// `[{queue, name, scheduled, reason}]`.
func unhandledJSON(_ groups: [UnhandledTasks]) -> JSON {
    .array(groups.map {
        .object([("queue", .string($0.queue)), ("name", .string($0.name)), ("scheduled", .int($0.scheduled)),
                 ("reason", .string($0.reason))])
    })
}

extension UnhandledTasks {
    /// Why no live worker runs them, as `--json` says it: `no_worker_handles_name` or `no_worker_serves_queue`.
    var reason: String { nameHandledElsewhere ? "no_worker_serves_queue" : "no_worker_handles_name" }
}
