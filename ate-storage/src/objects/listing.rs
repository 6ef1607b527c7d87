//! Listings of a tenant's objects, in bytewise path order, one page at a time: flat by
//! prefix ([`ObjectStore::list`]) and one directory level at a time
//! ([`ObjectStore::list_dir`], what S3 calls a listing with the delimiter `/`).
//!
//! A directory listing skips over each subdirectory instead of reading what is inside it:
//! a scan that reaches `dir/sub/` continues from the first path after every `dir/sub/…`
//! (`dir/sub0`, since `0` follows `/` bytewise), so listing a directory costs one query per
//! page plus at most one per subdirectory whose contents outrun the page being read.

use super::index::{CURSOR_KIND, LIST, LIST_FROM, ObjectRow};
use super::{MAX_PATH_BYTES, ObjectInfo, ObjectStore, STORAGE_READ, validate_path};
use crate::error::StorageError;
use ate_core::{CoreError, Cursor, Page, Principal, TenantId, with_pool};

/// The kind that directory-listing cursors carry.
const DIR_CURSOR_KIND: &str = "objects-dir";

/// One entry of a directory listing ([`ObjectStore::list_dir`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DirEntry {
    /// An object directly in the directory.
    Object(ObjectInfo),
    /// A subdirectory: the path prefix, ending with `/`, shared by at least one object below
    /// it (directories are implied by object paths; there are no empty ones).
    Directory(String),
}

impl DirEntry {
    /// The entry's path (a directory's ends with `/`).
    pub fn path(&self) -> &str {
        match self {
            DirEntry::Object(o) => &o.path,
            DirEntry::Directory(d) => d,
        }
    }
}

/// Where a directory scan resumes: after an object's path, or past everything under a
/// subdirectory.
enum Resume {
    Start,
    After(String),
    PastDirectory(String),
}

impl Resume {
    fn from_entry(entry: &DirEntry) -> Resume {
        match entry {
            DirEntry::Object(o) => Resume::After(o.path.clone()),
            DirEntry::Directory(d) => Resume::PastDirectory(d.clone()),
        }
    }

    fn cursor(&self) -> Option<Cursor> {
        match self {
            Resume::Start => None,
            Resume::After(p) => Some(Cursor::encode(DIR_CURSOR_KIND, &format!("f{p}"))),
            Resume::PastDirectory(d) => Some(Cursor::encode(DIR_CURSOR_KIND, &format!("d{d}"))),
        }
    }

    fn decode(cursor: Option<Cursor>) -> Result<Resume, StorageError> {
        let Some(cursor) = cursor else {
            return Ok(Resume::Start);
        };
        let position = cursor.decode(DIR_CURSOR_KIND)?;
        match position.split_at_checked(1) {
            Some(("f", path)) if !path.is_empty() => Ok(Resume::After(path.to_owned())),
            Some(("d", dir)) if dir.ends_with('/') => Ok(Resume::PastDirectory(dir.to_owned())),
            _ => Err(CoreError::invalid("cursor", "not a cursor issued by this listing").into()),
        }
    }

    /// The scan's bounds: exclusive, inclusive.
    fn bounds(&self) -> (Option<String>, Option<String>) {
        match self {
            Resume::Start => (None, None),
            Resume::After(p) => (Some(p.clone()), None),
            // Every path under `d/` sorts before `d0`, and every later path at or after it.
            Resume::PastDirectory(d) => (None, Some(format!("{}0", &d[..d.len() - 1]))),
        }
    }
}

/// The page size asked for: 1 to 1000, 50 if omitted.
fn page_limit(limit: Option<u32>) -> Result<u32, StorageError> {
    match limit {
        None => Ok(ate_core::page::DEFAULT_PAGE_SIZE),
        Some(n) if (1..=ate_core::page::MAX_PAGE_SIZE).contains(&n) => Ok(n),
        Some(n) => Err(StorageError::invalid(
            "page size",
            format!("must be 1 to 1000, got {n}"),
        )),
    }
}

