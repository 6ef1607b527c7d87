//! The alert-history conformance suite (being written).
