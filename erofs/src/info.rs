//! The library side of `composefs-info`: `ls`, `dump`, `objects` and `missing-objects`,
//! byte for byte as C composefs-info 1.0.8 prints them.
//!
//! These walk the image directly instead of building a [`crate::tree::Tree`]: an image is
//! first checked whole (so a bad image prints nothing, as with C, which loads before it
//! prints), then walked again to print, decoding each inode the way C's reader does
//! ([`crate::read::CNode`]). Memory stays a small fraction of the image: the walk's bitmaps,
//! a directory stack, the output buffer, and the first path of each hardlinked inode.
//!
//! C's quirks are kept: every character device 0 (whiteout stubs, V2 whiteouts) is hidden;
//! escaped whiteouts print as character devices; xattrs come local first, then shared; the
//! redirect is read with C's extra bytes; in `ls` a hardlink prints as its bare path (C's link
//! node has no mode), and in `dump` as an `@` line repeating its target's fields.
#![forbid(unsafe_code)]

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::{self, Write};
use std::path::Path;

use crate::dumpfile::{escape_into, EscapeMode};
use crate::read::image::{ImageView, RawInode};
use crate::read::node::{decode_c, CNode, CXattrs};
use crate::read::walk::{self, BitSet, Entry, Visitor, WalkOptions};
use crate::read::ReadError;
use crate::tree::FileType;

/// Why an info command failed.
#[derive(Debug, thiserror::Error)]
pub enum InfoError {
    /// A `--filter` name with a `/` (C: "Filter must be a single name").
    #[error("Filter must be a single name: {0}")]
    BadFilter(String),
    #[error("{0}")]
    Read(#[from] ReadError),
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// `--filter`: the top-level names to keep.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    names: HashSet<Vec<u8>>,
}

impl Filter {
    /// A filter of the given names; a name containing `/` is refused.
    pub fn new<I, N>(names: I) -> Result<Filter, InfoError>
    where
        I: IntoIterator<Item = N>,
        N: AsRef<[u8]>,
    {
        let mut set = HashSet::new();
        for n in names {
            let n = n.as_ref();
            if n.contains(&b'/') {
                return Err(InfoError::BadFilter(
                    String::from_utf8_lossy(n).into_owned(),
                ));
            }
            set.insert(n.to_vec());
        }
        Ok(Filter { names: set })
    }

    fn accepts(&self, name: &[u8]) -> bool {
        self.names.contains(name)
    }
}

const FLUSH_AT: usize = 1 << 16;

/// Output buffered in memory and written in large pieces.
struct Out<W: Write> {
    buf: Vec<u8>,
    w: W,
}

impl<W: Write> Out<W> {
    fn new(w: W) -> Self {
        Out {
            buf: Vec::with_capacity(FLUSH_AT + 16384),
            w,
        }
    }

    fn maybe_flush(&mut self) -> io::Result<()> {
        if self.buf.len() >= FLUSH_AT {
            self.w.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        self.w.write_all(&self.buf)?;
        self.buf.clear();
        self.w.flush()
    }
}

/// Appends a decimal number.
fn num(buf: &mut Vec<u8>, mut n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

/// Appends a number in octal.
fn octal(buf: &mut Vec<u8>, mut n: u32) {
    let mut tmp = [0u8; 11];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 8) as u8;
        n /= 8;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Checks the image, then walks it again with `visitor` (honouring the filter).
fn run<'a, V>(
    view: &ImageView<'a>,
    filter: Option<&Filter>,
    visitor: &mut V,
) -> Result<walk::WalkSummary, InfoError>
where
    V: Visitor<'a, Error = InfoError>,
{
    let summary = walk::validate(view)?;
    let accept = |name: &[u8]| filter.is_none_or(|f| f.accepts(name));
    let opts = WalkOptions {
        validate: false,
        filter: Some(&accept),
    };
    walk::walk(view, &opts, visitor)?;
    Ok(summary)
}

/// The path of the entry being visited, kept in one buffer.
#[derive(Default)]
struct PathBuf {
    path: Vec<u8>,
    /// Length of each entered directory's path.
    lens: Vec<usize>,
}

impl PathBuf {
    fn set(&mut self, name: &[u8]) {
        self.path.truncate(self.lens.last().copied().unwrap_or(0));
        self.path.push(b'/');
        self.path.extend_from_slice(name);
    }

