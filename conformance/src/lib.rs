//! The conformance suite's shared parts: where the oracles are, helpers to run them, and the
//! kernel mount harness.

pub mod kernel;
pub mod oracle;
pub mod strategy;
pub mod walk;
