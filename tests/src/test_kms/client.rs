//! [`ProcessKms`]: a [`KeyProvider`] that asks a `test-kms` process to wrap and unwrap,
//! written against ate-core's public API only, as a KMS integration outside ATE would be.

use ate_core::CoreError;
use ate_core::keys::{KeyProvider, SecretBytes, WrappedKey};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};

/// How [`ProcessKms`] names the KMS's keys in [`WrappedKey::key_id`].
const KEY_ID_PREFIX: &str = "test-kms:";

/// One connection to the KMS process: requests are answered in order, one at a time.
struct Connection {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        // Our own child: stop it and reap it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unavailable(message: String, source: Option<std::io::Error>) -> CoreError {
    CoreError::Unavailable {
        message,
        source: source.map(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>),
    }
}

/// A [`KeyProvider`] backed by a `test-kms` process speaking the line protocol of
/// [`test_kms`](super).
pub struct ProcessKms {
    program: PathBuf,
    key_id: String,
    connection: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for ProcessKms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessKms")
            .field("program", &self.program)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl ProcessKms {
    /// Starts `program` (the `test-kms` binary) on the key-store file `key_store` and asks
    /// it for its current key.
    pub fn spawn(program: &Path, key_store: &Path) -> Result<ProcessKms, CoreError> {
        let mut child = Command::new(program)
            .arg(key_store)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| unavailable(format!("cannot start {}", program.display()), Some(e)))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(CoreError::Internal("the KMS process has no pipes".into()));
        };
        let mut connection = Connection {
            child,
            stdin,
            stdout: BufReader::new(stdout),
        };
        let reply = exchange(&mut connection, "current")?;
        let name = match reply.as_slice() {
            [name] => name.clone(),
            other => return Err(protocol_error("current", other)),
        };
        Ok(ProcessKms {
            program: program.to_owned(),
            key_id: format!("{KEY_ID_PREFIX}{name}"),
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    /// Stops the KMS process, as an outage would: every later call is `Unavailable`.
    pub fn stop(&self) {
        if let Ok(mut c) = self.connection.lock() {
            let _ = c.child.kill();
            let _ = c.child.wait();
        }
    }

    /// Sends one request on a blocking thread; the reply's fields after `ok`.
    async fn request(&self, line: String) -> Result<Vec<String>, CoreError> {
        let connection = self.connection.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = connection
                .lock()
                .map_err(|_| unavailable("the KMS connection was poisoned".into(), None))?;
            exchange(&mut c, &line)
        })
        .await
        .map_err(|e| CoreError::Internal(format!("KMS request task failed: {e}")))?
    }
}

/// Writes `line`, reads the reply line, and maps `err <kind> <message>` to a [`CoreError`].
fn exchange(c: &mut Connection, line: &str) -> Result<Vec<String>, CoreError> {
    let io = |e: std::io::Error| unavailable("the KMS process is unreachable".into(), Some(e));
    c.stdin.write_all(line.as_bytes()).map_err(io)?;
    c.stdin.write_all(b"\n").map_err(io)?;
    c.stdin.flush().map_err(io)?;
    let mut reply = String::new();
    if c.stdout.read_line(&mut reply).map_err(io)? == 0 {
        return Err(unavailable(
            "the KMS process closed its output".into(),
            None,
        ));
    }
    let reply = reply.trim_end_matches('\n');
    match reply.split_once(' ').unwrap_or((reply, "")) {
        ("ok", rest) => Ok(rest.split(' ').map(str::to_owned).collect()),
        ("err", rest) => {
            let (kind, message) = rest.split_once(' ').unwrap_or((rest, ""));
            Err(match kind {
                "invalid" => CoreError::invalid("KMS request", message),
                "integrity" => CoreError::Integrity(message.to_owned()),
                "unknown-key" => {
                    CoreError::not_found("master key", format!("{KEY_ID_PREFIX}{message}"))
                }
                "unavailable" => unavailable(message.to_owned(), None),
                _ => CoreError::Internal(format!("KMS error of unknown kind: {reply}")),
            })
        }
        _ => Err(CoreError::Internal(format!(
            "KMS reply not understood: {reply}"
        ))),
    }
}

fn protocol_error(request: &str, reply: &[String]) -> CoreError {
    CoreError::Internal(format!("KMS reply to {request} not understood: {reply:?}"))
}

#[async_trait::async_trait]
impl KeyProvider for ProcessKms {
    fn key_id(&self) -> &str {
        &self.key_id
    }

    async fn wrap(&self, secret: &[u8], context: &[u8]) -> Result<WrappedKey, CoreError> {
        let reply = self
            .request(format!(
                "wrap {} {}",
                hex::encode(context),
                hex::encode(secret)
            ))
            .await?;
        match reply.as_slice() {
            [name, blob] => Ok(WrappedKey {
                key_id: format!("{KEY_ID_PREFIX}{name}"),
                ciphertext: hex::decode(blob).map_err(|_| protocol_error("wrap", &reply))?,
            }),
            other => Err(protocol_error("wrap", other)),
        }
    }

    async fn unwrap(&self, wrapped: &WrappedKey, context: &[u8]) -> Result<SecretBytes, CoreError> {
        // A key this KMS cannot have made (another provider's, or a name the protocol
        // cannot carry) is unknown here.
        let name = wrapped
            .key_id
            .strip_prefix(KEY_ID_PREFIX)
            .filter(|n| !n.is_empty() && !n.contains(char::is_whitespace))
            .ok_or_else(|| CoreError::not_found("master key", &wrapped.key_id))?;
        let reply = self
            .request(format!(
                "unwrap {name} {} {}",
                hex::encode(context),
                hex::encode(&wrapped.ciphertext)
            ))
            .await?;
        match reply.as_slice() {
            [secret] => Ok(SecretBytes::new(
                hex::decode(secret).map_err(|_| protocol_error("unwrap", &reply))?,
            )),
            other => Err(protocol_error("unwrap", other)),
        }
    }
}
