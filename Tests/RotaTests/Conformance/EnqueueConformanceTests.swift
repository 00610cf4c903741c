import Foundation
import Testing
@testable import Rota

/// A spec every store must refuse at enqueue, and the field its error must name.
struct RefusedSpec: Sendable, CustomTestStringConvertible {
    let label: String
    let field: String
    /// The spec, for a store whose payload limit is the argument.
    let spec: @Sendable (_ maxPayloadBytes: Int) -> TaskSpec

    var testDescription: String { label }

    static let all: [RefusedSpec] = [
        RefusedSpec(label: "empty name", field: "name") { _ in TaskSpec(name: "") },
        RefusedSpec(label: "blank name", field: "name") { _ in TaskSpec(name: " \t\n") },
        RefusedSpec(label: "empty queue", field: "queue") { _ in TaskSpec(name: "x", queue: "") },
        RefusedSpec(label: "blank queue", field: "queue") { _ in TaskSpec(name: "x", queue: "  ") },
        RefusedSpec(label: "negative priority", field: "priority") { _ in TaskSpec(name: "x", priority: -1) },
        RefusedSpec(label: "max_attempts 0", field: "max_attempts") { _ in TaskSpec(name: "x", maxAttempts: 0) },
        RefusedSpec(label: "negative max_attempts", field: "max_attempts") { _ in TaskSpec(name: "x", maxAttempts: -2) },
        RefusedSpec(label: "zero timeout", field: "timeout") { _ in TaskSpec(name: "x", timeout: .zero) },
        RefusedSpec(label: "negative timeout", field: "timeout") { _ in TaskSpec(name: "x", timeout: .seconds(-1)) },
        RefusedSpec(label: "empty unique key", field: "unique_key") { _ in TaskSpec(name: "x", uniqueKey: "") },
        RefusedSpec(label: "poison_limit 0", field: "poison_limit") { _ in TaskSpec(name: "x", poisonLimit: 0) },
        RefusedSpec(label: "payload one byte over the limit", field: "payload") { limit in
            TaskSpec(name: "x", payload: jsonString(bytes: limit + 1))
        },
        RefusedSpec(label: "malformed JSON payload", field: "payload") { _ in TaskSpec(name: "x", payload: #"{"a":"#) },
        RefusedSpec(label: "payload with trailing garbage", field: "payload") { _ in TaskSpec(name: "x", payload: #"{"a":1} x"#) },
        RefusedSpec(label: "empty payload", field: "payload") { _ in TaskSpec(name: "x", payload: "") },
        RefusedSpec(label: "unquoted payload text", field: "payload") { _ in TaskSpec(name: "x", payload: "hello") },
    ]
}

@Suite("Store conformance: enqueue and validation")
struct EnqueueConformanceTests {
    /// A store holding a scheduled task with a unique key and a running one, so "unchanged" compares something.
    private func populated(_ kind: StoreKind) async throws -> StoreFixtureOf {
        let f = try kind.fixture()
        _ = try await f.store.enqueue([TaskSpec(name: "keep", runAt: at(-10), uniqueKey: "keep"),
                                       TaskSpec(name: "run", runAt: at(-10))])
        _ = try await f.store.claimDue(names: ["run"])
        return f
    }

    // MARK: Validation

    @Test(arguments: StoreKind.all, RefusedSpec.all)
    func aBadSpecIsRefusedNamingItsFieldAndNothingIsWritten(_ kind: StoreKind, _ bad: RefusedSpec) async throws {
        let f = try await populated(kind)
        let before = try await f.store.snapshot()
        let spec = bad.spec(f.store.maxPayloadBytes)
        let error = try #require(await rotaError { _ = try await f.store.enqueue(spec) })
        #expect(error.code == .invalidInput)
        #expect(error.field == bad.field)
        #expect(!error.message.isEmpty)
        #expect(!error.isRetryable)
        #expect(try await f.store.snapshot() == before)
    }

    @Test(arguments: StoreKind.all, RefusedSpec.all)
    func aBadSpecInABulkEnqueueIsNamedByItsIndexAndNothingIsWritten(_ kind: StoreKind, _ bad: RefusedSpec) async throws {
        let f = try await populated(kind)
        let before = try await f.store.snapshot()
        let specs = [TaskSpec(name: "ok1"), TaskSpec(name: "ok2"), bad.spec(f.store.maxPayloadBytes), TaskSpec(name: "ok3")]
        let error = try #require(await rotaError { _ = try await f.store.enqueue(specs) })
        #expect(error.code == .invalidInput)
        #expect(error.field == "tasks[2].\(bad.field)")
        #expect(try await f.store.snapshot() == before)
    }

    @Test(arguments: StoreKind.all)
    func theFirstBadSpecOfSeveralIsTheOneNamed(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let specs = [TaskSpec(name: "ok"), TaskSpec(name: "x", payload: "{"), TaskSpec(name: "", priority: -1)]
        let error = try #require(await rotaError { _ = try await f.store.enqueue(specs) })
        #expect(error.field == "tasks[1].payload")
        #expect(try await f.store.allTasks().isEmpty)
    }

    @Test(arguments: StoreKind.all)
    func aPayloadExactlyAtTheLimitIsAccepted(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let limit = f.store.maxPayloadBytes
        #expect(limit > 0)
        let id = try await f.store.enqueue(TaskSpec(name: "big", payload: jsonString(bytes: limit))).id
        #expect(try await f.store.existing(id).payload.utf8.count == limit)
    }

    @Test(arguments: StoreKind.all)
    func everyKindOfJSONValueIsAValidPayloadAndIsKeptAsWritten(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        for payload in [#"{"a":[1,2,{"b":null}]}"#, "[1,2]", "42", "-1.5e3", #""text""#, "true", "null", " {} ", #"{"é":"ü"}"#] {
            let id = try await f.store.enqueue(TaskSpec(name: "x", payload: payload)).id
            #expect(try await f.store.existing(id).payload == payload)
        }
    }

    /// Refused as bad input naming the spec's `batch_id` (as SQLite's foreign key has always answered; the
    /// protocol's doc comment says `.notFound`), and the whole enqueue with it: nothing is written.
    @Test(arguments: StoreKind.all)
    func anEnqueueIntoAMissingBatchIsRefusedWhole(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        _ = try await f.store.enqueue(TaskSpec(name: "existing", runAt: at(0)))
        let before = try await f.store.snapshot()
        let specs = [TaskSpec(name: "a"), TaskSpec(name: "b"), TaskSpec(name: "c", batchID: 999, batchItem: "1")]
        let error = try #require(await rotaError { _ = try await f.store.enqueue(specs) })
        #expect(error.code == .invalidInput)
        #expect(error.field == "tasks[2].batch_id")
        #expect(try await f.store.snapshot() == before)
        let single = try #require(await rotaError { _ = try await f.store.enqueue(TaskSpec(name: "c", batchID: 999, batchItem: "1")) })
        #expect(single.code == .invalidInput)
        #expect(single.field == "batch_id")
        #expect(try await f.store.snapshot() == before)
        // The store is still usable.
        #expect(try await f.store.enqueue(TaskSpec(name: "d")).inserted)
    }

    // MARK: What is stored

    @Test(arguments: StoreKind.all)
    func anEnqueueStoresEveryFieldOfTheSpec(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let before = Date(unixMillis: Date().unixMillis)
        let spec = TaskSpec(name: "email.send", payload: #"{"to":"a@b.c"}"#, queue: "mail", priority: 7, runAt: at(60),
                            maxAttempts: 5, timeout: .seconds(30), uniqueKey: "k1", schedule: "nightly", fireAt: at(-5))
        let result = try await f.store.enqueue(spec)
        let after = Date()
        #expect(result.inserted)
        let task = try await f.store.existing(result.id)
        #expect(task.id == result.id)
        #expect(task.name == "email.send")
        #expect(task.queue == "mail")
        #expect(task.payload == #"{"to":"a@b.c"}"#)
        #expect(task.state == .scheduled)
        #expect(task.priority == 7)
        #expect(task.runAt == at(60))
        #expect(task.attempts == 0)
        #expect(task.maxAttempts == 5)
        #expect(task.timeout == .seconds(30))
        #expect(task.uniqueKey == "k1")
        #expect(task.schedule == "nightly")
        #expect(task.fireAt == at(-5))
        #expect(task.batch == nil && task.batchItem == nil)
        #expect(task.leaseOwner == nil && task.leaseUntil == nil && task.startedAt == nil)
        #expect(task.cancelRequested == false)
        #expect(task.finishedAt == nil && task.lastError == nil && task.result == nil)
        #expect(task.createdAt >= before && task.createdAt <= after)
        #expect(task.updatedAt == task.createdAt)
        #expect(try await f.store.attempts(of: result.id).isEmpty)
    }

    @Test(arguments: StoreKind.all)
    func anEnqueueWithoutRunAtIsDueAtOnceWithTheDefaults(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let before = Date(unixMillis: Date().unixMillis)
        let id = try await f.store.enqueue(TaskSpec(name: "exec")).id
        let after = Date()
        let task = try await f.store.existing(id)
        #expect(task.queue == "default")
        #expect(task.payload == "{}")
        #expect(task.priority == 0)
        #expect(task.maxAttempts == 3)
        #expect(task.timeout == nil)
        #expect(task.runAt >= before && task.runAt <= after)
        #expect(try await f.store.claimDue(now: after.addingTimeInterval(1)).map(\.id) == [id])
    }

    @Test(arguments: StoreKind.all)
    func aBulkEnqueueWritesEverySpecAndAnswersInOrder(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let specs = (0..<40).map { TaskSpec(name: "job", payload: "{\"i\":\($0)}", runAt: at(0)) }
        let results = try await f.store.enqueue(specs)
        #expect(results.count == 40)
        #expect(results.allSatisfy { $0.inserted })
        #expect(results.map(\.id) == results.map(\.id).sorted())
        #expect(Set(results.map(\.id)).count == 40)
        for (index, result) in results.enumerated() {
            #expect(try await f.store.existing(result.id).payload == "{\"i\":\(index)}")
        }
        #expect(try await f.store.allTasks().count == 40)
    }

    @Test(arguments: StoreKind.all)
    func anEmptyBulkEnqueueWritesNothing(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        #expect(try await f.store.enqueue([TaskSpec]()) == [])
        #expect(try await f.store.allTasks().isEmpty)
        #expect(try await f.store.nonZeroStates().isEmpty)
    }

    @Test(arguments: StoreKind.all)
    func idsGrowWithEachEnqueue(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let first = try await f.store.enqueue(TaskSpec(name: "a")).id
        let more = try await f.store.enqueue([TaskSpec(name: "b"), TaskSpec(name: "c")]).map(\.id)
        let last = try await f.store.enqueue(TaskSpec(name: "d")).id
        #expect([first] + more + [last] == ([first] + more + [last]).sorted())
        #expect(Set([first] + more + [last]).count == 4)
    }

    @Test(arguments: StoreKind.all)
    func anEnqueueIsVisibleToAnotherHandleAtOnce(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let other = try f.openAnother()
        let id = try await f.store.enqueue(TaskSpec(name: "durable", payload: #"{"x":1}"#, runAt: at(0))).id
        #expect(try await other.existing(id).payload == #"{"x":1}"#)
        #expect(try await other.claimDue().map(\.id) == [id])
        #expect(try await f.store.existing(id).state == .running)
    }

    // MARK: Unique keys

    @Test(arguments: StoreKind.all)
    func aKnownUniqueKeyReturnsTheExistingTaskAndWritesNothing(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let first = try await f.store.enqueue(TaskSpec(name: "report", payload: #"{"v":1}"#, uniqueKey: "report-2100-01-01"))
        let before = try await f.store.snapshot()
        let second = try await f.store.enqueue(TaskSpec(name: "report", payload: #"{"v":2}"#, uniqueKey: "report-2100-01-01"))
        #expect(first.inserted)
        #expect(second == EnqueueResult(id: first.id, inserted: false))
        #expect(try await f.store.snapshot() == before)
        #expect(try await f.store.existing(first.id).payload == #"{"v":1}"#)
        // Another key is another task.
        let third = try await f.store.enqueue(TaskSpec(name: "report", uniqueKey: "report-2100-01-02"))
        #expect(third.inserted && third.id != first.id)
    }

    @Test(arguments: StoreKind.all)
    func aUniqueKeyRepeatedInOneBulkEnqueueInsertsOneTask(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let results = try await f.store.enqueue([
            TaskSpec(name: "a", uniqueKey: "same"), TaskSpec(name: "b"), TaskSpec(name: "c", uniqueKey: "same"),
        ])
        #expect(results.count == 3)
        #expect(results[0].inserted && results[1].inserted)
        #expect(results[2] == EnqueueResult(id: results[0].id, inserted: false))
        #expect(try await f.store.allTasks().count == 2)
        #expect(try await f.store.stats(now: at(0)).states[.scheduled] == 2)
    }

    @Test(arguments: StoreKind.all)
    func aBulkEnqueueWithAKnownKeyInsertsTheRest(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let known = try await f.store.enqueue(TaskSpec(name: "a", uniqueKey: "k")).id
        let results = try await f.store.enqueue([TaskSpec(name: "b"), TaskSpec(name: "a", uniqueKey: "k"), TaskSpec(name: "c")])
        #expect(results.map(\.inserted) == [true, false, true])
        #expect(results[1].id == known)
        #expect(try await f.store.allTasks().count == 3)
    }

    @Test(arguments: StoreKind.all)
    func theUniqueKeyOfAFinishedTaskStillReturnsIt(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let id = try await f.store.enqueue(TaskSpec(name: "once", uniqueKey: "once")).id
        #expect(try await f.store.cancel([id], now: at(0)) == [id: .cancelled])
        #expect(try await f.store.enqueue(TaskSpec(name: "once", uniqueKey: "once")) == EnqueueResult(id: id, inserted: false))
        #expect(try await f.store.existing(id).state == .cancelled)
    }

    @Test(arguments: StoreKind.all)
    func aBatchItemIsUniqueWithinItsBatch(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let importBatch = try await f.store.openBatch(name: "import")
        let other = try await f.store.openBatch(name: "other")
        let first = try await f.store.enqueue(TaskSpec(name: "row", payload: #"{"line":1}"#, batchID: importBatch.id, batchItem: "line-1"))
        let again = try await f.store.enqueue(TaskSpec(name: "row", payload: #"{"line":9}"#, batchID: importBatch.id, batchItem: "line-1"))
        let nextItem = try await f.store.enqueue(TaskSpec(name: "row", batchID: importBatch.id, batchItem: "line-2"))
        let otherBatch = try await f.store.enqueue(TaskSpec(name: "row", batchID: other.id, batchItem: "line-1"))
        #expect(first.inserted)
        #expect(again == EnqueueResult(id: first.id, inserted: false))
        #expect(nextItem.inserted && nextItem.id != first.id)
        #expect(otherBatch.inserted && ![first.id, nextItem.id].contains(otherBatch.id))
        let task = try await f.store.existing(first.id)
        #expect(task.batch == "import")
        #expect(task.batchItem == "line-1")
        #expect(task.payload == #"{"line":1}"#)
        #expect(try await f.store.allTasks().count == 3)
        #expect(try await f.store.batch(named: "import")?.total == 2)
    }

    @Test(arguments: StoreKind.all)
    func aScheduleFireIsUniquePerScheduleAndInstant(_ kind: StoreKind) async throws {
        let f = try kind.fixture()
        let first = try await f.store.enqueue(TaskSpec(name: "tick", schedule: "every-minute", fireAt: at(0)))
        let again = try await f.store.enqueue(TaskSpec(name: "tick", schedule: "every-minute", fireAt: at(0)))
        let nextFire = try await f.store.enqueue(TaskSpec(name: "tick", schedule: "every-minute", fireAt: at(60)))
        let otherSchedule = try await f.store.enqueue(TaskSpec(name: "tick", schedule: "hourly", fireAt: at(0)))
        #expect(first.inserted)
        #expect(again == EnqueueResult(id: first.id, inserted: false))
        #expect(nextFire.inserted && nextFire.id != first.id)
        #expect(otherSchedule.inserted && ![first.id, nextFire.id].contains(otherSchedule.id))
        #expect(try await f.store.allTasks().count == 3)
    }
}
