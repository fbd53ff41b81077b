//! Shared parts of the V1 writer conformance tests: running C mkcomposefs on a dumpfile, a
//! small C-style dumpfile writer for generated trees (hardlinks as `@` lines at their link
//! entries, so C's defining line is our primary entry), and the random tree generator.

#![allow(dead_code)]

use std::io::Write;
use std::path::Path;

use cfs_erofs::tree::{Digest, FileData, Inode, InodeId, InodeKind, Mtime, Tree};
use conformance::oracle::Oracle;
use proptest::prelude::*;

/// C mkcomposefs' options for one of the three version settings the tests use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Versions {
    /// No option: min 0, max 1.
    Default,
    /// `--min-version=1` (max defaults to 0, then raised to 1).
    Min1,
    /// `--max-version=0` (min defaults to 0).
    Max0,
    /// `--min-version=V --max-version=V`.
    Exact(u32),
}

impl Versions {
    pub fn args(self) -> Vec<String> {
        match self {
            Versions::Default => vec![],
            Versions::Min1 => vec!["--min-version=1".into()],
            Versions::Max0 => vec!["--max-version=0".into()],
            Versions::Exact(v) => vec![format!("--min-version={v}"), format!("--max-version={v}")],
        }
    }

    /// The writer options C's defaulting gives (§6.1).
    pub fn options(self) -> cfs_erofs::write::WriteOptions {
        use cfs_erofs::write::WriteOptions;
        match self {
            Versions::Default => WriteOptions::v1(),
            Versions::Min1 => WriteOptions::v1_exact(1),
            Versions::Max0 => WriteOptions::v1_exact(0),
            Versions::Exact(v) => WriteOptions::v1_exact(v),
        }
    }
}

/// Runs C mkcomposefs on a dumpfile; `Err(stderr)` when it fails.
pub fn c_image(dump: &[u8], versions: Versions, strict: bool) -> Result<Vec<u8>, String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("image");
    let mut cmd = Oracle::Mkcomposefs.command();
    cmd.args(versions.args())
        .arg("--from-file")
        .arg("-")
        .arg(&out);
    if strict {
        cmd.env("CFS_PARSE_STRICT", "1");
    } else {
        cmd.env_remove("CFS_PARSE_STRICT");
    }
    let o = conformance::oracle::run_with_input(cmd, dump);
    if !o.status.success() {
        return Err(String::from_utf8_lossy(&o.stderr).into_owned());
    }
    Ok(std::fs::read(&out).expect("read C image"))
}

/// sha256 of bytes, hex.
pub fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(b))
}

/// fs-verity sha256 digest of an image, hex.
pub fn verity_hex(b: &[u8]) -> String {
    cfs_erofs::fsverity::digest(cfs_erofs::HashAlgorithm::Sha256, b).to_hex()
}

/// Escapes a field as composefs-info does: `\\`, `\n`, `\r`, `\t`, `\xHH` outside 0x21..0x7E,
/// and `=` in xattrs.
fn escape(out: &mut Vec<u8>, b: &[u8], xattr: bool) {
    for &c in b {
        match c {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'=' if xattr => out.extend_from_slice(b"\\x3d"),
            0x21..=0x7e => out.push(c),
            _ => write!(out, "\\x{c:02x}").unwrap(),
        }
    }
}

fn optional(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => out.push(b'-'),
        Some(b"-") => out.extend_from_slice(b"\\x2d"),
        Some(b) => escape(out, b, false),
    }
}

/// SIZE, PAYLOAD, CONTENT and DIGEST of a dumpfile line.
type FileFields<'a> = (u64, Option<&'a [u8]>, Option<&'a [u8]>, Option<&'a Digest>);

