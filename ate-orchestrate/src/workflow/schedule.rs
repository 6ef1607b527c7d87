//! Schedules: cron-style recurring runs ([`ScheduleSpec`] → [`ValidSchedule`], stored as
//! [`Schedule`]).
//!
//! * **Cron**: five fields (minute, hour, day of month, month, day of week), with lists,
//!   ranges, steps, names (`MON`, `JAN`), `L`, `W`, `#` and the `@daily`-style nicknames,
//!   parsed by the `croner` crate. A minute is the finest step.
//! * **Time zone**: an IANA name (`Europe/Berlin`, default `UTC`); ticks follow its wall
//!   clock through daylight-saving changes (a local time skipped by a change fires at the
//!   corresponding time after it; a local time that occurs twice fires once).
//! * **Exactly once**: every host's maintenance pass may fire a due schedule; each tick's run
//!   is submitted under the idempotency key `schedule:<schedule id>:<tick>`, so however many
//!   hosts fire the same tick, it gets one run, and the schedule then moves on by a
//!   compare-and-set on its next tick.
//! * **Missed ticks** (every scheduler was down): one run fires for the latest of them, then
//!   the schedule continues from now (Temporal's "skip" overlap with a catch-up of one).
//! * The template is a [`RunSpec`] without idempotency key or start time (each tick supplies
//!   its own); the run carries the label `schedule` = the schedule's name and is submitted
//!   by `schedule:<name>`.

use super::dag::StepName;
use super::run::{RunSpec, ValidRun};
use super::spec::Limits;
use crate::OrchestrateError;
use crate::name::name_type;
use chrono::{DateTime, Utc};
use std::str::FromStr;

name_type!(
    /// A schedule's name, unique within its tenant (`nightly-scan`).
    ScheduleName,
    "schedule name"
);

/// The label every scheduled run carries, with the schedule's name as its value.
pub const SCHEDULE_LABEL: &str = "schedule";

/// A recurring run to create for a tenant.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ScheduleSpec {
    /// Its name.
    pub name: String,
    /// The cron expression (five fields).
    pub cron: String,
    /// The IANA time zone the expression is read in.
    pub time_zone: String,
    /// The run each tick submits.
    pub run: RunSpec,
    /// Created paused: no tick fires until it is resumed.
    pub paused: bool,
}

impl ScheduleSpec {
    /// Schedule `name`: `run` at every tick of `cron`, in UTC, active.
    pub fn new(name: impl Into<String>, cron: impl Into<String>, run: RunSpec) -> Self {
        ScheduleSpec {
            name: name.into(),
            cron: cron.into(),
            time_zone: "UTC".into(),
            run,
            paused: false,
        }
    }

    /// Sets [`ScheduleSpec::time_zone`].
    pub fn time_zone(mut self, tz: impl Into<String>) -> Self {
        self.time_zone = tz.into();
        self
    }

    /// Sets [`ScheduleSpec::paused`].
    pub fn paused(mut self, paused: bool) -> Self {
        self.paused = paused;
        self
    }

    /// Checks everything: the name, the cron expression, the time zone and the template
    /// ([`RunSpec::validate`], against `limits` and `is_step`). `InvalidInput` naming the
    /// problem.
    pub fn validate(
        &self,
        limits: &Limits,
        is_step: &dyn Fn(&StepName) -> bool,
    ) -> Result<ValidSchedule, OrchestrateError> {
        let name = ScheduleName::new(self.name.as_str())?;
        let cron = CronTz::parse(&self.cron, &self.time_zone)?;
        if self.run.idempotency_key.is_some() {
            return Err(OrchestrateError::invalid(
                "schedule run",
                "must not have an idempotency key: each tick gets its own",
            ));
        }
        if self.run.start_at.is_some() {
            return Err(OrchestrateError::invalid(
                "schedule run",
                "must not have a start time: each tick is its start",
            ));
        }
        if self.run.labels.contains_key(SCHEDULE_LABEL) {
            return Err(OrchestrateError::invalid(
                "schedule run",
                format!("the label {SCHEDULE_LABEL:?} is set by the schedule"),
            ));
        }
        let mut labelled = self.run.clone();
        labelled
            .labels
            .insert(SCHEDULE_LABEL.into(), name.to_string());
        let run = labelled.validate(limits, is_step)?;
        Ok(ValidSchedule {
            name,
            cron,
            run,
            paused: self.paused,
        })
    }
}

