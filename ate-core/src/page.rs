//! Cursor pagination shared by every listing.

use crate::error::CoreError;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Default page size when the caller does not pick one.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// Largest page size any listing returns.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// One page of results and the cursor for the next one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Page<T> {
    /// The items, in the listing's documented order.
    pub items: Vec<T>,
    /// Pass this to the same listing to get the following page; `None` on the last page.
    pub next_cursor: Option<Cursor>,
}

/// An opaque continuation token. Treat it as a string: its encoding may change between
/// versions, and a cursor from one listing is rejected by another.
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Cursor(String);

impl Cursor {
    /// Wraps a cursor string received from a client (validated when used).
    pub fn from_string(s: impl Into<String>) -> Self {
        Cursor(s.into())
    }

    /// The cursor as a string, for handing to clients.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Encodes a position for the listing identified by `kind` (for store implementations).
    pub fn encode(kind: &str, position: &str) -> Cursor {
        Cursor(URL_SAFE_NO_PAD.encode(format!("{kind}:{position}")))
    }

    /// Decodes a cursor made by [`Cursor::encode`] with the same `kind`; anything else is
    /// `InvalidInput`.
    pub fn decode(&self, kind: &str) -> Result<String, CoreError> {
        let bad = || CoreError::invalid("cursor", "not a cursor issued by this listing");
        let raw = URL_SAFE_NO_PAD.decode(&self.0).map_err(|_| bad())?;
        let raw = String::from_utf8(raw).map_err(|_| bad())?;
        let (k, position) = raw.split_once(':').ok_or_else(bad)?;
        if k != kind {
            return Err(bad());
        }
        Ok(position.to_owned())
    }
}

impl std::fmt::Debug for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cursor({})", self.0)
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Builds a page from rows fetched with `LIMIT limit + 1`: the extra row only signals that
/// another page follows, and the cursor points after the last row kept. For every store's
/// listing (the other crates' too): `convert` turns a row into an item, `position` says
/// where an item stands for [`Cursor::encode`] under `cursor_kind`.
pub fn page_from_rows<R, T, E>(
    rows: Vec<R>,
    limit: u32,
    convert: impl FnMut(R) -> Result<T, E>,
    cursor_kind: &str,
    position: impl Fn(&T) -> String,
) -> Result<Page<T>, E> {
    let more = rows.len() > limit as usize;
    let items = rows
        .into_iter()
        .take(limit as usize)
        .map(convert)
        .collect::<Result<Vec<_>, _>>()?;
    let next_cursor = match (more, items.last()) {
        (true, Some(last)) => Some(Cursor::encode(cursor_kind, &position(last))),
        _ => None,
    };
    Ok(Page { items, next_cursor })
}

/// Validates a requested page size (1 to [`MAX_PAGE_SIZE`], default [`DEFAULT_PAGE_SIZE`]).
pub fn page_size(limit: Option<u32>) -> Result<u32, CoreError> {
    match limit {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(n) if (1..=MAX_PAGE_SIZE).contains(&n) => Ok(n),
        Some(n) => Err(CoreError::invalid(
            "page size",
            format!("must be 1 to {MAX_PAGE_SIZE}, got {n}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_are_kind_checked() {
        let c = Cursor::encode("tenants", "abc");
        assert_eq!(c.decode("tenants").unwrap(), "abc");
        assert!(c.decode("audit").is_err());
        assert!(Cursor::from_string("!!!").decode("tenants").is_err());
        assert!(Cursor::from_string("").decode("tenants").is_err());
    }

    #[test]
    fn page_sizes_are_bounded() {
        assert_eq!(page_size(None).unwrap(), DEFAULT_PAGE_SIZE);
        assert_eq!(page_size(Some(1)).unwrap(), 1);
        assert!(page_size(Some(0)).is_err());
        assert!(page_size(Some(MAX_PAGE_SIZE + 1)).is_err());
    }
}
