//! The object index: the `objects` table's row, its mapping to [`ObjectInfo`], the column
//! list every whole-row query uses, and the lookups by path and by prefix.

use super::{ObjectInfo, ObjectStore};
use crate::error::StorageError;
use ate_core::db::from_micros;
use ate_core::{CoreError, ObjectId, TenantId, with_pool};
use uuid::Uuid;

/// One row of the `objects` table.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct ObjectRow {
    id: Uuid,
    tenant_id: Uuid,
    logical_path: String,
    size: i64,
    sha256: Vec<u8>,
    key_version: i64,
    format_version: i64,
    content_type: String,
    user_metadata: String,
    created_at: i64,
    updated_at: i64,
}

/// The columns of [`ObjectRow`], for building queries.
macro_rules! object_columns {
    () => {
        "id, tenant_id, logical_path, size, sha256, key_version, format_version, content_type, \
         user_metadata, created_at, updated_at"
    };
}
pub(super) use object_columns;
const BY_PATH: &str = concat!(
    "SELECT ",
    object_columns!(),
    " FROM objects WHERE tenant_id = $1 AND logical_path = $2"
);
/// `$2` prefix (bytewise), `$3` cursor (exclusive), `$4` limit.
pub(super) const LIST: &str = concat!(
    "SELECT ",
    object_columns!(),
    " FROM objects WHERE tenant_id = $1 AND substr(logical_path, 1, length($2)) = $2 \
     AND ($3 IS NULL OR logical_path > $3) ORDER BY logical_path LIMIT $4"
);
/// `$2` directory prefix, `$3` exclusive and `$4` inclusive lower bounds (either may be
/// NULL), `$5` limit: the scan behind directory listings.
pub(super) const LIST_FROM: &str = concat!(
    "SELECT ",
    object_columns!(),
    " FROM objects WHERE tenant_id = $1 AND substr(logical_path, 1, length($2)) = $2 \
     AND ($3 IS NULL OR logical_path > $3) AND ($4 IS NULL OR logical_path >= $4) \
     ORDER BY logical_path LIMIT $5"
);
/// The kind that list cursors carry.
pub(super) const CURSOR_KIND: &str = "objects";

impl ObjectRow {
    /// The row's id, readable even when other fields are not.
    pub(super) fn id(&self) -> Uuid {
        self.id
    }

    /// The row's logical path.
    pub(super) fn path(&self) -> &str {
        &self.logical_path
    }

    pub(super) fn info(self) -> Result<ObjectInfo, StorageError> {
        let corrupt = |what: &str| {
            StorageError::Integrity(format!("object index row has an unreadable {what}"))
        };
        Ok(ObjectInfo {
            tenant: TenantId::from_uuid(self.tenant_id)?,
            id: ObjectId::from_uuid(self.id)?,
            path: self.logical_path,
            size: u64::try_from(self.size).map_err(|_| corrupt("size"))?,
            sha256: self
                .sha256
                .as_slice()
                .try_into()
                .map_err(|_| corrupt("checksum"))?,
            key_version: u32::try_from(self.key_version).map_err(|_| corrupt("key version"))?,
            format_version: u8::try_from(self.format_version)
                .map_err(|_| corrupt("format version"))?,
            content_type: self.content_type,
            metadata: serde_json::from_str(&self.user_metadata).map_err(|_| corrupt("metadata"))?,
            created_at: from_micros(self.created_at)?,
            updated_at: from_micros(self.updated_at)?,
        })
    }
}

impl ObjectStore {
    /// The index entry at `path` (`NotFound` if there is none).
    pub(super) async fn row(
        &self,
        tenant: TenantId,
        path: &str,
    ) -> Result<ObjectInfo, StorageError> {
        let row: Option<ObjectRow> = with_pool!(self.db, |pool| {
            sqlx::query_as(BY_PATH)
                .bind(tenant.as_uuid())
                .bind(path)
                .fetch_optional(pool)
                .await
                .map_err(CoreError::from)?
        });
        row.ok_or_else(|| CoreError::not_found("object", path).into())
            .and_then(ObjectRow::info)
    }
}
