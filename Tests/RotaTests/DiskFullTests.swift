import Foundation
import Testing
@testable import Rota
@testable import RotaSQLiteStore

/// A full disk (simulated with `PRAGMA max_page_count`): enqueue and completion fail with a clear,
/// retryable error, the database stays consistent, and work continues once space returns.
@Suite final class DiskFullTests {
    private let directory: String
    private let store: SQLiteTaskStore

    init() throws {
        directory = NSTemporaryDirectory() + "rota-full-tests-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        store = try SQLiteTaskStore(path: directory + "/rota.db", configuration: .init(durability: .normal))
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    private func limitPages(extra: Int64) throws {
        try store.withConnection { db in
            let pages = try db.scalarInt("PRAGMA page_count") ?? 0
            _ = try db.query("PRAGMA max_page_count = \(pages + extra)") { $0.int64(0) }
        }
    }

    private func count(_ sql: String) throws -> Int64 { try store.withConnection { try $0.scalarInt(sql) ?? -1 } }

    private let bigPayload = "{\"blob\": \"" + String(repeating: "x", count: 20_000) + "\"}"

    @Test func enqueueFailsWithARetryableFullErrorAndWorkResumesWhenSpaceReturns() async throws {
        try limitPages(extra: 20)
        var accepted = 0
        var failure: RotaError?
        for _ in 0..<200 {
            do {
                _ = try await store.enqueue(TaskSpec(name: "fill", payload: bigPayload))
                accepted += 1
            } catch let error as RotaError {
                failure = error
                break
            }
        }
        let error = try #require(failure)
        #expect(error.code == .full)
        #expect(error.isRetryable)
        #expect(error.message.contains("full"))
        #expect(try count("SELECT count(*) FROM tasks") == Int64(accepted))  // the failed enqueue wrote nothing
        // A bulk enqueue that does not fit writes none of its tasks.
        await #expect(throws: RotaError.self) {
            _ = try await self.store.enqueue(Array(repeating: TaskSpec(name: "fill", payload: self.bigPayload), count: 5))
        }
        #expect(try count("SELECT count(*) FROM tasks") == Int64(accepted))
        #expect(try store.integrityCheck() == ["ok"])
        try limitPages(extra: 10_000)
        #expect(try await store.enqueue(TaskSpec(name: "after", payload: bigPayload)).inserted)
    }

    @Test func completionFailsWholeWhenFullAndSucceedsOnceSpaceReturns() async throws {
        _ = try await store.enqueue((0..<20).map { _ in TaskSpec(name: "work") })
        let now = Date()
        let claimed = try await store.claim([ClaimRequest(queue: "default", names: nil, limit: 20)], worker: "w",
                                            leaseUntil: now.addingTimeInterval(600), now: now)
        #expect(claimed.count == 20)
        try limitPages(extra: 0)
        let completions = claimed.map {
            Completion(taskID: $0.id, attempt: $0.attempt, worker: "w", startedAt: now, finishedAt: Date(),
                       resolution: .succeeded(result: "{\"out\": \"" + String(repeating: "y", count: 8_000) + "\"}"))
        }
        await #expect(throws: RotaError.self) { try await self.store.complete(completions) }
        #expect(try count("SELECT count(*) FROM tasks WHERE state = 'running'") == 20)
        #expect(try count("SELECT count(*) FROM attempts") == 0)
        #expect(try store.integrityCheck() == ["ok"])
        try limitPages(extra: 10_000)
        #expect(try await store.complete(completions).allSatisfy { $0 })
        #expect(try count("SELECT count(*) FROM tasks WHERE state = 'succeeded'") == 20)
    }
}
