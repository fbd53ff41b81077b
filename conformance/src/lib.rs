//! The conformance suite's shared parts: where the oracles are, and helpers to run them.

pub mod oracle;
pub mod strategy;