    fn enter(&mut self) {
        self.lens.push(self.path.len());
    }

    fn leave(&mut self) {
        self.lens.pop();
    }
}

struct DumpVisitor<'a, 's, W: Write> {
    image: ImageView<'a>,
    out: Out<W>,
    path: PathBuf,
    multi: &'s BitSet,
    /// Where each directory and each hardlinked inode was first met: parent nid and name.
    /// Paths are rebuilt from these when needed, so memory stays linear in the image even
    /// for deep trees with many hardlinks.
    first_at: HashMap<u64, (u64, &'a [u8])>,
    /// The nids of the directories being walked, the root first.
    dirs: Vec<u64>,
    /// Scratch for rebuilt paths.
    target: Vec<u8>,
    cx: CXattrs<'a>,
    content: Vec<u8>,
}

impl<'a, W: Write> DumpVisitor<'a, '_, W> {
    /// Rebuilds the path where `nid` was first met (C's `node_build_path`).
    fn first_path(&self, nid: u64, out: &mut Vec<u8>) {
        out.clear();
        let mut names: Vec<&[u8]> = Vec::new();
        let mut cur = nid;
        // Each step goes to a directory met earlier, so this ends at the root.
        while let Some(&(parent, name)) = self.first_at.get(&cur) {
            names.push(name);
            if names.len() > self.first_at.len() {
                break;
            }
            cur = parent;
        }
        for n in names.iter().rev() {
            out.push(b'/');
            out.extend_from_slice(n);
        }
    }

    /// One dump line: `node` printed under `path`, as an `@` line to `link` if given.
    fn line(&mut self, path: &[u8], node: &CNode<'a>, link: Option<&[u8]>) {
        let b = &mut self.out.buf;
        escape_into(b, path, EscapeMode::STANDARD);
        b.push(b' ');
        num(b, node.size);
        b.push(b' ');
        if link.is_some() {
            b.push(b'@');
        }
        octal(b, node.mode);
        b.push(b' ');
        num(b, u64::from(node.nlink));
        b.push(b' ');
        num(b, u64::from(node.uid));
        b.push(b' ');
        num(b, u64::from(node.gid));
        b.push(b' ');
        num(b, u64::from(node.rdev));
        b.push(b' ');
        if node.mtime.sec < 0 {
            b.push(b'-');
        }
        num(b, node.mtime.sec.unsigned_abs());
        b.push(b'.');
        num(b, u64::from(node.mtime.nsec));
        b.push(b' ');
        match link.or(node.payload) {
            Some(p) => escape_into(b, p, EscapeMode::OPTIONAL),
            None => b.push(b'-'),
        }
        b.push(b' ');
        match node.content {
            // C prints `size` bytes of the content it holds.
            Some((blocks, tail)) => {
                let size = usize::try_from(node.size).unwrap_or(usize::MAX);
                let c: &[u8] = if tail.is_empty() {
                    blocks
                } else {
                    self.content.clear();
                    self.content.extend_from_slice(blocks);
                    self.content.extend_from_slice(tail);
                    &self.content
                };
                escape_into(b, &c[..size.min(c.len())], EscapeMode::OPTIONAL);
            }
            None => b.push(b'-'),
        }
        match node.digest {
            Some(d) => {
                b.push(b' ');
                for &x in d {
                    b.push(HEX[usize::from(x >> 4)]);
                    b.push(HEX[usize::from(x & 15)]);
                }
            }
            None => b.extend_from_slice(b" -"),
        }
        for x in &self.cx.list {
            b.push(b' ');
            escape_into(b, x.head, EscapeMode::XATTR);
            escape_into(b, x.tail, EscapeMode::XATTR);
            b.push(b'=');
            escape_into(b, x.value, EscapeMode::XATTR);
        }
        b.push(b'\n');
    }
}

impl<'a, W: Write> Visitor<'a> for DumpVisitor<'a, '_, W> {
    type Error = InfoError;

