//! Importing codebases (issue 12). This part holds what an import learns about each file
//! ([`classify`]): its language, whether it is vendored, generated or binary, and its line
//! counts. Reading directories and archives into snapshots comes next.

mod classify;

pub use classify::{CLASSIFY_BYTES, FileClass, LineCounts, classify};