/// A checked [`ScheduleSpec`], ready for
/// [`WorkflowStore::create_schedule`](super::WorkflowStore::create_schedule).
#[derive(Debug, Clone)]
pub struct ValidSchedule {
    name: ScheduleName,
    cron: CronTz,
    run: ValidRun,
    paused: bool,
}

impl ValidSchedule {
    /// Its name.
    pub fn name(&self) -> &ScheduleName {
        &self.name
    }

    /// Its expression and time zone.
    pub fn cron(&self) -> &CronTz {
        &self.cron
    }

    /// The run each tick submits (labelled with the schedule's name).
    pub fn run(&self) -> &ValidRun {
        &self.run
    }

    /// Whether it starts paused.
    pub fn is_paused(&self) -> bool {
        self.paused
    }
}

/// A stored schedule.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Schedule {
    /// Its tenant.
    pub tenant: ate_core::TenantId,
    /// Its name.
    pub name: ScheduleName,
    /// The cron expression.
    pub cron: String,
    /// The time zone it is read in.
    pub time_zone: String,
    /// The run each tick submits (with the `schedule` label).
    pub run: RunSpec,
    /// Paused: no tick fires.
    pub paused: bool,
    /// The next tick (while not paused); `None` when none will come.
    pub next_fire_at: Option<DateTime<Utc>>,
    /// The last tick that fired.
    pub last_fired_at: Option<DateTime<Utc>>,
    /// The run it started.
    pub last_run: Option<ate_core::RunId>,
    /// Who created it.
    pub created_by: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed (created, paused, resumed or fired).
    pub updated_at: DateTime<Utc>,
}

/// A parsed cron expression and the time zone it is read in.
#[derive(Debug, Clone)]
pub struct CronTz {
    text: String,
    cron: croner::Cron,
    tz: chrono_tz::Tz,
}

/// Longest cron expression accepted (bytes).
pub const MAX_CRON_LEN: usize = 256;

impl CronTz {
    /// Parses `cron` and time zone `tz`. `InvalidInput` naming what is wrong.
    pub fn parse(cron: &str, tz: &str) -> Result<Self, OrchestrateError> {
        if cron.len() > MAX_CRON_LEN {
            return Err(OrchestrateError::invalid(
                "cron expression",
                format!("{} bytes, over the limit of {MAX_CRON_LEN}", cron.len()),
            ));
        }
        let trimmed = cron.trim();
        // croner also takes a sixth (seconds) field only when asked; five fields (or a
        // nickname) here.
        let fields = trimmed.split_whitespace().count();
        if !(trimmed.starts_with('@') || fields == 5) {
            return Err(OrchestrateError::invalid(
                "cron expression",
                format!("{cron:?} has {fields} fields; it needs 5 (minute hour day month weekday)"),
            ));
        }
        // An empty list item (`,5`, `1,,2`) makes croner read an empty set for that field;
        // it then searches every hour of the next thousands of years for a tick before
        // saying "never" (seconds of CPU per call; found by fuzzing). Refused up front.
        if !trimmed.starts_with('@')
            && let Some((i, field)) = trimmed
                .split_whitespace()
                .enumerate()
                .find(|(_, f)| f.split(',').any(str::is_empty))
        {
            return Err(OrchestrateError::invalid(
                "cron expression",
                format!(
                    "{cron:?}: the {} field {field:?} has an empty list item",
                    ["minute", "hour", "day", "month", "weekday"][i]
                ),
            ));
        }
        let parsed = croner::Cron::from_str(trimmed)
            .map_err(|e| OrchestrateError::invalid("cron expression", format!("{cron:?}: {e}")))?;
        let zone = chrono_tz::Tz::from_str(tz).map_err(|_| {
            OrchestrateError::invalid(
                "time zone",
                format!("{tz:?} is not an IANA time zone name (like Europe/Berlin or UTC)"),
            )
        })?;
        let checked = CronTz {
            text: trimmed.to_owned(),
            cron: parsed,
            tz: zone,
        };
        // An expression that can never fire (`0 0 30 2 *`) is refused now, not at its
        // first tick.
        checked.next_after(Utc::now()).ok_or_else(|| {
            OrchestrateError::invalid("cron expression", format!("{cron:?} never fires"))
        })?;
        Ok(checked)
    }

    /// The expression, trimmed.
    pub fn expression(&self) -> &str {
        &self.text
    }

    /// The time zone's IANA name.
    pub fn time_zone(&self) -> &str {
        self.tz.name()
    }