    fn root(&mut self, root: &RawInode) -> Result<(), InfoError> {
        let node = decode_c(&self.image, root, &mut self.cx)?;
        self.line(b"/", &node, None);
        Ok(())
    }

    fn entry(&mut self, e: &Entry<'a>) -> Result<bool, InfoError> {
        if e.inode.is_whiteout() {
            return Ok(false);
        }
        self.path.set(e.name);
        let node = decode_c(&self.image, &e.inode, &mut self.cx)?;
        let path = std::mem::take(&mut self.path.path);
        let parent = self.dirs.last().copied().unwrap_or(self.image.root_nid);
        if e.first {
            self.line(&path, &node, None);
            if self.multi.get(e.inode.nid) || e.inode.is_dir() {
                self.first_at.insert(e.inode.nid, (parent, e.name));
            }
        } else {
            let mut target = std::mem::take(&mut self.target);
            self.first_path(e.inode.nid, &mut target);
            self.line(&path, &node, Some(&target));
            self.target = target;
        }
        self.path.path = path;
        self.out.maybe_flush()?;
        let descend = e.first && e.inode.is_dir();
        if descend {
            self.path.enter();
            self.dirs.push(e.inode.nid);
        }
        Ok(descend)
    }

    fn leave(&mut self) -> Result<(), InfoError> {
        self.path.leave();
        self.dirs.pop();
        Ok(())
    }
}

/// `composefs-info dump`: the image as a dumpfile.
pub fn dump(image: &[u8], filter: Option<&Filter>, out: impl Write) -> Result<(), InfoError> {
    let view = ImageView::new(image)?;
    let summary = walk::validate(&view)?;
    let mut v = DumpVisitor {
        image: view,
        out: Out::new(out),
        path: PathBuf::default(),
        multi: &summary.multi,
        first_at: HashMap::new(),
        dirs: Vec::new(),
        target: Vec::new(),
        cx: CXattrs::new(),
        content: Vec::new(),
    };
    let accept = |name: &[u8]| filter.is_none_or(|f| f.accepts(name));
    let opts = WalkOptions {
        validate: false,
        filter: Some(&accept),
    };
    walk::walk(&view, &opts, &mut v)?;
    v.out.finish()?;
    Ok(())
}

struct LsVisitor<'a, W: Write> {
    image: ImageView<'a>,
    out: Out<W>,
    path: PathBuf,
    cx: CXattrs<'a>,
}

impl<'a, W: Write> Visitor<'a> for LsVisitor<'a, W> {
    type Error = InfoError;

    fn root(&mut self, _: &RawInode) -> Result<(), InfoError> {
        Ok(())
    }

    fn entry(&mut self, e: &Entry<'a>) -> Result<bool, InfoError> {
        if e.inode.is_whiteout() {
            return Ok(false);
        }
        self.path.set(e.name);
        let b = &mut self.out.buf;
        escape_into(b, &self.path.path, EscapeMode::LS_PATH);
        if e.first {
            let node = decode_c(&self.image, &e.inode, &mut self.cx)?;
            match (node.file_type(), node.payload) {
                (Some(FileType::Directory), _) => b.extend_from_slice(b"/\t"),
                (Some(FileType::Symlink), p) => {
                    b.extend_from_slice(b"\t-> ");
                    escape_into(b, p.unwrap_or_default(), EscapeMode::STANDARD);
                }
                (Some(FileType::Regular), Some(p)) => {
                    b.extend_from_slice(b"\t@ ");
                    escape_into(b, p, EscapeMode::STANDARD);
                }
                _ => {}
            }
        }
        b.push(b'\n');
        self.out.maybe_flush()?;
        let descend = e.first && e.inode.is_dir();
        if descend {
            self.path.enter();
        }
        Ok(descend)
    }

