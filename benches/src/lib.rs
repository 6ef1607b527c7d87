//! Shared setup for ATE's criterion benches (see `benches/README.md`).
//!
//! Every bench group measures an ATE operation next to a *baseline*: the plainest way to do
//! the same work with the same dependency (a bare sqlx query, a plain OpenDAL write). Results
//! are read as the ratio between the two from the same run, which stays meaningful across
//! machines where absolute numbers do not. `report.py` prints the ratios.

#![forbid(unsafe_code)]

/// A current-thread tokio runtime for `criterion`'s async benches.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}
