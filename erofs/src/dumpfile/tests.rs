//! Unit tests of the dumpfile parser and writer: one per rule and per error of C's parser.

use super::*;
use crate::tree::{Digest, FileData, InodeId, InodeKind, Mtime, Tree};

const ROOT: &str = "/ 4096 40755 2 0 0 0 0.0 - - -\n";

fn lax() -> ParseOptions {
    ParseOptions { strict: false }
}

fn strict() -> ParseOptions {
    ParseOptions { strict: true }
}

fn ok(input: &str) -> Tree {
    parse_bytes(input.as_bytes(), &strict()).unwrap_or_else(|e| panic!("{input:?}: {e}"))
}

fn err_with(input: &[u8], opts: ParseOptions) -> (Option<u64>, String) {
    match parse_bytes(input, &opts) {
        Ok(_) => panic!("{:?} was accepted", String::from_utf8_lossy(input)),
        Err(e) => (e.line(), e.message()),
    }
}

fn err(input: &str) -> (Option<u64>, String) {
    err_with(input.as_bytes(), strict())
}

fn with_root(lines: &str) -> String {
    format!("{ROOT}{lines}")
}

fn get<'a>(t: &'a Tree, path: &str) -> &'a crate::tree::Inode {
    t.inode(
        t.lookup_path(path.as_bytes())
            .unwrap_or_else(|| panic!("{path} missing")),
    )
}

#[test]
fn options_from_env() {
    // Only the variable's presence matters (C uses getenv() != NULL).
    let before = std::env::var_os("CFS_PARSE_STRICT");
    std::env::remove_var("CFS_PARSE_STRICT");
    assert!(!ParseOptions::from_env().strict);
    std::env::set_var("CFS_PARSE_STRICT", "");
    assert!(ParseOptions::from_env().strict);
    match before {
        Some(v) => std::env::set_var("CFS_PARSE_STRICT", v),
        None => std::env::remove_var("CFS_PARSE_STRICT"),
    }
}

#[test]
fn basic_types_map_to_the_model() {
    let digest = "a".repeat(64);
    let t = ok(&with_root(&format!(
        "/dir 4096 40700 3 1 2 0 5.6 - - - user.a=1\n\
         /dir/sub 0 40755 2 0 0 0 0.0\n\
         /empty 0 100644 1 0 0 0 0.0 - - -\n\
         /inline 3 104755 1 0 0 0 0.0 - abc -\n\
         /ext 100 100644 4 0 0 0 0.0 ab/cdef - {digest}\n\
         /ext2 100 100644 1 0 0 0 0.0 - - -\n\
         /link 3 120777 1 0 0 0 0.0 abc - -\n\
         /chr 0 20644 1 0 0 1234 0.0 - - -\n\
         /blk 7 60644 1 0 0 99 0.0 - - -\n\
         /fifo 9 10644 1 0 0 0 0.0 - - -\n\
         /sock 0 140644 1 0 0 0 0.0 - - -\n"
    )));
    let d = get(&t, "/dir");
    assert!(d.is_dir());
    assert_eq!((d.permissions, d.nlink, d.uid, d.gid), (0o700, 3, 1, 2));
    assert_eq!((d.size, d.mtime), (4096, Mtime::new(5, 6)));
    assert_eq!(d.xattr(b"user.a"), Some(&b"1"[..]));
    assert!(get(&t, "/dir/sub").is_dir());
    assert_eq!(
        get(&t, "/empty").kind,
        InodeKind::Regular(FileData::Inline(Box::default()))
    );
    let i = get(&t, "/inline");
    assert_eq!(
        i.kind,
        InodeKind::Regular(FileData::Inline(b"abc"[..].into()))
    );
    assert_eq!((i.permissions, i.size), (0o4755, 3));
    let e = get(&t, "/ext");
    assert_eq!(
        e.kind,
        InodeKind::Regular(FileData::External {
            payload: Some(b"ab/cdef"[..].into()),
            digest: Digest::from_bytes(&[0xaa; 32]),
        })
    );
    assert_eq!((e.size, e.nlink), (100, 4));
    assert_eq!(
        get(&t, "/ext2").kind,
        InodeKind::Regular(FileData::External {
            payload: None,
            digest: None
        })
    );
    assert_eq!(get(&t, "/link").kind, InodeKind::Symlink(b"abc"[..].into()));
    assert_eq!(get(&t, "/chr").kind, InodeKind::CharDevice(1234));
    let b = get(&t, "/blk");
    assert_eq!((&b.kind, b.size), (&InodeKind::BlockDevice(99), 7));
    assert_eq!(get(&t, "/fifo").size, 9);
    assert_eq!(get(&t, "/sock").kind, InodeKind::Socket);
}

