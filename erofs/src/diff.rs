//! Where two composefs images differ, said in the format's terms.
//!
//! Comparing bytes tells *that* two images differ, but once one inode grows every later byte
//! moves, and the first differing byte explains nothing. [`diff_images`] instead checks both
//! images with the reader (an image that does not read is a [`DiffError`] naming its side),
//! then walks both trees together, pairing entries by path, and reports in this order:
//!
//! 1. header fields, and the superblock fields a writer chooses (build time, features, …);
//! 2. per path, depth first in name order: for a directory, names present on one side only and
//!    entries whose nids were swapped, then its inode; for every inode its fields (mode, nlink,
//!    uid, gid, size, mtime, rdev), xattrs (added, removed, changed; a changed shared-table
//!    entry once), content (file data, symlink target, chunk table) and representation
//!    (compact/extended, data layout, chunk format, xattr counts, bloom filter); hardlinks by
//!    the path of the entry they link to;
//! 3. layout: each entry's nid, `i_ino`, data block addresses, where shared xattrs sit, and the
//!    derived superblock fields (root nid, inode and block counts, `xattr_blkaddr`);
//! 4. byte ranges none of the above explains (padding, unused bytes), named by the region they
//!    lie in.
//!
//! Reader side only: this module reads with [`crate::read`] and [`crate::format`] and never
//! imports a writer. Its cost is linear in the two images; it keeps one path string per inode
//! (to name the region a stray byte lies in) and the children of the directories being walked.
#![forbid(unsafe_code)]

use std::collections::{HashMap, HashSet};
use std::fmt;

use crate::format::{
    CompactInode, ComposefsHeader, DataLayout, ExtendedInode, Superblock, BLOCK_SIZE,
    SUPERBLOCK_OFFSET,
};
use crate::read::image::{slice_at, struct_at, ChunkEntries, ImageView, RawInode};
use crate::read::node::flat_data;
use crate::read::walk::{self, BitSet};
use crate::read::ReadError;
use crate::tree::FileType;

/// One of the two images being compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    A,
    B,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::A => "A",
            Side::B => "B",
        })
    }
}

/// Why two images could not be compared.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    #[error("image {side} does not read: {error}")]
    Unreadable {
        side: Side,
        #[source]
        error: ReadError,
    },
}

/// Which pass found a difference (the list is ordered by class).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// What a reader of the image sees differently: fields, names, xattrs, content.
    Semantic,
    /// Where things sit: nids, inode numbers, block addresses, derived counts.
    Layout,
    /// Bytes no structure explains.
    Raw,
}

/// Where a difference is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// The image as a whole.
    Image,
    /// The composefs header (offset 0).
    Header,
    /// The EROFS superblock (offset 1024).
    Superblock,
    /// The inode reached by `path`, at `nid_a` in image A and `nid_b` in image B (`None`: the
    /// path does not reach an inode of its own on that side).
    Inode {
        path: String,
        nid_a: Option<u64>,
        nid_b: Option<u64>,
    },
    /// A shared xattr table entry, at these byte offsets of A and B.
    SharedXattr { offset_a: u64, offset_b: u64 },
    /// A byte range (the same offsets in both images) and the region of the image it lies in.
    Bytes {
        offset: u64,
        len: u64,
        region: String,
    },
}

/// What differs there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Field {
    /// Image length.
    Length,
    /// A composefs header field.
    Header(&'static str),
    /// A superblock field.
    Superblock(&'static str),
    /// The entry exists on one side only.
    Entry,
    /// The nid a directory entry points at.
    DirentNid,
    /// Which entry a hardlink shares its inode with (or that it has an inode of its own).
    Hardlink,
    /// An inode field: `i_mode`, `i_nlink`, `i_uid`, `i_gid`, `i_size`, `i_mtime`,
    /// `i_mtime_nsec`, `i_rdev`, `i_format`, `data layout`, `chunk format`,
    /// `i_xattr_icount`, `h_shared_count`, `h_name_filter`.
    Inode(&'static str),
    /// The xattr with this full name (values carry where it is stored).
    Xattr(Vec<u8>),
    /// Where the xattr with this name is stored (inline, or the shared table entry).
    XattrStorage(Vec<u8>),
    /// Regular file content, from this byte of the file on.
    Content {
        at: u64,
    },
    SymlinkTarget,
    /// The chunk table (block map) of an external file.
    ChunkTable,
    /// A shared xattr table entry's name and value.
    SharedEntry,
    /// `i_ino`.
    Ino,
    /// The first data block (`i_u`) of a file or directory.
    BlockAddr,
    /// Raw bytes.
    Bytes,
}

/// One difference between two images: the values on side A and side B (`None`: absent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    pub class: Class,
    pub place: Place,
    pub field: Field,
    pub a: Option<String>,
    pub b: Option<String>,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Image => f.write_str("image"),
            Place::Header => f.write_str("header"),
            Place::Superblock => f.write_str("superblock"),
            Place::Inode { path, nid_a, nid_b } => match (nid_a, nid_b) {
                (Some(x), Some(y)) if x != y => write!(f, "inode {x}→{y} ({path})"),
                (Some(x), _) | (None, Some(x)) => write!(f, "inode {x} ({path})"),
                (None, None) => write!(f, "entry {path}"),
            },
            Place::SharedXattr { offset_a, offset_b } if offset_a == offset_b => {
                write!(f, "shared xattr at offset {offset_a}")
            }
            Place::SharedXattr { offset_a, offset_b } => {
                write!(f, "shared xattr at offset {offset_a}→{offset_b}")
            }
            Place::Bytes {
                offset,
                len,
                region,
            } => write!(f, "bytes {offset}..{} ({region})", offset + len),
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Length => f.write_str("length"),
            Field::Header(n) | Field::Superblock(n) | Field::Inode(n) => f.write_str(n),
            Field::Entry => f.write_str("entry"),
            Field::DirentNid => f.write_str("directory entry nid"),
            Field::Hardlink => f.write_str("hardlink"),
            Field::Xattr(n) => write!(f, "xattr {}", show_name(n)),
            Field::XattrStorage(n) => write!(f, "xattr {} stored", show_name(n)),
            Field::Content { at } => write!(f, "content at byte {at}"),
            Field::SymlinkTarget => f.write_str("symlink target"),
            Field::ChunkTable => f.write_str("chunk table"),
            Field::SharedEntry => f.write_str("entry"),
            Field::Ino => f.write_str("i_ino"),
            Field::BlockAddr => f.write_str("data block address"),
            Field::Bytes => f.write_str("bytes"),
        }
    }
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = self.a.as_deref().unwrap_or("absent");
        let b = self.b.as_deref().unwrap_or("absent");
        write!(f, "{}: {} {a} ≠ {b}", self.place, self.field)
    }
}

