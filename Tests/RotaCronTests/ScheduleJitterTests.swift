import Foundation
import Testing
@testable import RotaCron

/// `jitter=DURATION` / `JITTER=DURATION` in schedule files: accepted values, and refused ones as file:line:column.
@Suite struct ScheduleJitterTests {
    @Test func theOptionAndTheSettingSetTheJitterOfTheirSchedules() throws {
        let (schedules, errors) = ScheduleFiles.parse("""
            0 3 * * *     nightly   jitter=5m        exec true
            JITTER=90s
            0 4 * * *     early                      exec true
            */2 * * * *   often     jitter=1m59s     exec true
            JITTER=
            @hourly       plain                      exec true
            """, file: "spread.cron")
        #expect(errors.isEmpty, "\(errors)")
        #expect(schedules.map(\.name) == ["nightly", "early", "often", "plain"])
        #expect(schedules.map(\.jitterSeconds) == [300, 90, 119, nil])
        #expect(schedules[0].jitter == .seconds(300))
        #expect(schedules[3].jitter == nil)
        // A changed jitter is a changed definition.
        var other = schedules[0]
        other.jitterSeconds = 301
        #expect(other != schedules[0])
    }

    @Test func badJittersAreRefusedWithTheirFileLineAndColumn() throws {
        let (schedules, errors) = ScheduleFiles.parse("""
            0 3 * * *     zero      jitter=0         exec true
            0 3 * * *     words     jitter=soon      exec true
            0 3 * * *     negative  jitter=-5m       exec true
            @weekly       too-long  jitter=2d        exec true
            * * * * *     minutely  jitter=1m        exec true
            */10 * * * * * tens     jitter=10s       exec true
            0 9,10 * * *  twice     jitter=1h        exec true
            JITTER=2h
            @hourly       inherited                  exec true
            JITTER=abc
            """, file: "bad.cron")
        #expect(schedules.isEmpty, "\(schedules)")
        let text = errors.map(\.description)
        #expect(text.count == 9, "\(text)")
        #expect(text[0] == #"bad.cron:1:32: invalid jitter "0"; expected a duration such as 90s, 5m or 1h30m"#)
        #expect(text[1] == #"bad.cron:2:32: invalid jitter "soon"; expected a duration such as 90s, 5m or 1h30m"#)
        #expect(text[2] == #"bad.cron:3:32: invalid jitter "-5m"; expected a duration such as 90s, 5m or 1h30m"#)
        #expect(text[3] == #"bad.cron:4:32: jitter "2d" is too long; expected at most 1d"#)
        #expect(text[4] == "bad.cron:5:32: jitter 1m is not shorter than the shortest gap between two fires of \"* * * * *\" (1m); "
            + "expected a jitter below 1m, so that each fire runs before the next one is due")
        #expect(text[5].hasPrefix("bad.cron:6:32: jitter 10s is not shorter than the shortest gap between two fires of \"*/10 * * * * *\" (10s)"))
        #expect(text[6].hasPrefix("bad.cron:7:32: jitter 1h is not shorter than the shortest gap between two fires of \"0 9,10 * * *\" (1h)"))
        #expect(text[7].hasPrefix("bad.cron:9:1: jitter 2h (from the JITTER setting above) is not shorter than the shortest gap"))
        #expect(text[8] == #"bad.cron:10:8: invalid jitter "abc"; expected a duration such as 90s, 5m or 1h30m"#)
    }

    @Test func theShortestGapIsMeasuredOnTheExpressionInItsZone() throws {
        let utc = try #require(TimeZone(identifier: "UTC"))
        #expect(ScheduleFiles.shortestGap(of: try CronExpression("* * * * *"), in: utc) == 60)
        #expect(ScheduleFiles.shortestGap(of: try CronExpression("0 9,17 * * *"), in: utc) == 8 * 3600)
        #expect(ScheduleFiles.shortestGap(of: try CronExpression("0 0 1 * *"), in: utc) == 28 * 86_400)
        // 01:00 and 03:00 in New York: two hours apart on the wall clock, one hour of real time on the spring-forward night.
        let newYork = try #require(TimeZone(identifier: "America/New_York"))
        #expect(ScheduleFiles.shortestGap(of: try CronExpression("0 1,3 * * *"), in: newYork) == 3600)
        #expect(ScheduleFiles.durationText(5400) == "1h30m")
        #expect(ScheduleFiles.durationText(86_400) == "1d")
    }
}
