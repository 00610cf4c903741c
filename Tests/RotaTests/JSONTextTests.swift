import Foundation
import Testing
@testable import Rota
@testable import RotaSQLiteStore

/// The fast JSON checker agrees with Foundation's parser on what is JSON, and reads objects exactly.
@Suite struct JSONTextTests {
    static let valid = [
        "{}", "[]", "0", "-0", "1.5e10", "-2E-3", "\"\"", "true", "false", "null", " {\"a\" : [1, 2, {\"b\": null}]} ",
        #"{"s": "esc \" \\ \/ \b \f \n \r \t \u00e9 \ud83d\ude00"}"#, #"["ü", "日本"]"#, "[[[[]]]]",
    ]
    static let invalid = [
        "", " ", "{", "}", "[1,]", "{\"a\":}", "{a: 1}", "{'a': 1}", "01", "1.", ".5", "-", "+1", "1e", "tru", "nul",
        "\"unterminated", "\"bad \\x escape\"", "\"\\u12\"", "{\"a\" 1}", "[1 2]", "{} {}", "\"tab\tinside\"", "NaN",
    ]

    @Test(arguments: valid) func acceptsValidJSON(_ text: String) {
        #expect(JSONText.validate(text) == nil)
        #expect((try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])) != nil)
    }

    @Test(arguments: invalid) func rejectsInvalidJSONSayingWhere(_ text: String) {
        let problem = JSONText.validate(text)
        #expect(problem != nil)
        #expect(problem?.contains("byte") == true)
    }

    @Test func rejectsNestingDeeperThanTheLimit() {
        let deep = String(repeating: "[", count: JSONText.maxDepth + 1) + String(repeating: "]", count: JSONText.maxDepth + 1)
        #expect(JSONText.validate(deep)?.contains("deeply") == true)
        let ok = String(repeating: "[", count: JSONText.maxDepth) + String(repeating: "]", count: JSONText.maxDepth)
        #expect(JSONText.validate(ok) == nil)
    }

    @Test func readsTopLevelMembersWithKindsAndRawRanges() throws {
        var text = #"{"name": "resize", "payload": {"path": "/a b"}, "n": -3, "ok": true, "k\u00e9y": null, "list": [1]}"#
        let members = try text.withUTF8 { bytes in
            try JSONText.members(bytes).get().map { member in
                (member.key, member.kind, String(decoding: UnsafeBufferPointer(rebasing: bytes[member.range]), as: UTF8.self))
            }
        }
        #expect(members.map(\.0) == ["name", "payload", "n", "ok", "kéy", "list"])
        #expect(members.map(\.1) == [.string, .object, .number, .bool, .null, .array])
        #expect(members[1].2 == #"{"path": "/a b"}"#)
        #expect(members[0].2 == #""resize""#)
    }

    @Test func membersRefusesWhatIsNotAnObject() {
        for text in ["[1]", "3", #"{"a": 1"#, #"{"a": 1} x"#] {
            var copy = text
            let result = copy.withUTF8 { JSONText.members($0) }
            if case .success = result { Issue.record("accepted \(text)") }
        }
    }

    @Test func decodesEscapedStrings() {
        var text = #""a\"b\\c\n\u00e9\ud83d\ude00""#
        #expect(text.withUTF8 { JSONText.string($0) } == "a\"b\\c\né😀")
    }

    @Test func readsArrayElements() {
        var text = #"["echo", "hi", 3]"#
        let kinds = text.withUTF8 { JSONText.elements($0)?.map(\.kind) }
        #expect(kinds == [.string, .string, .number])
    }
}
