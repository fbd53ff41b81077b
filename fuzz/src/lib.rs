//! Helpers shared by the fuzz targets: building trees from fuzzer bytes, comparing trees up to
//! the normalisations the image format documents, and building OCI layouts and tar streams
//! whose checksums and digests stay valid while the fuzzer mutates their content.
//!
//! Trees are built here from raw bytes (through `arbitrary::Unstructured`) rather than by
//! deriving `Arbitrary` on the model, so the generator can keep to the trees the writers accept
//! and the fuzzer spends its time on layouts rather than on names the tree refuses.

use arbitrary::{Result, Unstructured};
use cfs_erofs::tree::check_name;
use cfs_erofs::{Digest, FileData, Inode, InodeId, InodeKind, Mtime, Tree};

/// Xattr name prefixes the generator picks from: every EROFS prefix index, the overlay names
/// the writers escape, and one the format has no index for.
const XATTR_PREFIXES: &[&[u8]] = &[
    b"user.",
    b"trusted.",
    b"security.",
    b"security.capability",
    b"system.posix_acl_access",
    b"system.posix_acl_default",
    b"trusted.overlay.",
    b"trusted.overlay.overlay.",
    b"lustre.",
    b"user.overlay.",
];

/// Xattr names a writer adds or consumes itself; a tree carrying them does not round-trip
/// (composefs-format.md and the reader's module doc list them).
const WRITER_XATTRS: &[&[u8]] = &[
    b"trusted.overlay.metacopy",
    b"trusted.overlay.redirect",
    b"trusted.overlay.whiteout",
    b"trusted.overlay.whiteouts",
    b"trusted.overlay.opaque",
    b"trusted.overlay.overlay.whiteout",
    b"trusted.overlay.overlay.whiteouts",
    b"trusted.overlay.overlay.opaque",
    b"user.overlay.whiteout",
    b"user.overlay.whiteouts",
    b"user.overlay.opaque",
];

fn bytes_without_nul(u: &mut Unstructured, max: usize) -> Result<Vec<u8>> {
    let len = u.int_in_range(0..=max)?;
    let mut v = u.bytes(len.min(u.len()))?.to_vec();
    for b in &mut v {
        if *b == 0 {
            *b = b'_';
        }
    }
    Ok(v)
}

/// A directory entry name: mostly short, sometimes at the 255-byte limit.
fn arb_name(u: &mut Unstructured) -> Result<Vec<u8>> {
    let long = u.ratio(1, 16)?;
    let mut n = bytes_without_nul(u, if long { 255 } else { 12 })?;
    for b in &mut n {
        if *b == b'/' {
            *b = b'-';
        }
    }
    if n.is_empty() {
        n.push(b'n');
    }
    Ok(n)
}

fn arb_xattrs(u: &mut Unstructured, inode: &mut Inode) -> Result<()> {
    let n = if u.ratio(1, 3)? {
        u.int_in_range(0..=6)?
    } else {
        0
    };
    for _ in 0..n {
        let mut name = u.choose(XATTR_PREFIXES)?.to_vec();
        let rest = 255 - name.len();
        name.extend(bytes_without_nul(u, rest.min(16))?);
        if WRITER_XATTRS.iter().any(|w| name.starts_with(w)) {
            continue;
        }
        let value = if u.ratio(1, 32)? {
            vec![u.arbitrary::<u8>()?; u.int_in_range(0..=9000)?]
        } else {
            bytes_without_nul(u, 24)?
        };
        inode.set_xattr(&name, &value);
    }
    Ok(())
}

fn arb_meta(u: &mut Unstructured, mut inode: Inode) -> Result<Inode> {
    inode.permissions = u.arbitrary::<u16>()? & 0o7777;
    if u.ratio(1, 2)? {
        inode.uid = u.arbitrary()?;
        inode.gid = u.arbitrary()?;
    }
    inode.mtime = if u.ratio(1, 2)? {
        Mtime::new(u.int_in_range(0..=3)?, 0)
    } else {
        Mtime::new(u.arbitrary()?, u.int_in_range(0..=999_999_999)?)
    };
    arb_xattrs(u, &mut inode)?;
    Ok(inode)
}

