//! Unit tests of the reader on images assembled by hand from the format structs: a root
//! directory with inline entries and a few inline children, enough to exercise every part of
//! the reader without a writer.

use zerocopy::IntoBytes;

use super::image::{ChunkEntries, ImageView};
use super::node::{c_redirect, unescape, CXattrs, XattrRef};
use super::walk::BitSet;
use super::*;
use crate::format::*;
use crate::tree::{FileData, InodeKind};

/// A child of the test root: name, mode, inline data, xattrs (index, suffix, value).
pub(crate) struct Child<'a> {
    pub name: &'a [u8],
    pub mode: u16,
    pub data: &'a [u8],
    pub xattrs: &'a [(u8, &'a [u8], &'a [u8])],
}

fn xattr_area(xattrs: &[(u8, &[u8], &[u8])]) -> Vec<u8> {
    if xattrs.is_empty() {
        return Vec::new();
    }
    let mut bits = 0u32;
    let mut entries = Vec::new();
    for (idx, suffix, value) in xattrs {
        bits |= 1 << xattr_filter_bit(*idx, suffix);
        let e = XattrEntry {
            name_len: suffix.len() as u8,
            name_index: *idx,
            value_size: (value.len() as u16).into(),
        };
        entries.extend_from_slice(e.as_bytes());
        entries.extend_from_slice(suffix);
        entries.extend_from_slice(value);
        while entries.len() % 4 != 0 {
            entries.push(0);
        }
    }
    let h = XattrHeader {
        name_filter: (!bits).into(),
        ..Default::default()
    };
    let mut area = h.as_bytes().to_vec();
    area.extend_from_slice(&entries);
    area
}

fn compact(mode: u16, size: u32, layout: DataLayout, xattr_len: usize, ino: u32) -> CompactInode {
    CompactInode {
        format: layout.i_format(false).into(),
        xattr_icount: (if xattr_len == 0 {
            0
        } else {
            (xattr_len - 12) / 4 + 1
        } as u16)
            .into(),
        mode: mode.into(),
        nlink: 1.into(),
        size: size.into(),
        ino: ino.into(),
        ..Default::default()
    }
}

