//! The dumpfile parser and writer against C composefs 1.0.8: its test corpus, its error
//! messages, and `composefs-info dump` of images `mkcomposefs` built.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use cfs_erofs::dumpfile::{parse_bytes, write_to_vec, ParseOptions};
use cfs_erofs::format::XATTR_PREFIXES;
use cfs_erofs::tree::{FileData, InodeKind, Tree};
use conformance::oracle::Oracle;
use conformance::strategy::{arb_tree, canonicalize, renumber};
use proptest::prelude::*;

const STRICT: ParseOptions = ParseOptions { strict: true };
const LAX: ParseOptions = ParseOptions { strict: false };

/// Every dumpfile of the C corpus that should build: (file name, bytes, strict).
fn corpus() -> Vec<(String, Vec<u8>, bool)> {
    conformance::corpus::assets()
        .into_iter()
        .map(|a| (a.name, a.dump, a.strict))
        .collect()
}

fn opts(strict: bool) -> ParseOptions {
    if strict {
        STRICT
    } else {
        LAX
    }
}

/// Runs C mkcomposefs on a dumpfile: the image, or C's stderr.
fn c_build(
    dir: &Path,
    input: &[u8],
    strict: bool,
    version: Option<&str>,
) -> Result<Vec<u8>, Vec<u8>> {
    let src = dir.join("in.dump");
    let img = dir.join("out.cfs");
    std::fs::write(&src, input).unwrap();
    let _ = std::fs::remove_file(&img);
    let mut cmd = Oracle::Mkcomposefs.command();
    if let Some(v) = version {
        cmd.arg(format!("--min-version={v}"))
            .arg(format!("--max-version={v}"));
    }
    cmd.arg("--from-file").arg(&src).arg(&img);
    if strict {
        cmd.env("CFS_PARSE_STRICT", "1");
    } else {
        cmd.env_remove("CFS_PARSE_STRICT");
    }
    let out = cmd.output().expect("run mkcomposefs");
    if out.status.success() {
        Ok(std::fs::read(&img).unwrap())
    } else {
        Err(out.stderr)
    }
}

