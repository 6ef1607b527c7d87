//! Run events of a [`SqlWorkflowStore`]: its in-process feed, and on PostgreSQL the
//! `LISTEN` task that fills it from every host's notifications (see
//! [`events`](crate::workflow::store::events)).

use super::SqlWorkflowStore;
use crate::OrchestrateError;
use crate::workflow::store::events::{CHANNEL, RunEvent, WeakFeed};
use ate_core::{CoreError, DbPool};
use std::time::Duration;
use tokio::sync::broadcast;

/// How often an idle listener checks whether its store is gone.
const IDLE_CHECK: Duration = Duration::from_secs(5);

impl SqlWorkflowStore {
    /// Subscribes to the store's feed; on PostgreSQL, first makes sure a listener fills it
    /// (started by the first subscriber, on the current tokio runtime).
    pub(super) async fn subscribe(
        &self,
    ) -> Result<broadcast::Receiver<RunEvent>, OrchestrateError> {
        // Subscribed before listening: nothing delivered in between is missed.
        let events = self.feed.subscribe();
        if let DbPool::Postgres(pool) = self.db.pool() {
            let weak = self.feed.downgrade();
            self.feed.listen_once(|| listen(pool.clone(), weak)).await?;
        }
        Ok(events)
    }
}

/// Starts listening on [`CHANNEL`] and hands every notification to `feed` until the feed is
/// gone. Returns once the `LISTEN` is in place.
async fn listen(pool: sqlx::PgPool, feed: WeakFeed) -> Result<(), OrchestrateError> {
    let mut listener = sqlx::postgres::PgListener::connect_with(&pool)
        .await
        .map_err(CoreError::from)?;
    listener.listen(CHANNEL).await.map_err(CoreError::from)?;
    tokio::spawn(async move {
        loop {
            match tokio::time::timeout(IDLE_CHECK, listener.try_recv()).await {
                Err(_) => {
                    if feed.is_gone() {
                        return;
                    }
                }
                Ok(Ok(Some(note))) => match RunEvent::from_payload(note.payload()) {
                    Ok(event) => {
                        if !feed.publish(event) {
                            return;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "ignoring a workflow notification"),
                },
                // The connection was lost; the next call reconnects and listens again.
                Ok(Ok(None)) => {
                    tracing::warn!("the workflow notification connection was lost; reconnecting")
                }
                // The host closed the database: let go of the connection (closing waits
                // for it) and stop.
                Ok(Err(sqlx::Error::PoolClosed)) => return,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "workflow notifications failed; retrying in 1 s");
                    if feed.is_gone() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });
    Ok(())
}