/// Every difference between images `a` and `b`: semantic ones first, then layout, then raw
/// bytes (see the module documentation). Identical images give an empty list.
pub fn diff_images(a: &[u8], b: &[u8]) -> Result<Vec<Difference>, DiffError> {
    let mut d = Differ {
        a: Img::open(a, Side::A)?,
        b: Img::open(b, Side::B)?,
        semantic: Vec::new(),
        layout: Vec::new(),
        shared_done: HashSet::new(),
    };
    d.header_and_superblock()?;
    d.trees()?;
    d.lengths();
    let raw = d.raw();
    let mut out = d.semantic;
    out.append(&mut d.layout);
    out.extend(raw);
    Ok(out)
}

/// The first difference, if any. When an image does not read, the first differing byte range
/// (or the length) is reported as a raw difference instead.
pub fn first_difference(a: &[u8], b: &[u8]) -> Option<Difference> {
    if a == b {
        return None;
    }
    if let Ok(d) = diff_images(a, b) {
        if let Some(first) = d.into_iter().next() {
            return Some(first);
        }
    }
    let n = a.len().min(b.len());
    match (0..n).find(|&i| a[i] != b[i]) {
        Some(s) => {
            let e = (s..n).find(|&i| a[i] == b[i]).unwrap_or(n);
            Some(raw_difference(
                a,
                b,
                s as u64,
                e as u64,
                "unreadable image".into(),
            ))
        }
        None => Some(Difference {
            class: Class::Raw,
            place: Place::Image,
            field: Field::Length,
            a: Some(a.len().to_string()),
            b: Some(b.len().to_string()),
        }),
    }
}

/// A region of one image, for naming stray bytes.
#[derive(Clone, Copy)]
struct Region {
    start: u64,
    end: u64,
    kind: RegionKind,
    /// Index into `Img::labels`.
    label: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RegionKind {
    Fixed,
    Inode,
    Data,
    Shared,
}

/// One image being compared, with the walk's bookkeeping.
struct Img<'a> {
    side: Side,
    view: ImageView<'a>,
    /// Inodes reached through more than one entry.
    multi: BitSet,
    /// Inodes met so far.
    seen: BitSet,
    /// The first path of every inode in `multi` met so far.
    primary: HashMap<u64, String>,
    /// Byte ranges some reported difference covers.
    explained: Vec<(u64, u64)>,
    regions: Vec<Region>,
    labels: Vec<String>,
    shared_seen: HashSet<u64>,
}

/// A directory entry (never `.` or `..`).
#[derive(Clone, Copy)]
struct Kid<'a> {
    name: &'a [u8],
    nid: u64,
    /// Offset of the 12-byte dirent.
    dirent: u64,
}

/// A name and the entries it has in A and B.
struct Pair<'a> {
    name: &'a [u8],
    a: Option<Kid<'a>>,
    b: Option<Kid<'a>>,
}

/// A directory pair being walked.
struct Frame<'a> {
    path: String,
    kids: Vec<Pair<'a>>,
    next: usize,
    /// Names whose nid change was already reported as a swap.
    swapped: HashSet<&'a [u8]>,
}

/// One xattr as stored.
#[derive(Clone, Copy)]
struct Xa<'a> {
    prefix: &'static [u8],
    suffix: &'a [u8],
    value: &'a [u8],
    /// Shared: the table entry's byte range; inline: the entry's.
    start: u64,
    end: u64,
    /// The stored shared reference, for shared entries.
    shared_ref: Option<u32>,
}

impl Xa<'_> {
    fn name(&self) -> Vec<u8> {
        [self.prefix, self.suffix].concat()
    }

    fn cmp_name(&self, o: &Xa<'_>) -> std::cmp::Ordering {
        self.prefix
            .iter()
            .chain(self.suffix)
            .cmp(o.prefix.iter().chain(o.suffix))
    }

    fn where_(&self) -> String {
        match self.shared_ref {
            Some(_) => format!("shared at {}", self.start),
            None => "inline".into(),
        }
    }

    fn show(&self) -> String {
        format!("{} ({})", show_bytes(self.value), self.where_())
    }
}

/// An inode's xattrs and xattr header fields.
struct Xattrs<'a> {
    list: Vec<Xa<'a>>,
    shared_count: usize,
    filter: Option<u32>,
}

fn io<T>(side: Side, r: Result<T, ReadError>) -> Result<T, DiffError> {
    r.map_err(|error| DiffError::Unreadable { side, error })
}

impl<'a> Img<'a> {
    fn open(bytes: &'a [u8], side: Side) -> Result<Self, DiffError> {
        let view = io(side, ImageView::new(bytes))?;
        let summary = io(side, walk::validate(&view))?;
        let slots = bytes.len() as u64 / crate::format::SLOT_SIZE;
        let mut img = Img {
            side,
            view,
            multi: summary.multi,
            seen: BitSet::new(slots),
            primary: HashMap::new(),
            explained: Vec::new(),
            regions: Vec::new(),
            labels: Vec::new(),
            shared_seen: HashSet::new(),
        };
        img.region(0, 32, RegionKind::Fixed, "header".into());
        img.region(
            32,
            SUPERBLOCK_OFFSET,
            RegionKind::Fixed,
            "header padding".into(),
        );
        img.region(
            SUPERBLOCK_OFFSET,
            SUPERBLOCK_OFFSET + 128,
            RegionKind::Fixed,
            "superblock".into(),
        );
        Ok(img)
    }

    fn io<T>(&self, r: Result<T, ReadError>) -> Result<T, DiffError> {
        io(self.side, r)
    }

    fn region(&mut self, start: u64, end: u64, kind: RegionKind, label: String) {
        self.labels.push(label);
        self.regions.push(Region {
            start,
            end,
            kind,
            label: self.labels.len() - 1,
        });
    }

    fn explain(&mut self, start: u64, len: u64) {
        if len > 0 {
            self.explained.push((start, start + len));
        }
    }

    fn inode(&self, nid: u64) -> Result<RawInode, DiffError> {
        self.io(self.view.inode(nid))
    }

    /// The metadata extent (inode, xattrs, inline data) and data blocks of an inode.
    fn extents(&self, r: &RawInode) -> Result<[(u64, u64); 2], DiffError> {
        let end = r.inline_offset() + self.io(r.inline_len(&self.view))?;
        let (blocks, _) = r.data_extent();
        let data = if blocks > 0 {
            let s = u64::from(r.u) * BLOCK_SIZE;
            (s, s + blocks * BLOCK_SIZE)
        } else {
            (0, 0)
        };
        Ok([(r.offset, end), data])
    }