/// Writes `tree` as a dumpfile C accepts: depth-first pre-order, primary entries as full
/// lines, other entries as `@` lines naming the primary path. Unlike `dumpfile::write` (which
/// prints what composefs-info prints), a link to a directory gets a regular-file `@` mode,
/// the only form C's parser accepts for it.
pub fn to_dumpfile(tree: &Tree) -> Vec<u8> {
    // Primary paths first (a link line may precede its target's line; C resolves at the end).
    let mut primary: Vec<Option<Vec<u8>>> = vec![None; tree.len()];
    primary[0] = Some(b"/".to_vec());
    let mut order: Vec<(Vec<u8>, InodeId, bool)> = vec![(b"/".to_vec(), InodeId::ROOT, false)];
    let mut stack: Vec<(InodeId, Vec<u8>, usize)> = vec![(InodeId::ROOT, Vec::new(), 0)];
    while let Some((dir, prefix, pos)) = stack.pop() {
        let Some(e) = tree.dir(dir).unwrap().entries().get(pos) else {
            continue;
        };
        stack.push((dir, prefix.clone(), pos + 1));
        let mut p = prefix;
        p.push(b'/');
        p.extend_from_slice(&e.name);
        if !e.link {
            primary[e.inode.index()] = Some(p.clone());
        }
        order.push((p.clone(), e.inode, e.link));
        if !e.link && tree.inode(e.inode).is_dir() {
            stack.push((e.inode, p, 0));
        }
    }
    let mut out = Vec::new();
    for (path, id, link) in order {
        let n = tree.inode(id);
        escape(&mut out, &path, false);
        if link {
            let mode = if n.is_dir() { 0o100644 } else { n.mode() };
            write!(out, " 0 @{mode:o} 0 0 0 0 0.0 ").unwrap();
            escape(&mut out, primary[id.index()].as_ref().unwrap(), false);
            out.extend_from_slice(b" - -\n");
            continue;
        }
        let (size, payload, content, digest): FileFields<'_> = match &n.kind {
            InodeKind::Regular(FileData::Inline(c)) => (
                c.len() as u64,
                None,
                (!c.is_empty()).then_some(&c[..]),
                None,
            ),
            InodeKind::Regular(FileData::External { payload, digest }) => {
                (n.size, payload.as_deref(), None, digest.as_ref())
            }
            InodeKind::Symlink(t) => (t.len() as u64, Some(&t[..]), None, None),
            InodeKind::Directory(_) => (0, None, None, None),
            _ => (n.size, None, None, None),
        };
        write!(
            out,
            " {} {:o} {} {} {} {} {}.{} ",
            size,
            n.mode(),
            n.nlink,
            n.uid,
            n.gid,
            n.rdev(),
            n.mtime.sec,
            n.mtime.nsec
        )
        .unwrap();
        optional(&mut out, payload);
        out.push(b' ');
        optional(&mut out, content);
        out.push(b' ');
        match digest {
            Some(d) => out.extend_from_slice(d.to_hex().as_bytes()),
            None => out.push(b'-'),
        }
        for x in &n.xattrs {
            out.push(b' ');
            escape(&mut out, &x.name, true);
            out.push(b'=');
            escape(&mut out, &x.value, true);
        }
        out.push(b'\n');
    }
    out
}

/// Writes a failing case under `fixtures/regressions/` (named by its content hash) and
/// returns the path.
pub fn save_regression(dump: &[u8], tag: &str) -> std::path::PathBuf {
    let dir = conformance::oracle::repo_root().join("fixtures/regressions");
    std::fs::create_dir_all(&dir).expect("create fixtures/regressions");
    let name = format!("{tag}-{}.dump", &sha256_hex(dump)[..16]);
    let p = dir.join(name);
    std::fs::write(&p, dump).expect("write regression");
    p
}

/// Runs C and our writer on the same tree under `versions`; `Err` describes a mismatch,
/// `Ok(true)` means both wrote the same image, `Ok(false)` that both refused the tree.
pub fn compare(tree: &Tree, dump: &[u8], versions: Versions) -> Result<bool, String> {
    let c = c_image(dump, versions, false);
    let ours = cfs_erofs::write::image_bytes(tree, &versions.options());
    match (c, ours) {
        (Ok(c), Ok(o)) => {
            if c == o {
                Ok(true)
            } else {
                let first = c.iter().zip(&o).position(|(a, b)| a != b);
                Err(format!(
                    "{versions:?}: images differ (C {} bytes, ours {} bytes, first difference at {:?})",
                    c.len(),
                    o.len(),
                    first
                ))
            }
        }
        (Err(e), Err(_)) => {
            if std::env::var_os("V1_SHOW_REFUSALS").is_some() {
                eprintln!("refused: {}", e.trim());
            }
            Ok(false)
        }
        (Err(e), Ok(_)) => Err(format!(
            "{versions:?}: C failed ({}) but we wrote an image",
            e.trim()
        )),
        (Ok(_), Err(e)) => Err(format!("{versions:?}: C wrote an image but we failed: {e}")),
    }
}

