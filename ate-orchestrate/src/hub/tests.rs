//! Tests of the hub (real loopback servers).