#[test]
fn missing_trailing_fields_are_empty_strings() {
    // A directory may stop after MTIME; an empty DIGEST field is "present".
    let t = ok(&with_root(
        "/d 0 40755 2 0 0 0 1.2\n/f 0 100644 1 0 0 0 0.0 -\n",
    ));
    assert_eq!(get(&t, "/d").mtime, Mtime::new(1, 2));
    // An empty CONTENT field is present, and its length (0) must equal SIZE.
    assert_eq!(
        err(&with_root("/f 5 100644 1 0 0 0 0.0 -\n")),
        (Some(2), "Invalid content size 0, must match size 5".into())
    );
    assert_eq!(
        err(&with_root("/d 0 40755 2 0 0 0\n")),
        (Some(2), "Invalid integer ".into())
    );
}

#[test]
fn integers_parse_like_strtoull() {
    let t = parse_bytes(
        with_root(
            "/c +5 20644 \t7 -1 0x 99999999999999999999999 -5.-1 - \\x00\\x00\\x00\\x00\\x00 -\n",
        )
        .as_bytes(),
        &lax(),
    )
    .unwrap();
    let c = get(&t, "/c");
    // UID ≠ 0: the bad GID is ignored and reads as 0; RDEV saturates then truncates.
    assert_eq!((c.size, c.nlink, c.uid, c.gid), (5, 7, u32::MAX, 0));
    assert_eq!(c.kind, InodeKind::CharDevice(u32::MAX));
    assert_eq!(c.mtime, Mtime::new(-5, u32::MAX));
    for bad in ["1x", "", "+", "-", " 1", "1 "] {
        let line = format!("/f {bad} 100644 1 0 0 0 0.0 - - -\n");
        let (_, msg) = err(&with_root(&line));
        if bad.contains(' ') {
            continue; // splits into other fields
        }
        assert_eq!(msg, format!("Invalid integer {bad}"), "{bad:?}");
    }
    // With UID 0 a bad GID or RDEV is an error.
    assert_eq!(
        err(&with_root("/f 0 100644 1 0 x 0 0.0 - - -\n")).1,
        "Invalid integer x"
    );
    assert_eq!(
        err(&with_root("/f 0 100644 1 0 0 y 0.0 - - -\n")).1,
        "Invalid integer y"
    );
    assert_eq!(
        err(&with_root("/f 0 100644 1 z 0 0 0.0 - - -\n")).1,
        "Invalid integer z"
    );
    assert_eq!(
        err(&with_root("/f 0 100644 q 0 0 0 0.0 - - -\n")).1,
        "Invalid integer q"
    );
    // Truncation to 32 bits of NLINK, UID and GID.
    let t = ok(&with_root(
        "/f 0 100644 4294967297 4294967298 4294967299 0 0.0 - - -\n",
    ));
    let f = get(&t, "/f");
    assert_eq!((f.nlink, f.uid, f.gid), (1, 2, 3));
}

#[test]
fn mtime_rules() {
    let t = ok(&with_root(
        "/f 0 100644 1 0 0 0 1.5 - - -\n/g 0 100644 1 0 0 0 -1.4294967296 - - -\n",
    ));
    // The nanoseconds are a count, not a fraction, truncated to 32 bits.
    assert_eq!(get(&t, "/f").mtime, Mtime::new(1, 5));
    assert_eq!(get(&t, "/g").mtime, Mtime::new(-1, 0));
    assert_eq!(
        err(&with_root("/f 0 100644 1 0 0 0 100 - - -\n")).1,
        "Invalid integer "
    );
    assert_eq!(
        err(&with_root("/f 0 100644 1 0 0 0 .5 - - -\n")).1,
        "Invalid integer "
    );
    assert_eq!(
        err(&with_root("/f 0 100644 1 0 0 0 1.2.3 - - -\n")).1,
        "Invalid integer 2.3"
    );
    assert_eq!(
        err(&with_root("/f 0 100644 1 0 0 0 x.3 - - -\n")).1,
        "Invalid integer x"
    );
}

#[test]
fn modes() {
    assert_eq!(
        err(&with_root("/f 0 644 1 0 0 0 0.0 - - -\n")).1,
        "Invalid mode 644"
    );
    assert_eq!(
        err(&with_root("/f 0 0 1 0 0 0 0.0 - - -\n")).1,
        "Invalid mode 0"
    );
    assert_eq!(
        err(&with_root("/f 0 170644 1 0 0 0 0.0 - - -\n")).1,
        "Invalid mode 170644"
    );
    assert_eq!(
        err(&with_root("/f 0 9 1 0 0 0 0.0 - - -\n")).1,
        "Invalid integer 9"
    );
    assert_eq!(
        err(&with_root("/f 0 @ 1 0 0 0 0.0 - - -\n")).1,
        "Invalid integer "
    );
    // Mode is truncated to 32 bits before the type check; bits above 0o7777 are dropped.
    let t = ok(&with_root("/f 0 40000100644 1 0 0 0 0.0 - - -\n"));
    assert_eq!(get(&t, "/f").mode(), 0o100644);
}

