//! [`ObjectStore::verify`]: the object half of the operator's integrity check.

use super::index::{ObjectRow, object_columns};
use super::{ObjectInfo, ObjectStore, object_context};
use crate::blob::{grace_cutoff, minted_at};
use crate::cobblestone::{HEADER_LEN, Layout};
use crate::error::StorageError;
use crate::keyring::DataKey;
use crate::verify::{Problem, ProblemKind, VerifyOptions, VerifyReport};
use ate_core::{Classify, CoreError, ErrorKind, ObjectId, Principal, TenantId, with_pool};
use futures::StreamExt;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

const ALL_ROWS: &str = concat!(
    "SELECT ",
    object_columns!(),
    " FROM objects WHERE tenant_id = $1 ORDER BY id"
);

/// A key version as the check found it: usable, or why not.
type KeyOutcome = Result<Arc<DataKey>, (ProblemKind, String)>;

/// What checking one object found.
struct Checked {
    bytes_read: u64,
    problem: Option<(ProblemKind, String)>,
}

impl ObjectStore {
    /// Checks `tenant`'s objects against their blobs (see [`crate::verify`]): every index row
    /// has its blob, of the size its plaintext size implies, with a header that
    /// authenticates under the row's key version (with [`VerifyOptions::read_all`]: every
    /// chunk decrypts and the plaintext matches the recorded SHA-256); every blob has a row
    /// or is an orphan. Reports each problem; changes nothing unless
    /// [`VerifyOptions::repair`] is set, and then only deletes orphan blobs older than the
    /// grace period (what [`collect_garbage`](Self::collect_garbage) would delete).
    ///
    /// Works for a deleted or suspended tenant too. A platform administrator's task.
    ///
    /// # Errors
    ///
    /// `PermissionDenied` for anyone but a platform administrator; `InvalidInput` for
    /// options out of range; backend errors that stop the check as a whole (listing the
    /// index or the blobs). Problems with single objects are in the report, not errors.
    pub async fn verify(
        &self,
        actor: &Principal,
        tenant: TenantId,
        options: &VerifyOptions,
    ) -> Result<VerifyReport, StorageError> {
        actor.require_platform_admin("verifying storage")?;
        options.validate()?;
        // Blobs first: a blob uploaded after the listing cannot be taken for an orphan of
        // a row committed in between.
        let blobs: HashSet<ObjectId> = self.blobs.list(tenant).await?.into_iter().collect();
        let rows: Vec<ObjectRow> = with_pool!(self.db, |pool| {
            sqlx::query_as(ALL_ROWS)
                .bind(tenant.as_uuid())
                .fetch_all(pool)
                .await
                .map_err(CoreError::from)?
        });
        let mut report = VerifyReport::new(tenant);
        report.objects = rows.len() as u64;
        report.blobs = blobs.len() as u64;
        let mut infos = Vec::with_capacity(rows.len());
        let mut indexed = HashSet::with_capacity(rows.len());
        for row in rows {
            let id = row.id();
            indexed.insert(id);
            match row.info() {
                Ok(info) => infos.push(info),
                Err(e) => report.problems.push(
                    Problem::new(tenant, ProblemKind::BadIndexRow, e.to_string())
                        .object(ObjectId::from_uuid(id).ok()),
                ),
            }
        }
        let keys = self.keys_for(tenant, &infos).await;
        let read_all = options.read_all;
        let mut checks = futures::stream::iter(infos.into_iter().map(|info| {
            let key = keys.get(&info.key_version).cloned();
            async move {
                let checked = self.check_object(&info, key, read_all).await;
                (info, checked)
            }
        }))
        .buffer_unordered(options.concurrency);
        while let Some((info, checked)) = checks.next().await {
            report.bytes_read += checked.bytes_read;
            if let Some((kind, detail)) = checked.problem {
                report.problems.push(
                    Problem::new(tenant, kind, detail)
                        .object(Some(info.id))
                        .path(info.path),
                );
            }
        }
        drop(checks);
        self.check_orphans(actor, tenant, &blobs, &indexed, options, &mut report)
            .await?;
        report.sort();
        Ok(report)
    }

    /// Unwraps each key version the rows use once.
    async fn keys_for(&self, tenant: TenantId, infos: &[ObjectInfo]) -> HashMap<u32, KeyOutcome> {
        let versions: BTreeSet<u32> = infos.iter().map(|i| i.key_version).collect();
        let mut keys = HashMap::with_capacity(versions.len());
        for version in versions {
            let outcome = match self.keyring.decryption_key(tenant, version).await {
                Ok(key) => Ok(Arc::new(key)),
                Err(e @ StorageError::KeyDestroyed { .. }) => {
                    Err((ProblemKind::KeyDestroyed, e.to_string()))
                }
                Err(e) => Err((
                    ProblemKind::KeyUnavailable,
                    format!("key version {version}: {e}"),
                )),
            };
            keys.insert(version, outcome);
        }
        keys
    }

    async fn check_object(
        &self,
        info: &ObjectInfo,
        key: Option<KeyOutcome>,
        read_all: bool,
    ) -> Checked {
        let mut checked = Checked {
            bytes_read: 0,
            problem: None,
        };
        let outcome = self
            .check_object_inner(info, key, read_all, &mut checked.bytes_read)
            .await;
        // An object deleted or overwritten while it was being checked (its row goes first)
        // is not damaged.
        checked.problem = match outcome {
            Err(_) if !self.still_indexed(info).await => None,
            outcome => outcome.err(),
        };
        checked
    }