pub fn is_file(p: &Path, ext: &str) -> bool {
    p.extension().is_some_and(|e| e == ext)
}

// ---------------------------------------------------------------------------------------
// Random trees.

/// One step of building a random tree; indexes are taken modulo what exists.
#[derive(Clone, Debug)]
pub enum Op {
    Add {
        parent: usize,
        name: Vec<u8>,
        node: NodeSpec,
    },
    Link {
        parent: usize,
        name: Vec<u8>,
        target: usize,
    },
    /// Two files sharing `count` xattrs, so one inode references more than 128 shared ones.
    ManyXattrs { parent: usize, count: usize },
    /// A directory with many entries of one name length, to span several blocks.
    BigDir {
        parent: usize,
        name: Vec<u8>,
        entries: usize,
        name_len: usize,
        meta: Meta,
    },
}

#[derive(Clone, Debug)]
pub struct Meta {
    pub perms: u16,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub mtime: Mtime,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

#[derive(Clone, Debug)]
pub enum NodeSpec {
    Dir(Meta),
    Inline(Meta, usize, u8),
    External {
        meta: Meta,
        size: u64,
        payload: Option<Vec<u8>>,
        digest: Option<[u8; 32]>,
    },
    Symlink(Meta, usize, u8),
    Chr(Meta, u32),
    Blk(Meta, u32),
    Fifo(Meta, u64),
    Socket(Meta, u64),
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (seed as usize).wrapping_add(i.wrapping_mul(31)) as u8)
        .collect()
}

/// Symlink targets: no NUL bytes.
fn target_bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((seed as usize + i * 7) % 255 + 1) as u8)
        .collect()
}

fn meta_strategy() -> impl Strategy<Value = Meta> {
    let mtime = prop_oneof![
        4 => Just(Mtime::new(1_700_000_000, 0)),
        2 => Just(Mtime::new(1_700_000_000, 5)),
        1 => Just(Mtime::new(0, 0)),
        1 => Just(Mtime::new(-1, 999_999_999)),
        1 => Just(Mtime::new(1_600_000_000, 2_000_000_000)),
        1 => (any::<i32>(), 0u32..1_000_000_000).prop_map(|(s, n)| Mtime::new(s.into(), n)),
    ];
    let id = prop_oneof![
        6 => Just(0u32),
        2 => Just(1000u32),
        1 => Just(65535u32),
        1 => Just(65536u32),
        1 => Just(u32::MAX),
    ];
    let nlink = prop_oneof![6 => Just(1u32), 2 => Just(2u32), 1 => Just(70000u32)];
    (
        prop_oneof![
            Just(0o755u16),
            Just(0o644),
            Just(0o4755),
            Just(0o1777),
            Just(0)
        ],
        id.clone(),
        id,
        nlink,
        mtime,
        prop::collection::vec(xattr_strategy(), 0..4),
    )
        .prop_map(|(perms, uid, gid, nlink, mtime, xattrs)| Meta {
            perms,
            uid,
            gid,
            nlink,
            mtime,
            xattrs,
        })
}

fn xattr_strategy() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    let name = prop_oneof![
        3 => Just(b"user.a".to_vec()),
        2 => Just(b"user.b".to_vec()),
        1 => Just(b"user.a2".to_vec()),
        2 => Just(b"security.selinux".to_vec()),
        1 => Just(b"security.capability".to_vec()),
        1 => Just(b"system.posix_acl_access".to_vec()),
        1 => Just(b"system.posix_acl_default".to_vec()),
        1 => Just(b"system.posix_acl_access2".to_vec()),
        1 => Just(b"trusted.overlay.opaque".to_vec()),
        1 => Just(b"trusted.overlay.whiteout".to_vec()),
        1 => Just(b"trusted.overlay.overlay.x".to_vec()),
        1 => Just(b"trusted.overlay.metacopy".to_vec()),
        1 => Just(b"trusted.t".to_vec()),
        1 => Just(b"user.overlay.whiteouts".to_vec()),
        1 => Just(b"user.overlay.opaque".to_vec()),
        1 => Just(b"lustre.x".to_vec()),
        1 => Just(b"foo".to_vec()),
        1 => prop::collection::vec(1u8..=255, 1..=255)
            .prop_map(|mut v| { v.retain(|&b| b != 0); if v.is_empty() { v.push(b'k') } v }),
    ];
    let value = prop_oneof![
        3 => Just(b"".to_vec()),
        3 => Just(b"y".to_vec()),
        2 => Just(b"system_u:object_r:usr_t:s0".to_vec()),
        2 => prop::collection::vec(any::<u8>(), 0..40),
        1 => (0usize..3000).prop_map(|n| pattern(n, 3)),
        1 => Just(vec![b'v'; 32600]),
    ];
    (name, value)
}

