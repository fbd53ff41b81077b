//! A small `getopt_long` work-alike for the drop-in commands (`mkcomposefs`, `composefs-info`),
//! whose users rely on GNU's conventions: options may follow operands (argv is permuted),
//! `--name=value` and `--name value`, unambiguous prefixes of long names, and `--` to end
//! options. clap cannot reproduce the C tools' messages and exit codes, so the drop-ins parse
//! with this; the newer subcommands use clap.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

/// A long option the command accepts.
pub struct LongOpt {
    pub name: &'static str,
    pub takes_value: bool,
}

/// One parsed option.
#[derive(Debug, PartialEq, Eq)]
pub struct Opt {
    pub name: &'static str,
    pub value: Option<OsString>,
}

/// Why parsing stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum GetoptError {
    /// `--name` of a value-taking option with nothing after it.
    MissingValue(&'static str),
    /// Unknown, ambiguous or malformed option (GNU getopt returns `?`).
    Unrecognized(OsString),
}

/// Parses `args` (without argv[0]) into options and operands.
pub fn getopt_long(
    args: &[OsString],
    opts: &[LongOpt],
) -> Result<(Vec<Opt>, Vec<OsString>), GetoptError> {
    let mut parsed = Vec::new();
    let mut operands = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_bytes();
        i += 1;
        if arg == b"--" {
            operands.extend(args[i..].iter().cloned());
            break;
        }
        if !arg.starts_with(b"--") {
            if arg.len() > 1 && arg[0] == b'-' {
                // No short options are meaningful to these commands.
                return Err(GetoptError::Unrecognized(args[i - 1].clone()));
            }
            operands.push(args[i - 1].clone());
            continue;
        }
        let body = &arg[2..];
        let (name, inline) = match body.iter().position(|&b| b == b'=') {
            Some(p) => (&body[..p], Some(&body[p + 1..])),
            None => (body, None),
        };
        let opt =
            lookup(opts, name).ok_or_else(|| GetoptError::Unrecognized(args[i - 1].clone()))?;
        let value = if opt.takes_value {
            match inline {
                Some(v) => Some(OsStr::from_bytes(v).to_os_string()),
                None if i < args.len() => {
                    i += 1;
                    Some(args[i - 1].clone())
                }
                None => return Err(GetoptError::MissingValue(opt.name)),
            }
        } else if inline.is_some() {
            return Err(GetoptError::Unrecognized(args[i - 1].clone()));
        } else {
            None
        };
        parsed.push(Opt {
            name: opt.name,
            value,
        });
    }
    Ok((parsed, operands))
}

/// Exact match first, else the one option the prefix abbreviates.
fn lookup<'a>(opts: &'a [LongOpt], name: &[u8]) -> Option<&'a LongOpt> {
    if name.is_empty() {
        return None;
    }
    if let Some(o) = opts.iter().find(|o| o.name.as_bytes() == name) {
        return Some(o);
    }
    let mut matches = opts.iter().filter(|o| o.name.as_bytes().starts_with(name));
    let first = matches.next()?;
    matches.next().is_none().then_some(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTS: &[LongOpt] = &[
        LongOpt {
            name: "print-digest",
            takes_value: false,
        },
        LongOpt {
            name: "print-digest-only",
            takes_value: false,
        },
        LongOpt {
            name: "min-version",
            takes_value: true,
        },
    ];

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn permutes_and_takes_values_both_ways() {
        let (o, rest) = getopt_long(
            &args(&["src", "--min-version=1", "img", "--min-version", "0"]),
            OPTS,
        )
        .unwrap();
        assert_eq!(rest, args(&["src", "img"]));
        assert_eq!(o[0].value.as_deref(), Some(OsStr::new("1")));
        assert_eq!(o[1].value.as_deref(), Some(OsStr::new("0")));
    }

    #[test]
    fn exact_names_beat_prefixes_and_ambiguity_fails() {
        let (o, _) = getopt_long(&args(&["--print-digest"]), OPTS).unwrap();
        assert_eq!(o[0].name, "print-digest");
        let (o, _) = getopt_long(&args(&["--print-digest-o"]), OPTS).unwrap();
        assert_eq!(o[0].name, "print-digest-only");
        assert!(getopt_long(&args(&["--print"]), OPTS).is_err());
        let (o, _) = getopt_long(&args(&["--min=1"]), OPTS).unwrap();
        assert_eq!(o[0].name, "min-version");
    }

    #[test]
    fn errors_and_terminator() {
        assert_eq!(
            getopt_long(&args(&["--min-version"]), OPTS),
            Err(GetoptError::MissingValue("min-version"))
        );
        assert!(getopt_long(&args(&["--print-digest=x"]), OPTS).is_err());
        assert!(getopt_long(&args(&["-C"]), OPTS).is_err());
        let (o, rest) = getopt_long(&args(&["-", "--", "--print-digest"]), OPTS).unwrap();
        assert!(o.is_empty());
        assert_eq!(rest, args(&["-", "--print-digest"]));
    }
}

