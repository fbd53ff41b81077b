//! An inode as C's reader (`lcfs_build_node_from_image`) sees it: metadata, inline content,
//! payload and digest taken from the overlay xattrs, and the remaining xattrs in C's order with
//! C's replace rule — all borrowed from the image.
//!
//! This is the one place that knows C's interpretation, quirks included, so that `dump`, `ls`,
//! `objects` and [`super::ReadMode::ComposefsInfo`] trees all agree with `composefs-info`.
#![forbid(unsafe_code)]

use std::collections::HashMap;

use super::image::{ImageView, RawInode};
use super::{ReadError, ReadErrorKind as K};
use crate::format::{DataLayout, BLOCK_SIZE, XATTR_ENTRY_SIZE};
use crate::tree::{FileType, Mtime, S_IFMT};

pub(crate) const OVERLAY_PREFIX: &[u8] = b"trusted.overlay.";
pub(crate) const ESCAPE_PREFIX: &[u8] = b"trusted.overlay.overlay.";
pub(crate) const METACOPY: &[u8] = b"trusted.overlay.metacopy";
pub(crate) const REDIRECT: &[u8] = b"trusted.overlay.redirect";
pub(crate) const ESCAPED_WHITEOUT: &[u8] = b"trusted.overlay.overlay.whiteout";
pub(crate) const ESCAPED_WHITEOUTS: &[u8] = b"trusted.overlay.overlay.whiteouts";
pub(crate) const USER_WHITEOUT: &[u8] = b"user.overlay.whiteout";
pub(crate) const USER_WHITEOUTS: &[u8] = b"user.overlay.whiteouts";

/// C's per-inode xattr budget (`lcfs_node_set_xattr_internal` with internal input).
const XATTR_BUDGET: usize = u16::MAX as usize;

/// An xattr name and value borrowed from the image. The name is `head` followed by `tail`
/// (the stored prefix and suffix, or an unescaped overlay name).
#[derive(Clone, Copy, Debug)]
pub struct XattrRef<'a> {
    pub head: &'a [u8],
    pub tail: &'a [u8],
    pub value: &'a [u8],
}

impl XattrRef<'_> {
    pub fn name_len(&self) -> usize {
        self.head.len() + self.tail.len()
    }

    /// The full name as one buffer.
    pub fn name(&self) -> Vec<u8> {
        let mut n = Vec::with_capacity(self.name_len());
        n.extend_from_slice(self.head);
        n.extend_from_slice(self.tail);
        n
    }

    fn byte(&self, i: usize) -> u8 {
        if i < self.head.len() {
            self.head[i]
        } else {
            self.tail[i - self.head.len()]
        }
    }

    pub fn name_is(&self, name: &[u8]) -> bool {
        self.name_len() == name.len()
            && name[..self.head.len()] == *self.head
            && name[self.head.len()..] == *self.tail
    }

    pub fn name_starts_with(&self, p: &[u8]) -> bool {
        self.name_len() >= p.len() && p.iter().enumerate().all(|(i, &b)| self.byte(i) == b)
    }

    fn same_name(&self, o: &XattrRef<'_>) -> bool {
        self.name_len() == o.name_len() && (0..self.name_len()).all(|i| self.byte(i) == o.byte(i))
    }
}

/// An inode as C's reader builds it.
#[derive(Clone, Copy, Debug)]
pub struct CNode<'a> {
    pub nid: u64,
    /// `st_mode`; an escaped whiteout reads back as a character device.
    pub mode: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u32,
    pub size: u64,
    pub mtime: Mtime,
    /// Inline content of a flat regular file: the data-block part, then the tail part.
    pub content: Option<(&'a [u8], &'a [u8])>,
    /// Symlink target, or the redirect read the C way (see [`c_redirect`]).
    pub payload: Option<&'a [u8]>,
    /// The sha256 digest from a 36-byte metacopy value.
    pub digest: Option<&'a [u8]>,
}

impl CNode<'_> {
    pub fn file_type(&self) -> Option<FileType> {
        FileType::from_mode(self.mode)
    }
}