/// `composefs-info dump` of an image.
fn c_dump(dir: &Path, image: &[u8]) -> Vec<u8> {
    let img = dir.join("dump.cfs");
    std::fs::write(&img, image).unwrap();
    let out = Command::new(Oracle::ComposefsInfo.get())
        .arg("dump")
        .arg(&img)
        .output()
        .expect("run composefs-info");
    assert!(
        out.status.success(),
        "composefs-info: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// C's reason from `mkcomposefs: <reason>\n`.
fn c_reason(stderr: &[u8]) -> Vec<u8> {
    let s = stderr
        .strip_prefix(b"mkcomposefs: ")
        .unwrap_or_else(|| panic!("unexpected stderr {:?}", String::from_utf8_lossy(stderr)));
    s.strip_suffix(b"\n").unwrap_or(s).to_vec()
}

#[test]
fn corpus_parses_and_round_trips() {
    for (name, bytes, strict) in corpus() {
        let tree = parse_bytes(&bytes, &opts(strict)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let written = write_to_vec(&tree);
        let again =
            parse_bytes(&written, &STRICT).unwrap_or_else(|e| panic!("{name} rewritten: {e}"));
        assert!(
            canonicalize(&tree) == again,
            "{name}: write → parse changed the tree"
        );
        assert!(
            write_to_vec(&again) == written,
            "{name}: second write differs"
        );
    }
}

#[test]
fn should_fail_corpus_is_rejected_with_c_messages() {
    let dir = tempfile::tempdir().unwrap();
    for (name, input) in conformance::corpus::should_fail() {
        let c =
            c_build(dir.path(), &input, false, None).expect_err("C accepted a should-fail file");
        let ours = parse_bytes(&input, &LAX).expect_err("accepted a should-fail file");
        assert_eq!(
            String::from_utf8_lossy(&ours.message_bytes()),
            String::from_utf8_lossy(&c_reason(&c)),
            "{name}"
        );
    }
}

#[test]
fn c_dump_of_c_images_rewrites_identically() {
    let dir = tempfile::tempdir().unwrap();
    for a in conformance::corpus::assets() {
        let (name, version) = (&a.name, a.version.map(|v| v.to_string()));
        let image = c_build(dir.path(), &a.dump, a.strict, version.as_deref())
            .unwrap_or_else(|e| panic!("{name}: C failed: {}", String::from_utf8_lossy(&e)));
        let dump = c_dump(dir.path(), &image);
        let tree = parse_bytes(&dump, &STRICT).unwrap_or_else(|e| panic!("{name}: C dump: {e}"));
        let ours = write_to_vec(&tree);
        if ours != dump {
            let line = ours
                .split(|&b| b == b'\n')
                .zip(dump.split(|&b| b == b'\n'))
                .position(|(a, b)| a != b);
            panic!("{name}: rewritten C dump differs at line {line:?}");
        }
    }
}

/// Inputs at the edges of C's rules; each is run through C (strict and not) and must be
/// accepted or rejected the same way, with the same message.
const EDGE_CASES: &[&[u8]] = &[
    b"",
    b"\n",
    b"/ 4096 40755 2 0 0 0 0.0 - - -",
    b"/ 4096 40755 2 0 0 0 0.0 - - -\n/a\0 0 100644\n",
    b"/a 0 100644 1 0 0 0 0.0 - - -\n",
    b"/ 0 100644 1 0 0 0 0.0 - - -\n",
    b"/ 0 40755 2 0 0 0 0.0 - - -\n/ 0 40755 2 0 0 0 0.0 - - -\n",
    b"/ 0 @40755 2 0 0 0 0.0 - - -\n",
    b"/ 0 40755 2 0 0 0\n",
    b"/ 0 40755 2 0 0 0 100\n",
    b"/ 0 40755 2 0 0 0 1.2.3\n",
    b"/ +5 40755 \t7 -1 0 0 -5.-1\n",
    b"/ 1x 40755 2 0 0 0 0.0\n",
    b"/ 0 40755 2 0 x 0 0.0\n",
    b"/ 0 40755 2 1 x y 0.0\n",
    b"/ 0 40755 2 0 0 5 0.0\n",
    b"/ 0 644 2 0 0 0 0.0\n",
    b"/ 0 170755 2 0 0 0 0.0\n",
    b"/ 0 @ 2 0 0 0 0.0\n",
    b"/\\ 0 40755 2 0 0 0 0.0\n",
    b"/\\x4 0 40755 2 0 0 0 0.0\n",
    b"/\\xzz 0 40755 2 0 0 0 0.0\n",
    b"/\\q 0 40755 2 0 0 0 0.0\n",
    b"\\x00 0 40755 2 0 0 0 0.0\n",
    b"/ 0 40755 2 0 0 0 0.0\n/a/b 0 100644 1 0 0 0 0.0 - - -\n",
    b"/ 0 40755 2 0 0 0 0.0\n/f 0 100644 1 0 0 0 0.0 - - -\n/f/b 0 100644 1 0 0 0 0.0 - - -\n",
    b"/ 0 40755 2 0 0 0 0.0\n/f 0 100644 1 0 0 0 0.0 - - -\n/f/b/c 0 100644 1 0 0 0 0.0 - - -\n",
    b"/ 0 40755 2 0 0 0 0.0\n/a/.. 0 40755 2 0 0 0 0.0\n",
    b"/ 0 40755 2 0 0 0 0.0\n/a 0 40755 2 0 0 0 0.0\n/a/.. 0 40755 2 0 0 0 0.0\n",
    b"/ 0 40755 2 0 0 0 0.0\n/./a 0 40755 2 0 0 0 0.0\n",
    b"/ 0 40755 2 0 0 0 0.0\n/a 0 40755 2 0 0 0 0.0\n/a/ 0 40755 2 0 0 0 0.0\n",
    b"/ 0 40755 2 0 0 0 0.0\nx 0 40755 2 0 0 0 0.0\n//x//y 0 100644 1 0 0 0 0.0 - - -\n/x\\x2fz 0 100644 1 0 0 0 0.0 - - -\n",
    b"/ 0 40755 2 0 0 0 0.0\n/a 0 100644 1 0 0 0 0.0 - - -\n/a 0 100644 1 0 0 0 0.0 - - -\n",
    b"/ 0 40755 2 0 0 0 0.0\n/d 2 40755 2 0 0 0 0.0 - ab -\n",
    b"/ 0 40755 2 0 0 0 0.0\n/d -1 40755 2 0 0 0 0.0 - ab -\n",
    b"/ 0 40755 2 0 0 0 0.0\n/f 5 100644 1 0 0 0 0.0 -\n",
    b"/ 0 40755 2 0 0 0 0.0\n/f 1 100644 1 0 0 0 0.0 - \\x2d -\n",
    b"/ 0 40755 2 0 0 0 0.0\n/l 9 120777 1 0 0 0 0.0 target - -\n",
    b"/ 0 40755 2 0 0 0 0.0\n/l 3 120777 1 0 0 0 0.0 abc abc -\n",
    b"/ 0 40755 2 0 0 0 0.0\n/l 0 120777 1 0 0 0 0.0 - - -\n",
    b"/ 0 40755 2 0 0 0 0.0\n/l 0 120777 1 0 0 0 0.0 \\x00x - -\n",
    b"/ 0 40755 2 0 0 0 0.0 - - - user.a\n",
    b"/ 0 40755 2 0 0 0 0.0 - - -  \n",
    b"/ 0 40755 2 0 0 0 0.0 - - - =v\n",
    b"/ 0 40755 2 0 0 0 0.0 - - - \\x00=v\n",
    b"/ 0 40755 2 0 0 0 0.0 - - - user.a=1 user.a\\x00b=2 user.b=x=y \n",
    b"/ 0 40755 2 0 0 0 0.0\n/f 0 @100644 1 0 0 0 0.0 - - -\n",
    b"/ 0 40755 2 0 0 0 0.0\n/f 0 @100644 1 0 0 0 0.0 /nope - -\n",
    b"/ 0 40755 2 0 0 0 0.0\n/f 0 @100644 1 0 0 0 0.0 /f - -\n",
    b"/ 0 40755 2 0 0 0 0.0\n/a 0 @100644 1 0 0 0 0.0 /x - -\n/b 0 @100644 1 0 0 0 0.0 /y - -\n",
    b"/ 0 40755 2 0 0 0 0.0\n/a 0 @100644 1 0 0 0 0.0 /b - -\n/b 0 @100644 1 0 0 0 0.0 /a - -\n",
    b"/ 0 40755 2 0 0 0 0.0\n/a 0 @100644 1 0 0 0 0.0 /b - -\n/b 0 @100644 1 0 0 0 0.0 /c - -\n/c 0 100644 3 0 0 0 0.0 - - -\n",
    b"/ 0 40755 2 0 0 0 0.0\n/f 0 100644 1 0 0 0 0.0 - - -\n/a 0 @100644 1 0 0 0 0.0 /f - -\n/a/x 0 100644 1 0 0 0 0.0 - - -\n",
    b"/ 0 40755 2 0 0 0 0.0\n/f 0 100644 1 0 0 0 0.0 - - -\n/a 0 @100644 1 0 0 0 0.0 /f - -\n/b 0 @100644 1 0 0 0 0.0 /a/x - -\n",
    b"/ 0 40755 2 0 0 0 0.0\n/d 0 40755 2 0 0 0 0.0\n/x 0 @100644 1 0 0 0 0.0 /d - -\n",
    b"/ 0 40755 2 0 0 0 0.0\n/x 0 @100644 1 0 0 0 0.0 / - -\n",
    b"/ 0 40755 2 0 0 0 0.0\n/x 0 @40755 1 0 0 0 0.0 / - -\n",
    b"/ 0 40755 2 0 0 0 0.0\n/a 0 @100644 1 0 0 0 0.0 \\q - -\n",
    b"/ 0 40755 2 0 0 0 0.0\n/a 0 @100644 1 0 0 0 0.0 /b - -\n/a 0 100644 1 0 0 0 0.0 - - -\n",
    b"/ 0 40755 2 0 0 0 0.0\n/f 9007199254740992 100644 1 0 0 0 0.0 - - -\n",
    b"/ 0 40755 2 0 0 0 0.0\n/f 9007199254740993 100644 1 0 0 0 0.0 - - -\n",
    b"/ 0 40755 2 0 0 0 0.0\n/f 18446735277616529408 100644 1 0 0 0 0.0 - - -\n",
    b"/ 0 40755 2 0 0 0 0.0\n/f 1 100644 1 0 0 0 0.0 - - 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdefzz\n",
    b"/ 0 40755 2 0 0 0 0.0\n/f 0 100644 1 0 0 0 0.0 - - xyz\n",
    b"/ 0 40755 2 0 0 0 0.0\n/c 0 20644 1 0 0 4294967296 0.0 - - -\n",
    b"/ 0 40755 2 0 0 0 0.0\n/c 7 10644 1 0 0 0 0.0 - - -\n",
];

#[test]
fn edge_cases_are_judged_like_c() {
    let dir = tempfile::tempdir().unwrap();
    let mut inputs: Vec<Vec<u8>> = EDGE_CASES.iter().map(|c| c.to_vec()).collect();
    // Length limits, built rather than spelled out.
    let root = b"/ 0 40755 2 0 0 0 0.0\n".to_vec();
    let line = |s: String| [root.clone(), s.into_bytes()].concat();
    for n in [5000, 5001] {
        inputs.push(line(format!(
            "/f {n} 100644 1 0 0 0 0.0 - {} -\n",
            "c".repeat(n)
        )));
    }
    for n in [4095, 4096] {
        inputs.push(line(format!(
            "/f 1 100644 1 0 0 0 0.0 {} - -\n",
            "p".repeat(n)
        )));
        inputs.push(line(format!(
            "/l {n} 120777 1 0 0 0 0.0 {} - -\n",
            "t".repeat(n)
        )));
    }
    for n in [255, 256] {
        inputs.push(line(format!(
            "/{} 0 100644 1 0 0 0 0.0 - - -\n",
            "n".repeat(n)
        )));
        inputs.push(line(format!(
            "/f 0 100644 1 0 0 0 0.0 - - - {}=v\n",
            "k".repeat(n)
        )));
    }
    for n in [32742, 32743] {
        inputs.push(line(format!(
            "/f 0 100644 1 0 0 0 0.0 - - - user.a={}\n",
            "v".repeat(n)
        )));
    }
    let half = "v".repeat(20000);
    inputs.push(line(format!(
        "/f 0 100644 1 0 0 0 0.0 - - - user.a={half} user.a={half}\n"
    )));
    inputs.push(line(format!(
        "/f 0 100644 1 0 0 0 0.0 - - - user.a={half} user.b={half}\n"
    )));
    for n in [65535, 65536] {
        inputs.push(line(format!(
            "/f 0 100644 1 0 0 0 0.0 - - - a={}\n",
            "x".repeat(n - 2)
        )));
    }

    for input in &inputs {
        for strict in [false, true] {
            let shown = String::from_utf8_lossy(&input[..input.len().min(120)]).into_owned();
            let c = c_build(dir.path(), input, strict, None);
            let ours = parse_bytes(input, &opts(strict));
            match (&c, &ours) {
                (Ok(_), Ok(_)) => {}
                (Err(c), Err(e)) => assert_eq!(
                    String::from_utf8_lossy(&e.message_bytes()),
                    String::from_utf8_lossy(&c_reason(c)),
                    "strict={strict} {shown:?}"
                ),
                (Ok(_), Err(e)) => panic!("strict={strict} {shown:?}: C accepts, we reject: {e}"),
                (Err(c), Ok(_)) => panic!(
                    "strict={strict} {shown:?}: C rejects ({}), we accept",
                    String::from_utf8_lossy(c)
                ),
            }
        }
    }
}

/// What survives a C image: everything but directory SIZE and NLINK, the SIZE of devices,
/// FIFOs and sockets (C writes 0), xattr order (C sorts) and PAYLOAD (C's reader can append
/// stray bytes to it, §10.2). Also left out: an xattr whose name is exactly an EROFS prefix
/// (`user.`…) with an empty value, because its inline entry is 4 bytes and C's reader stops
/// one entry early when such an entry ends the xattr area (`entry + 4 < end`).
fn image_view(tree: &Tree) -> BTreeMap<Vec<u8>, String> {
    let canon = canonicalize(tree);
    let mut out = BTreeMap::new();
    let mut paths: Vec<(cfs_erofs::InodeId, Vec<u8>)> =
        vec![(cfs_erofs::InodeId::ROOT, b"/".to_vec())];
    let mut i = 0;
    while i < paths.len() {
        let (id, path) = paths[i].clone();
        i += 1;
        let inode = canon.inode(id);
        let kind = match &inode.kind {
            InodeKind::Directory(d) => {
                for e in d.entries() {
                    let child =
                        [&path[..], if path == b"/" { b"" } else { b"/" }, &e.name].concat();
                    if e.link {
                        out.insert(child, format!("link to {}", e.inode.0));
                    } else {
                        paths.push((e.inode, child));
                    }
                }
                "dir".to_string()
            }
            InodeKind::Regular(FileData::Inline(c)) => format!("inline {c:?} size {}", inode.size),
            InodeKind::Regular(FileData::External { digest, .. }) => {
                format!("external {digest:?} size {}", inode.size)
            }
            InodeKind::Symlink(t) => format!("symlink {t:?}"),
            other => format!("{other:?}"),
        };
        let mut xattrs: Vec<_> = inode
            .xattrs
            .iter()
            .filter(|x| !(x.value.is_empty() && XATTR_PREFIXES.iter().any(|(_, p)| *p == &*x.name)))
            .map(|x| (&x.name, &x.value))
            .collect();
        xattrs.sort();
        let nlink = if inode.is_dir() { 0 } else { inode.nlink };
        out.insert(
            path,
            format!(
                "#{} {kind} mode {:o} nlink {nlink} uid {} gid {} mtime {:?} xattrs {xattrs:?}",
                id.0,
                inode.mode(),
                inode.uid,
                inode.gid,
                inode.mtime
            ),
        );
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// tree → write → parse gives the tree back, primary entries included, renumbered.
    #[test]
    fn write_then_parse_is_identity(tree in arb_tree()) {
        let text = write_to_vec(&tree);
        let parsed = parse_bytes(&text, &STRICT).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&renumber(&tree), &parsed);
        prop_assert_eq!(write_to_vec(&parsed), text);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// C accepts what we write (strictly), builds the same tree from it, and its dump of the
    /// image parses and rewrites to the same bytes.
    #[test]
    fn c_reads_what_we_write(tree in arb_tree()) {
        // C's reader may append stray bytes to a redirect (§10.2), which pushes a payload near
        // 4095 bytes over the limit: C then cannot read its own dump back.
        prop_assume!(tree.inodes().all(|(_, i)| !matches!(
            &i.kind,
            InodeKind::Regular(FileData::External { payload: Some(p), .. }) if p.len() > 4000
        )));
        let dir = tempfile::tempdir().unwrap();
        let text = write_to_vec(&tree);
        let image = c_build(dir.path(), &text, true, None)
            .map_err(|e| TestCaseError::fail(String::from_utf8_lossy(&e).into_owned()))?;
        let dump = c_dump(dir.path(), &image);
        let back = parse_bytes(&dump, &STRICT).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(write_to_vec(&back), dump);
        let (theirs, ours) = (image_view(&back), image_view(&tree));
        let diff: Vec<_> = ours
            .iter()
            .filter(|(k, v)| theirs.get(*k) != Some(*v))
            .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), v.clone(), theirs.get(k).cloned()))
            .collect();
        prop_assert!(diff.is_empty(), "ours vs C: {:#?}", diff);
    }
}