    /// Records the regions of an inode met for the first time, labelled with its path.
    fn record(&mut self, r: &RawInode, path: &str) -> Result<(), DiffError> {
        let [(s, e), (ds, de)] = self.extents(r)?;
        let label = format!("inode {} ({path})", r.nid);
        if de > ds {
            self.region(ds, de, RegionKind::Data, label.clone());
        }
        self.region(s, e, RegionKind::Inode, label);
        if self.multi.get(r.nid) {
            self.primary.insert(r.nid, path.to_owned());
        }
        Ok(())
    }

    /// Marks an inode's metadata and data as explained.
    fn explain_inode(&mut self, r: &RawInode) -> Result<(), DiffError> {
        for (s, e) in self.extents(r)? {
            self.explain(s, e - s);
        }
        Ok(())
    }

    /// The entries of a directory, in stored (sorted) order, without `.` and `..`.
    fn children(&self, dir: &RawInode) -> Result<Vec<Kid<'a>>, DiffError> {
        Ok(self.entries(dir)?.0)
    }

    /// The entries of a directory without `.` and `..`, and those two apart.
    fn entries(&self, dir: &RawInode) -> Result<(Vec<Kid<'a>>, Vec<Kid<'a>>), DiffError> {
        let mut out = Vec::new();
        let mut dots = Vec::with_capacity(2);
        let mut chunks = self.io(self.view.dir_chunks(dir))?;
        while let Some((chunk, off)) = self.io(chunks.next_chunk())? {
            let mut ents = self.io(ChunkEntries::new(chunk, off))?;
            while let Some(d) = self.io(ents.next_entry())? {
                let kid = Kid {
                    name: d.name,
                    nid: d.nid,
                    dirent: d.offset,
                };
                if d.name == b"." || d.name == b".." {
                    dots.push(kid);
                } else {
                    out.push(kid);
                }
            }
        }
        Ok((out, dots))
    }

    /// Visits and explains everything under an entry present on this side only.
    fn explain_subtree(&mut self, nid: u64, path: String) -> Result<(), DiffError> {
        let mut todo = vec![(nid, path)];
        while let Some((nid, path)) = todo.pop() {
            if self.seen.get(nid) {
                continue;
            }
            self.seen.set(nid);
            let r = self.inode(nid)?;
            self.record(&r, &path)?;
            self.explain_inode(&r)?;
            if r.is_dir() {
                for k in self.children(&r)?.into_iter().rev() {
                    todo.push((k.nid, join(&path, k.name)));
                }
            }
            // Shared xattrs of an inode present on one side only are explained by it.
            for x in self.xattrs(&r)?.list {
                if x.shared_ref.is_some() {
                    self.explain(x.start, x.end - x.start);
                }
            }
        }
        Ok(())
    }

    fn xattrs(&mut self, r: &RawInode) -> Result<Xattrs<'a>, DiffError> {
        let mut it = self.io(self.view.xattrs(r))?;
        let mut list = Vec::new();
        let mut shared_count = 0;
        while let Some((x, start, end)) = self.io(it.next_entry())? {
            let shared_ref = x.shared.then(|| {
                shared_count += 1;
                ((start - self.view.xattr_base) / 4) as u32
            });
            if x.shared && self.shared_seen.insert(start) {
                self.region(start, end, RegionKind::Shared, "shared xattr table".into());
            }
            list.push(Xa {
                prefix: x.prefix,
                suffix: x.suffix,
                value: x.value,
                start,
                end,
                shared_ref,
            });
        }
        let filter = (r.xattr_size() > 0).then_some(it.filter);
        Ok(Xattrs {
            list,
            shared_count,
            filter,
        })
    }

    /// The stored `i_ino`.
    fn ino(&self, r: &RawInode) -> Result<u32, DiffError> {
        let bytes = self.view.bytes();
        Ok(if r.header_len == 64 {
            self.io(struct_at::<ExtendedInode>(bytes, r.offset))?
                .ino
                .get()
        } else {
            self.io(struct_at::<CompactInode>(bytes, r.offset))?
                .ino
                .get()
        })
    }

    /// The label of the region holding `offset`, or of the region before it.
    fn region_at(&self, offset: u64) -> Option<String> {
        let i = self.regions.partition_point(|r| r.start <= offset);
        let r = self.regions.get(i.checked_sub(1)?)?;
        let label = &self.labels[r.label];
        Some(if offset < r.end {
            match r.kind {
                RegionKind::Data => format!("data of {label}"),
                _ => label.clone(),
            }
        } else {
            format!("padding after {label}")
        })
    }
}

/// `dir/name` as a displayable path.
fn join(dir: &str, name: &[u8]) -> String {
    let name = String::from_utf8_lossy(name);
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

struct Differ<'a> {
    a: Img<'a>,
    b: Img<'a>,
    semantic: Vec<Difference>,
    layout: Vec<Difference>,
    /// Shared entry pairs (offsets in A and B) already reported.
    shared_done: HashSet<(u64, u64)>,
}

/// A field value as text.
trait Show {
    fn show(&self) -> String;
}

macro_rules! show_num {
    ($($t:ty),*) => {$(
        impl Show for $t {
            fn show(&self) -> String {
                self.get().to_string()
            }
        }
    )*};
}
show_num!(
    zerocopy::little_endian::U16,
    zerocopy::little_endian::U32,
    zerocopy::little_endian::U64
);

impl Show for u8 {
    fn show(&self) -> String {
        self.to_string()
    }
}

impl<const N: usize> Show for [u8; N] {
    fn show(&self) -> String {
        hex_bytes(self)
    }
}

impl<const N: usize> Show for [zerocopy::little_endian::U32; N] {
    fn show(&self) -> String {
        let v: Vec<String> = self.iter().map(|x| x.get().to_string()).collect();
        format!("[{}]", v.join(", "))
    }
}

/// Compares listed fields of two zerocopy structs at byte offset `$base`, pushing a difference
/// and explaining the field's bytes for each one that differs.
macro_rules! cmp_fields {
    ($d:ident, $list:ident, $class:expr, $place:expr, $field:path, $ty:ty, $base:expr, $x:ident,
     $y:ident, [$($f:ident),* $(,)?]) => {$(
        if $x.$f != $y.$f {
            let at = $base + std::mem::offset_of!($ty, $f) as u64;
            let len = std::mem::size_of_val(&$x.$f) as u64;
            $d.a.explain(at, len);
            $d.b.explain(at, len);
            $d.$list.push(Difference {
                class: $class,
                place: $place,
                field: $field(stringify!($f)),
                a: Some($x.$f.show()),
                b: Some($y.$f.show()),
            });
        }
    )*};
}

impl<'a> Differ<'a> {
    fn push(
        &mut self,
        class: Class,
        place: &Place,
        field: Field,
        a: Option<String>,
        b: Option<String>,
    ) {
        let d = Difference {
            class,
            place: place.clone(),
            field,
            a,
            b,
        };
        match class {
            Class::Layout => self.layout.push(d),
            _ => self.semantic.push(d),
        }
    }

