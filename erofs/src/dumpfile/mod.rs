//! The composefs dumpfile format (composefs-dump(5)): parsing as C mkcomposefs 1.0.8 does, and
//! writing as C composefs-info 1.0.8 `dump` does.
//!
//! A dumpfile is the text form of a [`crate::tree::Tree`]: one line per path, fields separated
//! by single spaces, bytes escaped so that any name or value survives. It is both the input of
//! `mkcomposefs --from-file` and the output of `composefs-info dump`, so the two directions
//! follow two different C programs; see composefs-format.md §9 and §10.3.
#![forbid(unsafe_code)]

mod escape;
mod parse;
mod write;

pub use escape::{escape, escape_into, unescape, EscapeMode, UnescapeError};
pub use parse::{
    parse, parse_bytes, ParseError, ParseErrorKind, ParseOptions, INLINE_CONTENT_MAX, PAYLOAD_MAX,
    XATTR_BUDGET, XATTR_LINE_MAX,
};
pub use write::{write, write_to_vec};

#[cfg(test)]
mod tests;
