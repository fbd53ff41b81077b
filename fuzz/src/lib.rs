//! The checks behind the fuzz targets, and their helpers: building trees from fuzzer bytes,
//! comparing trees up to the normalisations the image format documents, and building OCI
//! layouts and tar streams whose checksums and digests stay valid while the fuzzer mutates
//! their content.
//!
//! Each target in `fuzz_targets/` is one call into this file, and the conformance test
//! `hostile_regressions` includes this same file (by `#[path]`) to replay the minimised
//! crashers of `fixtures/fuzz-regressions/` under a plain `cargo test`. So it uses only crates
//! the conformance tests have too, and no `arbitrary`: [`Input`] is a small byte consumer.
//!
//! Trees are built from raw bytes rather than by deriving `Arbitrary` on the model, so the
//! generator keeps to the trees the writers accept and the fuzzer spends its time on layouts
//! rather than on names the tree refuses.
#![allow(dead_code)]

use std::io::{Read, Write};

use cfs_erofs::dumpfile::{parse, parse_bytes, write_to_vec, ParseErrorKind, ParseOptions};
use cfs_erofs::info;
use cfs_erofs::karg::{collect, tokenize, Karg};
use cfs_erofs::oci::apply_layer;
use cfs_erofs::oci::layout::OciLayout;
use cfs_erofs::oci::merge::{transform_for_oci, LayerMerger, MergeError, XattrFilter};
use cfs_erofs::oci::tar::{parse_numeric, read_layer, TarError, TarOptions};
use cfs_erofs::read::{read_image, read_image_with, validate, ReadMode};
use cfs_erofs::tree::check_name;
use cfs_erofs::write::{image_bytes, WriteOptions};
use cfs_erofs::{Digest, FileData, Inode, InodeId, InodeKind, Mtime, Tree};
use sha2::{Digest as _, Sha256};

/// Fuzzer bytes consumed front to back; an exhausted input reads as zeros, so every decision
/// is defined for every input.
pub struct Input<'a> {
    data: &'a [u8],
}

type Result<T> = std::result::Result<T, std::convert::Infallible>;

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// Up to `n` bytes (fewer when the input runs out).
    fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        let (a, b) = self.data.split_at(n.min(self.data.len()));
        self.data = b;
        Ok(a)
    }

    fn u64(&mut self) -> u64 {
        let mut v = 0u64;
        for _ in 0..8 {
            v = v << 8 | u64::from(self.byte());
        }
        v
    }

    /// A number in `lo..=hi`, using as few bytes as the range needs.
    fn int_in_range<T: TryFrom<u64> + TryInto<u64> + Copy>(
        &mut self,
        r: std::ops::RangeInclusive<T>,
    ) -> Result<T> {
        let bound = |t: T| t.try_into().ok().expect("non-negative bounds");
        let (lo, hi): (u64, u64) = (bound(*r.start()), bound(*r.end()));
        let span = hi - lo;
        let mut v = 0u64;
        let mut need = span;
        while need > 0 {
            v = v << 8 | u64::from(self.byte());
            need >>= 8;
        }
        let v = if span == u64::MAX {
            v
        } else {
            lo + v % (span + 1)
        };
        Ok(T::try_from(v).ok().expect("in range"))
    }

    fn ratio(&mut self, num: u8, den: u8) -> Result<bool> {
        Ok(self.byte() % den < num)
    }

    fn choose<'s, T>(&mut self, items: &'s [T]) -> Result<&'s T> {
        let i = self.int_in_range(0..=items.len() as u64 - 1)?;
        Ok(&items[i as usize])
    }

    fn arbitrary<T: FromInput>(&mut self) -> Result<T> {
        Ok(T::from_input(self))
    }
}