    fn leave(&mut self) -> Result<(), InfoError> {
        self.path.leave();
        Ok(())
    }
}

/// `composefs-info ls`: one line per entry below the root.
pub fn ls(image: &[u8], filter: Option<&Filter>, out: impl Write) -> Result<(), InfoError> {
    let view = ImageView::new(image)?;
    let mut v = LsVisitor {
        image: view,
        out: Out::new(out),
        path: PathBuf::default(),
        cx: CXattrs::new(),
    };
    run(&view, filter, &mut v)?;
    v.out.finish()?;
    Ok(())
}

/// The object payloads of one or more images (`objects`, `missing-objects`).
#[derive(Clone, Debug, Default)]
pub struct Objects {
    set: BTreeSet<Vec<u8>>,
}

struct ObjectsVisitor<'a, 's> {
    image: ImageView<'a>,
    cx: CXattrs<'a>,
    set: &'s mut BTreeSet<Vec<u8>>,
}

impl<'a> Visitor<'a> for ObjectsVisitor<'a, '_> {
    type Error = InfoError;

    fn root(&mut self, _: &RawInode) -> Result<(), InfoError> {
        Ok(())
    }

    fn entry(&mut self, e: &Entry<'a>) -> Result<bool, InfoError> {
        if e.inode.is_whiteout() || !e.first {
            return Ok(false);
        }
        if e.inode.file_type == FileType::Regular {
            let node = decode_c(&self.image, &e.inode, &mut self.cx)?;
            if node.file_type() == Some(FileType::Regular) {
                if let Some(p) = node.payload {
                    if !self.set.contains(p) {
                        self.set.insert(p.to_vec());
                    }
                }
            }
        }
        Ok(e.inode.is_dir())
    }

    fn leave(&mut self) -> Result<(), InfoError> {
        Ok(())
    }
}

impl Objects {
    pub fn new() -> Self {
        Objects::default()
    }

    /// Adds the payloads of every regular file of `image`.
    pub fn add_image(&mut self, image: &[u8], filter: Option<&Filter>) -> Result<(), InfoError> {
        let view = ImageView::new(image)?;
        let mut v = ObjectsVisitor {
            image: view,
            cx: CXattrs::new(),
            set: &mut self.set,
        };
        run(&view, filter, &mut v)?;
        Ok(())
    }

    /// The payloads, sorted bytewise (C's `strcmp`).
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.set.iter().map(Vec::as_slice)
    }

    /// `objects`: every payload, one per line.
    pub fn write(&self, out: impl Write) -> io::Result<()> {
        self.write_where(out, |_| true)
    }

    /// `missing-objects`: the payloads with no file under `basedir` (leading slashes
    /// stripped). Without a basedir C looks them up relative to its file descriptor 0, which is
    /// no directory, so every payload is missing — except an all-slash one, which names that
    /// descriptor itself.
    pub fn write_missing(&self, basedir: Option<&Path>, out: impl Write) -> io::Result<()> {
        self.write_where(out, |p| {
            let rel = &p[p.iter().position(|&b| b != b'/').unwrap_or(p.len())..];
            match basedir {
                None => !rel.is_empty(),
                Some(dir) => {
                    use std::os::unix::ffi::OsStrExt;
                    std::fs::metadata(dir.join(std::ffi::OsStr::from_bytes(rel))).is_err()
                }
            }
        })
    }

    fn write_where(&self, out: impl Write, mut keep: impl FnMut(&[u8]) -> bool) -> io::Result<()> {
        let mut o = Out::new(out);
        for p in &self.set {
            if keep(p) {
                o.buf.extend_from_slice(p);
                o.buf.push(b'\n');
                o.maybe_flush()?;
            }
        }
        o.finish()
    }
}

