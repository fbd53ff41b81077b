//! Byte escaping of dumpfile fields, both ways.
//!
//! Unescaping follows C mkcomposefs (`\\`, `\n`, `\r`, `\t`, `\xHH`; anything else after a
//! backslash is an error). Escaping follows C composefs-info, whose variants differ in how they
//! treat spaces, `=` and a lone `-`; [`EscapeMode`] names them so that `dump` and `ls` can share
//! one routine.
#![forbid(unsafe_code)]

/// Why an escaped field could not be decoded. The `Display` text is C's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UnescapeError {
    #[error("No character after escape")]
    NoCharacterAfterEscape,
    #[error("No hex characters after hex escape")]
    NoHexCharacters,
    #[error("Invalid hex characters after hex escape")]
    InvalidHexCharacters,
    /// The byte after the backslash (C prints it raw with `%c`).
    #[error("Unsupported escape type {}", char::from(*.0))]
    UnsupportedEscape(u8),
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Decodes an escaped field. Fields without a backslash (the vast majority) are returned as is,
/// without copying; others are decoded into `scratch`, which the caller reuses across fields.
pub fn unescape<'a>(field: &'a [u8], scratch: &'a mut Vec<u8>) -> Result<&'a [u8], UnescapeError> {
    let Some(first) = field.iter().position(|&b| b == b'\\') else {
        return Ok(field);
    };
    scratch.clear();
    scratch.extend_from_slice(&field[..first]);
    let mut i = first;
    while i < field.len() {
        let c = field[i];
        i += 1;
        if c != b'\\' {
            scratch.push(c);
            continue;
        }
        let Some(&e) = field.get(i) else {
            return Err(UnescapeError::NoCharacterAfterEscape);
        };
        i += 1;
        match e {
            b'\\' => scratch.push(b'\\'),
            b'n' => scratch.push(b'\n'),
            b'r' => scratch.push(b'\r'),
            b't' => scratch.push(b'\t'),
            b'x' => {
                // C checks that two bytes remain before it looks at either of them.
                if field.len() - i < 2 {
                    return Err(UnescapeError::NoHexCharacters);
                }
                match (hex_value(field[i]), hex_value(field[i + 1])) {
                    (Some(h), Some(l)) => scratch.push(h << 4 | l),
                    _ => return Err(UnescapeError::InvalidHexCharacters),
                }
                i += 2;
            }
            other => return Err(UnescapeError::UnsupportedEscape(other)),
        }
    }
    Ok(scratch)
}

/// How composefs-info escapes a value; the flags mirror its `print_escaped` options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EscapeMode {
    /// Print 0x20 (space) raw instead of `\x20` (`composefs-info ls` paths).
    pub raw_space: bool,
    /// Write `=` as `\x3d` (xattr names and values, whose separator it is).
    pub escape_equal: bool,
    /// Write a value that is exactly `-` as `\x2d`, so it is not read back as "absent".
    pub escape_lone_dash: bool,
}

