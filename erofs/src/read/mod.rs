//! The reader: any composefs image back into a [`crate::tree::Tree`], checking everything.
#![forbid(unsafe_code)]
