import Foundation
@testable import RotaCron

/// Parses `YYYY-MM-DDTHH:MM:SSZ` (UTC) into a date.
func utc(_ text: String) -> Date {
    let c = text.split(whereSeparator: { "-T:Z".contains($0) }).map { Int($0)! }
    let seconds = Civil.naive(year: c[0], month: c[1], day: c[2], hour: c[3], minute: c[4], second: c[5])
    return Date(timeIntervalSince1970: TimeInterval(seconds))
}

/// Formats a date as `YYYY-MM-DDTHH:MM:SSZ`.
func iso(_ date: Date) -> String {
    let f = Civil.fields(Int(date.timeIntervalSince1970.rounded(.down)))
    func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
    return "\(f.year)-\(two(f.month))-\(two(f.day))T\(two(f.hour)):\(two(f.minute)):\(two(f.second))Z"
}

/// The next `count` fires of `expression` in `zone` after `start`, as UTC ISO strings.
func fires(_ expression: String, _ zone: String = "UTC", after start: String, count: Int = 5) throws -> [String] {
    let expr = try CronExpression(expression)
    return expr.fires(after: utc(start), in: TimeZone(identifier: zone)!, count: count).map(iso)
}

/// The error thrown when parsing `expression`, if any.
func cronError(_ expression: String) -> CronError? {
    do {
        _ = try CronExpression(expression)
        return nil
    } catch let error as CronError {
        return error
    } catch {
        return nil
    }
}
