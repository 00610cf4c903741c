import Foundation
import Testing
@testable import Rota
@testable import RotaSQLiteStore

/// Schedule files → stored schedules: the definition-to-spec mapping, which files a directory holds,
/// validation, and syncing a directory into a store (all or nothing).
@Suite final class ScheduleLoadingTests {
    private let directory: String
    private let schedules: String

    init() throws {
        directory = NSTemporaryDirectory() + "rota-schedule-loading-\(UUID().uuidString)"
        schedules = directory + "/schedules"
        try FileManager.default.createDirectory(atPath: schedules, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    private func write(_ name: String, _ text: String) throws {
        try text.write(toFile: schedules + "/" + name, atomically: true, encoding: .utf8)
    }

    private func store() throws -> SQLiteTaskStore {
        try SQLiteTaskStore(path: directory + "/rota.db", configuration: .init(durability: .normal))
    }

    /// The repository's `schedules/` directory.
    private static var repositorySchedules: String {
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/", !FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) {
            url = url.deletingLastPathComponent()
        }
        return url.appendingPathComponent("schedules").path
    }

    // MARK: Mapping

    @Test func execLineBecomesTheExecTaskWithAnArgvPayloadAndDefaults() throws {
        let parsed = ScheduleFiles.parse(#"0 3 * * *  backup  exec /usr/local/bin/backup --full "two words""#, file: "a.cron")
        #expect(parsed.errors.isEmpty)
        let spec = ScheduleLoading.spec(for: try #require(parsed.schedules.first))
        #expect(spec == ScheduleSpec(
            name: "backup", expression: "0 3 * * *", timeZone: "UTC", taskName: "exec",
            payload: #"{"argv":["/usr/local/bin/backup","--full","two words"]}"#, queue: "default", priority: 0,
            maxAttempts: 3, timeout: nil, missed: .skip, overlap: .allow, source: "a.cron:1"))
        let object = try JSONSerialization.jsonObject(with: Data(spec.payload.utf8)) as? [String: [String]]
        #expect(object == ["argv": ["/usr/local/bin/backup", "--full", "two words"]])
    }

    @Test func taskLineKeepsItsNameAndPayloadOrAnEmptyObject() throws {
        let parsed = ScheduleFiles.parse("""
            */15 * * * *  feeds   task feeds.refresh {"limit": 100}
            @daily        report  task report.daily
            """, file: "t.cron")
        #expect(parsed.errors.isEmpty)
        let specs = parsed.schedules.map(ScheduleLoading.spec(for:))
        #expect(specs.map(\.taskName) == ["feeds.refresh", "report.daily"])
        #expect(specs.map(\.payload) == [#"{"limit": 100}"#, "{}"])
        #expect(specs.map(\.source) == ["t.cron:1", "t.cron:2"])
    }

    @Test func settingsAndOptionsCarryOverToTheSpec() throws {
        let parsed = ScheduleFiles.parse("""
            TZ=Europe/Berlin
            QUEUE=maintenance
            RETRIES=5
            TIMEOUT=1h30m
            MISSED=all:4
            OVERLAP=skip
            PRIORITY=7
            30 3 * * *  nightly  exec true
            0 * * * *   hourly   tz=Asia/Tokyo queue=fast retries=1 timeout=90s missed=once overlap=allow priority=0  exec true
            """, file: "m.cron")
        #expect(parsed.errors.isEmpty)
        let specs = parsed.schedules.map(ScheduleLoading.spec(for:))
        #expect(specs[0] == ScheduleSpec(
            name: "nightly", expression: "30 3 * * *", timeZone: "Europe/Berlin", taskName: "exec",
            payload: #"{"argv":["true"]}"#, queue: "maintenance", priority: 7, maxAttempts: 5, timeout: .seconds(5400),
            missed: .all(cap: 4), overlap: .skip, source: "m.cron:8"))
        #expect(specs[1] == ScheduleSpec(
            name: "hourly", expression: "0 * * * *", timeZone: "Asia/Tokyo", taskName: "exec",
            payload: #"{"argv":["true"]}"#, queue: "fast", priority: 0, maxAttempts: 1, timeout: .seconds(90),
            missed: .once, overlap: .allow, source: "m.cron:9"))
    }

    @Test func execPayloadIsStableAndKeepsSlashesAndUnicode() {
        #expect(ScheduleLoading.execPayload(["/bin/echo", "é \"q\""]) == #"{"argv":["/bin/echo","é \"q\""]}"#)
        #expect(ScheduleLoading.execPayload(["a"]) == ScheduleLoading.execPayload(["a"]))
    }

    // MARK: Which files

    @Test func everyRegularFileIsReadExceptHiddenOnesBackupsAndDirectories() throws {
        try write("b.cron", "@hourly b exec true\n")
        try write("a", "@hourly a exec true\n")
        try write("c.txt", "@daily c exec true\n")
        try write(".hidden.cron", "garbage\n")
        try write("b.cron~", "garbage\n")
        try FileManager.default.createDirectory(atPath: schedules + "/sub", withIntermediateDirectories: true)
        try write("sub/d.cron", "garbage\n")
        let files = try ScheduleLoading.scheduleFiles(in: schedules)
        #expect(files == ["a", "b.cron", "c.txt"].map { schedules + "/" + $0 })
        let loaded = ScheduleLoading.load(directory: schedules)
        #expect(loaded.isValid)
        #expect(loaded.files == files)
        #expect(loaded.definitions.map(\.name) == ["a", "b", "c"])
        // The same set as RotaCron's loader reading every file.
        let viaCron = try ScheduleFiles.load(directory: schedules, fileExtension: nil)
        #expect(viaCron.schedules == loaded.definitions && viaCron.errors.isEmpty)
    }

    @Test func aPathNamingOneFileReadsThatFile() throws {
        try write("one.cron", "@hourly one exec true\n")
        let loaded = ScheduleLoading.load(directory: schedules + "/one.cron")
        #expect(loaded.files == [schedules + "/one.cron"])
        #expect(loaded.specs.map(\.name) == ["one"])
    }

    @Test func aMissingDirectoryIsOneErrorNamingIt() async {
        let loaded = ScheduleLoading.load(directory: directory + "/nope")
        #expect(!loaded.isValid)
        #expect(loaded.errors.count == 1)
        #expect(loaded.errors[0].description.hasPrefix(directory + "/nope: no such directory"))
    }

    @Test func aFileThatIsNotTextIsAnErrorNamingIt() async throws {
        try write("a.cron", "@hourly  a  exec true\n")
        try Data([0xFF, 0xFE, 0x00, 0x41]).write(to: URL(fileURLWithPath: schedules + "/b.bin"))
        let loaded = ScheduleLoading.load(directory: schedules)
        #expect(loaded.errors.map(\.description) == ["\(schedules)/b.bin: is not UTF-8 text; expected a text file of schedules"])
    }

    @Test func theRepositorysExampleSchedulesAreValid() async throws {
        let loaded = ScheduleLoading.load(directory: Self.repositorySchedules)
        #expect(loaded.errors.isEmpty, "\(loaded.errors)")
        #expect(loaded.files.count == 3)
        #expect(loaded.specs.count >= 10)
        #expect(loaded.specs.allSatisfy { $0.maxAttempts >= 1 && $0.priority >= 0 && $0.source != nil })
    }

    // MARK: Errors

    @Test func everyErrorOfEveryFileIsReportedInFileAndLineOrder() async throws {
        try write("a.cron", """
            0 3 * * *  good  exec true
            61 * * * *  bad-minute  exec true
            0 3 * * *  bad-option  retries=0  exec true
            """)
        try write("b.cron", """
            TZ=Mars/Olympus
            @hourly  good  exec true
            0 0 * * *  negative  priority=-5  exec true
            """)
        let loaded = ScheduleLoading.load(directory: schedules)
        let a = schedules + "/a.cron"
        let b = schedules + "/b.cron"
        #expect(loaded.errors.map { "\($0.file):\($0.line):\($0.column)" } == [
            "\(a):2:1", "\(a):3:32", "\(b):1:4", "\(b):2:10", "\(b):3:31",
        ])
        #expect(loaded.errors[0].message.contains("minute field"))
        #expect(loaded.errors[3].message.contains("duplicate schedule name \"good\""))
        #expect(loaded.errors[4].message == "priority -5 is below 0; expected 0 or more (higher runs first)")
        #expect(loaded.errors.allSatisfy { $0.description.hasPrefix("\($0.file):\($0.line):\($0.column): ") })
    }

    // MARK: Syncing into a store

    @Test func loadingSyncsTheSchedulesWithTheirFirstFire() async throws {
        try write("a.cron", """
            0 9 * * *  morning  tz=America/New_York  exec echo hi
            @hourly    hourly   task report.hourly {"n": 1}
            """)
        let store = try store()
        let now = Date(timeIntervalSince1970: 1_772_953_200) // 2026-03-08T07:00:00Z
        guard case .synced(let result, let loaded) = try await store.loadSchedules(directory: schedules, now: now) else {
            Issue.record("expected the schedules to load")
            return
        }
        #expect(result.added.sorted() == ["hourly", "morning"])
        #expect(loaded.specs.count == 2)
        let records = try await store.schedules()
        let morning = try #require(records.first { $0.spec.name == "morning" })
        #expect(morning.active)
        #expect(morning.spec.payload == #"{"argv":["echo","hi"]}"#)
        // 09:00 EDT on 2026-03-08 (DST began at 07:00Z that morning) is 13:00Z.
        #expect(morning.nextFireAt == Date(timeIntervalSince1970: 1_772_974_800))
        let hourly = try #require(records.first { $0.spec.name == "hourly" })
        #expect(hourly.nextFireAt == now.addingTimeInterval(3600))
        #expect(hourly.spec.taskName == "report.hourly")
    }

    @Test func aBadFileChangesNothingAndReturnsEveryError() async throws {
        try write("a.cron", "@hourly  one  exec true\n@daily  two  exec true\n")
        let store = try store()
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        guard case .synced = try await store.loadSchedules(directory: schedules, now: now) else {
            Issue.record("expected the first load to succeed")
            return
        }
        // Edit: one schedule removed, and two mistakes.
        try write("a.cron", "@hourly  one  exec true\n@dayly  three  exec true\n0 0 * * *  four  missed=sometimes  exec true\n")
        guard case .rejected(let errors) = try await store.loadSchedules(directory: schedules, now: now) else {
            Issue.record("expected the edit to be rejected")
            return
        }
        #expect(errors.map(\.line) == [2, 3])
        // The last good schedules stay, all active.
        await #expect(try store.schedules().map(\.spec.name).sorted() == ["one", "two"])
        await #expect(try store.schedules().allSatisfy(\.active))
    }

    @Test func reloadingDeactivatesRemovedSchedulesAndKeepsTheirHistory() async throws {
        try write("a.cron", "@hourly  one  exec true\n@daily  two  exec true\n")
        let store = try store()
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        _ = try await store.loadSchedules(directory: schedules, now: now)
        try write("a.cron", "@hourly  one  exec true\n")
        guard case .synced(let result, _) = try await store.loadSchedules(directory: schedules, now: now) else {
            Issue.record("expected the reload to succeed")
            return
        }
        #expect(result.removed == ["two"] && result.added.isEmpty && result.changed.isEmpty)
        let two = try await #require(try store.schedules().first { $0.spec.name == "two" })
        #expect(!two.active)
        // Loading the same files again changes nothing.
        guard case .synced(let again, _) = try await store.loadSchedules(directory: schedules, now: now) else {
            Issue.record("expected the reload to succeed")
            return
        }
        #expect(again == ScheduleSyncResult(added: [], changed: [], removed: []))
    }

    @Test func aPayloadTheStoreWouldRefuseIsReportedAtItsLine() async throws {
        let big = String(repeating: "x", count: 2_000)
        try write("a.cron", "@hourly  ok  exec true\n@daily  huge  task t {\"s\": \"\(big)\"}\n")
        let store = try SQLiteTaskStore(path: directory + "/small.db", configuration: .init(durability: .normal, maxPayloadBytes: 1_000))
        guard case .rejected(let errors) = try await store.loadSchedules(directory: schedules) else {
            Issue.record("expected the load to be rejected")
            return
        }
        #expect(errors.count == 1)
        #expect(errors.first?.line == 2)
        #expect(errors.first?.message.contains("payload") == true)
        await #expect(try store.schedules().isEmpty)
    }
}