fn name_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => prop::sample::select(vec![
            &b"a"[..], b"b", b"c", b"+x", b"-", b".-", b"...", b".a", b"00", b"0a", b"7f",
            b"ff", b"fg", b"A", b"z\xff", b"with space", b"eq=ual",
        ]).prop_map(|s| s.to_vec()),
        2 => prop::collection::vec(prop::sample::select(b"abcXYZ09._-".to_vec()), 1..12),
        1 => prop::collection::vec(1u8..=255, 1..=255).prop_map(|mut v| {
            v.retain(|&b| b != b'/');
            if v.is_empty() || v == b"." || v == b".." { v = b"n".to_vec() }
            v
        }),
        1 => (1usize..=255).prop_map(|n| vec![b'L'; n]),
    ]
}

fn node_strategy() -> impl Strategy<Value = NodeSpec> {
    let inline_len = prop_oneof![
        4 => 0usize..100,
        1 => prop::sample::select(vec![2000usize, 2048, 2049, 4095, 4096, 4097, 5000]),
        1 => 0usize..=5000,
    ];
    let ext_size = prop_oneof![
        3 => 1u64..100_000,
        1 => prop::sample::select(vec![
            1u64, 4096, 4097, 1 << 20, (1 << 20) + 1, 5_000_000_000, 1 << 42, (1 << 42) + 1,
            1 << 43, (1 << 43) + 1, 1 << 52, (1 << 53) - 1, 1 << 53,
        ]),
        1 => any::<u64>().prop_map(|s| s >> 12),
    ];
    let payload = prop_oneof![
        2 => Just(None),
        3 => any::<[u8; 8]>().prop_map(|b| Some(format!("{:02x}/{}", b[0], hex::encode(&b[1..])).into_bytes())),
        1 => Just(Some(b"/abs/p".to_vec())),
        1 => Just(Some(b"".to_vec())),
    ];
    let digest = prop_oneof![1 => Just(None), 3 => any::<[u8; 32]>().prop_map(Some)];
    let symlink_len = prop_oneof![
        4 => 1usize..50,
        1 => prop::sample::select(vec![4000usize, 4030, 4050, 4063, 4064, 4095]),
        1 => 1usize..=4095,
    ];
    let rdev = prop_oneof![2 => Just(0u32), 1 => any::<u32>(), 1 => Just(0x0801u32)];
    let odd_size = prop_oneof![3 => Just(0u64), 1 => Just(5_000_000_000u64), 1 => any::<u64>()];
    prop_oneof![
        3 => meta_strategy().prop_map(NodeSpec::Dir),
        4 => (meta_strategy(), inline_len, any::<u8>()).prop_map(|(m, l, s)| NodeSpec::Inline(m, l, s)),
        4 => (meta_strategy(), ext_size, payload, digest)
            .prop_map(|(meta, size, payload, digest)| NodeSpec::External { meta, size, payload, digest }),
        2 => (meta_strategy(), symlink_len, any::<u8>()).prop_map(|(m, l, s)| NodeSpec::Symlink(m, l, s)),
        2 => (meta_strategy(), rdev.clone()).prop_map(|(m, r)| NodeSpec::Chr(m, r)),
        1 => (meta_strategy(), rdev).prop_map(|(m, r)| NodeSpec::Blk(m, r)),
        1 => (meta_strategy(), odd_size.clone()).prop_map(|(m, s)| NodeSpec::Fifo(m, s)),
        1 => (meta_strategy(), odd_size).prop_map(|(m, s)| NodeSpec::Socket(m, s)),
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (any::<prop::sample::Index>(), name_strategy(), node_strategy())
            .prop_map(|(p, name, node)| Op::Add { parent: p.index(1 << 20), name, node }),
        2 => (any::<prop::sample::Index>(), name_strategy(), any::<prop::sample::Index>())
            .prop_map(|(p, name, t)| Op::Link { parent: p.index(1 << 20), name, target: t.index(1 << 20) }),
        1 => (any::<prop::sample::Index>(), 120usize..140)
            .prop_map(|(p, count)| Op::ManyXattrs { parent: p.index(1 << 20), count }),
        1 => (any::<prop::sample::Index>(), name_strategy(), 1usize..400, 1usize..=255, meta_strategy())
            .prop_map(|(p, name, entries, name_len, meta)| Op::BigDir {
                parent: p.index(1 << 20), name, entries, name_len, meta,
            }),
    ]
}