#[test]
fn root_rules() {
    assert_eq!(err(""), (None, "No files in dump file".into()));
    assert_eq!(err("\n"), (Some(1), "Invalid empty path".into()));
    assert_eq!(
        err("/a 0 100644 1 0 0 0 0.0 - - -\n"),
        (Some(1), "Root node not present".into())
    );
    assert_eq!(
        err("/ 0 100644 1 0 0 0 0.0 - - -\n"),
        (Some(1), "Root must be a directory".into())
    );
    assert_eq!(
        err(&with_root(ROOT)),
        (Some(2), "Can't have multiple roots".into())
    );
    assert_eq!(
        err(&with_root("/ 0 100644 1 0 0 0 0.0 - - -\n")),
        (Some(2), "Root must be a directory".into())
    );
    assert_eq!(
        err("/ 0 @40755 1 0 0 0 0.0 - - -\n"),
        (Some(1), "Directories can't be hardlinked".into())
    );
    let t = ok("/ 10 41777 7 1 2 0 3.4 - - - user.x=y\n");
    let r = t.root();
    assert_eq!((r.permissions, r.nlink, r.uid, r.size), (0o1777, 7, 1, 10));
    assert_eq!(r.xattr(b"user.x"), Some(&b"y"[..]));
}

#[test]
fn path_rules() {
    let t = ok(&with_root(
        "a 0 40755 2 0 0 0 0.0 - - -\n//a///b 0 100644 1 0 0 0 0.0 - - -\n/a\\x2fc 0 100644 1 0 0 0 0.0 - - -\n/x\\x00y 0 100644 1 0 0 0 0.0 - - -\n",
    ));
    // Leading slashes are skipped; `\x2f` separates; `\x00` ends the path.
    assert!(get(&t, "/a/b").size == 0);
    assert!(t.lookup_path(b"/a/c").is_some());
    assert!(t.lookup_path(b"/x").is_some());
    assert_eq!(
        err(&with_root("/a/b 0 100644 1 0 0 0 0.0 - - -\n")).1,
        "Parent directory missing for /a/b"
    );
    assert_eq!(
        err(&with_root(
            "/f 0 100644 1 0 0 0 0.0 - - -\n/f/b 0 100644 1 0 0 0 0.0 - - -\n"
        ))
        .1,
        "Parent must be a directory for /f/b"
    );
    assert_eq!(
        err(&with_root(
            "/f 0 100644 1 0 0 0 0.0 - - -\n/f/b/c 0 100644 1 0 0 0 0.0 - - -\n"
        ))
        .1,
        "Parent directory missing for /f/b/c"
    );
    for p in ["/.", "/..", "/a/..", "."] {
        let input = with_root(&format!(
            "/a 0 40755 2 0 0 0 0.0 - - -\n{p} 0 40755 2 0 0 0 0.0 - - -\n"
        ));
        let expected = format!("Invalid . or .. in path: {p}");
        assert_eq!(err(&input), (Some(3), expected));
    }
    // `.` or `..` in the middle is just a missing parent.
    assert_eq!(
        err(&with_root("/./a 0 100644 1 0 0 0 0.0 - - -\n")).1,
        "Parent directory missing for /./a"
    );
    for p in ["//", "/a/", "/a//"] {
        let input = with_root(&format!(
            "/a 0 40755 2 0 0 0 0.0 - - -\n{p} 0 100644 1 0 0 0 0.0 - - -\n"
        ));
        assert_eq!(err(&input), (Some(3), "Can't add child".into()), "{p}");
    }
    let long = "n".repeat(256);
    assert_eq!(
        err(&with_root(&format!("/{long} 0 100644 1 0 0 0 0.0 - - -\n"))).1,
        "Can't add child"
    );
    assert!(parse_bytes(
        with_root(&format!("/{} 0 100644 1 0 0 0 0.0 - - -\n", &long[1..])).as_bytes(),
        &strict()
    )
    .is_ok());
    assert_eq!(
        err(&with_root(
            "/a 0 100644 1 0 0 0 0.0 - - -\n/a 0 100644 1 0 0 0 0.0 - - -\n"
        )),
        (Some(3), "Can't add child".into())
    );
    assert_eq!(
        err("\\x00 0 40755 2 0 0 0 0.0 - - -\n").1,
        "Invalid empty path"
    );
}