/// The data-block part and the tail part of a flat inode's data.
pub(crate) fn flat_data<'a>(
    image: &ImageView<'a>,
    r: &RawInode,
) -> Result<(&'a [u8], &'a [u8]), ReadError> {
    let tail_len = if r.layout == DataLayout::FlatInline {
        r.size % BLOCK_SIZE
    } else {
        0
    };
    let oob = r.size - tail_len;
    let blocks = if oob == 0 {
        &[][..]
    } else {
        image.block(u64::from(r.u), oob)?
    };
    let tail = super::image::slice_at(image.bytes(), r.inline_offset(), tail_len)?;
    Ok((blocks, tail))
}

/// The payload C's reader derives from a redirect value: without its leading `/`, but reading
/// one byte past the value's end (strndup of value_size + 1 bytes from value + 1), stopping at
/// the first NUL. So a value ending on a 4-byte boundary picks up the next bytes of the image.
pub(crate) fn c_redirect<'a>(image: &ImageView<'a>, value: &'a [u8], value_end: u64) -> &'a [u8] {
    let bytes = image.bytes();
    let (start, len) = if value.len() > 1 && value[0] == b'/' {
        (value_end - value.len() as u64 + 1, value.len() as u64 + 1)
    } else {
        (value_end - value.len() as u64, value.len() as u64)
    };
    let start = start as usize;
    let end = (start as u64 + len).min(bytes.len() as u64) as usize;
    let s = &bytes[start.min(end)..end];
    match s.iter().position(|&b| b == 0) {
        Some(n) => &s[..n],
        None => s,
    }
}

/// The payload a redirect value names: without its leading `/` (when there is more after it),
/// up to the first NUL, never past the value.
fn exact_redirect_payload(value: &[u8]) -> &[u8] {
    let v = match value {
        [b'/', rest @ ..] if !rest.is_empty() => rest,
        _ => value,
    };
    match v.iter().position(|&b| b == 0) {
        Some(n) => &v[..n],
        None => v,
    }
}

/// C's xattr list: `set` replaces an existing name by removing it (moving the last entry into
/// its place) and appending, and enforces C's size budget.
pub(crate) struct CXattrs<'a> {
    pub list: Vec<XattrRef<'a>>,
    budget: usize,
    /// Name → position, used once the list is long enough that scanning would be quadratic.
    index: HashMap<Vec<u8>, usize>,
}

const INDEX_THRESHOLD: usize = 16;

impl<'a> CXattrs<'a> {
    pub fn new() -> Self {
        CXattrs {
            list: Vec::new(),
            budget: 0,
            index: HashMap::new(),
        }
    }

    pub fn clear(&mut self) {
        self.list.clear();
        self.budget = 0;
        self.index.clear();
    }

    fn find(&self, x: &XattrRef<'_>) -> Option<usize> {
        if self.index.is_empty() {
            self.list.iter().position(|y| y.same_name(x))
        } else {
            self.index.get(&x.name()).copied()
        }
    }

    pub fn set(&mut self, x: XattrRef<'a>, at: u64) -> Result<(), ReadError> {
        if let Some(i) = self.find(&x) {
            let old = self.list.swap_remove(i);
            if !self.index.is_empty() {
                self.index.remove(&old.name());
                if let Some(moved) = self.list.get(i) {
                    self.index.insert(moved.name(), i);
                }
            }
            self.budget = if self.list.is_empty() {
                0
            } else {
                self.budget
                    .saturating_sub(7 + old.name_len() + old.value.len())
            };
        }
        let mut cost = 7 + x.name_len() + x.value.len();
        if self.list.is_empty() {
            cost += 12;
        }
        if self.budget + cost > XATTR_BUDGET {
            return Err(ReadError::at(K::XattrBudget, at));
        }
        self.budget += cost;
        self.list.push(x);
        if self.list.len() <= INDEX_THRESHOLD {
            self.index.clear();
        } else if self.index.len() + 1 == self.list.len() {
            self.index.insert(x.name(), self.list.len() - 1);
        } else {
            self.index.clear();
            for (i, y) in self.list.iter().enumerate() {
                self.index.insert(y.name(), i);
            }
        }
        Ok(())
    }
}

