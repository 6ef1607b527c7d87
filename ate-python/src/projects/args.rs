//! The arguments of `a.projects` calls, converted from Python and checked.

use crate::convert::to_json;
use crate::error::Error;
use ate_core::Cursor;
use ate_core::keys::SecretKey;
use ate_storage::import::ArchiveFormat;
use ate_storage::projects::{FileQuery, ProjectQuery, ProjectSpec, ProjectUpdate};
use pyo3::prelude::*;
use std::collections::BTreeMap;

pub(super) fn archive_format(name: Option<&str>) -> Result<Option<ArchiveFormat>, Error> {
    name.map(|n| {
        ArchiveFormat::from_name(&format!(".{n}")).ok_or_else(|| {
            Error::invalid(format!(
                "archive format {n:?} is not one of tar, tar.gz, tgz, tar.zst, zip"
            ))
        })
    })
    .transpose()
}

pub(super) fn labels_from(
    value: Option<&Bound<'_, PyAny>>,
) -> Result<Option<BTreeMap<String, String>>, Error> {
    value
        .map(|v| {
            v.extract::<BTreeMap<String, String>>()
                .map_err(|_| Error::invalid("labels must be a dict of str to str"))
        })
        .transpose()
}

pub(super) fn spec_args(
    name: String,
    description: Option<String>,
    labels: Option<&Bound<'_, PyAny>>,
    settings: Option<&Bound<'_, PyAny>>,
) -> Result<ProjectSpec, Error> {
    let mut spec = ProjectSpec::new(name);
    if let Some(d) = description {
        spec = spec.description(d);
    }
    for (k, v) in labels_from(labels)?.unwrap_or_default() {
        spec = spec.label(k, v);
    }
    if let Some(s) = settings {
        spec = spec.settings(to_json(s, "settings")?);
    }
    Ok(spec)
}

pub(super) fn update_args(
    name: Option<String>,
    description: Option<String>,
    labels: Option<&Bound<'_, PyAny>>,
    settings: Option<&Bound<'_, PyAny>>,
    expected_revision: Option<i64>,
) -> Result<ProjectUpdate, Error> {
    let mut u = ProjectUpdate::new();
    if let Some(n) = name {
        u = u.name(n);
    }
    if let Some(d) = description {
        u = u.description(d);
    }
    if let Some(l) = labels_from(labels)? {
        u = u.labels(l);
    }
    if let Some(s) = settings {
        u = u.settings(to_json(s, "settings")?);
    }
    if let Some(r) = expected_revision {
        u = u.expected_revision(r);
    }
    Ok(u)
}

pub(super) fn project_query(
    name_prefix: Option<String>,
    labels: Option<&Bound<'_, PyAny>>,
    limit: Option<u32>,
    cursor: Option<String>,
) -> Result<ProjectQuery, Error> {
    let mut q = ProjectQuery::new();
    if let Some(p) = name_prefix {
        q = q.name_prefix(p);
    }
    for (k, v) in labels_from(labels)?.unwrap_or_default() {
        q = q.label(k, v);
    }
    if let Some(l) = limit {
        q = q.limit(l);
    }
    if let Some(c) = cursor {
        q = q.cursor(Cursor::from_string(c));
    }
    Ok(q)
}

/// The filters of `files()`, as given.
pub(super) struct FileFilters {
    pub(super) path_prefix: Option<String>,
    pub(super) glob: Option<String>,
    pub(super) language: Option<String>,
    pub(super) vendored: Option<bool>,
    pub(super) generated: Option<bool>,
    pub(super) binary: Option<bool>,
    pub(super) limit: Option<u32>,
    pub(super) cursor: Option<String>,
}

impl FileFilters {
    pub(super) fn query(self) -> FileQuery {
        let mut q = FileQuery::new();
        if let Some(p) = self.path_prefix {
            q = q.path_prefix(p);
        }
        if let Some(g) = self.glob {
            q = q.glob(g);
        }
        if let Some(l) = self.language {
            q = q.language(l);
        }
        if let Some(v) = self.vendored {
            q = q.vendored(v);
        }
        if let Some(g) = self.generated {
            q = q.generated(g);
        }
        if let Some(b) = self.binary {
            q = q.binary(b);
        }
        if let Some(l) = self.limit {
            q = q.limit(l);
        }
        if let Some(c) = self.cursor {
            q = q.cursor(Cursor::from_string(c));
        }
        q
    }
}

/// A byte range from optional Python offsets: `[start, end)`, to the file's end by default.
pub(super) fn file_range(
    start: Option<i64>,
    end: Option<i64>,
) -> Result<Option<std::ops::Range<u64>>, Error> {
    if start.is_none() && end.is_none() {
        return Ok(None);
    }
    let offset = |v: i64, what: &str| {
        u64::try_from(v)
            .map_err(|_| Error::invalid(format!("{what} must not be negative, not {v}")))
    };
    let s = start.map(|v| offset(v, "start")).transpose()?.unwrap_or(0);
    let e = end
        .map(|v| offset(v, "end"))
        .transpose()?
        .unwrap_or(u64::MAX);
    if e < s {
        return Err(Error::invalid(format!("end ({e}) is before start ({s})")));
    }
    Ok(Some(s..e))
}

/// A backup key: exactly 32 bytes.
pub(super) fn backup_key(value: &[u8]) -> Result<SecretKey, Error> {
    SecretKey::from_slice(value).map_err(|_| {
        Error::invalid(format!(
            "a backup key is 32 bytes (e.g. os.urandom(32)), not {}",
            value.len()
        ))
    })
}
