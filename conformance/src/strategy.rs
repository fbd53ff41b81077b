//! Proptest strategies for arbitrary trees, and the normal form needed to compare trees that
//! went through a serialisation.
//!
//! [`arb_tree`] builds trees that every composefs input can express: all inode types, names
//! and xattrs with awkward bytes (`\n`, `=`, `\`, space, 0xff…), hardlinks to non-directories,
//! inline files up to 5000 bytes, symlink targets up to 4095 bytes, full-range ids and times.
//! It stays within C's parser limits (no NUL in names, payloads or xattr names; per-inode
//! xattr budget; the xattr part of a dumpfile line under 64 KiB once escaped).
//!
//! A tree that went through an image and back comes with its inodes numbered in depth-first
//! order and the first depth-first name of each inode as its primary entry: [`canonicalize`]
//! puts any tree in that form. A tree that went through a dumpfile keeps its primary entries
//! (the writer prints them as the full lines) and comes back numbered in depth-first order of
//! those entries: [`renumber`] gives that form, so `renumber(t) == parse(write(t))`.

use cfs_erofs::tree::{Digest, Directory, FileData, Inode, InodeId, InodeKind, Mtime, Tree, Xattr};
use proptest::collection::vec;
use proptest::prelude::*;

/// Rebuilds `tree` with inodes numbered in depth-first sorted order, each inode's first name
/// in that order as its primary entry, and unreachable inodes dropped. A directory is entered
/// at its first name, whether or not that entry is a link.
pub fn canonicalize(tree: &Tree) -> Tree {
    let mut first_names_primary = tree.clone();
    first_names_primary.normalize_primary_entries();
    renumber(&first_names_primary)
}

/// Rebuilds `tree` with inodes numbered in depth-first sorted order of their primary entries
/// (directories entered only through them), keeping which entries are links.
pub fn renumber(tree: &Tree) -> Tree {
    let mut out = Tree::new(strip(tree.root()));
    let mut map: Vec<Option<InodeId>> = vec![None; tree.len()];
    map[0] = Some(InodeId::ROOT);
    let mut links = Vec::new();
    let mut stack = vec![(InodeId::ROOT, InodeId::ROOT, 0usize)];
    while let Some(top) = stack.last_mut() {
        let (old_dir, new_dir, pos) = *top;
        let Some(entry) = tree.dir(old_dir).expect("directory").entries().get(pos) else {
            stack.pop();
            continue;
        };
        top.2 += 1;
        if entry.link {
            links.push((new_dir, entry.name.clone(), entry.inode));
            continue;
        }
        let inode = tree.inode(entry.inode);
        let new = out
            .add(new_dir, &entry.name, strip(inode))
            .expect("valid entry");
        map[entry.inode.index()] = Some(new);
        if inode.is_dir() {
            stack.push((entry.inode, new, 0));
        }
    }
    for (dir, name, old) in links {
        let target = map[old.index()].expect("every linked inode has a primary entry");
        out.link(dir, &name, target).expect("valid entry");
    }
    out
}

/// A copy of an inode without its directory entries.
fn strip(inode: &Inode) -> Inode {
    let mut copy = Inode::new(InodeKind::Fifo, 0);
    copy.kind = match &inode.kind {
        InodeKind::Directory(_) => InodeKind::Directory(Directory::default()),
        other => other.clone(),
    };
    copy.permissions = inode.permissions;
    copy.uid = inode.uid;
    copy.gid = inode.gid;
    copy.nlink = inode.nlink;
    copy.mtime = inode.mtime;
    copy.size = inode.size;
    copy.xattrs = inode.xattrs.clone();
    copy
}

/// Bytes that exercise every escaping rule, mixed with plain ones.
fn tricky_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        4 => prop::sample::select(&b"abcxyz0189._-"[..]),
        3 => prop::sample::select(&b"\n\r\t =\\@\x01\x7f\x80\xff\xe9\x20\"'"[..]),
        2 => any::<u8>(),
    ]
}

fn bytes_without(
    forbidden: &'static [u8],
    len: std::ops::RangeInclusive<usize>,
) -> impl Strategy<Value = Vec<u8>> {
    vec(tricky_byte(), len).prop_map(move |mut v| {
        for b in &mut v {
            if forbidden.contains(b) {
                *b = b'_';
            }
        }
        v
    })
}

/// A directory entry name: 1…255 bytes, no `/` or NUL, not `.` or `..`.
pub fn arb_name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        20 => bytes_without(b"/\0", 1..=12),
        1 => bytes_without(b"/\0", 250..=255),
    ]
    .prop_map(|n| {
        if n == b"." || n == b".." {
            b"dot".to_vec()
        } else {
            n
        }
    })
}

/// A long-ish byte string without NUL (payloads and symlink targets), 1…`max` bytes.
fn arb_c_string(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        10 => bytes_without(b"\0", 1..=40),
        1 => bytes_without(b"\0", max - 8..=max),
    ]
}

fn arb_xattrs() -> impl Strategy<Value = Vec<Xattr>> {
    let name = prop_oneof![
        8 => (prop::sample::select(vec!["user.", "trusted.", "security.", "system.posix_acl_access", "trusted.overlay."]), bytes_without(b"\0", 0..=12))
            .prop_map(|(p, s)| [p.as_bytes(), &s].concat()),
        1 => bytes_without(b"\0", 1..=255),
    ];
    let value = prop_oneof![
        8 => vec(tricky_byte(), 0..=40),
        1 => vec(any::<u8>(), 0..=2000),
    ];
    vec((name, value), 0..=4).prop_map(|pairs| {
        let mut out: Vec<Xattr> = Vec::new();
        for (name, value) in pairs {
            if !name.is_empty() && !out.iter().any(|x| *x.name == *name) {
                out.push(Xattr::new(name, value));
            }
        }
        out
    })
}