#[test]
fn escape_errors_in_fields() {
    assert_eq!(
        err("/\\ 0 40755 2 0 0 0 0.0 - - -\n").1,
        "No character after escape"
    );
    assert_eq!(
        err(&with_root("/a 1 100644 1 0 0 0 0.0 - \\x1 -\n")).1,
        "No hex characters after hex escape"
    );
    assert_eq!(
        err(&with_root("/a 1 100644 1 0 0 0 0.0 - \\xzz -\n")).1,
        "Invalid hex characters after hex escape"
    );
    assert_eq!(
        err(&with_root("/a 0 100644 1 0 0 0 0.0 \\q - -\n")).1,
        "Unsupported escape type q"
    );
    assert_eq!(
        err(&with_root("/a 0 100644 1 0 0 0 0.0 - - \\q\n")).1,
        "Unsupported escape type q"
    );
    assert_eq!(
        err(&with_root("/a 0 100644 1 0 0 0 0.0 - - - \\q=v\n")).1,
        "Unsupported escape type q"
    );
    // The raw byte is part of the message.
    let (_, m) = err_with(
        with_root("/a 0 100644 1 0 0 0 0.0 \\\u{e9} - -\n").as_bytes(),
        strict(),
    );
    assert!(m.starts_with("Unsupported escape type "));
}

#[test]
fn embedded_nul() {
    assert_eq!(
        err_with(b"/ 4096 40755 2 0 0 0 0.0 - - -\n/a\0 0 100644\n", strict()),
        (
            Some(2),
            "Invalid embedded NUL character at position 2".into()
        )
    );
}

#[test]
fn content_and_payload_limits() {
    let c5000 = "c".repeat(5000);
    let t = ok(&with_root(&format!(
        "/f 5000 100644 1 0 0 0 0.0 - {c5000} -\n"
    )));
    assert_eq!(get(&t, "/f").size, 5000);
    let c5001 = "c".repeat(5001);
    assert_eq!(
        err(&with_root(&format!(
            "/f 5001 100644 1 0 0 0 0.0 - {c5001} -\n"
        )))
        .1,
        "Inline content size 5001 exceeds maximum 5000"
    );
    // Content size mismatches are checked for every type, with C's signed printing.
    assert_eq!(
        err(&with_root("/d -1 40755 2 0 0 0 0.0 - ab -\n")).1,
        "Invalid content size 2, must match size -1"
    );
    // Matching content on other types is accepted and ignored, within the same limits.
    let t = ok(&with_root(
        "/d 2 40755 2 0 0 0 0.0 - ab -\n/p 2 10644 1 0 0 0 0.0 xx ab -\n",
    ));
    assert_eq!(get(&t, "/d").size, 2);
    assert_eq!(
        err(&with_root(&format!(
            "/d 5001 40755 2 0 0 0 0.0 - {c5001} -\n"
        )))
        .1,
        "Inline content size 5001 exceeds maximum 5000"
    );
    let p4095 = "p".repeat(4095);
    ok(&with_root(&format!(
        "/f 1 100644 1 0 0 0 0.0 {p4095} - -\n"
    )));
    let p4096 = "p".repeat(4096);
    assert_eq!(
        err(&with_root(&format!(
            "/f 1 100644 1 0 0 0 0.0 {p4096} - -\n"
        )))
        .1,
        "Invalid payload"
    );
    assert_eq!(
        err(&with_root(&format!("/d 0 40755 1 0 0 0 0.0 {p4096} - -\n"))).1,
        "Invalid payload"
    );
    // The payload is a C string: an escaped NUL shortens it.
    ok(&with_root(&format!(
        "/f 1 100644 1 0 0 0 0.0 a\\x00{p4096} - -\n"
    )));
    // PAYLOAD or CONTENT of exactly `\x2d` is a real dash.
    let t = ok(&with_root(
        "/f 1 100644 1 0 0 0 0.0 - \\x2d -\n/g 1 100644 1 0 0 0 0.0 \\x2d - -\n",
    ));
    assert_eq!(
        get(&t, "/f").kind,
        InodeKind::Regular(FileData::Inline(b"-"[..].into()))
    );
    assert_eq!(
        get(&t, "/g").kind,
        InodeKind::Regular(FileData::External {
            payload: Some(b"-"[..].into()),
            digest: None
        })
    );
    // An empty PAYLOAD means no redirect.
    let t = ok(&with_root("/f 1 100644 1 0 0 0 0.0  - -\n"));
    assert_eq!(
        get(&t, "/f").kind,
        InodeKind::Regular(FileData::External {
            payload: None,
            digest: None
        })
    );
}

