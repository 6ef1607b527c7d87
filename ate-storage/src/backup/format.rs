//! The backup format: frames inside one Cobblestone message (see the [module
//! docs](super)).

use crate::StorageError;
use crate::cobblestone::{Cobblestone, Decryptor, Encryptor};
use serde_json::Value;
use std::collections::BTreeMap;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The plaintext's first bytes: a project backup.
pub(super) const MAGIC: &[u8; 8] = b"ATEBKP1\n";
/// The plaintext's first bytes: a tenant backup.
pub(super) const TENANT_MAGIC: &[u8; 8] = b"ATEBKT1\n";
/// The Cobblestone context of every backup.
pub(super) const CONTEXT: &[u8] = b"ate.backup.v1";
/// The format version in the manifest.
pub(super) const FORMAT: u32 = 1;
/// The largest frame header (JSON) accepted, in bytes.
pub(super) const MAX_HEADER: u32 = 16 << 20;

/// Frame kinds.
pub(super) const MANIFEST: u8 = b'M';
pub(super) const FILE: u8 = b'F';
pub(super) const PAYLOAD: u8 = b'P';
pub(super) const END: u8 = b'E';
/// A tenant backup's manifest, its objects and its end.
pub(super) const TENANT: u8 = b'T';
pub(super) const OBJECT: u8 = b'O';
pub(super) const TENANT_END: u8 = b'Z';

/// A tenant backup's manifest: what follows it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct TenantManifest {
    pub(super) format: u32,
    /// The projects' names, in the order their frames follow.
    pub(super) projects: Vec<String>,
    pub(super) objects: u64,
}

/// The header of an object frame.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct ObjectDoc {
    pub(super) path: String,
    pub(super) content_type: String,
    pub(super) metadata: Value,
    pub(super) size: u64,
    pub(super) sha256: String,
}

/// The manifest: everything but contents.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct Manifest {
    pub(super) format: u32,
    pub(super) project: ProjectDoc,
    pub(super) snapshots: Vec<SnapshotDoc>,
    pub(super) analysis: Vec<ResultDoc>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct ProjectDoc {
    pub(super) name: String,
    pub(super) description: String,
    pub(super) labels: BTreeMap<String, String>,
    pub(super) settings: Value,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct SnapshotDoc {
    pub(super) label: String,
    pub(super) source: String,
    pub(super) files: u64,
    pub(super) logical_bytes: u64,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct ResultDoc {
    /// Index into the manifest's snapshots.
    pub(super) snapshot: Option<usize>,
    pub(super) kind: String,
    pub(super) analyzer: String,
    pub(super) analyzer_version: String,
    pub(super) status: crate::analysis::AnalysisStatus,
    pub(super) summary: Value,
    pub(super) error: Option<String>,
    pub(super) payloads: Vec<PayloadDoc>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct PayloadDoc {
    pub(super) name: String,
    pub(super) content_type: String,
    pub(super) size: u64,
    pub(super) sha256: String,
}

/// The header of a file frame.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct FileDoc {
    pub(super) snapshot: usize,
    pub(super) path: String,
    pub(super) mode: u32,
    pub(super) link: Option<String>,
}

/// The header of a payload frame.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct PayloadFrameDoc {
    pub(super) result: usize,
    pub(super) name: String,
}

/// Writes plaintext into a Cobblestone message on `out`.
pub(super) struct SealedWriter<'a> {
    enc: Option<Encryptor>,
    out: &'a mut (dyn AsyncWrite + Unpin + Send),
    pub(super) written: u64,
}

impl<'a> SealedWriter<'a> {
    pub(super) fn new(
        cipher: &Cobblestone,
        key: &[u8],
        out: &'a mut (dyn AsyncWrite + Unpin + Send),
    ) -> Result<Self, StorageError> {
        Ok(SealedWriter {
            enc: Some(Encryptor::new(cipher, key, CONTEXT)?),
            out,
            written: 0,
        })
    }

    pub(super) async fn write(&mut self, plain: &[u8]) -> Result<(), StorageError> {
        let enc = self
            .enc
            .as_mut()
            .ok_or_else(|| StorageError::invalid("backup", "written after its end"))?;
        let mut sealed = Vec::with_capacity(plain.len() + 64);
        enc.update(plain, &mut sealed)?;
        self.out.write_all(&sealed).await?;
        self.written += sealed.len() as u64;
        Ok(())
    }

    /// Writes a frame's kind and header, and the length of the body that follows.
    pub(super) async fn frame(
        &mut self,
        kind: u8,
        header: &impl serde::Serialize,
        body_len: u64,
    ) -> Result<(), StorageError> {
        let json = serde_json::to_vec(header)
            .map_err(|e| StorageError::invalid("backup", e.to_string()))?;
        let len = u32::try_from(json.len())
            .map_err(|_| StorageError::invalid("backup", "a frame header over 4 GiB"))?;
        let mut head = Vec::with_capacity(json.len() + 13);
        head.push(kind);
        head.extend_from_slice(&len.to_be_bytes());
        head.extend_from_slice(&json);
        head.extend_from_slice(&body_len.to_be_bytes());
        self.write(&head).await
    }

    pub(super) async fn finish(mut self) -> Result<u64, StorageError> {
        let mut sealed = Vec::new();
        if let Some(enc) = self.enc.take() {
            enc.finish(&mut sealed)?;
        }
        self.out.write_all(&sealed).await?;
        self.out.flush().await?;
        Ok(self.written + sealed.len() as u64)
    }
}

/// Decrypts `input` into `plain`, then closes `plain`; `Integrity` for any damage,
/// truncation included (found at the end).
pub(super) async fn decrypt(
    cipher: &Cobblestone,
    key: &[u8],
    input: &mut (dyn AsyncRead + Unpin + Send),
    mut plain: tokio::io::DuplexStream,
) -> Result<(), StorageError> {
    let mut dec = Decryptor::new(cipher, key, CONTEXT)?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = input.read(&mut buf).await?;
        let mut out = Vec::with_capacity(n + 64);
        if n == 0 {
            dec.finish(&mut out)?;
        } else {
            dec.update(&buf[..n], &mut out)?;
        }
        // The reader may have stopped early (its own error): that error is the one to
        // report, so a closed pipe here ends quietly.
        if !out.is_empty() && plain.write_all(&out).await.is_err() {
            return Ok(());
        }
        if n == 0 {
            let _ = plain.shutdown().await;
            return Ok(());
        }
    }
}

/// Reads one frame's kind and header (`None` at a clean end of input before a frame).
pub(super) async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
) -> Result<(u8, Vec<u8>, u64), StorageError> {
    let kind = r.read_u8().await.map_err(truncated)?;
    let len = r.read_u32().await.map_err(truncated)?;
    if len > MAX_HEADER {
        return Err(StorageError::invalid(
            "backup",
            format!("a frame header of {len} bytes (at most {MAX_HEADER})"),
        ));
    }
    let mut header = vec![0u8; len as usize];
    r.read_exact(&mut header).await.map_err(truncated)?;
    let body = r.read_u64().await.map_err(truncated)?;
    Ok((kind, header, body))
}

pub(super) fn truncated(e: std::io::Error) -> StorageError {
    StorageError::Integrity(format!("the backup ends early: {e}"))
}

pub(super) fn parse<T: serde::de::DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, StorageError> {
    serde_json::from_slice(bytes).map_err(|e| StorageError::invalid(what, e.to_string()))
}
