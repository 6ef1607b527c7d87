//! Cron schedules: `CronTz::parse` (expression and IANA time zone) and finding the next
//! ticks. Input: `expression \n time zone \n seconds`. Nothing may panic or hang; an accepted
//! schedule's ticks are strictly increasing and each lies after the instant asked about.
#![no_main]

use ate_orchestrate::workflow::CronTz;
use chrono::{DateTime, Utc};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(3, '\n');
    let cron = parts.next().unwrap_or("");
    let tz = parts.next().unwrap_or("UTC");
    // An instant between 1970 and 2200.
    let secs = parts
        .next()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or(1_700_000_000);
    let Some(mut t) = DateTime::<Utc>::from_timestamp(secs.rem_euclid(7_258_118_400), 0) else {
        return;
    };
    let Ok(schedule) = CronTz::parse(cron, tz) else {
        return;
    };
    let again = CronTz::parse(schedule.expression(), schedule.time_zone()).expect("reparses");
    for _ in 0..4 {
        let Some(next) = schedule.next_after(t) else {
            break;
        };
        assert!(next > t, "tick {next} is not after {t}");
        assert_eq!(again.next_after(t), Some(next));
        t = next;
    }
});
