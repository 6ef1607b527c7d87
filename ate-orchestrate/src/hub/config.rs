//! [`HubConfig`]: how a [`ServiceHub`](super::ServiceHub) balances, breaks, measures and
//! checks.

use crate::balance::{DEFAULT_PANIC_THRESHOLD, Strategy};
use crate::breaker::{BreakerConfig, OutlierConfig};
use crate::health::SchedulerConfig;
use crate::metrics::RecorderConfig;
use std::time::Duration;

/// How a [`ServiceHub`](super::ServiceHub) balances, breaks and measures. `Default` gives the documented
/// defaults.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HubConfig {
    /// The strategy when a pick names none (default least request, two random choices).
    pub strategy: Strategy,
    /// Below this share of healthy instances, balance over all (default 0.5; 0 disables).
    pub panic_threshold: f64,
    /// Circuit breakers, one per instance.
    pub breaker: BreakerConfig,
    /// Outlier ejection, per service.
    pub outlier: OutlierConfig,
    /// Window aggregates (p50/p95/p99, rates).
    pub recorder: RecorderConfig,
    /// The health-check scheduler.
    pub scheduler: SchedulerConfig,
    /// How often alert rules are evaluated (default 1 s).
    pub alert_interval: Duration,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            strategy: Strategy::LeastRequest,
            panic_threshold: DEFAULT_PANIC_THRESHOLD,
            breaker: BreakerConfig::default(),
            outlier: OutlierConfig::default(),
            recorder: RecorderConfig::default(),
            scheduler: SchedulerConfig::default(),
            alert_interval: Duration::from_secs(1),
        }
    }
}

impl HubConfig {
    /// Sets [`HubConfig::strategy`].
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// Sets [`HubConfig::panic_threshold`].
    pub fn panic_threshold(mut self, share: f64) -> Self {
        self.panic_threshold = share;
        self
    }

    /// Sets [`HubConfig::breaker`].
    pub fn breaker(mut self, breaker: BreakerConfig) -> Self {
        self.breaker = breaker;
        self
    }

    /// Sets [`HubConfig::outlier`].
    pub fn outlier(mut self, outlier: OutlierConfig) -> Self {
        self.outlier = outlier;
        self
    }

    /// Sets [`HubConfig::recorder`].
    pub fn recorder(mut self, recorder: RecorderConfig) -> Self {
        self.recorder = recorder;
        self
    }

    /// Sets [`HubConfig::scheduler`].
    pub fn scheduler(mut self, scheduler: SchedulerConfig) -> Self {
        self.scheduler = scheduler;
        self
    }

    /// Sets [`HubConfig::alert_interval`].
    pub fn alert_interval(mut self, interval: Duration) -> Self {
        self.alert_interval = interval;
        self
    }
}