    fn header_and_superblock(&mut self) -> Result<(), DiffError> {
        let (ab, bb) = (self.a.view.bytes(), self.b.view.bytes());
        let ha = self.a.io(struct_at::<ComposefsHeader>(ab, 0))?;
        let hb = self.b.io(struct_at::<ComposefsHeader>(bb, 0))?;
        cmp_fields!(
            self,
            semantic,
            Class::Semantic,
            Place::Header,
            Field::Header,
            ComposefsHeader,
            0,
            ha,
            hb,
            [magic, version, flags, composefs_version, unused]
        );
        let sa = self.a.io(struct_at::<Superblock>(ab, SUPERBLOCK_OFFSET))?;
        let sb = self.b.io(struct_at::<Superblock>(bb, SUPERBLOCK_OFFSET))?;
        // build_time is signed seconds.
        if sa.build_time != sb.build_time {
            let at = SUPERBLOCK_OFFSET + std::mem::offset_of!(Superblock, build_time) as u64;
            self.a.explain(at, 8);
            self.b.explain(at, 8);
            self.semantic.push(Difference {
                class: Class::Semantic,
                place: Place::Superblock,
                field: Field::Superblock("build_time"),
                a: Some((sa.build_time.get() as i64).to_string()),
                b: Some((sb.build_time.get() as i64).to_string()),
            });
        }
        cmp_fields!(
            self,
            semantic,
            Class::Semantic,
            Place::Superblock,
            Field::Superblock,
            Superblock,
            SUPERBLOCK_OFFSET,
            sa,
            sb,
            [
                magic,
                checksum,
                feature_compat,
                blkszbits,
                extslots,
                build_time_nsec,
                meta_blkaddr,
                uuid,
                volume_name,
                feature_incompat,
                available_compr_algs,
                extra_devices,
                devt_slotoff,
                dirblkbits,
                xattr_prefix_count,
                xattr_prefix_start,
                packed_nid,
                xattr_filter_reserved,
                reserved2,
            ]
        );
        // Fields that follow from the layout.
        cmp_fields!(
            self,
            layout,
            Class::Layout,
            Place::Superblock,
            Field::Superblock,
            Superblock,
            SUPERBLOCK_OFFSET,
            sa,
            sb,
            [root_nid, inos, blocks, xattr_blkaddr]
        );
        Ok(())
    }

    fn lengths(&mut self) {
        let (la, lb) = (
            self.a.view.bytes().len() as u64,
            self.b.view.bytes().len() as u64,
        );
        if la != lb {
            let (lo, hi) = (la.min(lb), la.max(lb));
            self.a.explain(lo, hi - lo);
            self.layout.push(Difference {
                class: Class::Layout,
                place: Place::Image,
                field: Field::Length,
                a: Some(la.to_string()),
                b: Some(lb.to_string()),
            });
        }
    }

    /// Walks both trees together, depth first, pairing entries by path.
    fn trees(&mut self) -> Result<(), DiffError> {
        let ra = self.a.inode(self.a.view.root_nid)?;
        let rb = self.b.inode(self.b.view.root_nid)?;
        self.a.seen.set(ra.nid);
        self.b.seen.set(rb.nid);
        let mut stack = vec![self.enter("/".into(), &ra, &rb)?];
        while let Some(top) = stack.last_mut() {
            let Some(pair) = top.kids.get(top.next) else {
                stack.pop();
                continue;
            };
            top.next += 1;
            let path = join(&top.path, pair.name);
            let swapped = top.swapped.contains(pair.name);
            let (ka, kb) = (pair.a, pair.b);
            if let Some(frame) = self.pair(path, ka, kb, swapped)? {
                stack.push(frame);
            }
        }
        Ok(())
    }