#[test]
fn symlinks() {
    let t = parse_bytes(
        with_root("/l 3 120777 1 0 0 0 0.0 target abc -\n").as_bytes(),
        &lax(),
    )
    .unwrap();
    let l = get(&t, "/l");
    assert_eq!(
        (l.size, &l.kind),
        (6, &InodeKind::Symlink(b"target"[..].into()))
    );
    assert_eq!(
        err(&with_root("/l 99 120777 1 0 0 0 0.0 target - -\n")).1,
        "Invalid symlink size 6, must match size 99"
    );
    assert_eq!(
        err(&with_root("/l 3 120777 1 0 0 0 0.0 abc abc -\n")).1,
        "Symlink cannot have content"
    );
    for p in ["-", "", "\\x00x"] {
        assert_eq!(
            err(&with_root(&format!("/l 0 120777 1 0 0 0 0.0 {p} - -\n"))).1,
            "Invalid symlink",
            "{p}"
        );
    }
    let long = "t".repeat(4096);
    assert_eq!(
        err_with(
            with_root(&format!("/l 4096 120777 1 0 0 0 0.0 {long} - -\n")).as_bytes(),
            lax()
        )
        .1,
        "Invalid symlink"
    );
    ok(&with_root(&format!(
        "/l 4095 120777 1 0 0 0 0.0 {} - -\n",
        &long[1..]
    )));
}

#[test]
fn strict_mode_checks() {
    let devnum = with_root("/f 0 100644 1 0 0 5 0.0 - - -\n");
    assert_eq!(
        err(&devnum),
        (Some(2), "Non-zero devnum on non-device".into())
    );
    let t = parse_bytes(devnum.as_bytes(), &lax()).unwrap();
    assert_eq!(get(&t, "/f").rdev(), 0);
    // A bad RDEV ignored because UID ≠ 0 reads as 0 and passes the strict check.
    ok(&with_root("/f 0 100644 1 1 0 x 0.0 - - -\n"));
    let unterminated = "/ 4096 40755 2 0 0 0 0.0 - - -\n/f 0 100644 1 0 0 0 0.0 - - -";
    assert_eq!(
        err(unterminated),
        (Some(2), "Missing trailing newline".into())
    );
    let t = parse_bytes(unterminated.as_bytes(), &lax()).unwrap();
    assert!(t.lookup_path(b"/f").is_some());
    // Strict mode does not parse the unterminated line at all.
    assert_eq!(err("/ 0 1 x"), (Some(1), "Missing trailing newline".into()));
}

#[test]
fn xattrs() {
    let t = ok(&with_root(
        "/f 0 100644 1 0 0 0 0.0 - - - user.a=1 user.b=x=y user.a=2 user.k\\x3d=\\x00v \n",
    ));
    let f = get(&t, "/f");
    let got: Vec<(&[u8], &[u8])> = f.xattrs.iter().map(|x| (&*x.name, &*x.value)).collect();
    assert_eq!(
        got,
        [
            (&b"user.a"[..], &b"2"[..]),
            (b"user.b", b"x=y"),
            (b"user.k=", b"\0v")
        ]
    );
    // The key is a C string; the value is not.
    let t = ok(&with_root(
        "/f 0 100644 1 0 0 0 0.0 - - - user.a\\x00b=v\\x00w\n",
    ));
    assert_eq!(get(&t, "/f").xattr(b"user.a"), Some(&b"v\0w"[..]));
    assert_eq!(
        err(&with_root("/f 0 100644 1 0 0 0 0.0 - - - user.a\n")).1,
        "Missing = in xattr"
    );
    assert_eq!(
        err(&with_root("/f 0 100644 1 0 0 0 0.0 - - -  \n")).1,
        "Missing = in xattr"
    );
    assert_eq!(
        err(&with_root("/f 0 100644 1 0 0 0 0.0 - - - =v\n")).1,
        "Can't set xattr"
    );
    assert_eq!(
        err(&with_root("/f 0 100644 1 0 0 0 0.0 - - - \\x00=v\n")).1,
        "Can't set xattr"
    );
    let k255 = "k".repeat(255);
    ok(&with_root(&format!(
        "/f 0 100644 1 0 0 0 0.0 - - - {k255}=v\n"
    )));
    assert_eq!(
        err(&with_root(&format!(
            "/f 0 100644 1 0 0 0 0.0 - - - k{k255}=v\n"
        )))
        .1,
        "Can't set xattr"
    );
    // Budget: 12 + 7 + 6 + 32742 = 32767 fits exactly; one byte more does not.
    let v = "v".repeat(32742);
    ok(&with_root(&format!(
        "/f 0 100644 1 0 0 0 0.0 - - - user.a={v}\n"
    )));
    assert_eq!(
        err(&with_root(&format!(
            "/f 0 100644 1 0 0 0 0.0 - - - user.a={v}v\n"
        )))
        .1,
        "Can't set xattr"
    );
    // Replacing a value refunds the old one.
    let half = "v".repeat(20000);
    ok(&with_root(&format!(
        "/f 0 100644 1 0 0 0 0.0 - - - user.a={half} user.a={half}\n"
    )));
    assert_eq!(
        err(&with_root(&format!(
            "/f 0 100644 1 0 0 0 0.0 - - - user.a={half} user.b={half}\n"
        )))
        .1,
        "Can't set xattr"
    );
    // The xattr part of a line is capped at 65535 bytes before anything is parsed.
    let filler = "x".repeat(65535 - "a=".len());
    ok(&with_root(&format!(
        "/f 0 100644 1 0 0 0 0.0 - - - a={}\n",
        &filler[..30000]
    )));
    assert_eq!(
        err(&with_root(&format!(
            "/f 0 100644 1 0 0 0 0.0 - - - a={filler}z\n"
        )))
        .1,
        "Too many xattrs"
    );
    assert_eq!(
        err(&with_root(&format!(
            "/f 0 100644 1 0 0 0 0.0 - - - {filler}zzz\n"
        )))
        .1,
        "Too many xattrs"
    );
}

