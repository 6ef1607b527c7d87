//! TCP connect checks.

use super::millis;
use super::spec::TcpTarget;
use crate::registry::HealthStatus;
use std::io::ErrorKind;
use std::time::Duration;
use tokio::net::TcpStream;

/// Connects to `target` within `timeout`: connected is passing, anything else critical.
/// The connection is closed at once.
pub(crate) async fn run(target: &TcpTarget, timeout: Duration) -> (HealthStatus, String) {
    let connect = async {
        match target {
            TcpTarget::Addr(addr) => TcpStream::connect(addr).await,
            TcpTarget::Host(host, port) => TcpStream::connect((host.as_str(), *port)).await,
        }
    };
    match tokio::time::timeout(timeout, connect).await {
        Ok(Ok(stream)) => {
            drop(stream);
            (
                HealthStatus::Passing,
                format!("TCP connect {target}: success"),
            )
        }
        Ok(Err(e)) => {
            let why = match e.kind() {
                ErrorKind::ConnectionRefused => "connection refused".to_owned(),
                _ => format!("connection failed: {e}"),
            };
            (
                HealthStatus::Critical,
                format!("TCP connect {target}: {why}"),
            )
        }
        Err(_) => (
            HealthStatus::Critical,
            format!(
                "TCP connect {target}: timed out after {} ms",
                millis(timeout)
            ),
        ),
    }
}