    /// Compares the entries under one path; returns the frame to walk when both are
    /// directories met for the first time.
    fn pair(
        &mut self,
        path: String,
        ka: Option<Kid<'a>>,
        kb: Option<Kid<'a>>,
        swapped: bool,
    ) -> Result<Option<Frame<'a>>, DiffError> {
        let (ka, kb) = match (ka, kb) {
            (Some(ka), Some(kb)) => (ka, kb),
            // One side only: reported with the directory listing.
            (Some(k), None) => {
                self.a.explain_subtree(k.nid, path)?;
                return Ok(None);
            }
            (None, Some(k)) => {
                self.b.explain_subtree(k.nid, path)?;
                return Ok(None);
            }
            (None, None) => return Ok(None),
        };
        let ia = self.a.inode(ka.nid)?;
        let ib = self.b.inode(kb.nid)?;
        let first_a = !self.a.seen.get(ka.nid);
        let first_b = !self.b.seen.get(kb.nid);
        let place = Place::Inode {
            path: path.clone(),
            nid_a: first_a.then_some(ka.nid),
            nid_b: first_b.then_some(kb.nid),
        };
        if ka.nid != kb.nid {
            self.a.explain(ka.dirent, crate::format::DIRENT_SIZE);
            self.b.explain(kb.dirent, crate::format::DIRENT_SIZE);
            if !swapped {
                self.push(
                    Class::Layout,
                    &place,
                    Field::DirentNid,
                    Some(ka.nid.to_string()),
                    Some(kb.nid.to_string()),
                );
            }
        }
        match (first_a, first_b) {
            (true, true) => {
                self.a.seen.set(ka.nid);
                self.b.seen.set(kb.nid);
                self.a.record(&ia, &path)?;
                self.b.record(&ib, &path)?;
                if ia.is_dir() && ib.is_dir() {
                    return self.enter(path, &ia, &ib).map(Some);
                }
                self.inode(&place, &ia, &ib)?;
                // A directory replaced by a non-directory: its subtree is explained by that.
                for (img, r) in [(&mut self.a, &ia), (&mut self.b, &ib)] {
                    if r.is_dir() {
                        for k in img.children(r)? {
                            img.explain_subtree(k.nid, join(&path, k.name))?;
                        }
                    }
                }
            }
            (false, false) => {
                let pa = self.a.primary.get(&ka.nid).cloned();
                let pb = self.b.primary.get(&kb.nid).cloned();
                if pa != pb {
                    let show = |p: Option<String>| Some(format!("to {}", p.unwrap_or_default()));
                    self.push(Class::Semantic, &place, Field::Hardlink, show(pa), show(pb));
                }
            }
            _ => {
                let (link, own) = if first_a { (&kb, &ka) } else { (&ka, &kb) };
                let target = if first_a {
                    self.b.primary.get(&link.nid).cloned()
                } else {
                    self.a.primary.get(&link.nid).cloned()
                };
                let linked = Some(format!("to {}", target.unwrap_or_default()));
                let alone = Some(format!("own inode {}", own.nid));
                let (va, vb) = if first_a {
                    (alone, linked)
                } else {
                    (linked, alone)
                };
                self.push(Class::Semantic, &place, Field::Hardlink, va, vb);
                // The inode of its own has no counterpart: this difference explains it.
                if first_a {
                    self.a.explain_subtree(ka.nid, path)?;
                } else {
                    self.b.explain_subtree(kb.nid, path)?;
                }
            }
        }
        Ok(None)
    }

    /// Starts walking a directory pair: its listing, then its own inode.
    fn enter(
        &mut self,
        path: String,
        ra: &RawInode,
        rb: &RawInode,
    ) -> Result<Frame<'a>, DiffError> {
        let (ka, dots_a) = self.a.entries(ra)?;
        let (kb, dots_b) = self.b.entries(rb)?;
        // `.` and `..` point at this directory and its parent: when either moved, their
        // nids differ, which the nid differences of those directories explain.
        for (x, y) in dots_a.iter().zip(&dots_b) {
            if x.nid != y.nid {
                self.a.explain(x.dirent, crate::format::DIRENT_SIZE);
                self.b.explain(y.dirent, crate::format::DIRENT_SIZE);
            }
        }
        let mut kids = Vec::with_capacity(ka.len().max(kb.len()));
        let (mut i, mut j) = (0, 0);
        while i < ka.len() || j < kb.len() {
            let (x, y) = (ka.get(i), kb.get(j));
            let ord = match (x, y) {
                (Some(x), Some(y)) => x.name.cmp(y.name),
                (Some(_), None) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            let pair = match ord {
                std::cmp::Ordering::Less => {
                    i += 1;
                    Pair {
                        name: ka[i - 1].name,
                        a: x.copied(),
                        b: None,
                    }
                }
                std::cmp::Ordering::Greater => {
                    j += 1;
                    Pair {
                        name: kb[j - 1].name,
                        a: None,
                        b: y.copied(),
                    }
                }
                std::cmp::Ordering::Equal => {
                    i += 1;
                    j += 1;
                    Pair {
                        name: ka[i - 1].name,
                        a: x.copied(),
                        b: y.copied(),
                    }
                }
            };
            kids.push(pair);
        }

        let mut listing_changed = false;
        // Names on one side only.
        for p in &kids {
            let (k, side_a) = match (&p.a, &p.b) {
                (Some(k), None) => (k, true),
                (None, Some(k)) => (k, false),
                _ => continue,
            };
            listing_changed = true;
            let img = if side_a { &self.a } else { &self.b };
            // Met earlier in the walk: a hardlink to that entry.
            let what = if let Some(p) = img.primary.get(&k.nid) {
                format!("hardlink to {p}")
            } else {
                type_name(img.inode(k.nid)?.file_type).to_string()
            };
            let place = Place::Inode {
                path: join(&path, p.name),
                nid_a: p.a.map(|k| k.nid),
                nid_b: p.b.map(|k| k.nid),
            };
            let (va, vb) = if side_a {
                (Some(what), None)
            } else {
                (None, Some(what))
            };
            self.push(Class::Semantic, &place, Field::Entry, va, vb);
        }
        // Entries whose nids were swapped with a sibling's.
        let mut swapped = HashSet::new();
        let by_nid_a: HashMap<u64, usize> = kids
            .iter()
            .enumerate()
            .filter_map(|(i, p)| Some((p.a?.nid, i)))
            .collect();
        for p in &kids {
            let (Some(x), Some(y)) = (p.a, p.b) else {
                continue;
            };
            if x.nid == y.nid {
                continue;
            }
            let Some(q) = by_nid_a.get(&y.nid).map(|&i| &kids[i]) else {
                continue;
            };
            if q.b.is_some_and(|qb| qb.nid == x.nid) && q.name != p.name {
                swapped.insert(p.name);
                let place = Place::Inode {
                    path: join(&path, p.name),
                    nid_a: Some(x.nid),
                    nid_b: Some(y.nid),
                };
                let other = join(&path, q.name);
                self.push(
                    Class::Semantic,
                    &place,
                    Field::DirentNid,
                    Some(x.nid.to_string()),
                    Some(format!("{} (swapped with {other})", y.nid)),
                );
            }
        }
        if listing_changed || !swapped.is_empty() {
            self.a.explain_inode(ra)?;
            self.b.explain_inode(rb)?;
        }
        let place = Place::Inode {
            path: path.clone(),
            nid_a: Some(ra.nid),
            nid_b: Some(rb.nid),
        };
        if path == "/" {
            self.a.record(ra, &path)?;
            self.b.record(rb, &path)?;
            if ra.nid != rb.nid {
                self.a.explain_inode(ra)?;
                self.b.explain_inode(rb)?;
            }
        }
        self.inode(&place, ra, rb)?;
        Ok(Frame {
            path,
            kids,
            next: 0,
            swapped,
        })
    }

    /// Compares two inodes reached by the same path.
    fn inode(&mut self, place: &Place, ra: &RawInode, rb: &RawInode) -> Result<(), DiffError> {
        let before = self.semantic.len() + self.layout.len();
        let mut touched = ra.nid != rb.nid;
        let sem = Class::Semantic;
        let num = |x: u64| Some(x.to_string());
        if ra.mode != rb.mode {
            self.push(
                sem,
                place,
                Field::Inode("i_mode"),
                octal(ra.mode),
                octal(rb.mode),
            );
        }
        let counts: [(&'static str, u64, u64); 4] = [
            ("i_nlink", ra.nlink.into(), rb.nlink.into()),
            ("i_uid", ra.uid.into(), rb.uid.into()),
            ("i_gid", ra.gid.into(), rb.gid.into()),
            ("i_size", ra.size, rb.size),
        ];
        for (name, a, b) in counts {
            if a != b {
                self.push(sem, place, Field::Inode(name), num(a), num(b));
            }
        }
        // Compact inodes have no mtime of their own (the superblock's build time is theirs).
        if ra.header_len == 64 || rb.header_len == 64 {
            if ra.mtime.sec != rb.mtime.sec {
                let s = |x: i64| Some(x.to_string());
                self.push(
                    sem,
                    place,
                    Field::Inode("i_mtime"),
                    s(ra.mtime.sec),
                    s(rb.mtime.sec),
                );
            }
            if ra.mtime.nsec != rb.mtime.nsec {
                self.push(
                    sem,
                    place,
                    Field::Inode("i_mtime_nsec"),
                    num(ra.mtime.nsec.into()),
                    num(rb.mtime.nsec.into()),
                );
            }
        }
        if ra.rdev() != rb.rdev() {
            self.push(
                sem,
                place,
                Field::Inode("i_rdev"),
                num(ra.rdev().into()),
                num(rb.rdev().into()),
            );
        }

        let xa = self.a.xattrs(ra)?;
        let xb = self.b.xattrs(rb)?;
        touched |= self.xattrs(place, &xa, &xb);

        if ra.file_type == rb.file_type {
            self.content(place, ra, rb)?;
        }

        // Representation.
        if ra.header_len != rb.header_len {
            let f = |r: &RawInode| {
                Some(
                    if r.header_len == 64 {
                        "extended"
                    } else {
                        "compact"
                    }
                    .into(),
                )
            };
            self.push(sem, place, Field::Inode("i_format"), f(ra), f(rb));
        }
        if ra.layout != rb.layout {
            let f = |r: &RawInode| Some(layout_name(r.layout).into());
            self.push(sem, place, Field::Inode("data layout"), f(ra), f(rb));
        }
        if ra.layout == DataLayout::ChunkBased
            && rb.layout == DataLayout::ChunkBased
            && ra.u != rb.u
        {
            self.push(
                sem,
                place,
                Field::Inode("chunk format"),
                num(ra.u.into()),
                num(rb.u.into()),
            );
        }
        if ra.xattr_icount != rb.xattr_icount {
            self.push(
                sem,
                place,
                Field::Inode("i_xattr_icount"),
                num(ra.xattr_icount.into()),
                num(rb.xattr_icount.into()),
            );
        }
        if xa.shared_count != xb.shared_count {
            self.push(
                sem,
                place,
                Field::Inode("h_shared_count"),
                num(xa.shared_count as u64),
                num(xb.shared_count as u64),
            );
        }
        if xa.filter != xb.filter {
            let f = |x: Option<u32>| x.map(|v| format!("{v:#010x}"));
            self.push(
                sem,
                place,
                Field::Inode("h_name_filter"),
                f(xa.filter),
                f(xb.filter),
            );
        }

        // Layout.
        let (ino_a, ino_b) = (self.a.ino(ra)?, self.b.ino(rb)?);
        if ino_a != ino_b {
            self.push(
                Class::Layout,
                place,
                Field::Ino,
                num(ino_a.into()),
                num(ino_b.into()),
            );
        }
        let (blocks_a, _) = ra.data_extent();
        let (blocks_b, _) = rb.data_extent();
        if blocks_a > 0 && blocks_b > 0 && ra.u != rb.u {
            self.push(
                Class::Layout,
                place,
                Field::BlockAddr,
                num(ra.u.into()),
                num(rb.u.into()),
            );
        }

        if touched || self.semantic.len() + self.layout.len() != before {
            self.a.explain_inode(ra)?;
            self.b.explain_inode(rb)?;
        }
        Ok(())
    }

    /// Compares two inodes' xattrs; returns whether anything about them differs, even if it
    /// was reported before (a shared entry).
    fn xattrs(&mut self, place: &Place, xa: &Xattrs<'a>, xb: &Xattrs<'a>) -> bool {
        let mut touched = false;
        let shared = |x: &Xattrs<'a>| -> Vec<Xa<'a>> {
            x.list
                .iter()
                .filter(|x| x.shared_ref.is_some())
                .copied()
                .collect()
        };
        let (sa, sb) = (shared(xa), shared(xb));
        // Shared references stored alike: compare the table entries they name.
        let mut same_slot = HashSet::new();
        for (x, y) in sa.iter().zip(&sb) {
            if x.shared_ref != y.shared_ref {
                continue;
            }
            same_slot.insert((x.start, y.start));
            if x.suffix != y.suffix || x.prefix != y.prefix || x.value != y.value {
                touched = true;
                self.a.explain(x.start, x.end - x.start);
                self.b.explain(y.start, y.end - y.start);
                if self.shared_done.insert((x.start, y.start)) {
                    let show = |x: &Xa<'_>| {
                        Some(format!("{}={}", show_name(&x.name()), show_bytes(x.value)))
                    };
                    self.push(
                        Class::Semantic,
                        &Place::SharedXattr {
                            offset_a: x.start,
                            offset_b: y.start,
                        },
                        Field::SharedEntry,
                        show(x),
                        show(y),
                    );
                }
            }
        }
        let rest = |x: &Xattrs<'a>, side_a: bool| -> Vec<Xa<'a>> {
            let mut v: Vec<Xa<'a>> = x
                .list
                .iter()
                .filter(|x| {
                    x.shared_ref.is_none()
                        || !same_slot
                            .iter()
                            .any(|&(p, q)| if side_a { p == x.start } else { q == x.start })
                })
                .copied()
                .collect();
            v.sort_by(|p, q| p.cmp_name(q).then_with(|| p.value.cmp(q.value)));
            v
        };
        let (ra, rb) = (rest(xa, true), rest(xb, false));
        let (mut i, mut j) = (0, 0);
        while i < ra.len() || j < rb.len() {
            let ord = match (ra.get(i), rb.get(j)) {
                (Some(x), Some(y)) => x.cmp_name(y),
                (Some(_), None) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            // The groups of entries with this name on each side.
            let ga_end = if ord.is_le() { group_end(&ra, i) } else { i };
            let gb_end = if ord.is_ge() { group_end(&rb, j) } else { j };
            let (ga, gb) = (&ra[i..ga_end], &rb[j..gb_end]);
            let name = ga
                .first()
                .or(gb.first())
                .map(|x| x.name())
                .unwrap_or_default();
            i = ga_end;
            j = gb_end;
            if ga.len() == 1 && gb.len() == 1 && ga[0].value != gb[0].value {
                touched = true;
                self.explain_xa(&ga[0], &gb[0]);
                self.push(
                    Class::Semantic,
                    place,
                    Field::Xattr(name),
                    Some(ga[0].show()),
                    Some(gb[0].show()),
                );
                continue;
            }
            // Pair equal values; the others are removed or added.
            let (mut p, mut q) = (0, 0);
            while p < ga.len() || q < gb.len() {
                let o = match (ga.get(p), gb.get(q)) {
                    (Some(x), Some(y)) => x.value.cmp(y.value),
                    (Some(_), None) => std::cmp::Ordering::Less,
                    _ => std::cmp::Ordering::Greater,
                };
                match o {
                    std::cmp::Ordering::Less => {
                        touched = true;
                        let x = ga[p];
                        if x.shared_ref.is_some() {
                            self.a.explain(x.start, x.end - x.start);
                        }
                        self.push(
                            Class::Semantic,
                            place,
                            Field::Xattr(name.clone()),
                            Some(x.show()),
                            None,
                        );
                        p += 1;
                    }
                    std::cmp::Ordering::Greater => {
                        touched = true;
                        let y = gb[q];
                        if y.shared_ref.is_some() {
                            self.b.explain(y.start, y.end - y.start);
                        }
                        self.push(
                            Class::Semantic,
                            place,
                            Field::Xattr(name.clone()),
                            None,
                            Some(y.show()),
                        );
                        q += 1;
                    }
                    std::cmp::Ordering::Equal => {
                        let (x, y) = (ga[p], gb[q]);
                        let moved = match (x.shared_ref, y.shared_ref) {
                            (None, None) => false,
                            (Some(_), Some(_)) => x.start != y.start,
                            _ => true,
                        };
                        if moved {
                            touched = true;
                            self.explain_xa(&x, &y);
                            let both_shared = x.shared_ref.is_some() && y.shared_ref.is_some();
                            if !both_shared || self.shared_done.insert((x.start, y.start)) {
                                self.push(
                                    Class::Layout,
                                    place,
                                    Field::XattrStorage(name.clone()),
                                    Some(x.where_()),
                                    Some(y.where_()),
                                );
                            }
                        }
                        p += 1;
                        q += 1;
                    }
                }
            }
        }
        touched
    }

    fn explain_xa(&mut self, x: &Xa<'_>, y: &Xa<'_>) {
        if x.shared_ref.is_some() {
            self.a.explain(x.start, x.end - x.start);
        }
        if y.shared_ref.is_some() {
            self.b.explain(y.start, y.end - y.start);
        }
    }

    /// Compares file data, symlink targets and chunk tables of two inodes of one type.
    fn content(&mut self, place: &Place, ra: &RawInode, rb: &RawInode) -> Result<(), DiffError> {
        match ra.file_type {
            FileType::Symlink => {
                let (ba, ta) = self.a.io(flat_data(&self.a.view, ra))?;
                let (bb, tb) = self.b.io(flat_data(&self.b.view, rb))?;
                let (x, y) = (
                    if ba.is_empty() { ta } else { ba },
                    if bb.is_empty() { tb } else { bb },
                );
                if x != y {
                    self.push(
                        Class::Semantic,
                        place,
                        Field::SymlinkTarget,
                        Some(show_bytes(x)),
                        Some(show_bytes(y)),
                    );
                }
            }
            FileType::Regular => {
                let chunked = |r: &RawInode| r.layout == DataLayout::ChunkBased || r.size == 0;
                if !chunked(ra) && !chunked(rb) {
                    let (ba, ta) = self.a.io(flat_data(&self.a.view, ra))?;
                    let (bb, tb) = self.b.io(flat_data(&self.b.view, rb))?;
                    // The first differing byte, or where the shorter content ends.
                    let (la, lb) = (ba.len() + ta.len(), bb.len() + tb.len());
                    let first = ba
                        .iter()
                        .chain(ta)
                        .zip(bb.iter().chain(tb))
                        .position(|(x, y)| x != y)
                        .or((la != lb).then_some(la.min(lb)));
                    if let Some(at) = first {
                        let excerpt = |b: &[u8], t: &[u8]| {
                            let v: Vec<u8> = b.iter().chain(t).skip(at).take(16).copied().collect();
                            Some(show_bytes(&v))
                        };
                        self.push(
                            Class::Semantic,
                            place,
                            Field::Content { at: at as u64 },
                            excerpt(ba, ta),
                            excerpt(bb, tb),
                        );
                    }
                } else if ra.layout == DataLayout::ChunkBased && rb.layout == DataLayout::ChunkBased
                {
                    let table = |img: &Img<'a>, r: &RawInode| -> Result<&'a [u8], DiffError> {
                        let len = img.io(r.inline_len(&img.view))?;
                        img.io(slice_at(img.view.bytes(), r.inline_offset(), len))
                    };
                    let (x, y) = (table(&self.a, ra)?, table(&self.b, rb)?);
                    if x != y {
                        self.push(
                            Class::Semantic,
                            place,
                            Field::ChunkTable,
                            Some(hex_bytes(x)),
                            Some(hex_bytes(y)),
                        );
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Byte ranges that differ and that no reported difference explains.
    fn raw(&mut self) -> Vec<Difference> {
        let (a, b) = (self.a.view.bytes(), self.b.view.bytes());
        let mut ex: Vec<(u64, u64)> = self.a.explained.drain(..).collect();
        ex.append(&mut self.b.explained);
        ex.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ex.len());
        for (s, e) in ex {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        let ex = merged;
        for img in [&mut self.a, &mut self.b] {
            img.regions.sort_by_key(|r| (r.start, r.end));
        }
        let n = a.len().min(b.len());
        let mut out = Vec::new();
        let mut e = 0;
        let mut i = 0;
        while i < n {
            // Skip equal bytes quickly, a block at a time.
            if i % 64 == 0 && i + 64 <= n && a[i..i + 64] == b[i..i + 64] {
                i += 64;
                continue;
            }
            if a[i] == b[i] {
                i += 1;
                continue;
            }
            let s = i;
            while i < n && a[i] != b[i] {
                i += 1;
            }
            // Subtract the explained ranges from [s, i).
            let mut cur = s as u64;
            let end = i as u64;
            while e < ex.len() && ex[e].1 <= cur {
                e += 1;
            }
            let mut k = e;
            while cur < end {
                match ex.get(k) {
                    Some(&(xs, xe)) if xs <= cur => {
                        cur = cur.max(xe);
                        k += 1;
                    }
                    Some(&(xs, _)) if xs < end => {
                        self.raw_piece(&mut out, a, b, cur, xs);
                        cur = xs;
                    }
                    _ => {
                        self.raw_piece(&mut out, a, b, cur, end);
                        cur = end;
                    }
                }
            }
        }
        out
    }

    fn raw_piece(&self, out: &mut Vec<Difference>, a: &[u8], b: &[u8], s: u64, e: u64) {
        // Neighbouring pieces in one region become one difference.
        let region = self
            .a
            .region_at(s)
            .or_else(|| self.b.region_at(s))
            .unwrap_or_else(|| "unknown".into());
        if let Some(Difference {
            place:
                Place::Bytes {
                    offset,
                    len,
                    region: r,
                },
            a: va,
            b: vb,
            ..
        }) = out.last_mut()
        {
            if *r == region && *offset + *len + 8 >= s {
                *len = e - *offset;
                *va = Some(hex_bytes(&a[*offset as usize..e as usize]));
                *vb = Some(hex_bytes(&b[*offset as usize..e as usize]));
                return;
            }
        }
        out.push(raw_difference(a, b, s, e, region));
    }
}

fn raw_difference(a: &[u8], b: &[u8], s: u64, e: u64, region: String) -> Difference {
    let (su, eu) = (s as usize, e as usize);
    Difference {
        class: Class::Raw,
        place: Place::Bytes {
            offset: s,
            len: e - s,
            region,
        },
        field: Field::Bytes,
        a: Some(hex_bytes(&a[su..eu])),
        b: Some(hex_bytes(&b[su..eu])),
    }
}

/// End of the run of entries with the same name as `v[i]`.
fn group_end(v: &[Xa<'_>], i: usize) -> usize {
    let mut j = i + 1;
    while j < v.len() && v[j].cmp_name(&v[i]).is_eq() {
        j += 1;
    }
    j
}

fn octal(mode: u16) -> Option<String> {
    Some(format!("0{mode:o}"))
}

fn type_name(t: FileType) -> &'static str {
    match t {
        FileType::Regular => "regular file",
        FileType::Directory => "directory",
        FileType::Symlink => "symlink",
        FileType::CharDevice => "character device",
        FileType::BlockDevice => "block device",
        FileType::Fifo => "fifo",
        FileType::Socket => "socket",
    }
}

fn layout_name(l: DataLayout) -> &'static str {
    match l {
        DataLayout::FlatPlain => "FLAT_PLAIN",
        DataLayout::FlatInline => "FLAT_INLINE",
        DataLayout::ChunkBased => "CHUNK_BASED",
    }
}

/// Longest value shown in full; longer ones are cut and their length given.
const SHOW_MAX: usize = 48;

/// Appends bytes escaped: printable ASCII as is (`"` and `\\` backslashed), others `\xHH`.
fn escape_into(s: &mut String, b: &[u8]) {
    for &c in b {
        match c {
            b'"' | b'\\' => {
                s.push('\\');
                s.push(c as char);
            }
            0x20..=0x7e => s.push(c as char),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
}

/// A byte string as a quoted, escaped string, shortened when long.
fn show_bytes(b: &[u8]) -> String {
    let mut s = String::from("\"");
    escape_into(&mut s, &b[..b.len().min(SHOW_MAX)]);
    s.push('"');
    if b.len() > SHOW_MAX {
        s.push_str(&format!("… ({} bytes)", b.len()));
    }
    s
}

/// An xattr name, escaped like [`show_bytes`] but unquoted.
fn show_name(n: &[u8]) -> String {
    let mut s = String::new();
    escape_into(&mut s, n);
    s
}

/// Bytes as hex, shortened when long.
fn hex_bytes(b: &[u8]) -> String {
    let mut s: String = b
        .iter()
        .take(SHOW_MAX)
        .map(|c| format!("{c:02x}"))
        .collect();
    if b.len() > SHOW_MAX {
        s.push_str(&format!("… ({} bytes)", b.len()));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::tests::{image, Child};

    fn children<'a>(
        mode: u16,
        data: &'a [u8],
        x: &'a [(u8, &'a [u8], &'a [u8])],
    ) -> [Child<'a>; 2] {
        [
            Child {
                name: b"file",
                mode,
                data,
                xattrs: x,
            },
            Child {
                name: b"link",
                mode: 0o120777,
                data: b"target",
                xattrs: &[],
            },
        ]
    }

    const X: &[(u8, &[u8], &[u8])] = &[(1, b"a", b"1"), (1, b"b", b"2")];

    #[test]
    fn identical_images_have_no_differences() {
        let a = image(&children(0o100644, b"hello", X));
        assert_eq!(diff_images(&a, &a).unwrap(), []);
        assert_eq!(first_difference(&a, &a), None);
    }

    #[test]
    fn mode_change_is_named_with_nid_and_path() {
        let a = image(&children(0o100644, b"hello", X));
        let b = image(&children(0o100600, b"hello", X));
        let d = diff_images(&a, &b).unwrap();
        let Place::Inode { path, nid_a, .. } = &d[0].place else {
            panic!("{}", d[0]);
        };
        assert_eq!(path, "/file");
        assert_eq!(d[0].field, Field::Inode("i_mode"));
        let nid = nid_a.unwrap();
        assert_eq!(
            d[0].to_string(),
            format!("inode {nid} (/file): i_mode 0100644 ≠ 0100600")
        );
        // Only the mode's two bytes differ, and they are explained.
        assert_eq!(d.len(), 1, "{d:#?}");
    }

    #[test]
    fn xattr_changes_name_the_xattr() {
        let a = image(&children(0o100644, b"hello", X));
        let changed = image(&children(
            0o100644,
            b"hello",
            &[(1, b"a", b"1"), (1, b"b", b"3")],
        ));
        let d = diff_images(&a, &changed).unwrap();
        assert_eq!(d[0].field, Field::Xattr(b"user.b".to_vec()));
        assert_eq!(d[0].a.as_deref(), Some("\"2\" (inline)"));
        assert_eq!(d[0].b.as_deref(), Some("\"3\" (inline)"));
        let dropped = image(&children(0o100644, b"hello", &[(1, b"a", b"1")]));
        let d = diff_images(&a, &dropped).unwrap();
        assert_eq!(d[0].field, Field::Xattr(b"user.b".to_vec()));
        assert_eq!(d[0].b, None);
        assert!(d[0]
            .to_string()
            .ends_with("xattr user.b \"2\" (inline) ≠ absent"));
    }

    #[test]
    fn content_and_target_changes() {
        let a = image(&children(0o100644, b"hello", X));
        let b = image(&children(0o100644, b"hellO", X));
        let d = diff_images(&a, &b).unwrap();
        assert_eq!(d[0].field, Field::Content { at: 4 });
        assert_eq!(
            (d[0].a.as_deref(), d[0].b.as_deref()),
            (Some("\"o\""), Some("\"O\""))
        );
        assert_eq!(d.len(), 1, "{d:#?}");
    }

    #[test]
    fn unreadable_images_name_their_side() {
        let a = image(&children(0o100644, b"hello", X));
        let mut bad = a.clone();
        bad[0] ^= 1;
        let err = diff_images(&a, &bad).unwrap_err();
        assert!(
            matches!(err, DiffError::Unreadable { side: Side::B, .. }),
            "{err}"
        );
        let err = diff_images(&bad, &a).unwrap_err();
        assert!(
            matches!(err, DiffError::Unreadable { side: Side::A, .. }),
            "{err}"
        );
        // The convenience falls back to the first differing bytes.
        let d = first_difference(&a, &bad).unwrap();
        assert_eq!(d.class, Class::Raw);
        assert!(
            matches!(
                d.place,
                Place::Bytes {
                    offset: 0,
                    len: 1,
                    ..
                }
            ),
            "{d}"
        );
    }

    #[test]
    fn values_are_escaped_and_shortened() {
        assert_eq!(show_bytes(b"a\"b\\c\n\xff"), r#""a\"b\\c\x0a\xff""#);
        let long = show_bytes(&[b'x'; 100]);
        assert!(long.ends_with("\"… (100 bytes)"), "{long}");
        assert_eq!(show_name(b"user.\"q\""), r#"user.\"q\""#);
        assert_eq!(hex_bytes(&[0, 0xab]), "00ab");
    }
}