#[test]
fn digests() {
    let hex = "0123456789abcdefABCDEF0123456789abcdef0123456789abcdef0123456789";
    let mut raw = [0u8; 32];
    ::hex::decode_to_slice(hex, &mut raw).unwrap();
    // More than 64 characters: the rest is ignored, whatever it is.
    let t = ok(&with_root(&format!(
        "/f 1 100644 1 0 0 0 0.0 - - {hex}zz\n"
    )));
    assert_eq!(
        get(&t, "/f").kind,
        InodeKind::Regular(FileData::External {
            payload: None,
            digest: Some(Digest::Sha256(raw))
        })
    );
    for bad in [&hex[..63], "", "xyz", &format!("{}g", &hex[..63])] {
        let (_, m) = err(&with_root(&format!("/f 1 100644 1 0 0 0 0.0 - - {bad}\n")));
        assert_eq!(m, format!("Invalid digest {bad}"));
    }
    // The digest of anything but an external file is ignored, as in C.
    ok(&with_root("/f 0 100644 1 0 0 0 0.0 - - xyz\n/g 1 100644 1 0 0 0 0.0 - a xyz\n/d 0 40755 2 0 0 0 0.0 - - xyz\n"));
}

#[test]
fn external_size_limit() {
    ok(&with_root("/f 9007199254740992 100644 1 0 0 0 0.0 - - -\n"));
    let big =
        with_root("/f 9007199254740993 100644 1 0 0 0 0.0 - - -\n/g 0 100644 1 0 0 0 0.0 - - -\n");
    assert_eq!(
        err(&big),
        (Some(2), "cannot write file: File too large".into())
    );
    // C's round-up wraps for sizes close to 2^64, which it then accepts.
    ok(&with_root(
        "/f 18446735277616529409 100644 1 0 0 0 0.0 - - -\n",
    ));
    assert_eq!(
        err(&with_root(
            "/f 18446735277616529408 100644 1 0 0 0 0.0 - - -\n"
        ))
        .1,
        "cannot write file: File too large"
    );
    // Inline files are not chunked; a later parse error wins over the size check.
    assert_eq!(
        err(&with_root(
            "/f 9007199254740993 100644 1 0 0 0 0.0 - - -\n/g 0 1 1 0 0 0 0.0 - - -\n"
        ))
        .1,
        "Invalid mode 1"
    );
}

#[test]
fn hardlinks_resolve_after_the_file() {
    let t = ok(&with_root(
        "/a 0 @100644 9 9 9 9 x /c - - bad\n\
         /b 0 @120777 1 0 0 0 0.0 c - -\n\
         /c 5 100644 3 1 0 0 0.0 - hello - user.x=1\n\
         /d 4096 40755 2 0 0 0 0.0 - - -\n\
         /d/e 0 @100644 1 0 0 0 0.0 //a - -\n\
         /l 0 @100644 1 0 0 0 0.0 /d - -\n",
    ));
    let c = t.lookup(InodeId::ROOT, b"c").unwrap();
    assert!(!c.link);
    for (dir, name) in [(InodeId::ROOT, &b"a"[..]), (InodeId::ROOT, b"b")] {
        let e = t.lookup(dir, name).unwrap();
        assert!(e.link && e.inode == c.inode, "{name:?}");
    }
    let d = t.lookup_path(b"/d").unwrap();
    let e = t.lookup(d, b"e").unwrap();
    assert!(e.link && e.inode == c.inode);
    // The target keeps its own NLINK; the link line's other fields are ignored.
    assert_eq!(t.inode(c.inode).nlink, 3);
    // A non-directory `@` line may point at a directory.
    let l = t.lookup(InodeId::ROOT, b"l").unwrap();
    assert!(l.link && l.inode == d);
    assert_eq!(t.len(), 3, "no inode is created for hardlink lines");
}

