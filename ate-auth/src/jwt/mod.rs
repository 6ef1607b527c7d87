//! JWT signing keys and verification (being written).