/// Random trees: a root's metadata and a list of operations.
pub fn tree_strategy() -> impl Strategy<Value = (Meta, Vec<Op>)> {
    (meta_strategy(), prop::collection::vec(op_strategy(), 0..24))
}

fn apply_meta(mut inode: Inode, m: &Meta) -> Inode {
    inode.permissions = m.perms;
    inode.uid = m.uid;
    inode.gid = m.gid;
    inode.mtime = m.mtime;
    for (n, v) in &m.xattrs {
        inode.set_xattr(n, v);
    }
    // Keep within C's per-inode budget (12 + Σ 7 + name + value ≤ 32767), dropping the
    // largest values first, as C's dumpfile parser would refuse such a line.
    while !inode.xattrs.is_empty()
        && 12
            + inode
                .xattrs
                .iter()
                .map(|x| 7 + x.name.len() + x.value.len())
                .sum::<usize>()
            > 32767
    {
        let k = (0..inode.xattrs.len())
            .max_by_key(|&k| inode.xattrs[k].value.len())
            .unwrap();
        inode.xattrs.remove(k);
    }
    inode
}

fn node_inode(spec: &NodeSpec) -> Inode {
    let (kind, meta, size): (InodeKind, &Meta, Option<u64>) = match spec {
        NodeSpec::Dir(m) => (InodeKind::Directory(Default::default()), m, None),
        NodeSpec::Inline(m, len, seed) => (
            InodeKind::Regular(FileData::Inline(pattern(*len, *seed).into())),
            m,
            None,
        ),
        NodeSpec::External {
            meta,
            size,
            payload,
            digest,
        } => (
            InodeKind::Regular(FileData::External {
                payload: payload.clone().map(Into::into),
                digest: digest.map(Digest::Sha256),
            }),
            meta,
            Some(*size),
        ),
        NodeSpec::Symlink(m, len, seed) => (
            InodeKind::Symlink(target_bytes(*len, *seed).into()),
            m,
            None,
        ),
        NodeSpec::Chr(m, r) => (InodeKind::CharDevice(*r), m, None),
        NodeSpec::Blk(m, r) => (InodeKind::BlockDevice(*r), m, None),
        NodeSpec::Fifo(m, s) => (InodeKind::Fifo, m, Some(*s)),
        NodeSpec::Socket(m, s) => (InodeKind::Socket, m, Some(*s)),
    };
    let mut inode = apply_meta(Inode::new(kind, meta.perms), meta);
    inode.nlink = if inode.is_dir() { 2 } else { meta.nlink };
    if let Some(s) = size {
        inode.size = s;
    }
    inode
}

