//! Statements built at run time (multi-row inserts, `IN` lists), in either dialect.

use ate_core::Db;

/// Placeholder number `i` (from 1) of a statement built at run time: `$i` on PostgreSQL,
/// `?` on SQLite. SQLite looks named parameters up one by one through a list
/// (`sqlite3_bind_parameter_name`), which made binding a statement of thousands of `$N`
/// quadratic; anonymous `?` are bound in order.
pub(crate) fn ph(db: &Db, i: usize) -> String {
    if db.backend() == ate_core::DbBackend::Postgres {
        format!("${i}")
    } else {
        "?".to_owned()
    }
}

/// `n` placeholders from number `first`, separated by commas.
pub(crate) fn ph_list(db: &Db, first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| ph(db, i))
        .collect::<Vec<_>>()
        .join(", ")
}
