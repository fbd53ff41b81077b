//! The conformance suite's shared parts: where the oracles are, helpers to run them, and the
//! kernel mount harness, and the test vectors with their runner.

pub mod kernel;
pub mod oracle;
pub mod strategy;
pub mod vectors;
pub mod walk;
