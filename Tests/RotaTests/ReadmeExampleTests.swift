import Foundation
import Testing
import Rota
import RotaSQLiteStore

/// The README's Swift example, as written there, compiles and runs.
@Suite struct ReadmeExampleTests {
    struct Resize: Codable, Sendable { var path: String }
    struct Resized: Codable, Sendable { var path: String; var bytes: Int }

    static func resizeBlocking(_ path: String) throws -> Int { path.count }
    static func refresh(_ feed: URL) async throws -> Int { feed.absoluteString.count }

    @Test func theReadmeExampleRegistersEnqueuesAndRuns() async throws {
        let directory = NSTemporaryDirectory() + "rota-readme-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try SQLiteTaskStore(path: directory + "/app.db")
        var configuration = Scheduler.Configuration(queues: ["default": 8])
        configuration.untilEmpty = true
        let scheduler = Scheduler(store: store, configuration: configuration)
        try scheduler.registerBlocking("image.resize", retry: .exponentialJitter(maxAttempts: 5)) { (job: Resize, context) in
            Resized(path: job.path, bytes: try Self.resizeBlocking(job.path))
        }
        try scheduler.register("feeds.refresh") { (feed: URL, context) in
            try await Self.refresh(feed)
        }
        try scheduler.registerExec()
        let id = try await scheduler.enqueue("image.resize", payload: Resize(path: "a.jpg"))
        try await scheduler.run()
        let task = try #require(try await scheduler.task(id))
        #expect(task.state == .succeeded)
        #expect(task.result?.contains("\"bytes\":5") == true)
    }
}