/// Values [`Input::arbitrary`] can produce.
trait FromInput {
    fn from_input(i: &mut Input<'_>) -> Self;
}

impl FromInput for u8 {
    fn from_input(i: &mut Input<'_>) -> Self {
        i.byte()
    }
}

impl FromInput for u16 {
    fn from_input(i: &mut Input<'_>) -> Self {
        u16::from(i.byte()) << 8 | u16::from(i.byte())
    }
}

impl FromInput for u32 {
    fn from_input(i: &mut Input<'_>) -> Self {
        i.u64() as u32
    }
}

impl FromInput for i64 {
    fn from_input(i: &mut Input<'_>) -> Self {
        i.u64() as i64
    }
}

impl<const N: usize> FromInput for [u8; N] {
    fn from_input(i: &mut Input<'_>) -> Self {
        std::array::from_fn(|_| i.byte())
    }
}

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
pub const WRITER_XATTRS: &[&[u8]] = &[
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

fn bytes_without_nul(u: &mut Input, max: usize) -> Result<Vec<u8>> {
    let len = u.int_in_range(0..=max)?;
    let mut v = u.bytes(len)?.to_vec();
    for b in &mut v {
        if *b == 0 {
            *b = b'_';
        }
    }
    Ok(v)
}

/// A directory entry name: mostly short, sometimes at the 255-byte limit.
fn arb_name(u: &mut Input) -> Result<Vec<u8>> {
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

fn arb_xattrs(u: &mut Input, inode: &mut Inode) -> Result<()> {
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

fn arb_meta(u: &mut Input, mut inode: Inode) -> Result<Inode> {
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

fn arb_digest(u: &mut Input) -> Result<Option<Digest>> {
    Ok(match u.int_in_range(0..=3)? {
        0 => None,
        1 => Some(Digest::Sha512(Box::new(u.arbitrary()?))),
        _ => Some(Digest::Sha256(u.arbitrary()?)),
    })
}

fn arb_leaf(u: &mut Input) -> Result<Inode> {
    let kind = match u.int_in_range(0..=9)? {
        0..=2 => {
            let len = if u.ratio(1, 8)? {
                u.int_in_range(0..=5000)?
            } else {
                u.int_in_range(0..=64)?
            };
            let byte = u.arbitrary::<u8>()?;
            let mut content = u.bytes(len)?.to_vec();
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
pub fn arb_tree(u: &mut Input) -> Result<Tree> {
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
            // V2 names the object of every file with a digest.
            InodeKind::Regular(FileData::External {
                ref mut payload,
                digest: Some(ref d),
            }) if v2 && payload.is_none() => {
                *payload = Some(d.object_path().into_bytes().into());
            }
            _ => {}
        }
    }
    tree.normalize_primary_entries();
}

/// Whether some inode carries an xattr a writer adds or consumes itself ([`WRITER_XATTRS`]):
/// such a tree does not round-trip through an image (documented normalisation).
pub fn has_writer_xattrs(tree: &Tree) -> bool {
    tree.inodes().any(|(_, inode)| {
        inode
            .xattrs
            .iter()
            .any(|x| WRITER_XATTRS.iter().any(|w| x.name.starts_with(w)))
    })
}

/// Whether some directory is named by more than one entry. C's dumpfile parser accepts a
/// hardlink line to a directory when the line's own mode is not a directory; no image layout
/// keeps such a tree, and its dumpfile does not parse again (C's neither).
pub fn has_hardlinked_directory(tree: &Tree) -> bool {
    let refs = tree.reference_counts();
    tree.inodes()
        .any(|(id, inode)| inode.is_dir() && refs[id.index()] > 1)
}

/// Whether two trees agree, compared as their dumpfile text (arena order does not matter).
pub fn same_tree(a: &Tree, b: &Tree) -> bool {
    cfs_erofs::dumpfile::write_to_vec(a) == cfs_erofs::dumpfile::write_to_vec(b)
}

/// Panics with the first differing dumpfile line when the trees differ.
pub fn assert_same_tree(what: &str, expected: &Tree, got: &Tree) {
    let (x, y) = (
        cfs_erofs::dumpfile::write_to_vec(expected),
        cfs_erofs::dumpfile::write_to_vec(got),
    );
    if x != y {
        let lx: Vec<&[u8]> = x.split(|&b| b == b'\n').collect();
        let ly: Vec<&[u8]> = y.split(|&b| b == b'\n').collect();
        let i = lx
            .iter()
            .zip(&ly)
            .position(|(a, b)| a != b)
            .unwrap_or(lx.len().min(ly.len()));
        let line = |v: &[&[u8]]| {
            String::from_utf8_lossy(v.get(i).copied().unwrap_or_default()).into_owned()
        };
        panic!(
            "{what}: trees differ at line {i}\nexpected: {}\ngot:      {}",
            line(&lx),
            line(&ly)
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
/// padded to what the header's size field says (capped at 64 KiB, so a huge size just ends
/// the stream).
pub fn checksummed_tar(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 1024);
    let mut rest = data;
    while rest.len() >= 512 {
        let mut block = [0u8; 512];
        block.copy_from_slice(&rest[..512]);
        rest = &rest[512..];
        let size = parse_numeric(&block[124..136]).unwrap_or(0);
        block[148..156].fill(b' ');
        let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
        block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        out.extend_from_slice(&block);
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

fn sha(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// `read_image`: any bytes as an image. Both reader modes, validation and the composefs-info
/// outputs return (never panic) and agree with each other; a clean tree our V1 writer accepts
/// reads back equal from that image.
pub fn check_read_image(data: &[u8]) {
    let clean = read_image(data);
    let cinfo = read_image_with(data, ReadMode::ComposefsInfo);
    let valid = validate(data);
    let mut sink = std::io::sink();
    let dumped = info::dump(data, None, &mut sink);
    let _ = info::ls(data, None, &mut sink);
    let mut objects = info::Objects::new();
    let _ = objects.add_image(data, None);
    // dump checks exactly what the composefs-info tree build checks.
    assert_eq!(
        cinfo.is_ok(),
        dumped.is_ok(),
        "{:?} vs {:?}",
        cinfo.err(),
        dumped.err()
    );
    // Clean mode checks everything composefs-info mode does, and more (malformed metacopy
    // and redirect values, which C reads leniently).
    if clean.is_ok() {
        assert!(
            cinfo.is_ok(),
            "clean read, composefs-info refused: {:?}",
            cinfo.err()
        );
    }
    if clean.is_ok() {
        assert!(valid.is_ok(), "read but not valid: {:?}", valid.err());
    }
    if let Ok(c) = &cinfo {
        walk_all(&c.tree);
    }
    let Ok(image) = clean else { return };
    walk_all(&image.tree);
    let _ = write_to_vec(&image.tree);
    // What was read, written again by our V1 writer, reads back the same (unless it carries
    // xattrs the writer itself adds or consumes).
    if has_writer_xattrs(&image.tree) {
        return;
    }
    let Ok(again) = image_bytes(&image.tree, &WriteOptions::v1()) else {
        return;
    };
    let mut back = read_image(&again)
        .expect("our own image of a read tree reads")
        .tree;
    let mut orig = image.tree;
    normalise(&mut orig, false);
    normalise(&mut back, false);
    assert_same_tree("read → V1 → read", &orig, &back);
}

/// `dumpfile_parse`: any bytes as a dumpfile. Strict and lax parsing return; the streaming and
/// in-memory parsers agree; strict accepts nothing lax refuses; a parsed tree written as a
/// dumpfile parses back (strictly) to the same text.
pub fn check_dumpfile_parse(data: &[u8]) {
    for strict in [false, true] {
        let opts = ParseOptions { strict };
        let mem = parse_bytes(data, &opts);
        let streamed = parse(std::io::BufReader::with_capacity(64, data), &opts);
        match (&mem, &streamed) {
            (Ok(a), Ok(b)) => assert_eq!(write_to_vec(a), write_to_vec(b)),
            (Err(a), Err(b)) => {
                assert_eq!(a.message_bytes(), b.message_bytes());
                assert_eq!(a.line(), b.line());
            }
            _ => panic!(
                "strict={strict}: parse_bytes {:?} but parse {:?}",
                mem.as_ref().err(),
                streamed.as_ref().err()
            ),
        }
        if strict && mem.is_ok() {
            assert!(parse_bytes(data, &ParseOptions { strict: false }).is_ok());
        }
        let Ok(tree) = mem else { continue };
        let text = write_to_vec(&tree);
        if has_hardlinked_directory(&tree) {
            continue;
        }
        let again = match parse_bytes(&text, &ParseOptions { strict: true }) {
            Ok(t) => t,
            // Escaping can stretch a line's xattrs past the 64 KiB the parser reads (C's
            // limit on the raw text): such a dump does not parse again, with C's tools too.
            Err(e) if matches!(e.kind(), ParseErrorKind::TooManyXattrs) => continue,
            Err(e) => panic!(
                "written dumpfile does not parse: {} (line {:?})\n{}",
                e.message(),
                e.line(),
                String::from_utf8_lossy(&text[..text.len().min(2000)])
            ),
        };
        assert_eq!(
            String::from_utf8_lossy(&write_to_vec(&again)),
            String::from_utf8_lossy(&text)
        );
    }
}

enum Step {
    Tar(#[allow(dead_code)] TarError),
    Merge(#[allow(dead_code)] MergeError),
}

impl From<TarError> for Step {
    fn from(e: TarError) -> Self {
        Step::Tar(e)
    }
}

/// `tar_layer`: the first byte picks how the rest is read (raw, with header checksums fixed,
/// or that gzip-compressed; the high bit keeps user xattrs). Reading, merging and the OCI
/// transform return; a merged tree the writers accept reads back equal from its V1 and V2
/// images.
pub fn check_tar_layer(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let opts = TarOptions::default();
    let mut merger = LayerMerger::new();
    let ok = match mode % 3 {
        0 => read_layer(rest, &opts, |e| merger.apply(e).map_err(Step::Merge)).is_ok(),
        1 => {
            let tar = checksummed_tar(rest);
            read_layer(&tar[..], &opts, |e| merger.apply(e).map_err(Step::Merge)).is_ok()
        }
        _ => {
            let tar = checksummed_tar(rest);
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&tar).expect("gzip into memory");
            let gz = gz.finish().expect("gzip into memory");
            apply_layer(&mut merger, &gz[..], &opts).is_ok()
        }
    };
    if !ok {
        return;
    }
    let filter = if mode & 0x80 != 0 {
        XattrFilter::KeepUserXattrs
    } else {
        XattrFilter::AllowlistOnly
    };
    let mut tree = merger.into_tree();
    if transform_for_oci(&mut tree, filter).is_err() {
        return;
    }
    for (opts, v2) in [(WriteOptions::v1(), false), (WriteOptions::v2(), true)] {
        let Ok(bytes) = image_bytes(&tree, &opts) else {
            continue;
        };
        let mut back = read_image(&bytes).expect("our image of a layer reads").tree;
        let mut expected = tree.clone();
        normalise(&mut expected, v2);
        normalise(&mut back, v2);
        assert_same_tree(
            if v2 { "layer → V2" } else { "layer → V1" },
            &expected,
            &back,
        );
    }
}

/// `oci_layout`: an OCI image layout built from fuzzer bytes (see [`layout_records`] and
/// [`substitute`]) in a temporary folder. Opening it, choosing images and building their
/// trees return, never panic.
pub fn check_oci_layout(data: &[u8]) {
    let records = layout_records(data);
    if records.len() > 32 {
        return;
    }
    let dir = tempfile::tempdir().expect("temporary folder");
    let blobs = dir.path().join("blobs/sha256");
    std::fs::create_dir_all(&blobs).expect("blob folder");
    // Resolve from the last record back, so that each may name the ones after it.
    let mut resolved: Vec<Option<(String, u64, String)>> = vec![None; records.len()];
    let mut index = Vec::new();
    for i in (0..records.len()).rev() {
        // Only JSON records carry placeholders; layers stay byte for byte.
        let content = if records[i].trim_ascii_start().starts_with(b"{") {
            substitute(records[i], &resolved)
        } else {
            records[i].to_vec()
        };
        if i == 0 {
            index = content;
            break;
        }
        let digest = sha(&content);
        let mut plain = Vec::new();
        let diff = match flate2::read::GzDecoder::new(&content[..])
            .take(1 << 20)
            .read_to_end(&mut plain)
        {
            Ok(_) => sha(&plain),
            Err(_) => digest.clone(),
        };
        std::fs::write(blobs.join(&digest[7..]), &content).expect("write blob");
        resolved[i] = Some((digest, content.len() as u64, diff));
    }
    std::fs::write(
        dir.path().join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("write oci-layout");
    std::fs::write(dir.path().join("index.json"), &index).expect("write index.json");
    let Ok(layout) = OciLayout::open(dir.path()) else {
        return;
    };
    let refs: Vec<Option<String>> = layout
        .refs()
        .into_iter()
        .map(|r| r.map(str::to_owned))
        .collect();
    let mut choices: Vec<Option<&str>> = vec![None];
    choices.extend(refs.iter().flatten().map(|r| Some(r.as_str())).take(2));
    for reference in choices {
        let Ok(image) = layout.image(reference) else {
            continue;
        };
        let _ = layout.tree(&image, &TarOptions::default(), XattrFilter::KeepUserXattrs);
    }
}

fn karg_round_trip(k: &Karg) {
    let text = k.to_string();
    let again = Karg::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
    assert_eq!(&again, k, "{text}");
    assert_eq!(again.to_string(), text);
}

/// `karg_parse`: any text as one argument and as a command line. Parsing returns; every
/// parsed argument writes back to text that parses to the same argument; the arguments of a
/// line, written back as a line, collect to the same list.
pub fn check_karg_parse(data: &[u8]) {
    let s = String::from_utf8_lossy(data);
    if let Ok(k) = Karg::parse(&s) {
        karg_round_trip(&k);
    }
    for t in tokenize(&s) {
        assert!(!t.is_empty());
        if let Ok(k) = Karg::parse(t) {
            karg_round_trip(&k);
        }
    }
    if let Ok(all) = collect(&s) {
        for k in &all {
            karg_round_trip(k);
        }
        let line = all
            .iter()
            .map(|k| k.to_string())
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(collect(&line).expect("written arguments collect"), all);
    }
}

/// Whether some inode's inline data (file content or symlink target), with a 64-byte inode
/// header, its xattrs stored locally and a slot of alignment, might not fit in one block.
/// V2 (like composefs-rs 0.9.4) writes all inline content after the inode, so a file over
/// 4096 bytes gives an image the reader refuses ("data block out of range", fsck.erofs fails
/// too), and one of 4090 bytes can be placed so that its data crosses a block ("inline data
/// crosses a block boundary"). Reported to the writer's owner; until the writer refuses or
/// places such trees correctly, the V2 round trip skips them (conservatively: from about
/// 4000 bytes; `fixtures/fuzz-regressions/roundtrip/v2-inline-*`).
pub fn v2_inline_overflows(tree: &Tree) -> bool {
    tree.inodes().any(|(_, inode)| {
        let data = match &inode.kind {
            InodeKind::Regular(FileData::Inline(c)) => c.len(),
            InodeKind::Symlink(t) => t.len(),
            _ => return false,
        };
        let xattrs: usize = inode
            .xattrs
            .iter()
            .map(|x| (4 + x.name.len() + x.value.len()).div_ceil(4) * 4)
            .sum();
        64 + 12 + xattrs + data + 32 > 4096
    })
}

/// `roundtrip`: a tree built from the bytes ([`arb_tree`]) written as V1 and V2 reads back
/// equal up to the documented normalisations, and V1 bytes read back and written again are
/// the same bytes.
pub fn check_roundtrip(data: &[u8]) {
    let Ok(tree) = arb_tree(&mut Input::new(data));
    for (opts, v2) in [(WriteOptions::v1(), false), (WriteOptions::v2(), true)] {
        if v2 && v2_inline_overflows(&tree) {
            continue;
        }
        let bytes = match image_bytes(&tree, &opts) {
            Ok(b) => b,
            Err(e) => panic!("the writer refused a generated tree: {e}"),
        };
        let image =
            read_image(&bytes).unwrap_or_else(|e| panic!("our {opts:?} image does not read: {e}"));
        let mut expected = tree.clone();
        let mut back = image.tree;
        normalise(&mut expected, v2);
        normalise(&mut back, v2);
        assert_same_tree(if v2 { "V2" } else { "V1" }, &expected, &back);
        if !v2 {
            let again = image_bytes(&back, &opts).expect("a read tree writes");
            assert!(again == bytes, "V1 → read → V1 changed the bytes");
        }
    }
}

/// `splitstream`: any bytes as a composefs-rs splitstream. Parsing returns (never panics, never
/// allocates past its limit); a parsed stream, written again through the writer (same named
/// refs, same pieces), parses to the same named refs and the same sequence of inline bytes and
/// objects.
pub fn check_splitstream(data: &[u8]) {
    use cfs_erofs::repo::splitstream::{Chunk, Limits, SplitStream, SplitStreamWriter};
    let limits = Limits {
        max_decompressed: 1 << 20,
    };
    let Ok(s) = SplitStream::parse(data, None, &limits) else {
        return;
    };
    let pieces = |s: &SplitStream| {
        let mut out: Vec<std::result::Result<Vec<u8>, Digest>> = Vec::new();
        for c in &s.chunks {
            match c {
                Chunk::Inline(r) => match out.last_mut() {
                    Some(Ok(v)) => v.extend_from_slice(&s.inline[r.clone()]),
                    _ => out.push(Ok(s.inline[r.clone()].to_vec())),
                },
                Chunk::External(i) => out.push(Err(s.object_refs[*i].clone())),
            }
        }
        out.retain(|p| !matches!(p, Ok(v) if v.is_empty()));
        out
    };
    let named = |s: &SplitStream| {
        let mut m = std::collections::BTreeMap::new();
        for (n, i) in &s.named_refs {
            m.insert(n.clone(), s.stream_refs[*i].clone());
        }
        m
    };
    let mut w = SplitStreamWriter::new(s.algorithm, s.content_type).expect("writer");
    for (n, d) in named(&s) {
        w.add_named_ref(&n, &d);
    }
    for p in pieces(&s) {
        match p {
            Ok(bytes) => w.write_inline(&bytes),
            Err(d) => w.write_external(&d, 0).expect("write"),
        }
    }
    let again = SplitStream::parse(&w.finish().expect("finish"), Some(s.algorithm), &limits)
        .expect("written stream parses");
    assert_eq!(named(&again), named(&s));
    assert_eq!(pieces(&again), pieces(&s));
    assert_eq!(again.content_type, s.content_type);
}