fn arb_digest(u: &mut Unstructured) -> Result<Option<Digest>> {
    Ok(match u.int_in_range(0..=3)? {
        0 => None,
        1 => Some(Digest::Sha512(Box::new(u.arbitrary()?))),
        _ => Some(Digest::Sha256(u.arbitrary()?)),
    })
}

fn arb_leaf(u: &mut Unstructured) -> Result<Inode> {
    let kind = match u.int_in_range(0..=9)? {
        0..=2 => {
            let len = if u.ratio(1, 8)? {
                u.int_in_range(0..=5000)?
            } else {
                u.int_in_range(0..=64)?
            };
            let byte = u.arbitrary::<u8>()?;
            let mut content = u.bytes(len.min(u.len()))?.to_vec();
            content.resize(len, byte);
            InodeKind::Regular(FileData::Inline(content.into()))
        }
        3 | 4 => {
            let digest = arb_digest(u)?;
            let payload = match u.int_in_range(0..=2)? {
                0 => None,
                1 => digest.as_ref().map(|d| d.object_path().into_bytes().into()),
                _ => {
                    let mut p = bytes_without_nul(u, 64)?;
                    if p.is_empty() {
                        p.push(b'p');
                    }
                    Some(p.into())
                }
            };
            InodeKind::Regular(FileData::External { payload, digest })
        }
        5 => {
            let max = if u.ratio(1, 16)? { 4095 } else { 20 };
            let mut t = bytes_without_nul(u, max)?;
            if t.is_empty() {
                t.push(b'/');
            }
            InodeKind::Symlink(t.into())
        }
        6 => InodeKind::CharDevice(if u.ratio(1, 2)? { 0 } else { u.arbitrary()? }),
        7 => InodeKind::BlockDevice(u.arbitrary()?),
        8 => InodeKind::Fifo,
        _ => InodeKind::Socket,
    };
    let mut inode = arb_meta(u, Inode::new(kind, 0))?;
    if let InodeKind::Regular(FileData::External { .. }) = inode.kind {
        inode.size = if u.ratio(1, 8)? {
            u.int_in_range(1..=1u64 << 40)?
        } else {
            u.int_in_range(1..=1u64 << 20)?
        };
    }
    Ok(inode)
}

/// A tree the writers accept, in the form a reader gives back: non-directory link counts are
/// the number of names, devices and FIFOs have size 0, the first depth-first name of each
/// inode is its primary entry.
pub fn arb_tree(u: &mut Unstructured) -> Result<Tree> {
    let mut tree = Tree::new(arb_meta(u, Inode::directory(0))?);
    let mut dirs = vec![InodeId::ROOT];
    let mut leaves = Vec::new();
    let steps = u.int_in_range(0..=48)?;
    for _ in 0..steps {
        if u.is_empty() {
            break;
        }
        let parent = *u.choose(&dirs)?;
        let name = arb_name(u)?;
        if check_name(&name).is_err() || tree.lookup(parent, &name).is_some() {
            continue;
        }
        match u.int_in_range(0..=5)? {
            0 => {
                let d = arb_meta(u, Inode::directory(0))?;
                dirs.push(tree.add(parent, &name, d).expect("checked name"));
            }
            1 if !leaves.is_empty() => {
                let target = *u.choose(&leaves)?;
                tree.link(parent, &name, target).expect("checked name");
            }
            _ => leaves.push(tree.add(parent, &name, arb_leaf(u)?).expect("checked name")),
        }
    }
    let refs = tree.reference_counts();
    for (i, r) in refs.iter().enumerate() {
        let inode = tree.inode_mut(InodeId(i as u32));
        if !inode.is_dir() {
            inode.nlink = *r;
        }
    }
    tree.normalize_primary_entries();
    Ok(tree)
}

/// The facts of a tree an image keeps, for comparing a tree with what is read back: xattrs
/// sorted, directory size and link count zeroed (writers recompute them), devices, FIFOs and
/// sockets of size 0, primaries in depth-first order; for V2 also no nanoseconds and link
/// counts recomputed by the writer.
pub fn normalise(tree: &mut Tree, v2: bool) {
    for i in 0..tree.len() {
        let inode = tree.inode_mut(InodeId(i as u32));
        inode.xattrs.sort_by(|a, b| a.name.cmp(&b.name));
        if v2 {
            inode.mtime.nsec = 0;
        }
        match inode.kind {
            InodeKind::Directory(_) => {
                inode.nlink = 0;
                inode.size = 0;
            }
            InodeKind::CharDevice(_)
            | InodeKind::BlockDevice(_)
            | InodeKind::Fifo
            | InodeKind::Socket => inode.size = 0,
            _ => {}
        }
    }
    tree.normalize_primary_entries();
}

