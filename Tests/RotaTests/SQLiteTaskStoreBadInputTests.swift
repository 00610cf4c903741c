import Foundation
import Testing
@testable import Rota
@testable import RotaSQLiteStore
import RotaSQLite

/// One spec the store must refuse, and the field its error must name.
struct BadSpec: Sendable, CustomTestStringConvertible {
    let label: String
    let spec: TaskSpec
    let field: String

    var testDescription: String { label }

    static let all: [BadSpec] = [
        BadSpec(label: "malformed JSON payload", spec: TaskSpec(name: "x", payload: #"{"a":"#), field: "payload"),
        BadSpec(label: "payload with trailing garbage", spec: TaskSpec(name: "x", payload: #"{"a":1} x"#), field: "payload"),
        BadSpec(label: "empty payload", spec: TaskSpec(name: "x", payload: ""), field: "payload"),
        BadSpec(label: "unquoted payload text", spec: TaskSpec(name: "x", payload: "hello"), field: "payload"),
        BadSpec(label: "empty name", spec: TaskSpec(name: ""), field: "name"),
        BadSpec(label: "blank name", spec: TaskSpec(name: "  \n"), field: "name"),
        BadSpec(label: "empty queue", spec: TaskSpec(name: "x", queue: ""), field: "queue"),
        BadSpec(label: "negative priority", spec: TaskSpec(name: "x", priority: -1), field: "priority"),
        BadSpec(label: "max_attempts 0", spec: TaskSpec(name: "x", maxAttempts: 0), field: "max_attempts"),
        BadSpec(label: "negative max_attempts", spec: TaskSpec(name: "x", maxAttempts: -3), field: "max_attempts"),
        BadSpec(label: "zero timeout", spec: TaskSpec(name: "x", timeout: .zero), field: "timeout"),
        BadSpec(label: "negative timeout", spec: TaskSpec(name: "x", timeout: .seconds(-1)), field: "timeout"),
        BadSpec(label: "empty unique key", spec: TaskSpec(name: "x", uniqueKey: ""), field: "unique_key"),
        BadSpec(label: "payload over 1 MiB", spec: TaskSpec(name: "x", payload: jsonString(bytes: (1 << 20) + 1)), field: "payload"),
    ]
}

/// A JSON string literal exactly `bytes` bytes long (quotes included).
func jsonString(bytes: Int) -> String { "\"" + String(repeating: "a", count: bytes - 2) + "\"" }

@Suite("SQLiteTaskStore: bad input")
struct SQLiteTaskStoreBadInputTests {
    /// A store holding one task and a claimed one, so "unchanged" compares something.
    func populatedStore(_ configuration: SQLiteTaskStore.Configuration = .init()) async throws -> StoreFixture {
        let f = try StoreFixture(configuration)
        _ = try await f.store.enqueue([TaskSpec(name: "keep", uniqueKey: "keep"), TaskSpec(name: "run")])
        _ = try await f.store.claimAll(names: ["run"])
        return f
    }

    @Test(arguments: BadSpec.all)
    func badSpecIsRefusedNamingItsFieldAndWritesNothing(_ bad: BadSpec) async throws {
        let f = try await populatedStore()
        let before = try f.dump()
        let error = try #require(await rotaError { _ = try await f.store.enqueue(bad.spec) })
        #expect(error.code == .invalidInput)
        #expect(error.field == bad.field)
        #expect(!error.message.isEmpty)
        #expect(error.description.hasPrefix("\(bad.field): "))
        #expect(!error.isRetryable)
        #expect(try f.dump() == before)
    }

    @Test(arguments: BadSpec.all)
    func badSpecInABulkEnqueueNamesItsIndexAndWritesNothing(_ bad: BadSpec) async throws {
        let f = try await populatedStore()
        let before = try f.dump()
        let specs = [TaskSpec(name: "ok1"), TaskSpec(name: "ok2"), bad.spec, TaskSpec(name: "ok3")]
        let error = try #require(await rotaError { _ = try await f.store.enqueue(specs) })
        #expect(error.code == .invalidInput)
        #expect(error.field == "tasks[2].\(bad.field)")
        #expect(try f.dump() == before)
    }

    @Test func payloadAtTheDefaultLimitIsAccepted() async throws {
        let f = try StoreFixture()
        let payload = jsonString(bytes: 1 << 20)
        let id = try await f.store.enqueue(TaskSpec(name: "big", payload: payload)).id
        #expect(try await f.store.record(id).payload.utf8.count == 1 << 20)
    }

    @Test func configuredPayloadLimitIsEnforcedToTheByte() async throws {
        let f = try StoreFixture(.init(maxPayloadBytes: 16))
        let before = try f.dump()
        let error = try #require(await rotaError { _ = try await f.store.enqueue(TaskSpec(name: "x", payload: jsonString(bytes: 17))) })
        #expect(error.code == .invalidInput)
        #expect(error.field == "payload")
        #expect(error.message.contains("17") && error.message.contains("16"))
        #expect(try f.dump() == before)
        // Bytes, not characters: "é" is two bytes in UTF-8.
        let multibyte = "\"" + String(repeating: "é", count: 8) + "\"" // 18 bytes, 10 characters
        let error2 = try #require(await rotaError { _ = try await f.store.enqueue(TaskSpec(name: "x", payload: multibyte)) })
        #expect(error2.field == "payload")
        #expect(try f.dump() == before)
        // Exactly at the limit is fine.
        #expect(try await f.store.enqueue(TaskSpec(name: "x", payload: jsonString(bytes: 16))).inserted)
    }

    @Test func everyJSONValueKindIsAValidPayload() async throws {
        let f = try StoreFixture()
        for payload in [#"{"a":[1,2,{"b":null}]}"#, "[1,2]", "42", "-1.5e3", #""text""#, "true", "null", " {} "] {
            let id = try await f.store.enqueue(TaskSpec(name: "x", payload: payload)).id
            #expect(try await f.store.record(id).payload == payload)
        }
    }

    @Test func deeplyNestedPayloadIsAnsweredWithoutCrashing() async throws {
        let f = try StoreFixture()
        let depth = 100_000
        let payload = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
        do {
            let id = try await f.store.enqueue(TaskSpec(name: "deep", payload: payload)).id
            #expect(try await f.store.record(id).payload == payload)
        } catch let error as RotaError {
            #expect(error.code == .invalidInput)
            #expect(error.field == "payload")
            #expect(try f.dump().count("tasks") == 0)
        }
    }

    @Test func firstBadSpecOfSeveralIsTheOneNamed() async throws {
        let f = try StoreFixture()
        let specs = [TaskSpec(name: "ok"), TaskSpec(name: "x", payload: "{"), TaskSpec(name: "", priority: -1)]
        let error = try #require(await rotaError { _ = try await f.store.enqueue(specs) })
        #expect(error.field == "tasks[1].payload")
        #expect(try f.dump().count("tasks") == 0)
    }

    @Test func badRetryAllAndPurgeStatesAreRefused() async throws {
        let f = try await populatedStore()
        let before = try f.dump()
        for state in [TaskState.scheduled, .running, .succeeded] {
            let error = try #require(await rotaError { _ = try await f.store.retryAll(state: state, queue: nil, now: Date()) })
            #expect(error.code == .invalidInput)
            #expect(error.field == "state")
        }
        for state in [TaskState.scheduled, .running] {
            let error = try #require(await rotaError { _ = try await f.store.purge(olderThan: instant(3600), states: [state]) })
            #expect(error.code == .invalidInput)
            #expect(error.field == "state")
        }
        #expect(try f.dump() == before)
    }
}
