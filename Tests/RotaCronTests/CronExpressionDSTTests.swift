import Foundation
import Testing
@testable import RotaCron

/// Daylight saving time: fixed-time jobs follow the wall clock (gap → first instant after it, overlap →
/// once); wildcard-hour/minute jobs and 6-field expressions follow real elapsed time.
@Suite struct CronExpressionDSTTests {
    // America/New_York 2024: 02:00 EST → 03:00 EDT on Mar 10 (07:00Z); 02:00 EDT → 01:00 EST on Nov 3 (06:00Z).

    @Test func newYorkFixedTimeInGapRunsAtEndOfGap() throws {
        #expect(try fires("30 2 * * *", "America/New_York", after: "2024-03-09T12:00:00Z", count: 2)
            == ["2024-03-10T07:00:00Z", "2024-03-11T06:30:00Z"])
        #expect(try fires("0 2 * * *", "America/New_York", after: "2024-03-09T12:00:00Z", count: 2)
            == ["2024-03-10T07:00:00Z", "2024-03-11T06:00:00Z"])
        // Two times in the same gap collapse into one run.
        #expect(try fires("0,30 2 * * *", "America/New_York", after: "2024-03-09T12:00:00Z", count: 3)
            == ["2024-03-10T07:00:00Z", "2024-03-11T06:00:00Z", "2024-03-11T06:30:00Z"])
    }

    @Test func newYorkFixedTimeInRepeatedHourRunsOnce() throws {
        #expect(try fires("30 1 * * *", "America/New_York", after: "2024-11-02T12:00:00Z", count: 2)
            == ["2024-11-03T05:30:00Z", "2024-11-04T06:30:00Z"])
        // Starting inside the second copy of the hour does not fire the (earlier) first copy or repeat it.
        #expect(try fires("30 1 * * *", "America/New_York", after: "2024-11-03T06:10:00Z", count: 1)
            == ["2024-11-04T06:30:00Z"])
        // From inside the first copy, before 01:30: the first copy fires.
        #expect(try fires("30 1 * * *", "America/New_York", after: "2024-11-03T05:10:00Z", count: 1)
            == ["2024-11-03T05:30:00Z"])
    }

    @Test func newYorkWildcardHourFollowsRealTime() throws {
        // Hourly fires in both copies of 01:00.
        #expect(try fires("0 * * * *", "America/New_York", after: "2024-11-03T04:30:00Z", count: 3)
            == ["2024-11-03T05:00:00Z", "2024-11-03T06:00:00Z", "2024-11-03T07:00:00Z"])
        #expect(try fires("@hourly", "America/New_York", after: "2024-11-03T04:30:00Z", count: 3)
            == ["2024-11-03T05:00:00Z", "2024-11-03T06:00:00Z", "2024-11-03T07:00:00Z"])
        // And skips the hour that does not exist.
        #expect(try fires("0 * * * *", "America/New_York", after: "2024-03-10T06:30:00Z", count: 2)
            == ["2024-03-10T07:00:00Z", "2024-03-10T08:00:00Z"])
        // A wildcard minute in hour 1 on the fall-back day: both copies.
        #expect(try fires("*/30 1 * * *", "America/New_York", after: "2024-11-03T04:00:00Z", count: 5)
            == ["2024-11-03T05:00:00Z", "2024-11-03T05:30:00Z", "2024-11-03T06:00:00Z", "2024-11-03T06:30:00Z",
                "2024-11-04T06:00:00Z"])
        // A wildcard-minute job in the skipped hour does not run that day.
        #expect(try fires("* 2 * * *", "America/New_York", after: "2024-03-10T06:58:00Z", count: 1)
            == ["2024-03-11T06:00:00Z"])
    }

    @Test func sixFieldFormFollowsRealTime() throws {
        // Not Debian-cron compatible anyway: no gap/overlap fix-ups.
        #expect(try fires("0 30 2 * * *", "America/New_York", after: "2024-03-09T12:00:00Z", count: 1)
            == ["2024-03-11T06:30:00Z"])
        #expect(try fires("0 30 1 * * *", "America/New_York", after: "2024-11-02T12:00:00Z", count: 2)
            == ["2024-11-03T05:30:00Z", "2024-11-03T06:30:00Z"])
    }

    // Europe/London 2024: 01:00 GMT → 02:00 BST on Mar 31 (01:00Z); 02:00 BST → 01:00 GMT on Oct 27 (01:00Z).

    @Test func londonGapAndOverlap() throws {
        #expect(try fires("30 1 * * *", "Europe/London", after: "2024-03-30T00:00:00Z", count: 3)
            == ["2024-03-30T01:30:00Z", "2024-03-31T01:00:00Z", "2024-04-01T00:30:00Z"])
        #expect(try fires("30 1 * * *", "Europe/London", after: "2024-10-26T12:00:00Z", count: 2)
            == ["2024-10-27T00:30:00Z", "2024-10-28T01:30:00Z"])
        #expect(try fires("15 * * * *", "Europe/London", after: "2024-10-27T00:00:00Z", count: 3)
            == ["2024-10-27T00:15:00Z", "2024-10-27T01:15:00Z", "2024-10-27T02:15:00Z"])
        // Midnight jobs are unaffected.
        #expect(try fires("@daily", "Europe/London", after: "2024-03-30T12:00:00Z", count: 2)
            == ["2024-03-31T00:00:00Z", "2024-03-31T23:00:00Z"])
    }

    // Australia/Lord_Howe (+10:30 / +11:00, a 30-minute shift) 2024:
    // 02:00 → 02:30 on Oct 6 (Oct 5 15:30Z); 02:00 → 01:30 on Apr 7 (Apr 6 15:00Z).

    @Test func lordHoweHalfHourGap() throws {
        #expect(try fires("15 2 * * *", "Australia/Lord_Howe", after: "2024-10-04T00:00:00Z", count: 3)
            == ["2024-10-04T15:45:00Z", "2024-10-05T15:30:00Z", "2024-10-06T15:15:00Z"])
        // 02:45 exists (after the gap) and fires normally.
        #expect(try fires("45 2 * * *", "Australia/Lord_Howe", after: "2024-10-05T12:00:00Z", count: 1)
            == ["2024-10-05T15:45:00Z"])
        // Hourly: 02:00 does not exist that day, 03:00 LHDT does.
        #expect(try fires("0 * * * *", "Australia/Lord_Howe", after: "2024-10-05T15:10:00Z", count: 2)
            == ["2024-10-05T16:00:00Z", "2024-10-05T17:00:00Z"])
    }

    @Test func lordHoweHalfHourOverlap() throws {
        #expect(try fires("45 1 * * *", "Australia/Lord_Howe", after: "2024-04-06T12:00:00Z", count: 2)
            == ["2024-04-06T14:45:00Z", "2024-04-07T15:15:00Z"])
        // Every quarter hour on real time: 01:45 LHDT, then 01:30 and 01:45 again (LHST), then 02:00.
        #expect(try fires("*/15 * * * *", "Australia/Lord_Howe", after: "2024-04-06T14:40:00Z", count: 4)
            == ["2024-04-06T14:45:00Z", "2024-04-06T15:00:00Z", "2024-04-06T15:15:00Z", "2024-04-06T15:30:00Z"])
    }

    // Pacific/Chatham (+12:45 / +13:45) 2024: 02:45 → 03:45 on Sep 29 (Sep 28 14:00Z);
    // 03:45 → 02:45 on Apr 7 (Apr 6 14:00Z).

    @Test func chathamGapAndOverlap() throws {
        #expect(try fires("0 3 * * *", "Pacific/Chatham", after: "2024-09-27T00:00:00Z", count: 3)
            == ["2024-09-27T14:15:00Z", "2024-09-28T14:00:00Z", "2024-09-29T13:15:00Z"])
        #expect(try fires("0 3 * * *", "Pacific/Chatham", after: "2024-04-06T00:00:00Z", count: 2)
            == ["2024-04-06T13:15:00Z", "2024-04-07T14:15:00Z"])
        // Real time, wildcard minute in hour 3 on the gap day: 03:45–03:59 CHADT exist and fire.
        // (cronsim 2.8 steps hours by 3600 s and misses them; see CronsimDifferentialTests.)
        #expect(try fires("* 3 * * *", "Pacific/Chatham", after: "2024-09-28T12:00:00Z", count: 2)
            == ["2024-09-28T14:00:00Z", "2024-09-28T14:01:00Z"])
    }

    @Test func southernHemisphereSydney() throws {
        // Australia/Sydney 2024: 02:00 → 03:00 on Oct 6 (Oct 5 16:00Z).
        #expect(try fires("30 2 * * *", "Australia/Sydney", after: "2024-10-05T00:00:00Z", count: 2)
            == ["2024-10-05T16:00:00Z", "2024-10-06T15:30:00Z"])
    }

    @Test func santiagoMidnightGap() throws {
        // America/Santiago 2024: midnight does not exist on Sep 8 (00:00 -04 → 01:00 -03, at 04:00Z).
        #expect(try fires("@daily", "America/Santiago", after: "2024-09-06T12:00:00Z", count: 3)
            == ["2024-09-07T04:00:00Z", "2024-09-08T04:00:00Z", "2024-09-09T03:00:00Z"])
        #expect(try fires("30 0 * * *", "America/Santiago", after: "2024-09-06T12:00:00Z", count: 3)
            == ["2024-09-07T04:30:00Z", "2024-09-08T04:00:00Z", "2024-09-09T03:30:00Z"])
        #expect(try fires("0 * * * *", "America/Santiago", after: "2024-09-08T02:30:00Z", count: 3)
            == ["2024-09-08T03:00:00Z", "2024-09-08T04:00:00Z", "2024-09-08T05:00:00Z"])
    }

    @Test func fixedOffsetZone() throws {
        let expr = try CronExpression("0 9 * * *")
        let zone = TimeZone(secondsFromGMT: -3 * 3600)!
        #expect(expr.next(after: utc("2024-06-01T00:00:00Z"), in: zone) == utc("2024-06-01T12:00:00Z"))
    }
}