    /// Checks one object. Its blob is looked up whether or not the listing showed it: one
    /// written after the listing is there, and one missing is reported only if its row is
    /// still there (a delete removes the row first).
    async fn check_object_inner(
        &self,
        info: &ObjectInfo,
        key: Option<KeyOutcome>,
        read_all: bool,
        bytes_read: &mut u64,
    ) -> Result<(), (ProblemKind, String)> {
        let layout = Layout::for_plaintext(info.size)
            .map_err(|e| (ProblemKind::BadIndexRow, e.to_string()))?;
        let size = match self.blobs.size(info.tenant, info.id).await {
            Ok(size) => size,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                if !self.still_indexed(info).await {
                    return Ok(()); // deleted while the check ran
                }
                return Err((
                    ProblemKind::MissingBlob,
                    format!("the blob of {} ({} bytes) is missing", info.path, info.size),
                ));
            }
            Err(e) => {
                return Err((
                    ProblemKind::ReadFailed,
                    format!("cannot stat the blob: {e}"),
                ));
            }
        };
        if size != layout.ciphertext_len {
            return Err((
                ProblemKind::SizeMismatch,
                format!(
                    "the blob is {size} bytes; a {}-byte object encrypts to {}",
                    info.size, layout.ciphertext_len
                ),
            ));
        }
        let key = key.unwrap_or_else(|| {
            Err((
                ProblemKind::KeyUnavailable,
                format!("key version {} was not looked up", info.key_version),
            ))
        })?;
        let header = self
            .blobs
            .read_range(info.tenant, info.id, 0..HEADER_LEN as u64)
            .await
            .map_err(|e| {
                (
                    ProblemKind::ReadFailed,
                    format!("cannot read the header: {e}"),
                )
            })?;
        *bytes_read += header.len() as u64;
        let context = object_context(info.tenant, info.id, info.key_version, info.format_version);
        self.cobblestone
            .verify_header(key.expose_secret(), &context, &header)
            .map_err(|e| (ProblemKind::HeaderMismatch, e.to_string()))?;
        if !read_all {
            return Ok(());
        }
        let mut reader = self
            .reader(info.clone())
            .await
            .map_err(|e| (ProblemKind::Corrupt, e.to_string()))?
            .with_checksum();
        loop {
            match reader.next_chunk().await {
                Ok(Some(plain)) => *bytes_read += plain.len() as u64,
                Ok(None) => break,
                Err(e) => return Err((ProblemKind::Corrupt, e.to_string())),
            }
        }
        *bytes_read += layout.ciphertext_len - info.size - HEADER_LEN as u64;
        reader
            .verify_checksum()
            .map_err(|e| (ProblemKind::ChecksumMismatch, e.to_string()))
    }

    /// Whether the object's row still exists (when in doubt, yes: the problem is reported).
    async fn still_indexed(&self, info: &ObjectInfo) -> bool {
        let found: Result<i64, sqlx::Error> = with_pool!(self.db, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM objects WHERE tenant_id = $1 AND id = $2")
                .bind(info.tenant.as_uuid())
                .bind(info.id.as_uuid())
                .fetch_one(pool)
                .await
        });
        found.map_or(true, |n| n > 0)
    }

    /// Blobs without a row: young ones are counted as in progress, old ones reported (and
    /// with `repair`, deleted after checking again that no row appeared for them).
    async fn check_orphans(
        &self,
        actor: &Principal,
        tenant: TenantId,
        blobs: &HashSet<ObjectId>,
        indexed: &HashSet<uuid::Uuid>,
        options: &VerifyOptions,
        report: &mut VerifyReport,
    ) -> Result<(), StorageError> {
        let cutoff = grace_cutoff(self.clock.now(), options.grace);
        let mut orphans: Vec<ObjectId> = blobs
            .iter()
            .filter(|id| !indexed.contains(&id.as_uuid()))
            .copied()
            .collect();
        orphans.sort();
        let mut old = Vec::new();
        for id in orphans {
            match minted_at(id) {
                Some(born) if born > cutoff => report.in_progress += 1,
                // Listed before the rows were read: a blob deleted (row, then blob) since is
                // not an orphan.
                _ if self
                    .blobs
                    .size(tenant, id)
                    .await
                    .is_err_and(|e| e.kind() == ErrorKind::NotFound) => {}
                _ => old.push(id),
            }
        }
        if old.is_empty() {
            return Ok(());
        }
        let repaired: HashSet<ObjectId> = if options.repair {
            // Garbage collection reads the index again and deletes under the same rule.
            self.collect_garbage(actor, tenant, options.grace).await?;
            let left: HashSet<ObjectId> = self.blobs.list(tenant).await?.into_iter().collect();
            old.iter()
                .filter(|id| !left.contains(id))
                .copied()
                .collect()
        } else {
            HashSet::new()
        };
        for id in old {
            let mut problem = Problem::new(
                tenant,
                ProblemKind::OrphanBlob,
                format!("blob {id} has no index row{}", uploaded_at(id)),
            )
            .object(Some(id));
            problem.repaired = repaired.contains(&id);
            report.problems.push(problem);
        }
        Ok(())
    }
}

/// " (uploaded <when>)" for a blob id that dates itself, else nothing.
pub(crate) fn uploaded_at(id: ObjectId) -> String {
    minted_at(id)
        .map(|t| format!(" (uploaded {})", t.format("%Y-%m-%d %H:%M:%S UTC")))
        .unwrap_or_default()
}
