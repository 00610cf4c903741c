import Foundation

/// The async executor: runs a handler as a Swift task on the cooperative pool (for I/O-bound work), with
/// its timeout as a cancellation. The engine bounds how many run at once by each queue's slots.
enum AsyncExecutor {
    static func classify(_ error: any Error, context: TaskContext) -> AttemptEnd {
        if let error = error as? AttemptTimeout {
            return .failure(outcome: .timedOut, error: error.description, retryable: true)
        }
        if let error = error as? ExecError, error.timedOut {
            return .failure(outcome: .timedOut, error: error.description, retryable: true)
        }
        let message: String
        if error is CancellationError {
            message = "cancelled"
        } else if let error = error as? any LocalizedError, let text = error.errorDescription {
            message = text
        } else {
            message = String(describing: error)
        }
        return .failure(outcome: .failed, error: message, retryable: !(error is any NonRetryable))
    }

    static func runDirect(
        _ body: @Sendable (String, TaskContext) async throws -> String?, _ payload: String, _ context: TaskContext
    ) async -> AttemptEnd {
        do {
            return .success(result: try await body(payload, context))
        } catch {
            return classify(error, context: context)
        }
    }

    /// Runs an async handler; past its timeout it is cancelled (and awaited: cancellation is cooperative).
    static func run(
        _ body: @escaping @Sendable (String, TaskContext) async throws -> String?, _ payload: String,
        _ context: TaskContext, timeout: Duration?
    ) async -> AttemptEnd {
        guard let timeout else { return await runDirect(body, payload, context) }
        enum Race: Sendable { case done(AttemptEnd), timedOut }
        return await withTaskGroup(of: Race.self) { group in
            group.addTask { .done(await runDirect(body, payload, context)) }
            group.addTask {
                do { try await Task.sleep(for: timeout) } catch { return .done(.failure(outcome: .failed, error: "cancelled", retryable: true)) }
                return .timedOut
            }
            let first = await group.next()!
            group.cancelAll()
            switch first {
            case .done(let end):
                return end
            case .timedOut:
                context.flag.set()
                return .failure(outcome: .timedOut, error: AttemptTimeout(limit: timeout).description, retryable: true)
            }
        }
    }
}