#[test]
fn hardlink_errors() {
    let f = "/f 0 100644 1 0 0 0 0.0 - - -\n";
    assert_eq!(
        err(&with_root("/d 0 @40755 1 0 0 0 0.0 /f - -\n")),
        (Some(2), "Directories can't be hardlinked".into())
    );
    assert_eq!(
        err(&with_root(&format!("{f}/h 0 @100644 1 0 0 0 0.0 - - -\n"))),
        (Some(3), "No target path for the hardlink".into())
    );
    assert_eq!(
        err(&with_root(&format!(
            "{f}/h 0 @100644 1 0 0 0 0.0 /nope - -\n"
        ))),
        (Some(3), "No target at /nope for hardlink".into())
    );
    assert_eq!(
        err(&with_root("/h 0 @100644 1 0 0 0 0.0 /h - -\n")),
        (Some(2), "Self-referential hardlink /h".into())
    );
    // Fixups are checked from the last line back.
    assert_eq!(
        err(&with_root(
            "/a 0 @100644 1 0 0 0 0.0 /x - -\n/b 0 @100644 1 0 0 0 0.0 /y - -\n"
        )),
        (Some(3), "No target at /y for hardlink".into())
    );
    // Nothing is found through a hardlink line or a file, nor via `..`.
    for target in ["/a/x", "/f/x", "/..", "/f/."] {
        let input = with_root(&format!(
            "{f}/a 0 @100644 1 0 0 0 0.0 /f - -\n/b 0 @100644 1 0 0 0 0.0 {target} - -\n"
        ));
        assert_eq!(err(&input).1, format!("No target at {target} for hardlink"));
    }
    // A hardlink line is not a directory for later lines.
    assert_eq!(
        err(&with_root(&format!(
            "{f}/a 0 @100644 1 0 0 0 0.0 /f - -\n/a/x 0 100644 1 0 0 0 0.0 - - -\n"
        )))
        .1,
        "Parent must be a directory for /a/x"
    );
    assert_eq!(
        err(&with_root(
            "/a 0 @100644 1 0 0 0 0.0 /b - -\n/b 0 @100644 1 0 0 0 0.0 /a - -\n"
        ))
        .1,
        "cannot write file: Too many levels of symbolic links"
    );
    assert_eq!(
        err(&with_root("/x 0 @100644 1 0 0 0 0.0 /a - -\n/a 0 @100644 1 0 0 0 0.0 /b - -\n/b 0 @100644 1 0 0 0 0.0 /a - -\n")).1,
        "cannot write file: Too many levels of symbolic links"
    );
    // Escapes in the hardlink PAYLOAD are still checked; the other fields are not.
    assert_eq!(
        err(&with_root("/a 0 @100644 1 0 0 0 0.0 \\q - -\n")).1,
        "Unsupported escape type q"
    );
    assert_eq!(
        err(&with_root(
            "/a 0 @100644 1 0 0 0 0.0 /b - -\n/a 0 100644 1 0 0 0 0.0 - - -\n"
        ))
        .1,
        "Can't add child"
    );
}

#[test]
fn hardlink_to_the_root() {
    for payload in ["/", ""] {
        let t = ok(&with_root(&format!(
            "/x 0 @100644 1 0 0 0 0.0 {payload} - -\n"
        )));
        let e = t.lookup(InodeId::ROOT, b"x").unwrap();
        assert!(e.link && e.inode == InodeId::ROOT);
        // C prints the root's path as empty in the `@` line.
        assert!(write_to_vec(&t).ends_with(b"\n/x 4096 @40755 2 0 0 0 0.0  - -\n"));
    }
}

#[test]
fn parse_reads_streams_like_bytes() {
    let input = with_root("/a 0 40755 2 0 0 0 0.0 - - -\n/a/b 3 100644 1 0 0 0 0.0 - abc -\n");
    let a = parse(
        std::io::BufReader::with_capacity(7, input.as_bytes()),
        &strict(),
    )
    .unwrap();
    assert_eq!(a, parse_bytes(input.as_bytes(), &strict()).unwrap());
    let e = parse(&b"/ 0 40755 2 0 0 0 0.0 - - -\n/x"[..], &strict()).unwrap_err();
    assert_eq!(
        (e.line(), e.message()),
        (Some(2), "Missing trailing newline".into())
    );
    assert_eq!(e.to_string(), "line 2: Missing trailing newline");
}

