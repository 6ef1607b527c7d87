//! The page classes (`TenantPage`, `AuditPage`, `ObjectPage`, `UserPage`): one page of a
//! cursor-paginated listing, with `items`, `next_cursor`, `len()` and iteration.

/// Defines a page class: `items`, `next_cursor`, `len()` and iteration.
macro_rules! page_class {
    ($name:ident, $module:literal, $item:ident, $core_item:ty, $noun:literal) => {
        #[doc = concat!("One page of ", $noun, ".")]
        #[pyclass(module = $module, frozen)]
        pub(crate) struct $name {
            #[pyo3(get)]
            items: Vec<$item>,
            #[pyo3(get)]
            next_cursor: Option<String>,
        }

        impl From<ate_core::Page<$core_item>> for $name {
            fn from(p: ate_core::Page<$core_item>) -> Self {
                $name {
                    items: p.items.into_iter().map($item::from).collect(),
                    next_cursor: p.next_cursor.map(|c| c.as_str().to_owned()),
                }
            }
        }

        #[pymethods]
        impl $name {
            fn __len__(&self) -> usize {
                self.items.len()
            }

            fn __iter__(slf: PyRef<'_, Self>) -> PyResult<Bound<'_, PyAny>> {
                let py = slf.py();
                slf.items
                    .clone()
                    .into_pyobject(py)?
                    .try_iter()
                    .map(Bound::into_any)
            }

            fn __repr__(&self) -> String {
                format!(
                    concat!(
                        stringify!($name),
                        "(items=<{} ",
                        $noun,
                        ">, next_cursor={:?})"
                    ),
                    self.items.len(),
                    self.next_cursor
                )
            }
        }
    };
}
