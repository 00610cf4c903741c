/// A fast JSON syntax checker and top-level object reader (RFC 8259), for the hot paths: every enqueue
/// validates its payload, and `rota batch submit` reads a million lines. It allocates nothing while checking.
///
/// ```swift
/// JSONText.validate(#"{"a": [1, 2.5e3, "x"]}"#)   // nil: valid
/// JSONText.validate("{'a': 1}")                   // "expected a string at byte 1"
/// ```
public enum JSONText {
    /// The kind of a JSON value.
    public enum Kind: Sendable, Equatable {
        case object, array, string, number, bool, null
    }

    /// The deepest nesting accepted.
    public static let maxDepth = 512

    /// Checks that `text` is exactly one JSON value (surrounded by optional whitespace).
    /// - Returns: nil when valid, else what was wrong and at which byte offset.
    public static func validate(_ text: String) -> String? {
        var text = text
        return text.withUTF8 { bytes in
            var parser = Parser(bytes)
            return parser.document()
        }
    }

    /// Checks `bytes` the same way.
    public static func validate(_ bytes: UnsafeBufferPointer<UInt8>) -> String? {
        var parser = Parser(bytes)
        return parser.document()
    }

    /// Reads a top-level JSON object's members: each key (unescaped), and its value's kind and byte range.
    /// - Returns: the members, or an error message when `bytes` is not a valid JSON object.
    public static func members(_ bytes: UnsafeBufferPointer<UInt8>) -> Result<[(key: String, kind: Kind, range: Range<Int>)], MembersError> {
        var parser = Parser(bytes)
        return parser.objectMembers()
    }

    /// Reads the elements of a JSON array: each element's kind and byte range.
    public static func elements(_ bytes: UnsafeBufferPointer<UInt8>) -> [(kind: Kind, range: Range<Int>)]? {
        var parser = Parser(bytes)
        return parser.arrayElements()
    }

    /// Unescapes a JSON string value's bytes (including its quotes).
    public static func string(_ bytes: UnsafeBufferPointer<UInt8>) -> String? {
        var parser = Parser(bytes)
        return parser.decodeString()
    }

    /// Why a top-level object could not be read.
    public struct MembersError: Error, Sendable, CustomStringConvertible {
        /// What was wrong, and where.
        public var description: String
    }

    struct Parser {
        let bytes: UnsafeBufferPointer<UInt8>
        var index = 0
        var failure: String?

        init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

        mutating func fail(_ message: String) -> Kind? {
            if failure == nil { failure = "\(message) at byte \(index)" }
            return nil
        }

        mutating func skipWhitespace() {
            while index < bytes.count {
                switch bytes[index] {
                case 0x20, 0x09, 0x0A, 0x0D: index += 1
                default: return
                }
            }
        }

        mutating func document() -> String? {
            skipWhitespace()
            guard value(depth: 0) != nil else { return failure ?? "invalid JSON" }
            skipWhitespace()
            if index != bytes.count { _ = fail("unexpected text after the JSON value"); return failure }
            return nil
        }

        mutating func value(depth: Int) -> Kind? {
            guard index < bytes.count else { return fail("unexpected end of input") }
            switch bytes[index] {
            case UInt8(ascii: "{"): return object(depth: depth + 1)
            case UInt8(ascii: "["): return array(depth: depth + 1)
            case UInt8(ascii: "\""): return string() ? .string : nil
            case UInt8(ascii: "t"): return literal("true") ? .bool : fail("invalid literal")
            case UInt8(ascii: "f"): return literal("false") ? .bool : fail("invalid literal")
            case UInt8(ascii: "n"): return literal("null") ? .null : fail("invalid literal")
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return number() ? .number : nil
            default: return fail("unexpected character")
            }
        }

        mutating func literal(_ word: StaticString) -> Bool {
            let count = word.utf8CodeUnitCount
            guard index + count <= bytes.count else { return false }
            let start = word.utf8Start
            for offset in 0..<count where bytes[index + offset] != start[offset] { return false }
            index += count
            return true
        }

        mutating func object(depth: Int) -> Kind? {
            if depth > JSONText.maxDepth { return fail("nested too deeply") }
            index += 1
            skipWhitespace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "}") { index += 1; return .object }
            while true {
                skipWhitespace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { return fail("expected a string key") }
                guard string() else { return nil }
                skipWhitespace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { return fail("expected ':'") }
                index += 1
                skipWhitespace()
                guard value(depth: depth) != nil else { return nil }
                skipWhitespace()
                guard index < bytes.count else { return fail("unexpected end of input") }
                if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                if bytes[index] == UInt8(ascii: "}") { index += 1; return .object }
                return fail("expected ',' or '}'")
            }
        }

