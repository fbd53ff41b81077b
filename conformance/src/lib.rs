//! The conformance suite's shared parts: where the oracles are, helpers to run them, the C corpus,
//! kernel mount harness, and the test vectors with their runner.

pub mod capi;
pub mod composefs_repo;
pub mod composefs_rs;
pub mod corpus;
pub mod kernel;
pub mod namespace;
pub mod oci_gen;
pub mod oracle;
pub mod splitstream_vectors;
pub mod strategy;
pub mod vectors;
pub mod vm;
pub mod walk;