/// Metadata common to all inodes.
#[derive(Clone, Debug)]
struct Meta {
    permissions: u16,
    uid: u32,
    gid: u32,
    nlink: u32,
    mtime: Mtime,
    size: u64,
    xattrs: Vec<Xattr>,
}

fn arb_meta() -> impl Strategy<Value = Meta> {
    (
        0u16..=0o7777,
        prop_oneof![any::<u32>(), 0u32..=2],
        prop_oneof![any::<u32>(), 0u32..=2],
        prop_oneof![any::<u32>(), 1u32..=3],
        prop_oneof![any::<i64>(), -2i64..=2, 1_600_000_000i64..=1_700_000_000],
        prop_oneof![any::<u32>(), 0u32..=999_999_999],
        prop_oneof![Just(0u64), any::<u64>()],
        arb_xattrs(),
    )
        .prop_map(
            |(permissions, uid, gid, nlink, sec, nsec, size, xattrs)| Meta {
                permissions,
                uid,
                gid,
                nlink,
                mtime: Mtime::new(sec, nsec),
                size,
                xattrs,
            },
        )
}

fn arb_leaf_kind() -> impl Strategy<Value = InodeKind> {
    prop_oneof![
        3 => prop_oneof![
            10 => vec(tricky_byte(), 0..=64),
            1 => vec(any::<u8>(), 4990..=5000),
        ]
        .prop_map(|c| InodeKind::Regular(FileData::Inline(c.into()))),
        3 => (
            prop::option::of(arb_c_string(4095)),
            prop::option::of(any::<[u8; 32]>()),
        )
            .prop_map(|(payload, digest)| InodeKind::Regular(FileData::External {
                payload: payload.map(Into::into),
                digest: digest.map(Digest::Sha256),
            })),
        2 => arb_c_string(4095).prop_map(|t| InodeKind::Symlink(t.into())),
        1 => any::<u32>().prop_map(InodeKind::CharDevice),
        1 => any::<u32>().prop_map(InodeKind::BlockDevice),
        1 => Just(InodeKind::Fifo),
        1 => Just(InodeKind::Socket),
    ]
}

/// The shape of a generated tree before it is built.
#[derive(Clone, Debug)]
enum Spec {
    Leaf(Meta, InodeKind),
    Dir(Meta, Vec<(Vec<u8>, Spec)>),
}

fn arb_spec() -> impl Strategy<Value = Spec> {
    let leaf = (arb_meta(), arb_leaf_kind()).prop_map(|(m, k)| Spec::Leaf(m, k));
    leaf.prop_recursive(4, 48, 8, |inner| {
        (arb_meta(), vec((arb_name(), inner), 0..8)).prop_map(|(m, c)| Spec::Dir(m, c))
    })
}

fn make_inode(meta: Meta, kind: InodeKind) -> Inode {
    let mut inode = Inode::new(kind, meta.permissions);
    inode.uid = meta.uid;
    inode.gid = meta.gid;
    inode.nlink = meta.nlink;
    inode.mtime = meta.mtime;
    inode.xattrs = meta.xattrs;
    match &inode.kind {
        // Inline content and symlink targets fix the size (Inode::new set it).
        InodeKind::Regular(FileData::Inline(_)) | InodeKind::Symlink(_) => {}
        // External files are 1 byte … 2^53 bytes, the range C can write.
        InodeKind::Regular(FileData::External { .. }) => {
            inode.size = 1 + meta.size % (1 << 53);
        }
        _ => inode.size = meta.size,
    }
    inode
}

fn build(tree: &mut Tree, parent: InodeId, children: Vec<(Vec<u8>, Spec)>) {
    for (name, spec) in children {
        match spec {
            Spec::Leaf(meta, kind) => {
                let _ = tree.add(parent, &name, make_inode(meta, kind));
            }
            Spec::Dir(meta, grandchildren) => {
                let inode = make_inode(meta, InodeKind::Directory(Directory::default()));
                if let Ok(id) = tree.add(parent, &name, inode) {
                    build(tree, id, grandchildren);
                }
            }
        }
    }
}

/// Arbitrary trees within the limits of every composefs input (see the module doc), with
/// hardlinks to non-directories placed anywhere, including before their primary entry.
pub fn arb_tree() -> impl Strategy<Value = Tree> {
    (
        arb_meta(),
        vec((arb_name(), arb_spec()), 0..10),
        vec(
            (
                any::<prop::sample::Index>(),
                arb_name(),
                any::<prop::sample::Index>(),
            ),
            0..6,
        ),
    )
        .prop_map(|(root_meta, children, links)| {
            let root = make_inode(root_meta, InodeKind::Directory(Directory::default()));
            let mut tree = Tree::new(root);
            build(&mut tree, InodeId::ROOT, children);
            let dirs: Vec<InodeId> = tree
                .inodes()
                .filter(|(_, i)| i.is_dir())
                .map(|(id, _)| id)
                .collect();
            let files: Vec<InodeId> = tree
                .inodes()
                .filter(|(_, i)| !i.is_dir())
                .map(|(id, _)| id)
                .collect();
            if !files.is_empty() {
                for (dir, name, target) in links {
                    let _ = tree.link(*dir.get(&dirs), &name, *target.get(&files));
                }
            }
            tree
        })
}