impl EscapeMode {
    /// Paths in `dump`.
    pub const STANDARD: EscapeMode = EscapeMode {
        raw_space: false,
        escape_equal: false,
        escape_lone_dash: false,
    };
    /// Xattr names and values in `dump`.
    pub const XATTR: EscapeMode = EscapeMode {
        raw_space: false,
        escape_equal: true,
        escape_lone_dash: false,
    };
    /// PAYLOAD and CONTENT in `dump`.
    pub const OPTIONAL: EscapeMode = EscapeMode {
        raw_space: false,
        escape_equal: false,
        escape_lone_dash: true,
    };
    /// Paths in `ls`.
    pub const LS_PATH: EscapeMode = EscapeMode {
        raw_space: true,
        escape_equal: false,
        escape_lone_dash: false,
    };
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn push_hex(out: &mut Vec<u8>, c: u8) {
    out.extend_from_slice(&[
        b'\\',
        b'x',
        HEX[usize::from(c >> 4)],
        HEX[usize::from(c & 15)],
    ]);
}

/// Appends `bytes` escaped as composefs-info prints them (C locale: only 0x21…0x7E, plus the
/// space in `raw_space` mode, are printed as themselves).
pub fn escape_into(out: &mut Vec<u8>, bytes: &[u8], mode: EscapeMode) {
    if mode.escape_lone_dash && bytes == b"-" {
        push_hex(out, b'-');
        return;
    }
    for &c in bytes {
        match c {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'=' if mode.escape_equal => push_hex(out, c),
            b' ' if mode.raw_space => out.push(c),
            0x21..=0x7e => out.push(c),
            _ => push_hex(out, c),
        }
    }
}

/// [`escape_into`] into a new buffer.
pub fn escape(bytes: &[u8], mode: EscapeMode) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    escape_into(&mut out, bytes, mode);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn un(s: &[u8]) -> Result<Vec<u8>, UnescapeError> {
        let mut scratch = Vec::new();
        unescape(s, &mut scratch).map(|b| b.to_vec())
    }

    #[test]
    fn unescape_accepts_c_escapes() {
        assert_eq!(un(b"plain=text").unwrap(), b"plain=text");
        assert_eq!(un(br"a\\b\n\r\t").unwrap(), b"a\\b\n\r\t");
        assert_eq!(un(br"\x41\x7a\xFF\xfe\x00").unwrap(), b"Az\xff\xfe\0");
        assert_eq!(un(b"\xff raw").unwrap(), b"\xff raw");
    }

    #[test]
    fn unescape_errors_match_c() {
        assert_eq!(un(b"ab\\"), Err(UnescapeError::NoCharacterAfterEscape));
        assert_eq!(un(b"\\x"), Err(UnescapeError::NoHexCharacters));
        assert_eq!(un(b"\\x4"), Err(UnescapeError::NoHexCharacters));
        assert_eq!(un(b"\\xg0"), Err(UnescapeError::InvalidHexCharacters));
        assert_eq!(un(b"\\x0g"), Err(UnescapeError::InvalidHexCharacters));
        assert_eq!(un(b"\\q"), Err(UnescapeError::UnsupportedEscape(b'q')));
        assert_eq!(
            UnescapeError::UnsupportedEscape(b'q').to_string(),
            "Unsupported escape type q"
        );
    }

    #[test]
    fn escape_modes_match_composefs_info() {
        let v = b"a b=c\xff\x7f\\\n\r\t-";
        assert_eq!(
            escape(v, EscapeMode::STANDARD),
            b"a\\x20b=c\\xff\\x7f\\\\\\n\\r\\t-"
        );
        assert_eq!(
            escape(v, EscapeMode::XATTR),
            b"a\\x20b\\x3dc\\xff\\x7f\\\\\\n\\r\\t-"
        );
        assert_eq!(
            escape(v, EscapeMode::LS_PATH),
            b"a b=c\\xff\\x7f\\\\\\n\\r\\t-"
        );
        assert_eq!(escape(b"-", EscapeMode::OPTIONAL), b"\\x2d");
        assert_eq!(escape(b"-", EscapeMode::STANDARD), b"-");
        assert_eq!(escape(b"--", EscapeMode::OPTIONAL), b"--");
        assert_eq!(escape(b"\0", EscapeMode::STANDARD), b"\\x00");
    }

    #[test]
    fn every_byte_round_trips() {
        let all: Vec<u8> = (0..=255u8).collect();
        for mode in [
            EscapeMode::STANDARD,
            EscapeMode::XATTR,
            EscapeMode::OPTIONAL,
        ] {
            let e = escape(&all, mode);
            assert!(!e.contains(&b' ') && !e.contains(&b'\n'));
            assert_eq!(un(&e).unwrap(), all);
        }
        assert!(!escape(&all, EscapeMode::XATTR).contains(&b'='));
    }
}