/// A one-block V1-style image: the root (nid 36) with inline entries, then each child with
/// its xattrs and inline data.
pub(crate) fn image(children: &[Child<'_>]) -> Vec<u8> {
    let mut sorted: Vec<&Child<'_>> = children.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(b.name));
    let mut names: Vec<&[u8]> = vec![b".", b".."];
    names.extend(sorted.iter().map(|c| c.name));
    names.sort();
    let dir_len: usize = names.iter().map(|n| 12 + n.len()).sum();
    // Place the children after the root.
    let root_at = INODES_START as usize;
    let mut pos = round_up((root_at + 32 + dir_len) as u64, 32) as usize;
    let mut placed = Vec::new();
    for c in &sorted {
        let xa = xattr_area(c.xattrs);
        placed.push((pos, xa.clone()));
        pos = round_up((pos + 32 + xa.len() + c.data.len()) as u64, 32) as usize;
    }
    assert!(pos <= 4096, "test image must fit one block");
    let mut img = vec![0u8; 4096];
    let header = ComposefsHeader {
        magic: COMPOSEFS_MAGIC.into(),
        version: COMPOSEFS_HEADER_VERSION.into(),
        ..Default::default()
    };
    img[..32].copy_from_slice(header.as_bytes());
    let sb = Superblock {
        magic: EROFS_MAGIC.into(),
        feature_compat: COMPOSEFS_FEATURE_COMPAT.into(),
        blkszbits: BLOCK_BITS,
        root_nid: ((root_at / 32) as u16).into(),
        inos: (1 + children.len() as u64).into(),
        blocks: 1.into(),
        ..Default::default()
    };
    img[1024..1152].copy_from_slice(sb.as_bytes());
    let root = compact(0o40755, dir_len as u32, DataLayout::FlatInline, 0, 0);
    img[root_at..root_at + 32].copy_from_slice(root.as_bytes());
    // Dirents, then names.
    let mut d = Vec::new();
    let mut name_off = 12 * names.len();
    for n in &names {
        let (nid, ft) = match *n {
            b"." | b".." => (root_at / 32, file_type::DIRECTORY),
            _ => {
                let i = sorted.iter().position(|c| c.name == *n).unwrap();
                let t = crate::tree::FileType::from_mode(u32::from(sorted[i].mode)).unwrap();
                (placed[i].0 / 32, crate::format::dirent_type(t))
            }
        };
        let de = Dirent {
            nid: (nid as u64).into(),
            nameoff: (name_off as u16).into(),
            file_type: ft,
            reserved: 0,
        };
        d.extend_from_slice(de.as_bytes());
        name_off += n.len();
    }
    for n in &names {
        d.extend_from_slice(n);
    }
    img[root_at + 32..root_at + 32 + d.len()].copy_from_slice(&d);
    for (i, c) in sorted.iter().enumerate() {
        let (at, xa) = &placed[i];
        let layout = if c.data.is_empty() {
            DataLayout::FlatPlain
        } else {
            DataLayout::FlatInline
        };
        let ino = compact(c.mode, c.data.len() as u32, layout, xa.len(), i as u32 + 1);
        img[*at..*at + 32].copy_from_slice(ino.as_bytes());
        img[*at + 32..*at + 32 + xa.len()].copy_from_slice(xa);
        let t = *at + 32 + xa.len();
        img[t..t + c.data.len()].copy_from_slice(c.data);
    }
    img
}

fn sample() -> Vec<u8> {
    image(&[
        Child {
            name: b"file",
            mode: 0o100644,
            data: b"hello",
            xattrs: &[
                (1, b"a", b"1"),
                (4, b"overlay.overlay.x", b"2"),
                (4, b"overlay.opaque", b"y"),
            ],
        },
        Child {
            name: b"link",
            mode: 0o120777,
            data: b"target",
            xattrs: &[],
        },
        Child {
            name: b"wh",
            mode: 0o20644,
            data: b"",
            xattrs: &[],
        },
    ])
}

#[test]
fn hand_built_image_reads_in_both_modes() {
    let img = sample();
    let clean = read_image(&img).unwrap();
    assert_eq!(clean.composefs_version, 0);
    let t = &clean.tree;
    let f = t.lookup_path(b"/file").unwrap();
    let file = t.inode(f);
    assert_eq!(
        file.kind,
        InodeKind::Regular(FileData::Inline(b"hello"[..].into()))
    );
    // Unescaped, the writer's own overlay xattr dropped, sorted.
    let names: Vec<&[u8]> = file.xattrs.iter().map(|x| &*x.name).collect();
    assert_eq!(names, [&b"trusted.overlay.x"[..], b"user.a"]);
    let l = t.lookup_path(b"/link").unwrap();
    assert_eq!(t.inode(l).kind, InodeKind::Symlink(b"target"[..].into()));
    // A V1 character device 0 is a whiteout stub: hidden.
    assert!(t.lookup_path(b"/wh").is_none());
    let info = read_image_with(&img, ReadMode::ComposefsInfo).unwrap().tree;
    let f = info.lookup_path(b"/file").unwrap();
    let names: Vec<&[u8]> = info.inode(f).xattrs.iter().map(|x| &*x.name).collect();
    assert_eq!(
        names,
        [&b"user.a"[..], b"trusted.overlay.x"],
        "C keeps stored order"
    );
    validate(&img).unwrap();
}

#[test]
fn header_and_superblock_errors() {
    let img = sample();
    assert_eq!(
        ImageView::new(&img[..100]).unwrap_err().kind,
        ReadErrorKind::TooShort
    );
    let mut x = img.clone();
    x[2] = 0;
    assert_eq!(
        ImageView::new(&x).unwrap_err().kind,
        ReadErrorKind::BadMagic
    );
    let mut x = img.clone();
    x[100] = 1;
    assert_eq!(
        ImageView::new(&x).unwrap_err().kind,
        ReadErrorKind::NonZeroReserved
    );
    let mut x = img.clone();
    x[1024 + 36] = 2;
    assert_eq!(
        ImageView::new(&x).unwrap_err().kind,
        ReadErrorKind::Superblock("blocks")
    );
    let mut x = img.clone();
    x[1024 + 16] = 9;
    assert!(matches!(
        read_image(&x).unwrap_err().kind,
        ReadErrorKind::InodeCountMismatch {
            superblock: 9,
            found: 4
        }
    ));
}

#[test]
fn errors_name_the_path() {
    let mut img = sample();
    // Break the symlink's target with a NUL.
    let view = ImageView::new(&img).unwrap();
    let root = view.inode(view.root_nid).unwrap();
    let mut chunks = view.dir_chunks(&root).unwrap();
    let (chunk, off) = chunks.next_chunk().unwrap().unwrap();
    let mut e = ChunkEntries::new(chunk, off).unwrap();
    let mut link_nid = 0;
    while let Some(d) = e.next_entry().unwrap() {
        if d.name == b"link" {
            link_nid = d.nid;
        }
    }
    let at = (link_nid * 32 + 32) as usize;
    img[at] = 0;
    let err = read_image(&img).unwrap_err();
    assert_eq!(err.kind, ReadErrorKind::BadSymlink);
    assert_eq!(err.path.as_deref(), Some("/link"));
    assert!(err.to_string().contains("/link"), "{err}");
}

#[test]
fn chunk_entries_check_name_offsets() {
    // Two entries: "a" and "bc", names at 24.
    let mut c = Vec::new();
    for (nid, off) in [(36u64, 24u16), (37, 25)] {
        c.extend_from_slice(
            Dirent {
                nid: nid.into(),
                nameoff: off.into(),
                file_type: 1,
                reserved: 0,
            }
            .as_bytes(),
        );
    }
    c.extend_from_slice(b"abc");
    let mut e = ChunkEntries::new(&c, 0).unwrap();
    assert_eq!(e.next_entry().unwrap().unwrap().name, b"a");
    assert_eq!(e.next_entry().unwrap().unwrap().name, b"bc");
    assert!(e.next_entry().unwrap().is_none());
    // The last name stops at a NUL.
    let mut z = c.clone();
    z.extend_from_slice(&[0, 0]);
    let mut e = ChunkEntries::new(&z, 0).unwrap();
    e.next_entry().unwrap();
    assert_eq!(e.next_entry().unwrap().unwrap().name, b"bc");
    // Offsets going backwards or past the chunk.
    let mut bad = c.clone();
    bad[20] = 23;
    let mut e = ChunkEntries::new(&bad, 0).unwrap();
    assert_eq!(
        e.next_entry().unwrap_err().kind,
        ReadErrorKind::BadNameOffset
    );
    let mut bad = c.clone();
    bad[8] = 13; // not a multiple of 12
    assert_eq!(
        ChunkEntries::new(&bad, 0).err().unwrap().kind,
        ReadErrorKind::BadDirent
    );
    assert!(ChunkEntries::new(&c[..5], 0).is_err());
}

fn x<'a>(head: &'a [u8], tail: &'a [u8], value: &'a [u8]) -> XattrRef<'a> {
    XattrRef { head, tail, value }
}

