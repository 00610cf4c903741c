import Foundation
import Testing
@testable import RotaCron

/// Compares against cronsim 2.8 on random expressions (see Fixtures/generate_cronsim_fixtures.py).
@Suite struct CronsimDifferentialTests {
    struct Case {
        let expression: String
        let zone: String
        let start: Int
        let fires: [Int]
    }

    static let cases: [Case] = cronsimFixtureText.split(separator: "\n").map { line in
        let p = line.split(separator: "|", omittingEmptySubsequences: false)
        return Case(
            expression: String(p[0]), zone: String(p[1]), start: Int(p[2])!,
            fires: p[3].split(separator: ",").map { Int($0)! })
    }

    @Test func matchesCronsim() throws {
        #expect(Self.cases.count >= 1000)
        var mismatches: [String] = []
        for c in Self.cases {
            let expr = try CronExpression(c.expression)
            let zone = try #require(TimeZone(identifier: c.zone))
            let got = expr.fires(after: Date(timeIntervalSince1970: TimeInterval(c.start)), in: zone, count: 5)
                .map { Int($0.timeIntervalSince1970) }
            if got != c.fires {
                mismatches.append("\(c.expression) | \(c.zone) | \(c.start) | cronsim \(c.fires) | rota \(got)")
            }
        }
        print(mismatches.joined(separator: "\n"))
        #expect(mismatches.isEmpty, "\(mismatches.count) mismatches")
    }
}
