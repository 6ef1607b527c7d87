//! The scheduler: one driver task, a queue ordered by due time, bounded concurrency.
//!
//! * `health_scheduler.rs`: [`HealthScheduler`], the handle, and the tasks it starts;
//! * `config.rs`: [`SchedulerConfig`];
//! * `queue.rs`: the due-time queue and the timing of runs;
//! * `check_table.rs`: checks, instances and their results, and when a status change is
//!   reported;
//! * `driver.rs`: the driver task and the probes it runs;
//! * `reporting.rs`: delivery to the [`HealthReporter`](super::HealthReporter).

mod check_table;
mod config;
mod driver;
mod health_scheduler;
mod queue;
mod reporting;

pub use config::SchedulerConfig;
pub use health_scheduler::HealthScheduler;
