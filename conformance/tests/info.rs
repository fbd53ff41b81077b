//! `composefs-info` output against C composefs-info 1.0.8: for every image C builds from the
//! corpus, our `dump`, `ls`, `objects` and `missing-objects` equal C's byte for byte, also with
//! `--filter` and several images at once.

mod read_support;

use std::path::Path;

use cfs_erofs::info::{self, Filter, InfoError};
use conformance::oracle::Oracle;
use read_support::{assert_same, c_image, corpus_image, corpus_images};

/// Runs C composefs-info with `args`, returning stdout; it must succeed.
fn c_info(args: &[&str], images: &[&Path]) -> Vec<u8> {
    let out = Oracle::ComposefsInfo
        .command()
        .args(args)
        .args(images)
        .output()
        .expect("run composefs-info");
    assert!(
        out.status.success(),
        "composefs-info {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn ours(f: impl FnOnce(&mut Vec<u8>) -> Result<(), InfoError>) -> Vec<u8> {
    let mut v = Vec::new();
    f(&mut v).expect("our info command");
    v
}

#[test]
fn fsck_accepts_the_corpus_images() {
    for c in corpus_images() {
        let out = Oracle::FsckErofs
            .command()
            .arg(&c.path)
            .output()
            .expect("run fsck.erofs");
        assert!(
            out.status.success(),
            "fsck.erofs {}: {}{}",
            c.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn dump_matches_c_on_the_corpus() {
    for c in corpus_images() {
        let expect = c_info(&["dump"], &[&c.path]);
        let got = ours(|o| info::dump(&c.bytes, None, o));
        assert_same(&format!("dump {}", c.name), &got, &expect);
    }
}

#[test]
fn ls_matches_c_on_the_corpus() {
    for c in corpus_images() {
        let expect = c_info(&["ls"], &[&c.path]);
        let got = ours(|o| info::ls(&c.bytes, None, o));
        assert_same(&format!("ls {}", c.name), &got, &expect);
    }
}

#[test]
fn objects_match_c_on_the_corpus() {
    for c in corpus_images() {
        let expect = c_info(&["objects"], &[&c.path]);
        let got = ours(|o| info::objects_images([&c.bytes[..]], None, false, None, o));
        assert_same(&format!("objects {}", c.name), &got, &expect);
    }
}

#[test]
fn objects_of_several_images_are_merged_and_sorted() {
    let names = [
        "config.dump.gz",
        "config-with-hard-link.dump.gz",
        "cs9-x86_64-minimal.dump.gz",
        "special.dump",
    ];
    let imgs: Vec<_> = names.iter().map(|n| corpus_image(n)).collect();
    let paths: Vec<&Path> = imgs.iter().map(|c| c.path.as_path()).collect();
    let bytes: Vec<&[u8]> = imgs.iter().map(|c| &c.bytes[..]).collect();
    let expect = c_info(&["objects"], &paths);
    assert!(!expect.is_empty());
    let got = ours(|o| info::objects_images(bytes.iter().copied(), None, false, None, o));
    assert_same("objects of several images", &got, &expect);
    for cmd in ["dump", "ls"] {
        let expect = c_info(&[cmd], &paths);
        let got = ours(|o| match cmd {
            "dump" => info::dump_images(bytes.iter().copied(), None, o),
            _ => info::ls_images(bytes.iter().copied(), None, o),
        });
        assert_same(&format!("{cmd} of several images"), &got, &expect);
    }
}

#[test]
fn missing_objects_match_c_with_a_basedir() {
    let c = corpus_image("cs9-x86_64-minimal.dump.gz");
    let all = c_info(&["objects"], &[&c.path]);
    let objects: Vec<&[u8]> = all
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    assert!(objects.len() > 10);
    // Half of the objects exist under the basedir.
    let base = tempfile::tempdir().unwrap();
    for o in objects.iter().step_by(2) {
        let p = base
            .path()
            .join(String::from_utf8_lossy(o).trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b"").unwrap();
    }
    let basedir = format!("--basedir={}", base.path().display());
    let expect = c_info(&[&basedir, "missing-objects"], &[&c.path]);
    let got = ours(|o| info::objects_images([&c.bytes[..]], None, true, Some(base.path()), o));
    assert_same("missing-objects", &got, &expect);
    assert_eq!(
        expect.iter().filter(|&&b| b == b'\n').count(),
        objects.len() / 2,
        "half the objects are missing"
    );
    // Without a basedir C reports every object.
    let expect = c_info(&["missing-objects"], &[&c.path]);
    let got = ours(|o| info::objects_images([&c.bytes[..]], None, true, None, o));
    assert_same("missing-objects without basedir", &got, &expect);
    assert_eq!(expect, all);
}

#[test]
fn filter_matches_c() {
    let c = corpus_image("cs9-x86_64-minimal.dump.gz");
    for names in [
        &["usr"][..],
        &["etc", "usr", "nonexistent"],
        &["00"],
        &["var", "boot"],
    ] {
        let filter = Filter::new(names.iter().copied()).unwrap();
        let args: Vec<String> = names.iter().map(|n| format!("--filter={n}")).collect();
        for cmd in ["dump", "ls", "objects"] {
            let mut a: Vec<&str> = args.iter().map(String::as_str).collect();
            a.push(cmd);
            let expect = c_info(&a, &[&c.path]);
            let got = ours(|o| match cmd {
                "dump" => info::dump(&c.bytes, Some(&filter), o),
                "ls" => info::ls(&c.bytes, Some(&filter), o),
                _ => info::objects_images([&c.bytes[..]], Some(&filter), false, None, o),
            });
            assert_same(&format!("{cmd} --filter {names:?}"), &got, &expect);
        }
    }
    assert!(matches!(Filter::new(["a/b"]), Err(InfoError::BadFilter(_))));
}

/// Small trees that exercise C's quirks: the redirect read past its value, escaped overlay
/// xattrs, whiteouts, hardlinks whose first path is not the defining line, `-` payloads.
#[test]
fn quirks_match_c() {
    let dir = tempfile::tempdir().unwrap();
    let digest = "a".repeat(64);
    let cases: Vec<(&str, String)> = vec![
        (
            "redirect-aligned",
            // "/ab/cdef" is 8 bytes: the entry ends on a 4-byte boundary.
            format!(
                "/ 0 40755 2 0 0 0 0.0 - - -\n/f 10 100644 1 0 0 0 0.0 ab/cdef - {digest}\n/g 10 100644 1 0 0 0 0.0 ab/cdefg - -\n/h 10 100644 1 0 0 0 0.0 abcdefghijk - - user.x=y\n"
            ),
        ),
        (
            "overlay-xattrs",
            "/ 0 40755 2 0 0 0 0.0 - - - trusted.overlay.opaque=y trusted.overlay.overlay.x=1 user.overlay.whiteout=z\n/d 0 40755 2 0 0 0 0.0 - - - trusted.overlay.redirect=/x\n/d/w 0 20000 1 0 0 0 0.0 - - - user.a=b\n/d/x 0 100644 1 0 0 0 0.0 - - - trusted.overlay.whiteout=\n".to_owned(),
        ),
        (
            "hardlinks",
            "/ 0 40755 2 0 0 0 0.0 - - -\n/a 0 40755 2 0 0 0 0.0 - - -\n/a/x 0 @100644 0 0 0 0 0.0 /b/y - -\n/b 0 40755 2 0 0 0 0.0 - - -\n/b/y 5 100644 2 7 8 0 12.34 - hello - user.k=v\n/c 0 @100644 0 0 0 0 0.0 b/y - -\n".to_owned(),
        ),
        (
            "dashes-and-escapes",
            "/ 0 40755 2 0 0 0 -5.7 - - -\n/- 1 100644 1 0 0 0 0.0 - \\x2d -\n/a\\x20b=c 3 120777 1 0 0 0 0.0 x\\x20y - -\n/e 100 100644 1 0 0 0 0.0 - - - user.a\\x3d=\\x3d\\x00\\xff\n/p 0 10644 1 0 0 0 0.0 - - -\n/s 0 140644 1 0 0 0 0.0 - - -\n/b 0 60644 1 0 0 1234 0.0 - - -\n".to_owned(),
        ),
    ];
    for (name, text) in cases {
        let bytes = c_image(&text, dir.path(), name);
        let path = dir.path().join(name);
        for cmd in ["dump", "ls", "objects"] {
            let expect = c_info(&[cmd], &[&path]);
            let got = ours(|o| match cmd {
                "dump" => info::dump(&bytes, None, o),
                "ls" => info::ls(&bytes, None, o),
                _ => info::objects_images([&bytes[..]], None, false, None, o),
            });
            assert_same(&format!("{cmd} {name}"), &got, &expect);
        }
    }
}
