//! [`SchedulerConfig`]: how many probes run at once, how many results are kept.

use crate::error::OrchestrateError;

/// The scheduler's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SchedulerConfig {
    /// Most probes (HTTP, TCP, custom) running at once; further due checks wait for a
    /// slot. Default 64.
    pub max_concurrent_checks: usize,
    /// Results kept per check (oldest dropped first). Default 10.
    pub results_kept: usize,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            max_concurrent_checks: 64,
            results_kept: 10,
        }
    }
}

impl SchedulerConfig {
    /// Sets [`SchedulerConfig::max_concurrent_checks`] (1 to 100,000).
    pub fn max_concurrent_checks(mut self, n: usize) -> Self {
        self.max_concurrent_checks = n;
        self
    }

    /// Sets [`SchedulerConfig::results_kept`] (1 to 1,000).
    pub fn results_kept(mut self, n: usize) -> Self {
        self.results_kept = n;
        self
    }

    pub(super) fn validate(&self) -> Result<(), OrchestrateError> {
        if !(1..=100_000).contains(&self.max_concurrent_checks) {
            return Err(OrchestrateError::invalid(
                "max_concurrent_checks",
                format!("{} is outside 1..=100000", self.max_concurrent_checks),
            ));
        }
        if !(1..=1000).contains(&self.results_kept) {
            return Err(OrchestrateError::invalid(
                "results_kept",
                format!("{} is outside 1..=1000", self.results_kept),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_bounds() {
        assert!(SchedulerConfig::default().validate().is_ok());
        assert!(
            SchedulerConfig::default()
                .max_concurrent_checks(0)
                .validate()
                .is_err()
        );
        assert!(
            SchedulerConfig::default()
                .results_kept(0)
                .validate()
                .is_err()
        );
    }
}
