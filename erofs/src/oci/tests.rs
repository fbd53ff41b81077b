//! Tests of layer reading and merging on tar streams built here.

use std::io::Write;

use proptest::prelude::*;

use super::merge::MergeFault;
use super::tar::EntryFault;
use super::*;
use crate::fsverity;
use crate::tree::{FileData, HashAlgorithm, Inode, InodeId, InodeKind, Mtime, Tree};

/// Builds tar streams member by member, with PAX records where asked.
pub(crate) struct Layer {
    b: ::tar::Builder<Vec<u8>>,
}

pub(crate) fn pax_records(records: &[(&str, &[u8])]) -> Vec<u8> {
    let records: Vec<_> = records.iter().map(|(k, v)| (k.as_bytes(), *v)).collect();
    super::tar::encode_pax(&records)
}

impl Layer {
    pub(crate) fn new() -> Self {
        Layer {
            b: ::tar::Builder::new(Vec::new()),
        }
    }

    fn header(kind: ::tar::EntryType, mode: u32, size: u64) -> ::tar::Header {
        let mut h = ::tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1000);
        h
    }

    pub(crate) fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let data = pax_records(records);
        let mut h = Self::header(::tar::EntryType::XHeader, 0o644, data.len() as u64);
        h.set_path("PaxHeader").unwrap();
        h.set_cksum();
        self.b.append(&h, &data[..]).unwrap();
        self
    }

    pub(crate) fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        let mut h = Self::header(::tar::EntryType::Directory, mode, 0);
        self.b.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    pub(crate) fn file(&mut self, path: &str, content: &[u8]) -> &mut Self {
        let mut h = Self::header(::tar::EntryType::Regular, 0o644, content.len() as u64);
        self.b.append_data(&mut h, path, content).unwrap();
        self
    }

    pub(crate) fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        let mut h = Self::header(::tar::EntryType::Symlink, 0o777, 0);
        self.b.append_link(&mut h, path, target).unwrap();
        self
    }

    pub(crate) fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        let mut h = Self::header(::tar::EntryType::Link, 0o644, 0);
        self.b.append_link(&mut h, path, target).unwrap();
        self
    }

    pub(crate) fn device(&mut self, path: &str, char: bool, major: u32, minor: u32) -> &mut Self {
        let kind = if char {
            ::tar::EntryType::Char
        } else {
            ::tar::EntryType::Block
        };
        let mut h = Self::header(kind, 0o600, 0);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.b.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    pub(crate) fn fifo(&mut self, path: &str) -> &mut Self {
        let mut h = Self::header(::tar::EntryType::Fifo, 0o644, 0);
        self.b.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    pub(crate) fn bytes(&mut self) -> Vec<u8> {
        let b = std::mem::replace(&mut self.b, ::tar::Builder::new(Vec::new()));
        b.into_inner().unwrap()
    }
}

fn entries(layer: &[u8]) -> Result<Vec<TarEntry>, TarError> {
    let mut out = Vec::new();
    tar::read_layer(layer, &TarOptions::default(), |e| {
        out.push(e);
        Ok::<_, TarError>(())
    })?;
    Ok(out)
}

fn merged(layers: &[Vec<u8>]) -> Result<Tree, LayerError> {
    let mut m = LayerMerger::new();
    for l in layers {
        apply_layer(&mut m, &l[..], &TarOptions::default())?;
    }
    Ok(m.into_tree())
}

fn node<'t>(t: &'t Tree, path: &str) -> &'t Inode {
    t.inode(
        t.lookup_path(path.as_bytes())
            .unwrap_or_else(|| panic!("{path} missing")),
    )
}

fn names(t: &Tree, dir: &str) -> Vec<String> {
    t.dir(t.lookup_path(dir.as_bytes()).unwrap())
        .unwrap()
        .entries()
        .iter()
        .map(|e| String::from_utf8_lossy(&e.name).into_owned())
        .collect()
}

