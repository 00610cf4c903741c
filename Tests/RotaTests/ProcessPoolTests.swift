import Foundation
import Testing
@testable import Rota

/// The process pool's slots: a command waiting for one leaves the line when its task is cancelled or its
/// timeout passes, without waiting for the command ahead of it.
@Suite("Process pool", .timeLimit(.minutes(10)))
struct ProcessPoolTests {
    /// A pool of one slot, held by `sleep 3600` (in its own process group) until `release()`.
    final class HeldPool: Sendable {
        let pool = ProcessPool(limit: 1, killGrace: .milliseconds(300), tailBytes: 1024)
        let directory: URL
        let holder: Task<ExecResult, any Error>

        init() async throws {
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("rota-pool-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let started = directory.appendingPathComponent("started").path
            let pool = self.pool
            holder = Task { try await pool.run(ExecCommand(argv: ["sh", "-c", "touch \(started); exec sleep 3600"]), timeout: nil) }
            // The holder's command runs (another process: polling is the only way to see it).
            try await within(.seconds(120), "the holder's command to start") {
                while !FileManager.default.fileExists(atPath: started) { try await Task.sleep(for: .milliseconds(10)) }
            }
        }

        /// Starts `command` on the pool and returns once it waits in line for the slot.
        func waiter(_ command: ExecCommand, timeout: Duration?) async throws -> Task<ExecResult, any Error> {
            let before = pool.waiting
            let pool = self.pool
            let task = Task { try await pool.run(command, timeout: timeout) }
            try await within(.seconds(120), "the command to wait for a slot") {
                while pool.waiting == before { try await Task.sleep(for: .milliseconds(1)) }
            }
            return task
        }

        /// Ends the holder's command (cancelling its task terminates its process group).
        func release() async {
            holder.cancel()
            _ = try? await holder.value
            try? FileManager.default.removeItem(at: directory)
        }
    }

    @Test func aCommandWaitingForASlotEndsWhenItsTaskIsCancelled() async throws {
        let held = try await HeldPool()
        let waiter = try await held.waiter(ExecCommand(argv: ["true"]), timeout: nil)
        waiter.cancel()
        let outcome = try await within(.seconds(120), "the cancelled waiter to return") { await waiter.result }
        #expect(throws: CancellationError.self) { try outcome.get() }
        #expect(held.pool.waiting == 0)
        // The holder was not disturbed, and its slot is the pool's again once it ends.
        await held.release()
        let after = try await held.pool.run(ExecCommand(argv: ["sh", "-c", "printf ok"]), timeout: nil)
        #expect(after.stdout == "ok")
    }

    @Test func aCommandWaitingForASlotPastItsTimeoutTimesOutWithoutStarting() async throws {
        let held = try await HeldPool()
        let marker = held.directory.appendingPathComponent("ran").path
        let waiter = try await held.waiter(ExecCommand(argv: ["touch", marker]), timeout: .milliseconds(100))
        let outcome = try await within(.seconds(120), "the waiter's timeout") { await waiter.result }
        let error = try #require(throws: ExecError.self) { try outcome.get() }
        #expect(error.timedOut)
        #expect(error.message.contains("waiting for a free process slot"), "\(error.message)")
        #expect(held.pool.waiting == 0)
        #expect(!FileManager.default.fileExists(atPath: marker))  // it never started
        await held.release()
        // The slot was not lost to the waiter that gave up.
        let after = try await held.pool.run(ExecCommand(argv: ["sh", "-c", "printf ok"]), timeout: .seconds(600))
        #expect(after.stdout == "ok")
    }

    /// Waiters are served in order, and one that leaves does not take a slot with it.
    @Test func theSemaphoreServesWaitersInOrderAndForgetsThoseThatLeft() async throws {
        let semaphore = AsyncSemaphore(1)
        #expect(await semaphore.wait() == .acquired)
        let order = Order()
        let first = Task { let outcome = await semaphore.wait(); await order.append(1); return outcome }
        try await within(.seconds(120), "the first waiter") { while semaphore.waiting < 1 { try await Task.sleep(for: .milliseconds(1)) } }
        let leaving = Task { await semaphore.wait() }
        try await within(.seconds(120), "the second waiter") { while semaphore.waiting < 2 { try await Task.sleep(for: .milliseconds(1)) } }
        let second = Task { let outcome = await semaphore.wait(); await order.append(2); return outcome }
        try await within(.seconds(120), "the third waiter") { while semaphore.waiting < 3 { try await Task.sleep(for: .milliseconds(1)) } }
        leaving.cancel()
        #expect(try await within(.seconds(120), "the cancelled waiter") { await leaving.value } == .cancelled)
        #expect(semaphore.waiting == 2)
        semaphore.signal()
        #expect(try await within(.seconds(120), "the first waiter's permit") { await first.value } == .acquired)
        semaphore.signal()
        #expect(try await within(.seconds(120), "the second waiter's permit") { await second.value } == .acquired)
        #expect(await order.values == [1, 2])
        // A deadline already passed: the wait ends at once, holding nothing.
        #expect(try await within(.seconds(120), "a passed deadline") { await semaphore.wait(until: .now) } == .deadlinePassed)
        semaphore.signal()
        #expect(await semaphore.wait(until: .now) == .acquired)
    }

    /// In a scheduler: a handler's command waiting for the only process slot (held by an `exec` task) is
    /// timed out with its attempt, instead of holding the attempt until the slot frees.
    @Test func aHandlerWaitingForAProcessSlotIsTimedOutWithItsAttempt() async throws {
        let db = try TempDatabase()
        let store = try db.store()
        let scheduler = Scheduler(store: store, configuration: testConfiguration(queues: ["default": 2], processes: 1),
                                  logger: testLogger)
        try scheduler.registerExec()
        try scheduler.register("needs.process", retry: .none, timeout: .milliseconds(200)) { (_: Empty, context) in
            try await context.runCommand(["true"]).exitCode
        }
        let started = db.directory.appendingPathComponent("started").path
        var hold = TaskSpec(name: "exec", payload: #"{"argv": ["sh", "-c", "touch \#(started); exec sleep 3600"]}"#)
        hold.maxAttempts = 1
        let holder = try await scheduler.enqueue(hold).id
        let running = RunningScheduler(scheduler)
        try await within(.seconds(120), "the exec task to hold the slot") {
            while !FileManager.default.fileExists(atPath: started) { try await Task.sleep(for: .milliseconds(10)) }
        }
        let waiter = try await scheduler.enqueue(TaskSpec(name: "needs.process", maxAttempts: 1)).id
        let attempts = try await within(.seconds(120), "the waiting handler's attempt to end") {
            while true {
                let attempts = try await store.attempts(of: waiter)
                if !attempts.isEmpty { return attempts }
                try await Task.sleep(for: .milliseconds(10))
            }
        }
        #expect(attempts.map(\.outcome) == [.timedOut])
        #expect(try await store.task(holder)?.state == .running)  // still holding the slot
        try await running.stop(grace: .zero)
    }
}

/// Records an order of events.
private actor Order {
    var values: [Int] = []
    func append(_ value: Int) { values.append(value) }
}
