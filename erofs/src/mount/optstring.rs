//! The mount option string of `mount.composefs -o` (and of fstab/mount(8)), as C
//! mount.composefs 1.0.8 splits it.
//!
//! Options are separated by commas; a backslash escapes the next character, so `\,` is a comma
//! inside a value. The key is the text before the first unescaped `=`, taken as written; the
//! value is the rest with every escaping backslash removed. Every comma starts a new option,
//! so an empty string or a trailing comma yields an option with an empty key (which the tool
//! then rejects as unsupported, as C does). `basedir=` values are `:`-separated with no escape.

/// One `key[=value]` of an option string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountOpt {
    pub key: Vec<u8>,
    /// `None` when there was no `=`.
    pub value: Option<Vec<u8>>,
}

/// Splits an option string into its options, in order.
pub fn split(s: &[u8]) -> Vec<MountOpt> {
    let mut out = Vec::new();
    let mut rest = s;
    loop {
        let mut equal = None;
        let mut end = rest.len();
        let mut i = 0;
        while i < rest.len() {
            match rest[i] {
                b'=' if equal.is_none() => equal = Some(i),
                b'\\' if i + 1 < rest.len() => i += 1,
                b',' => {
                    end = i;
                    break;
                }
                _ => {}
            }
            i += 1;
        }
        let item = &rest[..end];
        out.push(match equal {
            Some(e) => MountOpt {
                key: item[..e].to_vec(),
                value: Some(unescape(&item[e + 1..])),
            },
            None => MountOpt {
                key: item.to_vec(),
                value: None,
            },
        });
        if end == rest.len() {
            return out;
        }
        rest = &rest[end + 1..];
    }
}

/// Removes each escaping backslash, keeping the character after it (a final lone backslash
/// is dropped).
fn unescape(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut it = v.iter();
    while let Some(&b) = it.next() {
        if b == b'\\' {
            if let Some(&next) = it.next() {
                out.push(next);
            }
        } else {
            out.push(b);
        }
    }
    out
}

/// Splits a `basedir=` value on `:`. `None` if any directory is empty (`""`, `a::b`, a leading
/// or trailing `:`), which C reports as "incorrect format".
pub fn split_basedirs(v: &[u8]) -> Option<Vec<&[u8]>> {
    let dirs: Vec<&[u8]> = v.split(|&b| b == b':').collect();
    dirs.iter().all(|d| !d.is_empty()).then_some(dirs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kv(k: &str, v: Option<&str>) -> MountOpt {
        MountOpt {
            key: k.into(),
            value: v.map(Into::into),
        }
    }

    #[test]
    fn commas_separate_and_escapes_stay_in_values() {
        assert_eq!(
            split(br"ro,basedir=/a\,b:/c,digest=ab"),
            vec![
                kv("ro", None),
                kv("basedir", Some("/a,b:/c")),
                kv("digest", Some("ab"))
            ]
        );
        // Only the first `=` splits; an escaped backslash is one backslash.
        assert_eq!(split(br"k=a=b\\c"), vec![kv("k", Some(r"a=b\c"))]);
        // Keys keep their backslashes.
        assert_eq!(split(br"a\,b"), vec![kv(r"a\,b", None)]);
        assert_eq!(split(br"a\=b=c"), vec![kv(r"a\=b", Some("c"))]);
        // A lone trailing backslash is dropped from a value, kept in a key.
        assert_eq!(split(br"k=v\"), vec![kv("k", Some("v"))]);
    }

    #[test]
    fn empty_options_are_options() {
        assert_eq!(split(b""), vec![kv("", None)]);
        assert_eq!(split(b"ro,"), vec![kv("ro", None), kv("", None)]);
        assert_eq!(split(b",ro"), vec![kv("", None), kv("ro", None)]);
        assert_eq!(split(b"basedir="), vec![kv("basedir", Some(""))]);
    }

    #[test]
    fn basedirs_reject_empty_parts() {
        assert_eq!(split_basedirs(b"/a:/b"), Some(vec![&b"/a"[..], b"/b"]));
        assert_eq!(split_basedirs(b"/a"), Some(vec![&b"/a"[..]]));
        for bad in [&b""[..], b":", b"/a::/b", b":/a", b"/a:"] {
            assert_eq!(split_basedirs(bad), None, "{bad:?}");
        }
    }

    /// Escaping every `\`, `,` and `=` of the values makes any list of options round-trip.
    fn escape(v: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for &b in v {
            if matches!(b, b'\\' | b',' | b'=') {
                out.push(b'\\');
            }
            out.push(b);
        }
        out
    }

    proptest! {
        #[test]
        fn escaped_values_round_trip(
            items in prop::collection::vec(("[a-z]{1,8}", prop::option::of(prop::collection::vec(any::<u8>(), 0..12))), 1..6)
        ) {
            let mut s = Vec::new();
            for (i, (k, v)) in items.iter().enumerate() {
                if i > 0 { s.push(b','); }
                s.extend_from_slice(k.as_bytes());
                if let Some(v) = v {
                    s.push(b'=');
                    s.extend_from_slice(&escape(v));
                }
            }
            let want: Vec<MountOpt> = items
                .iter()
                .map(|(k, v)| MountOpt { key: k.clone().into_bytes(), value: v.clone() })
                .collect();
            prop_assert_eq!(split(&s), want);
        }
    }
}