impl ObjectStore {
    /// Lists objects whose path starts with `prefix`, in bytewise path order.
    pub async fn list(
        &self,
        actor: &Principal,
        tenant: TenantId,
        prefix: &str,
        limit: Option<u32>,
        cursor: Option<Cursor>,
    ) -> Result<Page<ObjectInfo>, StorageError> {
        if prefix.len() > MAX_PATH_BYTES || prefix.contains('\0') {
            return Err(StorageError::invalid(
                "list prefix",
                "must be at most 1024 bytes without NUL",
            ));
        }
        let limit = page_limit(limit)?;
        let after = cursor.map(|c| c.decode(CURSOR_KIND)).transpose()?;
        self.authorize(actor, tenant, &STORAGE_READ, false).await?;
        let rows: Vec<ObjectRow> = with_pool!(self.db, |pool| {
            sqlx::query_as(LIST)
                .bind(tenant.as_uuid())
                .bind(prefix)
                .bind(after.clone())
                .bind(i64::from(limit) + 1)
                .fetch_all(pool)
                .await
                .map_err(CoreError::from)?
        });
        ate_core::page::page_from_rows(rows, limit, ObjectRow::info, CURSOR_KIND, |o| {
            o.path.clone()
        })
    }

    /// Lists one directory level: the objects directly in `dir` and its subdirectories
    /// (each once, as [`DirEntry::Directory`]), interleaved in bytewise path order. `dir` is
    /// `""` (the tenant's top level) or a path prefix ending with `/`, e.g. `"reports/"`.
    /// An object and a subdirectory may share a name (`a` and `a/b`): both are listed.
    pub async fn list_dir(
        &self,
        actor: &Principal,
        tenant: TenantId,
        dir: &str,
        limit: Option<u32>,
        cursor: Option<Cursor>,
    ) -> Result<Page<DirEntry>, StorageError> {
        if let Some(name) = dir.strip_suffix('/') {
            validate_path(name).map_err(|_| {
                StorageError::invalid(
                    "directory",
                    format!(
                        "{:?} must be a valid object path followed by '/'",
                        dir.chars().take(80).collect::<String>()
                    ),
                )
            })?;
        } else if !dir.is_empty() {
            return Err(StorageError::invalid(
                "directory",
                format!(
                    "{:?} must be empty or end with '/'",
                    dir.chars().take(80).collect::<String>()
                ),
            ));
        }
        let limit = usize::try_from(page_limit(limit)?).unwrap_or(usize::MAX);
        let mut resume = Resume::decode(cursor)?;
        self.authorize(actor, tenant, &STORAGE_READ, false).await?;
        // One more row than the page holds tells whether another page follows.
        let batch = limit + 1;
        let mut items: Vec<DirEntry> = Vec::with_capacity(limit.min(64));
        loop {
            let (after, from) = resume.bounds();
            let rows: Vec<ObjectRow> = with_pool!(self.db, |pool| {
                sqlx::query_as(LIST_FROM)
                    .bind(tenant.as_uuid())
                    .bind(dir)
                    .bind(after.clone())
                    .bind(from.clone())
                    .bind(i64::try_from(batch).unwrap_or(i64::MAX))
                    .fetch_all(pool)
                    .await
                    .map_err(CoreError::from)?
            });
            let exhausted = rows.len() < batch;
            for row in rows {
                if let Some(DirEntry::Directory(d)) = items.last()
                    && row.path().starts_with(d.as_str())
                {
                    continue; // inside the subdirectory just listed
                }
                if items.len() == limit {
                    let next = items.last().map(Resume::from_entry);
                    return Ok(Page {
                        items,
                        next_cursor: next.and_then(|r| r.cursor()),
                    });
                }
                let rest = row.path().get(dir.len()..).unwrap_or_default();
                items.push(match rest.find('/') {
                    Some(i) => DirEntry::Directory(row.path()[..dir.len() + i + 1].to_owned()),
                    None => DirEntry::Object(row.info()?),
                });
            }
            match items.last() {
                Some(last) if !exhausted => resume = Resume::from_entry(last),
                _ => {
                    return Ok(Page {
                        items,
                        next_cursor: None,
                    });
                }
            }
        }
    }
}