#[test]
fn the_parent_cache_is_not_fooled() {
    // Siblings with a common prefix, going up and down the tree.
    let t = ok(&with_root(
        "/a 0 40755 2 0 0 0 0.0 - - -\n/ab 0 40755 2 0 0 0 0.0 - - -\n/a/x 0 40755 2 0 0 0 0.0 - - -\n\
         /ab/x 0 100644 1 0 0 0 0.0 - - -\n/a/x/y 0 100644 1 0 0 0 0.0 - - -\n/a/z 0 100644 1 0 0 0 0.0 - - -\n\
         /ab/y 0 100644 1 0 0 0 0.0 - - -\n",
    ));
    assert!(t.inode(t.lookup_path(b"/a/x").unwrap()).is_dir());
    assert!(!t.inode(t.lookup_path(b"/ab/x").unwrap()).is_dir());
    for p in ["/a/x/y", "/a/z", "/ab/y"] {
        assert!(t.lookup_path(p.as_bytes()).is_some(), "{p}");
    }
}

#[test]
fn write_prints_like_composefs_info() {
    let digest = "ab".repeat(32);
    let input = with_root(&format!(
        "/a\\x20b=c\\xff\\x7f 0 100644 1 0 0 0 0.0 - - - user.k\\x3d=v\\x3d\\x20\\\\\n\
         /dash 1 100644 1 0 0 0 0.0 - \\x2d -\n\
         /ext 10 100644 2 5 6 0 -3.7 \\x2d - {digest}\n\
         /dev 0 20600 1 0 0 259 1.0 - - -\n\
         /hl 0 @120777 1 0 0 0 0.0 /ext - -\n\
         /l 3 120777 1 0 0 0 0.0 x\\ny - -\n"
    ));
    let t = ok(&input);
    let out = String::from_utf8(write_to_vec(&t)).unwrap();
    let expected = format!(
        "/ 4096 40755 2 0 0 0 0.0 - - -\n\
         /a\\x20b=c\\xff\\x7f 0 100644 1 0 0 0 0.0 - - - user.k\\x3d=v\\x3d\\x20\\\\\n\
         /dash 1 100644 1 0 0 0 0.0 - \\x2d -\n\
         /dev 0 20600 1 0 0 259 1.0 - - -\n\
         /ext 10 100644 2 5 6 0 -3.7 \\x2d - {digest}\n\
         /hl 10 @100644 2 5 6 0 -3.7 /ext - {digest}\n\
         /l 3 120777 1 0 0 0 0.0 x\\ny - -\n"
    );
    assert_eq!(out, expected);
    // Parsing the output gives the same tree up to arena order, so it prints the same.
    let again = parse_bytes(out.as_bytes(), &strict()).unwrap();
    assert_eq!(write_to_vec(&again), out.as_bytes());
}

#[test]
fn write_keeps_the_defining_line() {
    // The primary entry (/z) comes after the link (/a) in depth-first order: it stays the line
    // printed in full, so that parsing the output places the inode where the input did.
    let input = with_root("/a 0 @100644 1 0 0 0 0.0 /z - -\n/z 0 100644 2 0 0 0 0.0 - - -\n");
    let t = ok(&input);
    let out = String::from_utf8(write_to_vec(&t)).unwrap();
    assert_eq!(
        out,
        format!("{ROOT}/a 0 @100644 2 0 0 0 0.0 /z - -\n/z 0 100644 2 0 0 0 0.0 - - -\n")
    );
    assert_eq!(write_to_vec(&ok(&out)), out.as_bytes());
    // A tree whose primary entry is the first name (every tree read from an image) prints the
    // first name in full, as composefs-info does.
    let mut t = t;
    t.normalize_primary_entries();
    let out = String::from_utf8(write_to_vec(&t)).unwrap();
    assert_eq!(
        out,
        format!("{ROOT}/a 0 100644 2 0 0 0 0.0 - - -\n/z 0 @100644 2 0 0 0 0.0 /a - -\n")
    );
}

#[test]
fn hundred_thousand_lines_round_trip() {
    // Large enough that quadratic behaviour would make this test crawl; speed itself is
    // measured by scripts/bench, not here.
    let mut input = String::from(ROOT);
    for d in 0..100 {
        input.push_str(&format!("/dir{d:03} 4096 40755 2 0 0 0 0.0 - - -\n"));
        for f in 0..1000 {
            input.push_str(&format!(
                "/dir{d:03}/file{f:05} 10 100644 1 0 0 0 1.0 ab/cdef - {} user.a=b\n",
                "0".repeat(64)
            ));
        }
    }
    let t = parse_bytes(input.as_bytes(), &strict()).unwrap();
    assert_eq!(t.len(), 1 + 100 + 100_000);
    let written = write_to_vec(&t);
    assert_eq!(written, input.as_bytes());
}