#[test]
fn c_xattr_replace_moves_the_last_entry() {
    let mut cx = CXattrs::new();
    for (n, v) in [(&b"a"[..], &b"1"[..]), (b"b", b"2"), (b"c", b"3")] {
        cx.set(x(b"user.", n, v), 0).unwrap();
    }
    cx.set(x(b"", b"user.a", b"9"), 0).unwrap();
    let got: Vec<(Vec<u8>, &[u8])> = cx.list.iter().map(|x| (x.name(), x.value)).collect();
    assert_eq!(
        got,
        [
            (b"user.c".to_vec(), &b"3"[..]),
            (b"user.b".to_vec(), &b"2"[..]),
            (b"user.a".to_vec(), &b"9"[..])
        ]
    );
}

#[test]
fn c_xattr_index_agrees_with_scanning() {
    // Enough names to switch to the index, with replacements along the way.
    let names: Vec<Vec<u8>> = (0..40)
        .map(|i| format!("n{}", i % 25).into_bytes())
        .collect();
    let mut indexed = CXattrs::new();
    let mut model: Vec<(Vec<u8>, usize)> = Vec::new();
    for (i, n) in names.iter().enumerate() {
        indexed.set(x(b"user.", n, b"v"), 0).unwrap();
        let full = [&b"user."[..], n].concat();
        if let Some(p) = model.iter().position(|(m, _)| *m == full) {
            model.swap_remove(p);
        }
        model.push((full, i));
    }
    let got: Vec<Vec<u8>> = indexed.list.iter().map(|x| x.name()).collect();
    let want: Vec<Vec<u8>> = model.into_iter().map(|(n, _)| n).collect();
    assert_eq!(got, want);
}

