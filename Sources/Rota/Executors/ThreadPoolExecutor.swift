import Foundation
import NIOPosix

/// The thread-pool executor: runs a blocking handler on a thread of the scheduler's own pool, never on the
/// cooperative pool, so blocking work cannot starve async handlers. The engine bounds how many it hands
/// over by the pool's size; `freed` is called when the closure returns and its thread is free again.
enum ThreadPoolExecutor {
    /// Runs a blocking handler on a pool thread. Past its timeout (or on cancellation) the result is
    /// discarded and the attempt ends at once; the thread's slot frees when the closure returns.
    static func run(
        _ body: @escaping @Sendable (String, TaskContext) throws -> String?, _ payload: String,
        _ context: TaskContext, on pool: NIOThreadPool, timeout: Duration?,
        freed: @escaping @Sendable () -> Void
    ) async -> AttemptEnd {
        let once = OneShot<AttemptEnd>()
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<AttemptEnd, Never>) in
                once.install(continuation)
                pool.submit { state in
                    defer { freed() }
                    guard case .active = state else {
                        once.resume(.failure(outcome: .failed, error: "the thread pool is shut down", retryable: true))
                        return
                    }
                    if context.flag.isSet {
                        once.resume(.failure(outcome: .failed, error: "cancelled", retryable: true))
                        return
                    }
                    do {
                        once.resume(.success(result: try body(payload, context)))
                    } catch {
                        once.resume(AsyncExecutor.classify(error, context: context))
                    }
                }
                if let timeout {
                    let timer = Task {
                        try? await Task.sleep(for: timeout)
                        if Task.isCancelled { return }
                        context.flag.set()
                        once.resume(.failure(outcome: .timedOut, error: AttemptTimeout(limit: timeout).description, retryable: true))
                    }
                    once.onResume { timer.cancel() }
                }
            }
        } onCancel: {
            context.flag.set()
            once.resume(.failure(outcome: .failed, error: "cancelled", retryable: true))
        }
    }
}