#[test]
fn reads_every_entry_type() {
    let big = vec![7u8; 100_000];
    let layer = Layer::new()
        .dir("./", 0o755)
        .dir("usr/", 0o755)
        .file("usr/small", &[1u8; 64])
        .file("usr/big", &big)
        .file("usr/empty", b"")
        .symlink("usr/link", "../some/where")
        .hardlink("usr/hard", "./usr/big")
        .device("usr/tty", true, 4, 1)
        .device("usr/sda", false, 8, 0x123)
        .fifo("usr/pipe")
        .bytes();
    let es = entries(&layer).unwrap();
    let paths: Vec<&[u8]> = es.iter().map(|e| &*e.path).collect();
    assert_eq!(
        paths,
        [
            &b""[..],
            b"usr",
            b"usr/small",
            b"usr/big",
            b"usr/empty",
            b"usr/link",
            b"usr/hard",
            b"usr/tty",
            b"usr/sda",
            b"usr/pipe"
        ]
    );
    let kind = |i: usize| match &es[i].item {
        TarItem::Node(n) => n.kind.clone(),
        TarItem::Hardlink(t) => panic!("hardlink to {t:?}"),
    };
    assert_eq!(
        kind(2),
        InodeKind::Regular(FileData::Inline(vec![1u8; 64].into()))
    );
    let want = fsverity::digest(HashAlgorithm::Sha256, &big);
    assert_eq!(
        kind(3),
        InodeKind::Regular(FileData::External {
            payload: Some(want.object_path().into_bytes().into()),
            digest: Some(want),
        })
    );
    assert_eq!(kind(4), InodeKind::Regular(FileData::Inline(Box::new([]))));
    assert_eq!(kind(5), InodeKind::Symlink(b"../some/where"[..].into()));
    assert_eq!(es[6].item, TarItem::Hardlink(b"usr/big"[..].into()));
    assert_eq!(kind(7), InodeKind::CharDevice(0x401));
    assert_eq!(kind(8), InodeKind::BlockDevice(tar::makedev(8, 0x123)));
    assert_eq!(kind(9), InodeKind::Fifo);
    match &es[3].item {
        TarItem::Node(n) => assert_eq!(n.size, 100_000),
        _ => unreachable!(),
    }
}

#[test]
fn pax_records_override_the_header() {
    let long = format!("usr/{}", "n".repeat(150));
    let layer = Layer::new()
        .pax(&[
            ("mtime", b"1700000000.123456789123"),
            ("uid", b"4000000000"),
            ("gid", b"77"),
            ("SCHILY.xattr.user.a", b"1"),
            ("SCHILY.xattr.security.capability", b"\x00\x01\xff"),
            ("SCHILY.xattr.user.a", b"2"),
            ("LIBARCHIVE.xattr.user.b", b"ignored"),
        ])
        .file(&long, b"x")
        .pax(&[("path", b"usr/renamed"), ("mtime", b"5.5")])
        .file("usr/original", b"y")
        .bytes();
    let es = entries(&layer).unwrap();
    assert_eq!(&*es[0].path, long.as_bytes());
    let TarItem::Node(n) = &es[0].item else {
        panic!()
    };
    assert_eq!(n.mtime, Mtime::new(1700000000, 123456789));
    assert_eq!((n.uid, n.gid), (4000000000, 77));
    assert_eq!(n.xattrs.len(), 2);
    assert_eq!(n.xattr(b"user.a"), Some(&b"2"[..]));
    assert_eq!(n.xattr(b"security.capability"), Some(&b"\x00\x01\xff"[..]));
    assert_eq!(&*es[1].path, b"usr/renamed");
    let TarItem::Node(n) = &es[1].item else {
        panic!()
    };
    assert_eq!(n.mtime, Mtime::new(5, 500000000));
}

