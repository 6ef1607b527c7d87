//! Per-run logs: what step handlers write through their context ([`LogEntry`]), and how
//! they are read back ([`LogQuery`]).

use crate::OrchestrateError;
use crate::workflow::dag::NodeId;
use ate_core::Cursor;
use chrono::{DateTime, Utc};
use serde_json::Value;

/// Longest log message (bytes); longer ones are cut at a character boundary, with `…`.
pub const MAX_LOG_MESSAGE_BYTES: usize = 4 * 1024;
/// Largest `fields` object of one entry, as JSON (bytes); larger ones are replaced by
/// `{"truncated": true}`.
pub const MAX_LOG_FIELDS_BYTES: usize = 16 * 1024;

/// How serious a log entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum LogLevel {
    /// Detail for debugging.
    Debug,
    /// Progress.
    Info,
    /// Something unexpected, handled.
    Warn,
    /// A failure.
    Error,
}

impl LogLevel {
    /// The level as stored (`debug`, `info`, `warn`, `error`).
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }

    /// Parses [`as_str`](Self::as_str)'s form.
    pub fn parse(s: &str) -> Result<Self, OrchestrateError> {
        match s {
            "debug" => Ok(LogLevel::Debug),
            "info" => Ok(LogLevel::Info),
            "warn" => Ok(LogLevel::Warn),
            "error" => Ok(LogLevel::Error),
            other => Err(OrchestrateError::invalid(
                "log level",
                format!("unknown level {other:?}"),
            )),
        }
    }

    /// The level's rank (debug 0 … error 3), as stored for filtering.
    pub(crate) fn rank(self) -> i32 {
        match self {
            LogLevel::Debug => 0,
            LogLevel::Info => 1,
            LogLevel::Warn => 2,
            LogLevel::Error => 3,
        }
    }
}

/// One log entry of a run.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct LogEntry {
    /// When it was written.
    pub at: DateTime<Utc>,
    /// How serious.
    pub level: LogLevel,
    /// The node that wrote it.
    pub node: NodeId,
    /// The attempt that wrote it.
    pub attempt: u32,
    /// What happened.
    pub message: String,
    /// Structured details (a JSON object, or null).
    pub fields: Value,
}

impl LogEntry {
    /// An entry, with the message and fields held to [`MAX_LOG_MESSAGE_BYTES`] and
    /// [`MAX_LOG_FIELDS_BYTES`].
    pub fn new(
        at: DateTime<Utc>,
        level: LogLevel,
        node: NodeId,
        attempt: u32,
        message: &str,
        fields: Value,
    ) -> Self {
        let message = if message.len() > MAX_LOG_MESSAGE_BYTES {
            let mut end = MAX_LOG_MESSAGE_BYTES - '…'.len_utf8();
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}…", &message[..end])
        } else {
            message.to_owned()
        };
        let size = serde_json::to_vec(&fields).map_or(usize::MAX, |v| v.len());
        let fields = if size > MAX_LOG_FIELDS_BYTES {
            serde_json::json!({"truncated": true})
        } else {
            fields
        };
        LogEntry {
            at,
            level,
            node,
            attempt,
            message,
            fields,
        }
    }
}

/// Which log entries [`WorkflowStore::logs`](super::WorkflowStore::logs) returns, oldest
/// first.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct LogQuery {
    /// Only this node's entries.
    pub node: Option<String>,
    /// Only entries at least this serious.
    pub min_level: Option<LogLevel>,
    /// Page size (default and maximum: `ate_core::page`'s).
    pub limit: Option<u32>,
    /// Where the previous page ended.
    pub cursor: Option<Cursor>,
}

impl LogQuery {
    /// Every entry.
    pub fn new() -> Self {
        LogQuery::default()
    }

    /// Sets [`LogQuery::node`].
    pub fn node(mut self, node: impl Into<String>) -> Self {
        self.node = Some(node.into());
        self
    }

    /// Sets [`LogQuery::min_level`].
    pub fn min_level(mut self, level: LogLevel) -> Self {
        self.min_level = Some(level);
        self
    }

    /// Sets [`LogQuery::limit`].
    pub fn limit(mut self, n: u32) -> Self {
        self.limit = Some(n);
        self
    }

    /// Sets [`LogQuery::cursor`].
    pub fn cursor(mut self, cursor: Cursor) -> Self {
        self.cursor = Some(cursor);
        self
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn entries_are_bounded() {
        let node = NodeId::new("n").unwrap();
        let long = "é".repeat(5_000);
        let e = LogEntry::new(
            Utc::now(),
            LogLevel::Info,
            node.clone(),
            1,
            &long,
            json!({"k": 1}),
        );
        assert!(e.message.len() <= MAX_LOG_MESSAGE_BYTES && e.message.ends_with('…'));
        let big = json!({"blob": "x".repeat(MAX_LOG_FIELDS_BYTES)});
        let e = LogEntry::new(Utc::now(), LogLevel::Warn, node, 1, "m", big);
        assert_eq!(e.fields, json!({"truncated": true}));
        for level in [
            LogLevel::Debug,
            LogLevel::Info,
            LogLevel::Warn,
            LogLevel::Error,
        ] {
            assert_eq!(LogLevel::parse(level.as_str()).unwrap(), level);
        }
        assert!(LogLevel::parse("fatal").is_err());
        assert!(LogLevel::Debug < LogLevel::Error);
    }
}