    /// The first tick strictly after `t`, if any.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(&self.tz);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|next| next.with_timezone(&Utc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::{DagSpec, NodeSpec};
    use chrono::TimeZone;
    use serde_json::json;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn ticks_follow_the_time_zone_through_daylight_saving() {
        let nine = CronTz::parse("0 9 * * *", "America/New_York").unwrap();
        // Winter: 09:00 EST is 14:00 UTC; summer: 09:00 EDT is 13:00 UTC.
        assert_eq!(
            nine.next_after(utc(2026, 1, 10, 15, 0)),
            Some(utc(2026, 1, 11, 14, 0))
        );
        assert_eq!(
            nine.next_after(utc(2026, 7, 10, 15, 0)),
            Some(utc(2026, 7, 11, 13, 0))
        );
        // Across the spring change (2026-03-08): Saturday 14:00 UTC, then Sunday 13:00 UTC.
        assert_eq!(
            nine.next_after(utc(2026, 3, 7, 12, 0)),
            Some(utc(2026, 3, 7, 14, 0))
        );
        assert_eq!(
            nine.next_after(utc(2026, 3, 7, 14, 0)),
            Some(utc(2026, 3, 8, 13, 0))
        );
        let every = CronTz::parse("*/15 * * * *", "UTC").unwrap();
        assert_eq!(
            every.next_after(utc(2026, 1, 1, 0, 0)),
            Some(utc(2026, 1, 1, 0, 15))
        );
        let daily = CronTz::parse("@daily", "Asia/Tokyo").unwrap();
        assert_eq!(
            daily.next_after(utc(2026, 1, 1, 16, 0)),
            Some(utc(2026, 1, 2, 15, 0))
        );
    }

    #[test]
    fn bad_expressions_and_zones_are_named() {
        for (cron, tz, says) in [
            ("", "UTC", "0 fields"),
            ("* * *", "UTC", "3 fields"),
            ("* * * * * *", "UTC", "6 fields"),
            ("61 * * * *", "UTC", "cron expression"),
            ("* 25 * * *", "UTC", "cron expression"),
            ("* * * * FOO", "UTC", "cron expression"),
            ("0 0 30 2 *", "UTC", "never fires"),
            // Found by fuzzing: an empty list item took seconds to be called "never fires".
            (
                ",   * * * *",
                "UTC",
                "minute field \",\" has an empty list item",
            ),
            ("0 1,,2 * * *", "UTC", "hour field"),
            ("0 0 * 1, *", "UTC", "month field"),
            ("@sometimes", "UTC", "cron expression"),
            ("* * * * *", "Mars/Olympus", "IANA"),
            ("* * * * *", "", "IANA"),
            ("* * * * *", "utc+2", "IANA"),
        ] {
            let e = CronTz::parse(cron, tz).unwrap_err();
            assert!(e.to_string().contains(says), "{cron:?} {tz:?}: {e}");
        }
        let long = "1,".repeat(200) + "1 * * * *";
        assert!(
            CronTz::parse(&long, "UTC")
                .unwrap_err()
                .to_string()
                .contains("limit")
        );
    }

    #[test]
    fn templates_leave_keys_start_times_and_the_label_to_the_schedule() {
        let dag = || DagSpec::new().node(NodeSpec::step("n", "scan"));
        let ok = |_: &StepName| true;
        let limits = Limits::default();
        let base = RunSpec::new(dag(), json!(null));
        let valid = ScheduleSpec::new("nightly", "0 2 * * *", base.clone())
            .time_zone("Europe/Berlin")
            .validate(&limits, &ok)
            .unwrap();
        assert_eq!(valid.name().as_str(), "nightly");
        assert_eq!(valid.cron().time_zone(), "Europe/Berlin");
        assert_eq!(
            valid
                .run()
                .spec()
                .labels
                .get(SCHEDULE_LABEL)
                .map(String::as_str),
            Some("nightly")
        );
        for (spec, says) in [
            (base.clone().idempotency_key("k"), "idempotency key"),
            (base.clone().start_at(Utc::now()), "start time"),
            (
                base.clone().label(SCHEDULE_LABEL, "x"),
                "set by the schedule",
            ),
        ] {
            let e = ScheduleSpec::new("s", "* * * * *", spec)
                .validate(&limits, &ok)
                .unwrap_err();
            assert!(e.to_string().contains(says), "{e}");
        }
        let e = ScheduleSpec::new("Bad Name", "* * * * *", base.clone())
            .validate(&limits, &ok)
            .unwrap_err();
        assert!(e.to_string().contains("schedule name"), "{e}");
        let e = ScheduleSpec::new("s", "* * * * *", base)
            .validate(&limits, &|_| false)
            .unwrap_err();
        assert!(e.to_string().contains("scan"), "{e}");
    }
}
