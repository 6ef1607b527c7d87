//! The analysis-payload half of a project's check: every recorded payload has its blob,
//! of the recorded size, with a header that authenticates (with `read_all`, decrypting to
//! the recorded SHA-256).

use super::{KeyOutcome, ProjectCheck, Stat};
use crate::StorageError;
use crate::analysis::payload::{self, Source, payload_name};
use crate::cobblestone::HEADER_LEN;
use crate::verify::ProblemKind;
use ate_core::{CoreError, with_pool};
use std::collections::HashMap;
use uuid::Uuid;

impl ProjectCheck<'_> {
    pub(super) async fn payload_rows(&mut self) -> Result<Vec<PayloadRow>, StorageError> {
        let rows: Vec<PayloadRow> = with_pool!(self.core.db, |pool| {
            sqlx::query_as(
                "SELECT p.result_id, p.name, p.blob_id, p.key_version, p.size, p.stored_bytes, \
                 p.sha256 FROM analysis_payloads p JOIN analysis_results r \
                 ON r.id = p.result_id WHERE r.project_id = $1 ORDER BY p.blob_id",
            )
            .bind(self.project.as_uuid())
            .fetch_all(pool)
            .await
            .map_err(CoreError::from)?
        });
        self.report.payloads += rows.len() as u64;
        Ok(rows)
    }

    /// Every analysis payload has its blob, of the recorded size, whose header
    /// authenticates (with `read_all`: which decrypts to the recorded size and SHA-256).
    pub(super) async fn check_payloads(
        &mut self,
        rows: Vec<PayloadRow>,
        keys: &HashMap<u32, KeyOutcome>,
    ) -> Result<(), StorageError> {
        for row in rows {
            let name = payload_name(self.tenant, self.project, row.blob_id);
            let found = self.check_payload(&row, &name, keys).await?;
            if let Some((kind, detail)) = found {
                let p = self
                    .problem(kind, detail)
                    .path(format!("analysis {} payload {}", row.result_id, row.name))
                    .blob(name);
                self.report.problems.push(p);
            }
        }
        Ok(())
    }

    async fn check_payload(
        &mut self,
        row: &PayloadRow,
        name: &str,
        keys: &HashMap<u32, KeyOutcome>,
    ) -> Result<Option<(ProblemKind, String)>, StorageError> {
        let (Ok(version), Ok(stored), Ok(size)) = (
            u32::try_from(row.key_version),
            u64::try_from(row.stored_bytes),
            u64::try_from(row.size),
        ) else {
            return Ok(Some((
                ProblemKind::BadIndexRow,
                format!(
                    "out-of-range fields (key version {}, size {}, stored bytes {})",
                    row.key_version, row.size, row.stored_bytes
                ),
            )));
        };
        match self.stat(name).await {
            // Rows go before their blobs: one whose row is gone now was deleted meanwhile.
            Stat::Missing if !self.payload_recorded(row).await? => return Ok(None),
            Stat::Missing => {
                return Ok(Some((
                    ProblemKind::MissingBlob,
                    format!("the payload's blob ({stored} bytes) is missing"),
                )));
            }
            Stat::Failed(e) => return Ok(Some((ProblemKind::ReadFailed, e))),
            Stat::Size(found) if found != stored => {
                return Ok(Some((
                    ProblemKind::SizeMismatch,
                    format!("the blob is {found} bytes; its row says {stored}"),
                )));
            }
            Stat::Size(_) => {}
        }
        let key = match keys.get(&version) {
            Some(Ok(key)) => key,
            // Reported once for the key version.
            _ => return Ok(None),
        };
        let context = payload::context(
            self.tenant,
            self.project,
            row.result_id,
            row.blob_id,
            version,
        );
        let header = match self
            .core
            .blobs
            .read_named(name, 0..(HEADER_LEN as u64).min(stored))
            .await
        {
            Ok(h) => h,
            Err(e) => return Ok(Some((ProblemKind::ReadFailed, e.to_string()))),
        };
        let header_len = header.len() as u64;
        self.report.bytes_read += header_len;
        if let Err(e) = self
            .core
            .cipher
            .verify_header(key.expose_secret(), &context, &header)
        {
            return Ok(Some((ProblemKind::HeaderMismatch, e.to_string())));
        }
        if !self.options.read_all {
            return Ok(None);
        }
        let source = Source {
            blobs: &self.core.blobs,
            cipher: &self.core.cipher,
            name: name.to_owned(),
            stored_bytes: stored,
            key: key.expose_secret(),
            context,
            size,
            sha256: &row.sha256,
        };
        let outcome = payload::decrypt(&source, &mut tokio::io::sink()).await;
        // The header was counted above.
        self.report.bytes_read += stored - header_len;
        Ok(match outcome {
            Ok((n, digest)) if n == size && digest[..] == row.sha256[..] => None,
            Ok((n, _)) => Some((
                ProblemKind::ChecksumMismatch,
                format!(
                    "it decrypts to {n} bytes whose SHA-256 is not the recorded one ({size} \
                     bytes recorded)"
                ),
            )),
            // Deleted (row, then blob) while it was being read: not damage.
            Err(_) if !self.payload_recorded(row).await? => None,
            Err(e) => Some((ProblemKind::Corrupt, e.to_string())),
        })
    }

    async fn payload_recorded(&self, row: &PayloadRow) -> Result<bool, StorageError> {
        let n: i64 = with_pool!(self.core.db, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM analysis_payloads WHERE blob_id = $1")
                .bind(row.blob_id)
                .fetch_one(pool)
                .await
                .map_err(CoreError::from)?
        });
        Ok(n > 0)
    }
}

/// A payload row.
#[derive(sqlx::FromRow)]
pub(super) struct PayloadRow {
    result_id: Uuid,
    name: String,
    blob_id: Uuid,
    pub(super) key_version: i64,
    size: i64,
    stored_bytes: i64,
    sha256: Vec<u8>,
}
