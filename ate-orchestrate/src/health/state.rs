//! Consul's thresholds: a check's status flips only after enough consecutive results.

use crate::error::OrchestrateError;
use crate::registry::HealthStatus;

/// The status of one check after Consul's thresholds, as a pure state machine (no time, no
/// I/O).
///
/// Behavior (Consul's `StatusHandler`):
/// * it starts **critical**, with both counters at zero;
/// * a passing or warning result resets the failure counter and counts one success; once
///   there are `success_before_passing` consecutive successes the status becomes that
///   result (passing or warning), and stays in step with later successes;
/// * a critical result resets the success counter and counts one failure; once there are
///   `failures_before_critical` consecutive failures the status becomes critical;
/// * thresholds of 1 follow every result at once.
///
/// A flapping endpoint (passing, critical, passing, …) with thresholds above 1 therefore
/// never flips the status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThresholdState {
    status: HealthStatus,
    successes: u32,
    failures: u32,
    success_before_passing: u32,
    failures_before_critical: u32,
}

impl ThresholdState {
    /// A new state (critical). Both thresholds must be at least 1.
    pub fn new(
        success_before_passing: u32,
        failures_before_critical: u32,
    ) -> Result<Self, OrchestrateError> {
        if success_before_passing == 0 {
            return Err(OrchestrateError::invalid(
                "success_before_passing",
                "must be at least 1 (1 = the first success turns the check passing)",
            ));
        }
        if failures_before_critical == 0 {
            return Err(OrchestrateError::invalid(
                "failures_before_critical",
                "must be at least 1 (1 = the first failure turns the check critical)",
            ));
        }
        Ok(ThresholdState {
            status: HealthStatus::Critical,
            successes: 0,
            failures: 0,
            success_before_passing,
            failures_before_critical,
        })
    }

    /// The current (thresholded) status.
    pub fn status(&self) -> HealthStatus {
        self.status
    }

    /// Feeds one observed result. Returns the new status when it changed.
    pub fn observe(&mut self, result: HealthStatus) -> Option<HealthStatus> {
        let before = self.status;
        if result.is_healthy() {
            self.failures = 0;
            self.successes = self.successes.saturating_add(1);
            if self.successes >= self.success_before_passing {
                self.status = result;
            }
        } else {
            self.successes = 0;
            self.failures = self.failures.saturating_add(1);
            if self.failures >= self.failures_before_critical {
                self.status = HealthStatus::Critical;
            }
        }
        (self.status != before).then_some(self.status)
    }

    /// Sets the status directly, bypassing the thresholds (TTL updates, as in Consul), and
    /// resets both counters. Returns the new status when it changed.
    pub fn set(&mut self, status: HealthStatus) -> Option<HealthStatus> {
        let before = self.status;
        self.status = status;
        self.successes = 0;
        self.failures = 0;
        (status != before).then_some(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use HealthStatus::{Critical, Passing, Warning};

    #[test]
    fn zero_thresholds_are_rejected() {
        for (s, f, field) in [
            (0, 1, "success_before_passing"),
            (1, 0, "failures_before_critical"),
        ] {
            match ThresholdState::new(s, f).unwrap_err() {
                OrchestrateError::InvalidInput { what, .. } => assert_eq!(what, field),
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn starts_critical_and_thresholds_of_one_follow_every_result() {
        let mut t = ThresholdState::new(1, 1).unwrap();
        assert_eq!(t.status(), Critical);
        assert_eq!(t.observe(Passing), Some(Passing));
        assert_eq!(t.observe(Passing), None);
        assert_eq!(t.observe(Critical), Some(Critical));
        assert_eq!(t.observe(Warning), Some(Warning));
        assert_eq!(t.observe(Passing), Some(Passing));
    }

    #[test]
    fn passing_needs_consecutive_successes() {
        let mut t = ThresholdState::new(3, 1).unwrap();
        assert_eq!(t.observe(Passing), None);
        assert_eq!(t.observe(Passing), None);
        // A failure in between restarts the count.
        assert_eq!(t.observe(Critical), None);
        assert_eq!(t.observe(Passing), None);
        assert_eq!(t.observe(Passing), None);
        assert_eq!(t.status(), Critical);
        assert_eq!(t.observe(Passing), Some(Passing));
    }

    #[test]
    fn critical_needs_consecutive_failures() {
        let mut t = ThresholdState::new(1, 3).unwrap();
        assert_eq!(t.observe(Passing), Some(Passing));
        assert_eq!(t.observe(Critical), None);
        assert_eq!(t.observe(Critical), None);
        assert_eq!(t.observe(Passing), None);
        assert_eq!(t.observe(Critical), None);
        assert_eq!(t.observe(Critical), None);
        assert_eq!(t.status(), Passing);
        assert_eq!(t.observe(Critical), Some(Critical));
    }

    #[test]
    fn flapping_never_flips_with_thresholds_above_one() {
        let mut t = ThresholdState::new(3, 3).unwrap();
        for _ in 0..3 {
            t.observe(Passing);
        }
        assert_eq!(t.status(), Passing);
        for i in 0..1000 {
            let r = if i % 2 == 0 { Critical } else { Passing };
            assert_eq!(t.observe(r), None, "flipped at result {i}");
        }
        assert_eq!(t.status(), Passing);
    }

    #[test]
    fn warning_counts_as_success() {
        let mut t = ThresholdState::new(2, 2).unwrap();
        assert_eq!(t.observe(Warning), None);
        assert_eq!(t.observe(Warning), Some(Warning));
        // Past the threshold, successes follow the result: warning -> passing at once.
        assert_eq!(t.observe(Passing), Some(Passing));
        assert_eq!(t.observe(Warning), Some(Warning));
    }

    #[test]
    fn set_bypasses_thresholds_and_resets_counters() {
        let mut t = ThresholdState::new(3, 3).unwrap();
        t.observe(Passing);
        t.observe(Passing);
        assert_eq!(t.set(Passing), Some(Passing));
        assert_eq!(t.set(Passing), None);
        // Counters were reset: two more criticals are not enough.
        t.observe(Critical);
        t.observe(Critical);
        assert_eq!(t.status(), Passing);
        assert_eq!(t.set(Critical), Some(Critical));
    }
}
