//! Delivering state changes: synchronous listeners and a broadcast stream.

use std::fmt;
use std::sync::{Arc, RwLock};
use tokio::sync::broadcast;

/// Events buffered per stream subscriber before the slowest one starts losing the oldest.
pub const EVENT_STREAM_CAPACITY: usize = 1024;

/// A synchronous listener: called on the thread that caused the change, after the
/// breaker's or detector's lock was released (so it may call back into them).
pub type Listener<E> = Arc<dyn Fn(&E) + Send + Sync>;

/// Listeners plus a broadcast channel.
pub(crate) struct EventHub<E> {
    listeners: RwLock<Vec<Listener<E>>>,
    stream: broadcast::Sender<E>,
}

impl<E: Clone> EventHub<E> {
    pub(crate) fn new() -> Self {
        EventHub {
            listeners: RwLock::new(Vec::new()),
            stream: broadcast::channel(EVENT_STREAM_CAPACITY).0,
        }
    }

    pub(crate) fn add_listener(&self, listener: Listener<E>) {
        self.listeners
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(listener);
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<E> {
        self.stream.subscribe()
    }

    pub(crate) fn emit(&self, events: Vec<E>) {
        if events.is_empty() {
            return;
        }
        let listeners = self
            .listeners
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        for event in events {
            for listener in &listeners {
                listener(&event);
            }
            // No subscriber is not an error: the stream is optional.
            let _ = self.stream.send(event);
        }
    }
}

impl<E> fmt::Debug for EventHub<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let listeners = self.listeners.read().map(|l| l.len()).unwrap_or_default();
        f.debug_struct("EventHub")
            .field("listeners", &listeners)
            .field("subscribers", &self.stream.receiver_count())
            .finish()
    }
}