/// One step of POSIX `getopt(argc, argv, optstring)` as glibc runs it: an option (with its
/// value when the spec says it takes one), or the error getopt reports for it.
#[derive(Debug, PartialEq, Eq)]
pub enum Short {
    Opt(u8, Option<OsString>),
    /// Not in the spec (`invalid option -- 'c'`).
    Invalid(u8),
    /// A value-taking option at the end of argv (`option requires an argument -- 'c'`).
    MissingValue(u8),
}

/// glibc `getopt` with a short-option spec such as `"ht:o:"`: argv is permuted (operands may
/// come first), options cluster (`-ho`), a value is attached (`-ofoo`) or the next argument
/// (`-o foo`), `--` ends options and `-` alone is an operand. A `--long` argument is a
/// cluster starting with the option `-`, as plain getopt sees it. Returns the steps in order
/// (callers act on each in turn, as C's loop does) and the operands.
pub fn getopt_short(args: &[OsString], spec: &[u8]) -> (Vec<Short>, Vec<OsString>) {
    let takes_value = |c: u8| -> Option<bool> {
        let i = spec.iter().position(|&s| s == c)?;
        (c != b':').then(|| spec.get(i + 1) == Some(&b':'))
    };
    let mut steps = Vec::new();
    let mut operands = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_bytes();
        i += 1;
        if arg == b"--" {
            operands.extend(args[i..].iter().cloned());
            break;
        }
        if arg.len() < 2 || arg[0] != b'-' {
            operands.push(args[i - 1].clone());
            continue;
        }
        let mut j = 1;
        while j < arg.len() {
            let c = arg[j];
            j += 1;
            match takes_value(c) {
                None => steps.push(Short::Invalid(c)),
                Some(false) => steps.push(Short::Opt(c, None)),
                Some(true) if j < arg.len() => {
                    steps.push(Short::Opt(
                        c,
                        Some(OsStr::from_bytes(&arg[j..]).to_os_string()),
                    ));
                    break;
                }
                Some(true) if i < args.len() => {
                    steps.push(Short::Opt(c, Some(args[i].clone())));
                    i += 1;
                }
                Some(true) => steps.push(Short::MissingValue(c)),
            }
        }
    }
    (steps, operands)
}

#[cfg(test)]
mod short_tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }
    fn opt(c: u8, v: Option<&str>) -> Short {
        Short::Opt(c, v.map(OsString::from))
    }

    #[test]
    fn permutes_clusters_and_attaches_values() {
        let (s, ops) = getopt_short(
            &args(&["img", "-t", "composefs", "mnt", "-ovalue", "-hx"]),
            b"ht:o:",
        );
        assert_eq!(ops, args(&["img", "mnt"]));
        assert_eq!(
            s,
            vec![
                opt(b't', Some("composefs")),
                opt(b'o', Some("value")),
                opt(b'h', None),
                Short::Invalid(b'x')
            ]
        );
    }

    #[test]
    fn terminator_dash_missing_value_and_long() {
        let (s, ops) = getopt_short(&args(&["-", "--", "-o", "x"]), b"o:");
        assert!(s.is_empty());
        assert_eq!(ops, args(&["-", "-o", "x"]));
        let (s, _) = getopt_short(&args(&["a", "-o"]), b"o:");
        assert_eq!(s, vec![Short::MissingValue(b'o')]);
        let (s, _) = getopt_short(&args(&["--help"]), b"ho:");
        assert_eq!(s[0], Short::Invalid(b'-'));
        assert_eq!(s[1], opt(b'h', None));
        assert_eq!(s[2], Short::Invalid(b'e'));
        let (s, _) = getopt_short(&args(&["-:"]), b"o:");
        assert_eq!(s, vec![Short::Invalid(b':')]);
    }
}
