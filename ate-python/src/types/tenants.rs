//! What `a.tenants` returns: `Tenant` and `TenantPage`.

use crate::convert::from_json;
use chrono::{DateTime, Utc};
use pyo3::prelude::*;

/// A tenant (see `ate_core::Tenant`).
#[pyclass(module = "ate.tenants", frozen, eq, from_py_object)]
#[derive(Clone, PartialEq)]
pub(crate) struct Tenant {
    #[pyo3(get)]
    id: String,
    #[pyo3(get)]
    slug: String,
    #[pyo3(get)]
    name: String,
    #[pyo3(get)]
    status: String,
    #[pyo3(get)]
    status_reason: Option<String>,
    #[pyo3(get)]
    revision: i64,
    #[pyo3(get)]
    created_at: DateTime<Utc>,
    #[pyo3(get)]
    updated_at: DateTime<Utc>,
    #[pyo3(get)]
    deleted_at: Option<DateTime<Utc>>,
    #[pyo3(get)]
    purge_at: Option<DateTime<Utc>>,
    quotas: serde_json::Value,
}

impl From<ate_core::Tenant> for Tenant {
    fn from(t: ate_core::Tenant) -> Self {
        Tenant {
            id: t.id.to_string(),
            slug: t.slug.to_string(),
            name: t.name,
            status: t.status.as_str().to_owned(),
            status_reason: t.status_reason,
            revision: t.revision,
            created_at: t.created_at,
            updated_at: t.updated_at,
            deleted_at: t.deleted_at,
            purge_at: t.purge_at,
            quotas: serde_json::to_value(&t.settings.quotas).unwrap_or_default(),
        }
    }
}

#[pymethods]
impl Tenant {
    /// The tenant's quotas as a dict (`None` values mean unlimited).
    #[getter]
    fn quotas<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        from_json(py, &self.quotas)
    }

    fn __repr__(&self) -> String {
        format!(
            "Tenant(id='{}', slug='{}', name={:?}, status='{}', revision={})",
            self.id, self.slug, self.name, self.status, self.revision
        )
    }
}

page_class!(
    TenantPage,
    "ate.tenants",
    Tenant,
    ate_core::Tenant,
    "tenants"
);