/// Whether two trees agree, compared as their dumpfile text (arena order does not matter).
pub fn same_tree(a: &Tree, b: &Tree) -> bool {
    cfs_erofs::dumpfile::write_to_vec(a) == cfs_erofs::dumpfile::write_to_vec(b)
}

/// Panics with both dumpfiles when the trees differ.
pub fn assert_same_tree(what: &str, a: &Tree, b: &Tree) {
    let (x, y) = (
        cfs_erofs::dumpfile::write_to_vec(a),
        cfs_erofs::dumpfile::write_to_vec(b),
    );
    if x != y {
        panic!(
            "{what}: trees differ\n--- expected\n{}\n--- got\n{}",
            String::from_utf8_lossy(&x),
            String::from_utf8_lossy(&y)
        );
    }
}

/// Counts every entry of a tree and touches every inode (the reader's output, walked whole).
pub fn walk_all(tree: &Tree) -> usize {
    let mut n = 0usize;
    tree.walk(|_, e, _| {
        let inode = tree.inode(e.inode);
        n += inode.xattrs.len() + inode.xattrs.iter().map(|x| x.value.len()).sum::<usize>() + 1;
    });
    n
}

/// Turns fuzzer bytes into a tar stream whose headers all carry a valid checksum: each
/// 512-byte block read as a header gets its checksum fixed, and the content that follows is
/// padded to what the header's size says (capped at 64 KiB, so a huge size just ends the
/// stream).
pub fn checksummed_tar(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 1024);
    let mut rest = data;
    while rest.len() >= 512 {
        let mut block = [0u8; 512];
        block.copy_from_slice(&rest[..512]);
        rest = &rest[512..];
        let header = tar::Header::from_byte_slice(&block);
        let size = header.entry_size().unwrap_or(0);
        let mut header = header.clone();
        header.set_cksum();
        out.extend_from_slice(header.as_bytes());
        let padded = size.div_ceil(512).saturating_mul(512).min(64 << 10) as usize;
        let take = padded.min(rest.len());
        out.extend_from_slice(&rest[..take]);
        out.resize(out.len() + (padded - take), 0);
        rest = &rest[take..];
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// Splits an OCI layout seed into its records: `index.json` first, then blobs. Records are
/// separated by the line `--blob--`.
pub fn layout_records(data: &[u8]) -> Vec<&[u8]> {
    const SEP: &[u8] = b"\n--blob--\n";
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(i) = rest.windows(SEP.len()).position(|w| w == SEP) {
        out.push(&rest[..i]);
        rest = &rest[i + SEP.len()..];
    }
    out.push(rest);
    out
}

/// Replaces the placeholders of one record: `@N` by the digest of blob N, `#N` by its size,
/// `%N` by the digest of its content after gzip decompression (a layer's diff_id). Blob N is
/// record N (record 0 is `index.json`); a placeholder for a record that does not exist, or
/// not yet resolved, stays as it is.
pub fn substitute(record: &[u8], resolved: &[Option<(String, u64, String)>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(record.len() + 64);
    let mut i = 0;
    while i < record.len() {
        let c = record[i];
        if matches!(c, b'@' | b'#' | b'%') {
            let digits = record[i + 1..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .take(3)
                .count();
            if digits > 0 {
                let n: usize = std::str::from_utf8(&record[i + 1..i + 1 + digits])
                    .unwrap()
                    .parse()
                    .unwrap();
                if let Some(Some((digest, size, diff))) = resolved.get(n) {
                    match c {
                        b'@' => out.extend_from_slice(digest.as_bytes()),
                        b'#' => out.extend_from_slice(size.to_string().as_bytes()),
                        _ => out.extend_from_slice(diff.as_bytes()),
                    }
                    i += 1 + digits;
                    continue;
                }
            }
        }
        out.push(c);
        i += 1;
    }
    out
}