#[test]
fn c_xattr_budget() {
    let mut cx = CXattrs::new();
    let big = vec![b'v'; 40000];
    cx.set(x(b"user.", b"a", &big), 0).unwrap();
    assert_eq!(
        cx.set(x(b"user.", b"b", &big), 7).unwrap_err().kind,
        ReadErrorKind::XattrBudget
    );
    // Replacing frees the old entry's share.
    cx.set(x(b"user.", b"a", &big), 0).unwrap();
}

#[test]
fn unescape_drops_one_overlay_level() {
    let u = unescape(&x(b"trusted.", b"overlay.overlay.overlay.k", b""));
    assert_eq!(u.name(), b"trusted.overlay.overlay.k");
    let u = unescape(&x(b"", b"trusted.overlay.overlay.k", b""));
    assert_eq!(u.name(), b"trusted.overlay.k");
}

#[test]
fn redirect_reads_past_an_aligned_value() {
    let mut img = sample();
    // A fake value "/ab/cdef" at 3000, followed by two bytes and a NUL.
    img[3000..3008].copy_from_slice(b"/ab/cdef");
    img[3008..3011].copy_from_slice(&[1, 1, 0]);
    let view = ImageView::new(&img).unwrap();
    let v = &img[3000..3008];
    assert_eq!(c_redirect(&view, v, 3008), b"ab/cdef\x01\x01");
    // Without a leading slash nothing extra is read.
    assert_eq!(c_redirect(&view, &img[3001..3008], 3008), b"ab/cdef");
    // At the very end of the image the read stops there.
    let end = img.len() as u64;
    let mut img2 = img.clone();
    img2[4088..4096].copy_from_slice(b"/xyzwxyz");
    let view2 = ImageView::new(&img2).unwrap();
    assert_eq!(c_redirect(&view2, &img2[4088..], end), b"xyzwxyz");
}

#[test]
fn bitset_bounds() {
    let mut b = BitSet::new(70);
    b.set(69);
    b.set(1000); // out of range: ignored, never a panic
    assert!(b.get(69) && !b.get(68) && !b.get(1000));
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// C's xattr list (swap-remove then append, with an index past 16 entries) behaves
        /// like the plain model.
        #[test]
        fn c_xattrs_follow_the_model(names in proptest::collection::vec(0u8..40, 0..120)) {
            let keys: Vec<Vec<u8>> = names.iter().map(|n| format!("k{n}").into_bytes()).collect();
            let mut cx = CXattrs::new();
            let mut model: Vec<Vec<u8>> = Vec::new();
            for k in &keys {
                cx.set(x(b"user.", k, b"v"), 0).unwrap();
                let full = [&b"user."[..], k].concat();
                if let Some(p) = model.iter().position(|m| *m == full) {
                    model.swap_remove(p);
                }
                model.push(full);
            }
            let got: Vec<Vec<u8>> = cx.list.iter().map(|x| x.name()).collect();
            prop_assert_eq!(got, model);
        }

        /// Random damage to a small image never makes the reader or `dump` panic, and
        /// `dump` accepts exactly what the composefs-info tree build accepts.
        #[test]
        fn damage_never_panics(edits in proptest::collection::vec((0usize..4096, any::<u8>()), 1..8)) {
            let mut img = sample();
            for (at, v) in edits {
                img[at] = v;
            }
            let _ = read_image(&img);
            let c = read_image_with(&img, ReadMode::ComposefsInfo);
            let mut out = Vec::new();
            let d = crate::info::dump(&img, None, &mut out);
            prop_assert_eq!(c.is_ok(), d.is_ok());
        }
    }
}
