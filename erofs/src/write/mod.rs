//! The layout engine: turns a [`crate::tree::Tree`] into composefs image bytes. V1 (C
//! mkcomposefs 1.0.8) and V2 (composefs-rs legacy) differ only in policy.