/// `composefs-info dump` of several images, one after the other.
pub fn dump_images<'i>(
    images: impl IntoIterator<Item = &'i [u8]>,
    filter: Option<&Filter>,
    mut out: impl Write,
) -> Result<(), InfoError> {
    for image in images {
        dump(image, filter, &mut out)?;
    }
    Ok(())
}

/// `composefs-info ls` of several images, one after the other.
pub fn ls_images<'i>(
    images: impl IntoIterator<Item = &'i [u8]>,
    filter: Option<&Filter>,
    mut out: impl Write,
) -> Result<(), InfoError> {
    for image in images {
        ls(image, filter, &mut out)?;
    }
    Ok(())
}

/// `composefs-info objects` (or, with `missing`, `missing-objects` against `basedir`) of
/// several images: their payloads together, deduplicated and sorted.
pub fn objects_images<'i>(
    images: impl IntoIterator<Item = &'i [u8]>,
    filter: Option<&Filter>,
    missing: bool,
    basedir: Option<&Path>,
    out: impl Write,
) -> Result<(), InfoError> {
    let mut objects = Objects::new();
    for image in images {
        objects.add_image(image, filter)?;
    }
    if missing {
        objects.write_missing(basedir, out)?;
    } else {
        objects.write(out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::tests::{image, Child};

    #[test]
    fn numbers() {
        let mut b = Vec::new();
        num(&mut b, 0);
        b.push(b' ');
        num(&mut b, u64::MAX);
        b.push(b' ');
        octal(&mut b, 0o100644);
        b.push(b' ');
        octal(&mut b, 0);
        assert_eq!(b, b"0 18446744073709551615 100644 0");
    }

    #[test]
    fn filter_refuses_slashes() {
        assert!(Filter::new(["a", "b"]).unwrap().accepts(b"a"));
        assert!(matches!(Filter::new(["a/"]), Err(InfoError::BadFilter(_))));
    }

    fn sample() -> Vec<u8> {
        image(&[
            Child {
                name: b"a b",
                mode: 0o100644,
                data: b"-",
                xattrs: &[(1, b"k=", b"v")],
            },
            Child {
                name: b"l",
                mode: 0o120777,
                data: b"t t",
                xattrs: &[],
            },
            Child {
                name: b"00",
                mode: 0o20644,
                data: b"",
                xattrs: &[],
            },
        ])
    }

    #[test]
    fn dump_and_ls_of_a_small_image() {
        let img = sample();
        let mut out = Vec::new();
        dump(&img, None, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "/ 69 40755 1 0 0 0 0.0 - - -\n\
             /a\\x20b 1 100644 1 0 0 0 0.0 - \\x2d - user.k\\x3d=v\n\
             /l 3 120777 1 0 0 0 0.0 t\\x20t - -\n"
        );
        let mut out = Vec::new();
        ls(&img, None, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "/a b\n/l\t-> t\\x20t\n");
        let mut out = Vec::new();
        dump(&img, Some(&Filter::new(["l"]).unwrap()), &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "/ 69 40755 1 0 0 0 0.0 - - -\n/l 3 120777 1 0 0 0 0.0 t\\x20t - -\n"
        );
    }

    #[test]
    fn bad_images_print_nothing() {
        let mut img = sample();
        img[0] ^= 1;
        let mut out = Vec::new();
        assert!(matches!(
            dump(&img, None, &mut out),
            Err(InfoError::Read(_))
        ));
        assert!(out.is_empty());
    }

    #[test]
    fn missing_objects_without_basedir() {
        let mut o = Objects::new();
        o.set.insert(b"ab/cd".to_vec());
        o.set.insert(b"//".to_vec());
        let mut out = Vec::new();
        o.write_missing(None, &mut out).unwrap();
        assert_eq!(out, b"ab/cd\n");
        let mut out = Vec::new();
        o.write(&mut out).unwrap();
        assert_eq!(out, b"//\nab/cd\n");
    }
}