/// PAX values are read by their length: a binary xattr value with newlines (which the tar
/// crate's own record parser splits on) survives, next to a PAX path and a GNU long name.
#[test]
fn pax_values_with_newlines_are_kept() {
    let value: &[u8] = b"\n\x02\n=\n";
    let long = format!("usr/{}", "n".repeat(150));
    let layer = Layer::new()
        .dir("usr", 0o755)
        .pax(&[
            ("SCHILY.xattr.security.capability", value),
            ("mtime", b"1700000000.25"),
        ])
        .file("usr/cap", b"x")
        .file(&long, b"y")
        .pax(&[("path", b"usr/renamed"), ("SCHILY.xattr.user.a", b"\n")])
        .file("usr/orig", b"z")
        .bytes();
    let got = entries(&layer).unwrap();
    let node = |i: usize| match &got[i].item {
        TarItem::Node(n) => n.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(&*got[1].path, b"usr/cap");
    let cap = node(1);
    assert_eq!(cap.mtime, Mtime::new(1_700_000_000, 250_000_000));
    assert_eq!(&*cap.xattrs[0].value, value);
    assert_eq!(&*got[2].path, long.as_bytes());
    assert!(node(2).xattrs.is_empty());
    assert_eq!(&*got[3].path, b"usr/renamed");
    assert_eq!(&*node(3).xattrs[0].value, b"\n");
}

#[test]
fn pax_records_parse_by_length() {
    use super::tar::parse_pax;
    assert_eq!(parse_pax(b"").unwrap(), vec![]);
    assert_eq!(
        parse_pax(b"8 a=b\nc\n7 d=ee\n").unwrap(),
        vec![(&b"a"[..], &b"b\nc"[..]), (&b"d"[..], &b"ee"[..])]
    );
    for bad in [
        &b"5 a=b"[..], // length past the end
        b"4 a=b\n",    // length short of the newline
        b"x a=b\n",    // not a number
        b"6 ab\n\n",   // no '='
        b"99999999999999999999999 a=b\n",
        b"4 \n\n\n",
    ] {
        assert!(
            parse_pax(bad).is_err(),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn malformed_pax_mtime_names_the_entry() {
    for bad in [&b"-1.5"[..], b"17.x", b"abc"] {
        let layer = Layer::new()
            .pax(&[("mtime", bad)])
            .file("usr/when", b"")
            .bytes();
        match entries(&layer) {
            Err(TarError::Entry { entry, fault }) => {
                assert_eq!(entry, "usr/when");
                assert!(matches!(fault, EntryFault::BadPaxMtime(_)), "{fault}");
            }
            other => panic!("{other:?}"),
        }
    }
}

/// GNU sparse members, old-style (type `S`) and PAX (`GNU.sparse.*`, as GNU tar's default
/// `--sparse --format=posix` writes them), are refused with a clear fault rather than read as
/// the `GNUSparseFile.N/` placeholder path the PAX form otherwise shows.
#[test]
fn sparse_members_are_refused() {
    let pax = Layer::new()
        .pax(&[
            ("GNU.sparse.major", b"1"),
            ("GNU.sparse.minor", b"0"),
            ("GNU.sparse.name", b"disk.img"),
            ("GNU.sparse.realsize", b"1048576"),
        ])
        .file("GNUSparseFile.1/disk.img", b"1\n0\n0\n")
        .bytes();
    let mut gnu = ::tar::Builder::new(Vec::new());
    let mut h = Layer::header(::tar::EntryType::GNUSparse, 0o644, 0);
    h.as_gnu_mut().unwrap().realsize = *b"00000000000\0";
    gnu.append_data(&mut h, "disk.img", &[][..]).unwrap();
    let gnu = gnu.into_inner().unwrap();
    for (what, layer, name) in [
        ("PAX", pax, "GNUSparseFile.1/disk.img"),
        ("GNU", gnu, "disk.img"),
    ] {
        match entries(&layer) {
            Err(TarError::Entry { entry, fault }) => {
                assert_eq!(entry, name, "{what}");
                assert_eq!(fault, EntryFault::Sparse, "{what}");
            }
            other => panic!("{what}: {other:?}"),
        }
    }
}

#[test]
fn dotdot_never_escapes_the_root() {
    let layer = Layer::new()
        .pax(&[("path", b"usr/../../etc/x")])
        .file("x", b"")
        .bytes();
    match entries(&layer) {
        Err(e @ TarError::Entry { .. }) => assert!(e.to_string().contains("..")),
        other => panic!("{other:?}"),
    }
    let layer = Layer::new()
        .pax(&[("linkpath", b"../etc/shadow")])
        .hardlink("x", "y")
        .bytes();
    assert!(entries(&layer).is_err());
}

#[test]
fn compressed_layers_are_detected() {
    let plain = Layer::new().dir("usr", 0o755).file("usr/a", b"a").bytes();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&plain).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(&plain[..], 3).unwrap();
    let want = merged(std::slice::from_ref(&plain)).unwrap();
    for data in [gz, zst] {
        assert_eq!(merged(&[data]).unwrap(), want);
    }
}

#[test]
fn whiteouts_and_merge_rules() {
    let l1 = Layer::new()
        .dir("usr", 0o755)
        .dir("usr/d", 0o700)
        .file("usr/d/keep", b"k")
        .dir("usr/o", 0o755)
        .file("usr/o/gone", b"g")
        .dir("usr/sub", 0o755)
        .dir("usr/sub/deep", 0o755)
        .file("usr/sub/deep/f", b"f")
        .file("usr/w", b"w")
        .bytes();
    let l2 = Layer::new()
        .dir("usr/d", 0o711)
        .file("usr/d/new", b"n")
        .file("usr/o/.wh..wh..opq", b"")
        .file("usr/o/after", b"a")
        .file("usr/sub", b"now a file")
        .file("usr/.wh.w", b"")
        .file("usr/.wh.never-existed", b"")
        .bytes();
    let t = merged(&[l1, l2]).unwrap();
    assert_eq!(names(&t, "usr"), ["d", "o", "sub"]);
    assert_eq!(names(&t, "usr/d"), ["keep", "new"]);
    assert_eq!(node(&t, "usr/d").permissions, 0o711);
    assert_eq!(names(&t, "usr/o"), ["after"]);
    assert!(!node(&t, "usr/sub").is_dir());
}

#[test]
fn structural_errors_name_the_entry() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (Layer::new().file("usr/x", b"").bytes(), "usr/x"),
        (
            Layer::new()
                .dir("usr", 0o755)
                .hardlink("usr/h", "usr/nothing")
                .bytes(),
            "usr/h",
        ),
        (
            Layer::new().dir("usr", 0o755).hardlink("h", "usr").bytes(),
            "h",
        ),
        (Layer::new().file("f", b"").file("f/x", b"").bytes(), "f/x"),
        (Layer::new().file("./", b"").bytes(), ""),
    ];
    for (layer, path) in cases {
        match merged(&[layer]) {
            Err(LayerError::Merge { layer: 0, source }) => assert_eq!(source.path, path),
            other => panic!("{path}: {other:?}"),
        }
    }
}

#[test]
fn hardlinks_share_inodes_and_count_links() {
    let layer = Layer::new()
        .dir("usr", 0o755)
        .file("usr/a", b"data")
        .hardlink("usr/b", "usr/a")
        .hardlink("usr/c", "/usr/b")
        .file("usr/d", b"x")
        .hardlink("usr/e", "usr/d")
        .file("usr/d", b"replaced")
        .bytes();
    let mut t = merged(&[layer]).unwrap();
    transform_for_oci(&mut t, XattrFilter::default()).unwrap();
    let a = t.lookup_path(b"usr/a").unwrap();
    assert_eq!(t.lookup_path(b"usr/c"), Some(a));
    assert_eq!(t.inode(a).nlink, 3);
    // `e` still names the old `d`, which now has one name.
    let e = t.lookup_path(b"usr/e").unwrap();
    assert_ne!(Some(e), t.lookup_path(b"usr/d"));
    assert_eq!(t.inode(e).nlink, 1);
    assert!(!t.lookup(t.lookup_path(b"usr").unwrap(), b"e").unwrap().link);
    assert_eq!(t.root().nlink, 3);
}

#[test]
fn oci_transform_rules() {
    let layer = Layer::new()
        .dir("./", 0o700)
        .pax(&[
            ("SCHILY.xattr.user.keep", b"u"),
            ("SCHILY.xattr.security.selinux", b"host_t"),
            ("mtime", b"42.000000007"),
        ])
        .dir("usr", 0o751)
        .dir("run", 0o755)
        .dir("run/lock", 0o755)
        .file("run/lock/pid", b"1")
        .pax(&[("SCHILY.xattr.security.capability", b"cap")])
        .file("usr/ping", b"")
        .bytes();
    let mut t = merged(std::slice::from_ref(&layer)).unwrap();
    transform_for_oci(&mut t, XattrFilter::AllowlistOnly).unwrap();
    let root = t.root();
    assert_eq!(root.permissions, 0o751);
    assert_eq!(root.mtime, Mtime::new(42, 7));
    assert!(root.xattrs.is_empty());
    assert!(names(&t, "run").is_empty());
    assert_eq!(node(&t, "run").mtime, Mtime::new(42, 7));
    assert_eq!(
        node(&t, "usr/ping").xattr(b"security.capability"),
        Some(&b"cap"[..])
    );
    // Everything unreachable is gone: root, usr, run, ping.
    assert_eq!(t.len(), 4);

    let mut t = merged(&[layer]).unwrap();
    transform_for_oci(&mut t, XattrFilter::KeepUserXattrs).unwrap();
    assert_eq!(t.root().xattr(b"user.keep"), Some(&b"u"[..]));
    assert_eq!(t.root().xattr(b"security.selinux"), None);

    let mut no_usr = merged(&[Layer::new().dir("etc", 0o755).bytes()]).unwrap();
    assert!(matches!(
        transform_for_oci(&mut no_usr, XattrFilter::default()),
        Err(MergeError {
            fault: MergeFault::NoUsr,
            ..
        })
    ));
}

#[test]
fn digest_store_receives_objects() {
    let dir = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..10_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let layer = Layer::new()
        .dir("usr", 0o755)
        .file("usr/big", &big)
        .file("usr/again", &big)
        .bytes();
    let opts = TarOptions {
        algorithm: HashAlgorithm::Sha512,
        digest_store: Some(dir.path().to_owned()),
    };
    let mut m = LayerMerger::new();
    apply_layer(&mut m, &layer[..], &opts).unwrap();
    let want = fsverity::digest(HashAlgorithm::Sha512, &big);
    let stored = std::fs::read(dir.path().join(want.object_path())).unwrap();
    assert_eq!(stored, big);
    // One object, no temporary files left behind.
    let mut all = Vec::new();
    for d in std::fs::read_dir(dir.path()).unwrap() {
        let d = d.unwrap();
        for f in std::fs::read_dir(d.path()).unwrap() {
            all.push(f.unwrap().path());
        }
    }
    assert_eq!(all.len(), 1);
}

#[test]
fn layer_numbers_in_errors() {
    let good = Layer::new().dir("usr", 0o755).bytes();
    let bad = Layer::new().file("nope/x", b"").bytes();
    let err = tree_from_layers(
        [&good[..], &bad[..]],
        &TarOptions::default(),
        XattrFilter::default(),
    )
    .unwrap_err();
    assert!(matches!(err, LayerError::Merge { layer: 1, .. }), "{err}");
    let truncated = &good[..700];
    let err =
        tree_from_layers([truncated], &TarOptions::default(), XattrFilter::default()).unwrap_err();
    assert!(matches!(err, LayerError::Tar { layer: 0, .. }), "{err}");
}

/// A generated file: name, content, mtime.
fn arb_files() -> impl Strategy<Value = Vec<(String, Vec<u8>, i64, u32, u16)>> {
    proptest::collection::btree_map(
        "[a-z]{1,8}",
        (
            proptest::collection::vec(any::<u8>(), 0..300),
            0i64..4_000_000_000,
            0u32..1_000_000_000,
            0u16..0o7777,
        ),
        0..20,
    )
    .prop_map(|m| {
        m.into_iter()
            .map(|(k, (c, s, n, p))| (k, c, s, n, p))
            .collect()
    })
}

proptest! {
    /// Files written as tar members with PAX mtimes come back with the same content,
    /// permissions and mtime to the nanosecond.
    #[test]
    fn tar_round_trip(files in arb_files()) {
        let mut l = Layer::new();
        l.dir("usr", 0o755);
        for (name, content, sec, nsec, perm) in &files {
            let mtime = format!("{sec}.{nsec:09}");
            l.pax(&[("mtime", mtime.as_bytes())]);
            let mut h = Layer::header(::tar::EntryType::Regular, u32::from(*perm), content.len() as u64);
            l.b.append_data(&mut h, format!("usr/{name}"), &content[..]).unwrap();
        }
        let t = merged(&[l.bytes()]).unwrap();
        let usr = t.lookup_path(b"usr").unwrap();
        prop_assert_eq!(t.dir(usr).unwrap().len(), files.len());
        for (name, content, sec, nsec, perm) in &files {
            let n = t.inode(t.lookup(usr, name.as_bytes()).unwrap().inode);
            prop_assert_eq!(n.mtime, Mtime::new(*sec, *nsec));
            prop_assert_eq!(n.permissions, *perm);
            prop_assert_eq!(n.size, content.len() as u64);
            let want = if content.len() as u64 <= tar::INLINE_MAX {
                FileData::Inline(content.clone().into())
            } else {
                let d = fsverity::digest(HashAlgorithm::Sha256, content);
                FileData::External { payload: Some(d.object_path().into_bytes().into()), digest: Some(d) }
            };
            prop_assert_eq!(&n.kind, &InodeKind::Regular(want));
        }
        prop_assert_eq!(InodeId::ROOT, t.lookup_path(b"/").unwrap());
    }
}