/// Builds the tree an operation list describes (operations that do not apply are skipped).
pub fn build_tree(root: &Meta, ops: &[Op]) -> Tree {
    let mut tree = Tree::new(apply_meta(Inode::directory(root.perms), root));
    let mut dirs = vec![InodeId::ROOT];
    let mut others: Vec<InodeId> = Vec::new();
    for op in ops {
        match op {
            Op::Add { parent, name, node } => {
                let p = dirs[parent % dirs.len()];
                let inode = node_inode(node);
                let is_dir = inode.is_dir();
                if let Ok(id) = tree.add(p, name, inode) {
                    if is_dir {
                        dirs.push(id);
                    }
                    others.push(id);
                }
            }
            Op::Link {
                parent,
                name,
                target,
            } => {
                if others.is_empty() {
                    continue;
                }
                let p = dirs[parent % dirs.len()];
                let t = others[target % others.len()];
                let _ = tree.link(p, name, t);
            }
            Op::ManyXattrs { parent, count } => {
                let p = dirs[parent % dirs.len()];
                for name in [&b"many1"[..], b"many2"] {
                    let mut f =
                        Inode::new(InodeKind::Regular(FileData::Inline(Box::new([]))), 0o644);
                    for k in 0..*count {
                        f.set_xattr(format!("user.m{k:03}").as_bytes(), b"shared");
                    }
                    f.set_xattr(b"user.own", name);
                    if let Ok(id) = tree.add(p, name, f) {
                        others.push(id);
                    }
                }
            }
            Op::BigDir {
                parent,
                name,
                entries,
                name_len,
                meta,
            } => {
                let p = dirs[parent % dirs.len()];
                let mut d = Inode::directory(meta.perms);
                d = apply_meta(d, meta);
                if let Ok(id) = tree.add(p, name, d) {
                    dirs.push(id);
                    others.push(id);
                    for k in 0..*entries {
                        let mut n = format!("{k:05}").into_bytes();
                        n.resize((*name_len).max(5), b'n');
                        let f =
                            Inode::new(InodeKind::Regular(FileData::Inline(Box::new([]))), 0o644);
                        let _ = tree.add(id, &n, f);
                    }
                }
            }
        }
    }
    tree
}

/// Rewrites a generated tree into one composefs-rs 0.9.4 can represent (for the V2
/// comparison): inline content ≤ 512 bytes, symlink targets ≤ 1024 bytes, non-negative
/// mtimes with nsec < 10⁹, whiteouts with NLINK 1, external payloads that are the object path of the digest (or of
/// some digest when there is none), no hardlinks to directories or whiteouts, and the first
/// depth-first occurrence of each inode as its primary entry.
pub fn make_v2_compatible(tree: &mut Tree) {
    let ids: Vec<InodeId> = tree.inodes().map(|(id, _)| id).collect();
    for id in ids {
        let n = tree.inode_mut(id);
        n.mtime.sec = n.mtime.sec.unsigned_abs().min(i64::MAX as u64) as i64;
        n.mtime.nsec %= 1_000_000_000;
        if matches!(n.kind, InodeKind::CharDevice(0)) {
            // composefs-rs refuses a whiteout line whose NLINK is over 1.
            n.nlink = 1;
        }
        match &mut n.kind {
            InodeKind::Regular(FileData::Inline(c)) if c.len() > 512 => {
                let keep = c.len() % 513;
                *c = c[..keep].into();
                n.size = keep as u64;
            }
            InodeKind::Symlink(t) if t.len() > 1024 => {
                *t = t[..1024].into();
                n.size = 1024;
            }
            InodeKind::Regular(FileData::External { payload, digest }) => {
                *payload = match (digest.as_ref(), payload.as_ref()) {
                    (Some(d), _) => Some(d.object_path().into_bytes().into()),
                    (None, Some(p)) => {
                        let h = sha256_hex(p);
                        Some(format!("{}/{}", &h[..2], &h[2..]).into_bytes().into())
                    }
                    (None, None) => None,
                };
                if n.size == 0 {
                    n.size = 1;
                }
            }
            _ => {}
        }
    }
    // Drop hardlinks composefs-rs cannot hold.
    let dirs: Vec<InodeId> = tree
        .inodes()
        .filter(|(_, n)| n.is_dir())
        .map(|(id, _)| id)
        .collect();
    for d in dirs {
        let bad: Vec<Vec<u8>> = tree
            .dir(d)
            .unwrap()
            .entries()
            .iter()
            .filter(|e| {
                let t = tree.inode(e.inode);
                e.link && (t.is_dir() || matches!(t.kind, InodeKind::CharDevice(0)))
            })
            .map(|e| e.name.to_vec())
            .collect();
        for name in bad {
            tree.unlink(d, &name).unwrap();
        }
    }
    let counts = tree.reference_counts();
    let whiteouts: Vec<InodeId> = tree
        .inodes()
        .filter(|(id, n)| matches!(n.kind, InodeKind::CharDevice(0)) && counts[id.index()] > 1)
        .map(|(id, _)| id)
        .collect();
    assert!(whiteouts.is_empty(), "whiteout links remain");
    tree.compact();
    tree.normalize_primary_entries();
}