        mutating func array(depth: Int) -> Kind? {
            if depth > JSONText.maxDepth { return fail("nested too deeply") }
            index += 1
            skipWhitespace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "]") { index += 1; return .array }
            while true {
                skipWhitespace()
                guard value(depth: depth) != nil else { return nil }
                skipWhitespace()
                guard index < bytes.count else { return fail("unexpected end of input") }
                if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                if bytes[index] == UInt8(ascii: "]") { index += 1; return .array }
                return fail("expected ',' or ']'")
            }
        }

        /// Checks a string at `index` (which is a quote); leaves `index` after its closing quote.
        mutating func string() -> Bool {
            index += 1
            while index < bytes.count {
                let byte = bytes[index]
                if byte == UInt8(ascii: "\"") { index += 1; return true }
                if byte < 0x20 { _ = fail("control character in a string"); return false }
                if byte == UInt8(ascii: "\\") {
                    index += 1
                    guard index < bytes.count else { break }
                    switch bytes[index] {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                         UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                        index += 1
                    case UInt8(ascii: "u"):
                        guard index + 4 < bytes.count else { _ = fail("short \\u escape"); return false }
                        for offset in 1...4 where !isHex(bytes[index + offset]) { _ = fail("bad \\u escape"); return false }
                        index += 5
                    default:
                        _ = fail("bad escape")
                        return false
                    }
                    continue
                }
                index += 1
            }
            _ = fail("unterminated string")
            return false
        }

        func isHex(_ byte: UInt8) -> Bool {
            (0x30...0x39).contains(byte) || (0x41...0x46).contains(byte) || (0x61...0x66).contains(byte)
        }

        mutating func digits() -> Int {
            let start = index
            while index < bytes.count, (0x30...0x39).contains(bytes[index]) { index += 1 }
            return index - start
        }

        mutating func number() -> Bool {
            if bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard index < bytes.count else { _ = fail("bad number"); return false }
            if bytes[index] == UInt8(ascii: "0") {
                index += 1
            } else if digits() == 0 {
                _ = fail("bad number")
                return false
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
                index += 1
                if digits() == 0 { _ = fail("bad number: digits expected after '.'"); return false }
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
                index += 1
                if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
                if digits() == 0 { _ = fail("bad number: digits expected in the exponent"); return false }
            }
            return true
        }

        mutating func objectMembers() -> Result<[(key: String, kind: Kind, range: Range<Int>)], MembersError> {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "{") else {
                return .failure(MembersError(description: "expected a JSON object"))
            }
            index += 1
            var members: [(key: String, kind: Kind, range: Range<Int>)] = []
            skipWhitespace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
                index += 1
            } else {
                while true {
                    skipWhitespace()
                    guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { _ = fail("expected a string key"); break }
                    let keyStart = index
                    guard string() else { break }
                    guard let key = JSONText.string(UnsafeBufferPointer(rebasing: bytes[keyStart..<index])) else { _ = fail("bad key"); break }
                    skipWhitespace()
                    guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { _ = fail("expected ':'"); break }
                    index += 1
                    skipWhitespace()
                    let valueStart = index
                    guard let kind = value(depth: 1) else { break }
                    members.append((key, kind, valueStart..<index))
                    skipWhitespace()
                    guard index < bytes.count else { _ = fail("unexpected end of input"); break }
                    if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                    if bytes[index] == UInt8(ascii: "}") { index += 1; break }
                    _ = fail("expected ',' or '}'")
                    break
                }
            }
            if failure == nil {
                skipWhitespace()
                if index != bytes.count { _ = fail("unexpected text after the JSON value") }
            }
            if let failure { return .failure(MembersError(description: failure)) }
            return .success(members)
        }

        mutating func arrayElements() -> [(kind: Kind, range: Range<Int>)]? {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "[") else { return nil }
            index += 1
            var elements: [(kind: Kind, range: Range<Int>)] = []
            skipWhitespace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "]") { return elements }
            while true {
                skipWhitespace()
                let start = index
                guard let kind = value(depth: 1) else { return nil }
                elements.append((kind, start..<index))
                skipWhitespace()
                guard index < bytes.count else { return nil }
                if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                if bytes[index] == UInt8(ascii: "]") { return elements }
                return nil
            }
        }

        /// Decodes the string at `index` (a quote) into a Swift String.
        mutating func decodeString() -> String? {
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { return nil }
            let start = index + 1
            // Fast path: no escapes.
            var end = start
            while end < bytes.count, bytes[end] != UInt8(ascii: "\""), bytes[end] != UInt8(ascii: "\\") { end += 1 }
            if end < bytes.count, bytes[end] == UInt8(ascii: "\"") {
                return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self)
            }
            var scalars = String.UnicodeScalarView()
            var utf8: [UInt8] = []
            var position = start
            func flush() {
                if !utf8.isEmpty { scalars.append(contentsOf: String(decoding: utf8, as: UTF8.self).unicodeScalars); utf8.removeAll() }
            }
            while position < bytes.count {
                let byte = bytes[position]
                if byte == UInt8(ascii: "\"") { flush(); return String(scalars) }
                if byte != UInt8(ascii: "\\") { utf8.append(byte); position += 1; continue }
                position += 1
                guard position < bytes.count else { return nil }
                let escape = bytes[position]
                position += 1
                switch escape {
                case UInt8(ascii: "n"): utf8.append(0x0A)
                case UInt8(ascii: "t"): utf8.append(0x09)
                case UInt8(ascii: "r"): utf8.append(0x0D)
                case UInt8(ascii: "b"): utf8.append(0x08)
                case UInt8(ascii: "f"): utf8.append(0x0C)
                case UInt8(ascii: "u"):
                    guard let high = hex4(at: position) else { return nil }
                    position += 4
                    var code = high
                    if (0xD800..<0xDC00).contains(high), position + 5 < bytes.count,
                       bytes[position] == UInt8(ascii: "\\"), bytes[position + 1] == UInt8(ascii: "u"),
                       let low = hex4(at: position + 2), (0xDC00..<0xE000).contains(low) {
                        code = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
                        position += 6
                    }
                    flush()
                    scalars.append(Unicode.Scalar(code) ?? "\u{FFFD}")
                default: utf8.append(escape)
                }
            }
            return nil
        }

        func hex4(at position: Int) -> UInt32? {
            guard position + 4 <= bytes.count else { return nil }
            var value: UInt32 = 0
            for offset in 0..<4 {
                let byte = bytes[position + offset]
                let digit: UInt32
                switch byte {
                case 0x30...0x39: digit = UInt32(byte - 0x30)
                case 0x41...0x46: digit = UInt32(byte - 0x41 + 10)
                case 0x61...0x66: digit = UInt32(byte - 0x61 + 10)
                default: return nil
                }
                value = value << 4 | digit
            }
            return value
        }
    }
}