/// Decodes an inode the way C's reader does; its kept xattrs end up in `xattrs`.
pub(crate) fn decode_c<'a>(
    image: &ImageView<'a>,
    r: &RawInode,
    xattrs: &mut CXattrs<'a>,
) -> Result<CNode<'a>, ReadError> {
    decode_c_with(image, r, xattrs, false)
}

/// [`decode_c`], with the redirect read either C's way (`exact_redirect == false`, see
/// [`c_redirect`]) or exactly: the value without its leading `/`, up to its end or first NUL.
pub(crate) fn decode_c_with<'a>(
    image: &ImageView<'a>,
    r: &RawInode,
    xattrs: &mut CXattrs<'a>,
    exact_redirect: bool,
) -> Result<CNode<'a>, ReadError> {
    xattrs.clear();
    let mut n = CNode {
        nid: r.nid,
        mode: u32::from(r.mode),
        nlink: r.nlink,
        uid: r.uid,
        gid: r.gid,
        rdev: r.rdev(),
        size: r.size,
        mtime: r.mtime,
        content: None,
        payload: None,
        digest: None,
    };
    match r.file_type {
        FileType::Symlink => {
            let (b, t) = flat_data(image, r)?;
            n.payload = Some(if b.is_empty() { t } else { b });
        }
        FileType::Regular if r.size != 0 && r.layout != DataLayout::ChunkBased => {
            n.content = Some(flat_data(image, r)?);
        }
        _ => {}
    }
    let mut it = image.xattrs(r)?;
    while let Some((x, at, _)) = it.next_entry()? {
        // C reads a local entry only while its 4-byte header ends strictly before the end of
        // the local area, so a last local entry of exactly 4 bytes (empty name suffix and
        // value, e.g. `user.` = "") is never seen.
        if !x.shared && at + XATTR_ENTRY_SIZE >= it.local_end() {
            continue;
        }
        let raw = XattrRef {
            head: x.prefix,
            tail: x.suffix,
            value: x.value,
        };
        let is_reg = n.mode & S_IFMT == FileType::Regular.mode_bits();
        if raw.name_is(REDIRECT) {
            if is_reg {
                n.payload = Some(if exact_redirect {
                    exact_redirect_payload(x.value)
                } else {
                    c_redirect(image, x.value, x.value_end)
                });
            }
            continue;
        }
        if raw.name_is(METACOPY) {
            if is_reg && x.value.len() == 36 {
                n.digest = Some(&x.value[4..]);
            }
            continue;
        }
        if raw.name_is(ESCAPED_WHITEOUT) && is_reg {
            n.mode = (n.mode & !S_IFMT) | FileType::CharDevice.mode_bits();
            n.rdev = 0;
            n.size = 0;
            continue;
        }
        if raw.name_is(ESCAPED_WHITEOUTS)
            || raw.name_is(USER_WHITEOUT)
            || raw.name_is(USER_WHITEOUTS)
        {
            continue;
        }
        let kept = if raw.name_starts_with(OVERLAY_PREFIX) {
            if !raw.name_starts_with(ESCAPE_PREFIX) {
                continue;
            }
            unescape(&raw)
        } else {
            raw
        };
        xattrs.set(kept, at)?;
    }
    Ok(n)
}

/// `trusted.overlay.overlay.X` → `trusted.overlay.X`, without copying.
pub(crate) fn unescape<'a>(x: &XattrRef<'a>) -> XattrRef<'a> {
    // The name starts with the 24-byte escape prefix, which lies in `head` + `tail`; the kept
    // part after it is always inside `tail` because every stored prefix is shorter than 24.
    let skip = ESCAPE_PREFIX.len().saturating_sub(x.head.len());
    XattrRef {
        head: OVERLAY_PREFIX,
        tail: x.tail.get(skip..).unwrap_or_default(),
        value: x.value,
    }
}
