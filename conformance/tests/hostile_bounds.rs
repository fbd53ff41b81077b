//! Images built to hurt the reader: a directory of a million entries, a chain of thousands of
//! nested directories, xattrs that point at themselves, shared xattr references repeated to
//! the limit, huge claimed sizes, directory cycles at depth. The reader must refuse or finish
//! in time and memory linear in the image size.
//!
//! Time is never compared with an absolute number: each test measures a baseline (the same
//! shape ten times smaller, or the undamaged image) in the same process and bounds the hostile
//! case relative to it. Memory is counted by this test binary's allocator, per thread, so
//! tests running in parallel do not disturb each other: the peak of live heap bytes while the
//! reader runs, the returned tree included.
//!
//! The reader's limits, as these tests pin them:
//! - no fixed depth or width limit: a directory level costs one frame of the walk's explicit
//!   stack (no recursion), a directory of N entries is read once, in order;
//! - memory: the tree it returns (one `Inode` and one `DirEntry` per entry, about 300 bytes
//!   with the vectors' spare capacity), plus two bitmaps (one bit per 32-byte slot and one
//!   per block) and the walk's frames: under 8 times the image size (a chain of directories,
//!   about 100 image bytes per level, is the densest case); validation alone keeps only the
//!   bitmaps and one walk frame (about 200 bytes) per directory level;
//! - per inode: names ≤ 255 bytes, inline data ≤ 5000 bytes, symlinks ≤ 4095 bytes, xattrs
//!   ≤ 65535 bytes in all; sizes and counts are checked against the image length before
//!   anything is allocated from them, so a claimed size costs nothing.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Duration, Instant};

use cfs_erofs::read::image::ImageView;
use cfs_erofs::read::{read_image, read_image_with, validate, ReadError, ReadMode};
use cfs_erofs::write::{image_bytes, WriteOptions};
use cfs_erofs::{info, FileData, Inode, InodeId, InodeKind, Tree};

/// Counts live heap bytes per thread.
struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn account(delta: isize) {
    let _ = LIVE.try_with(|l| {
        let v = l.get() + delta;
        l.set(v);
        let _ = PEAK.try_with(|p| p.set(p.get().max(v)));
    });
}

// SAFETY: every call is forwarded unchanged to the system allocator; only counters change.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            account(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            account(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        account(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            account(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f`, returning its result, its wall time and the peak of heap bytes it added.
fn measure<T>(f: impl FnOnce() -> T) -> (T, Duration, usize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let start = Instant::now();
    let out = f();
    let t = start.elapsed();
    let peak = PEAK.with(Cell::get) - base;
    (out, t, peak.max(0) as usize)
}

/// Best of three runs (the machine is shared: the minimum is the least disturbed).
fn best_time<T>(mut f: impl FnMut() -> T) -> Duration {
    (0..3)
        .map(|_| {
            let s = Instant::now();
            std::hint::black_box(f());
            s.elapsed()
        })
        .min()
        .unwrap()
}

fn empty_file() -> Inode {
    Inode::new(InodeKind::Regular(FileData::Inline(Box::default())), 0o644)
}

/// One directory holding `n` empty files.
fn wide_tree(n: usize) -> Tree {
    let mut t = Tree::new(Inode::directory(0o755));
    for i in 0..n {
        t.add(InodeId::ROOT, format!("f{i:07}").as_bytes(), empty_file())
            .unwrap();
    }
    t
}

/// A chain of `depth` nested directories with a file at the bottom.
fn deep_tree(depth: usize) -> Tree {
    let mut t = Tree::new(Inode::directory(0o755));
    let mut cur = InodeId::ROOT;
    for _ in 0..depth {
        cur = t.add(cur, b"d", Inode::directory(0o755)).unwrap();
    }
    t.add(cur, b"f", empty_file()).unwrap();
    t
}

/// Asserts that reading `big` scales linearly from reading `small` (`factor` times smaller):
/// time within 4× of linear (plus 50 ms of noise), memory within 2× of linear and under 8
/// bytes per image byte.
fn assert_linear(what: &str, small: &[u8], big: &[u8], factor: u32) {
    let t_small = best_time(|| read_image(small).unwrap());
    let t_big = best_time(|| read_image(big).unwrap());
    let (_, _, m_small) = measure(|| read_image(small).unwrap());
    let (img, _, m_big) = measure(|| read_image(big).unwrap());
    drop(img);
    eprintln!(
        "{what}: {} → {} bytes: {t_small:?} → {t_big:?}, peak heap {m_small} → {m_big}",
        small.len(),
        big.len()
    );
    assert!(
        t_big <= t_small * factor * 4 + Duration::from_millis(50),
        "{what}: {t_big:?} for {factor}× the work of {t_small:?}"
    );
    assert!(
        m_big <= m_small * factor as usize * 2 + (1 << 20),
        "{what}: peak heap {m_big} for {factor}× the image of {m_small}"
    );
    assert!(
        m_big <= big.len() * 8,
        "{what}: peak heap {m_big} for a {}-byte image",
        big.len()
    );
    // Validation builds no tree: bitmaps and one walk frame (about 200 bytes) per level.
    let (r, _, m_valid) = measure(|| validate(big));
    r.unwrap();
    eprintln!("{what}: validate peak heap {m_valid}");
    assert!(m_valid <= big.len() * 4, "{what}: validate took {m_valid}");
}

#[test]
fn a_million_entries_in_one_directory() {
    let small = image_bytes(&wide_tree(100_000), &WriteOptions::v1()).unwrap();
    let big = image_bytes(&wide_tree(1_000_000), &WriteOptions::v1()).unwrap();
    assert_linear("1M-entry directory (V1)", &small, &big, 10);
    assert_eq!(read_image(&big).unwrap().tree.len(), 1_000_001);
    // composefs-info dump streams: its memory does not grow with the entry count.
    let (r, t, m) = measure(|| info::dump(&big, None, std::io::sink()));
    r.unwrap();
    eprintln!("dump of 1M entries: {t:?}, peak heap {m}");
    assert!(m <= big.len() / 2, "dump took {m} bytes of heap");
    let small2 = image_bytes(&wide_tree(100_000), &WriteOptions::v2()).unwrap();
    let big2 = image_bytes(&wide_tree(1_000_000), &WriteOptions::v2()).unwrap();
    assert_linear("1M-entry directory (V2)", &small2, &big2, 10);
}

#[test]
fn thousands_of_nested_directories() {
    let small = image_bytes(&deep_tree(4_000), &WriteOptions::v1()).unwrap();
    let big = image_bytes(&deep_tree(40_000), &WriteOptions::v1()).unwrap();
    assert_linear("40000-deep chain", &small, &big, 10);
    let img = read_image_with(&big, ReadMode::ComposefsInfo).unwrap();
    assert_eq!(img.tree.len(), 40_002);
    // `ls` prints every path in full, so its output is quadratic in the depth; reading is not.
    let (r, _, _) = measure(|| info::ls(&small, None, std::io::sink()));
    r.unwrap();
}

/// Offset of the first dirent named `name` in directory `dir_nid`, and the nid it holds.
fn dirent(bytes: &[u8], dir_nid: u64, name: &[u8]) -> (u64, u64) {
    use cfs_erofs::read::image::ChunkEntries;
    let view = ImageView::new(bytes).unwrap();
    let dir = view.inode(dir_nid).unwrap();
    let mut chunks = view.dir_chunks(&dir).unwrap();
    while let Some((chunk, off)) = chunks.next_chunk().unwrap() {
        let mut e = ChunkEntries::new(chunk, off).unwrap();
        while let Some(d) = e.next_entry().unwrap() {
            if d.name == name {
                return (d.offset, d.nid);
            }
        }
    }
    panic!("no entry {name:?}");
}

fn put(b: &mut [u8], off: u64, v: &[u8]) {
    b[off as usize..off as usize + v.len()].copy_from_slice(v);
}

/// Reads a damaged image: it must finish within 20× the undamaged read (plus 50 ms) and
/// 2× the undamaged peak heap (plus 1 MiB), whatever the verdict.
fn bounded(what: &str, good: &[u8], bad: &[u8]) -> Result<(), ReadError> {
    let t_good = best_time(|| read_image(good));
    let (_, _, m_good) = measure(|| read_image(good));
    let mut verdict = Ok(());
    for mode in [ReadMode::Clean, ReadMode::ComposefsInfo] {
        let (r, t, m) = measure(|| read_image_with(bad, mode));
        assert!(
            t <= t_good * 20 + Duration::from_millis(50),
            "{what}: {t:?} against {t_good:?}"
        );
        assert!(
            m <= m_good * 2 + (1 << 20),
            "{what}: peak heap {m} against {m_good}"
        );
        if mode == ReadMode::ComposefsInfo {
            // dump checks what the composefs-info tree build checks.
            let (d, _, m) = measure(|| info::dump(bad, None, std::io::sink()));
            assert!(m <= m_good * 2 + (1 << 20), "{what}: dump heap {m}");
            assert_eq!(d.is_ok(), r.is_ok(), "{what}");
        }
        if let Err(e) = r {
            verdict = Err(e);
        }
    }
    verdict
}

#[test]
fn directory_cycle_at_depth() {
    let good = image_bytes(&deep_tree(5_000), &WriteOptions::v1()).unwrap();
    let view = ImageView::new(&good).unwrap();
    // Walk down to the deepest directory and point its `d`… there is none: point the file
    // at the bottom back at the root instead, and a middle directory at its grandparent.
    let mut nid = view.root_nid;
    let mut path = vec![nid];
    for _ in 0..5_000 {
        nid = dirent(&good, nid, b"d").1;
        path.push(nid);
    }
    let (file_at, _) = dirent(&good, nid, b"f");
    let mut bad = good.clone();
    put(&mut bad, file_at, &view.root_nid.to_le_bytes());
    let e = bounded("bottom file → root", &good, &bad).unwrap_err();
    eprintln!("bottom file → root: {e}");
    let (mid_at, _) = dirent(&good, path[2_500], b"d");
    let mut bad = good.clone();
    put(&mut bad, mid_at, &path[2_499].to_le_bytes());
    let e = bounded("middle dir → grandparent", &good, &bad).unwrap_err();
    eprintln!("middle dir → grandparent: {e}");
}

/// A V1 image with a file holding local and shared xattrs, and the offsets that matter.
fn xattr_image() -> (Vec<u8>, u64) {
    let mut t = Tree::new(Inode::directory(0o755));
    for i in 0..4 {
        let mut f = empty_file();
        f.set_xattr(b"user.shared", b"same everywhere");
        f.set_xattr(format!("user.own{i}").as_bytes(), b"local");
        t.add(InodeId::ROOT, format!("f{i}").as_bytes(), f).unwrap();
    }
    let bytes = image_bytes(&t, &WriteOptions::v1()).unwrap();
    let root = ImageView::new(&bytes).unwrap().root_nid;
    let (_, nid) = dirent(&bytes, root, b"f0");
    (bytes, nid)
}

#[test]
fn xattrs_pointing_at_themselves_or_repeated() {
    let (good, nid) = xattr_image();
    let view = ImageView::new(&good).unwrap();
    let inode = view.inode(nid).unwrap();
    let hdr = inode.xattr_offset();
    let shared = u64::from(good[hdr as usize + 4]);
    assert!(shared >= 1, "the test image shares an xattr");
    let xattr_base = u64::from(u32::from_le_bytes(
        good[1024 + 44..1024 + 48].try_into().unwrap(),
    )) * 4096;
    let refs_at = hdr + 12;
    // The shared reference points at the inode's own header, at its own xattr area, at the
    // superblock, at the last word of the image.
    let own_header = (inode.offset.wrapping_sub(xattr_base) / 4) as u32;
    let own_area = (hdr.wrapping_sub(xattr_base) / 4) as u32;
    let last = ((good.len() as u64 - 4).wrapping_sub(xattr_base) / 4) as u32;
    for (what, r) in [
        ("ref → own inode", own_header),
        ("ref → own xattr area", own_area),
        (
            "ref → superblock",
            1024u32.wrapping_sub(xattr_base as u32) / 4,
        ),
        ("ref → last word", last),
        ("ref → u32::MAX", u32::MAX),
    ] {
        let mut bad = good.clone();
        put(&mut bad, refs_at, &r.to_le_bytes());
        let v = bounded(what, &good, &bad);
        eprintln!("{what}: {v:?}");
    }
    // Every slot of a maximal xattr area is a shared reference to the same entry.
    let mut bad = good.clone();
    put(&mut bad, inode.offset + 2, &u16::MAX.to_le_bytes());
    bad[hdr as usize + 4] = 255;
    for k in 0..255u64 {
        let at = refs_at + 4 * k;
        if (at as usize) + 4 <= bad.len() {
            let first = u32::from_le_bytes(
                good[refs_at as usize..refs_at as usize + 4]
                    .try_into()
                    .unwrap(),
            );
            put(&mut bad, at, &first.to_le_bytes());
        }
    }
    bounded("255 equal shared refs, icount 65535", &good, &bad).unwrap_err();
    // The same with a sane icount: 255 repeats of one shared xattr.
    let mut bad = good.clone();
    let icount = 1 + 255 + 8;
    put(&mut bad, inode.offset + 2, &(icount as u16).to_le_bytes());
    bad[hdr as usize + 4] = 255;
    let v = bounded("255 equal shared refs", &good, &bad);
    eprintln!("255 equal shared refs: {v:?}");
}

#[test]
fn huge_claimed_sizes() {
    let (good, nid) = xattr_image();
    let view = ImageView::new(&good).unwrap();
    let root = view.inode(view.root_nid).unwrap();
    let file = view.inode(nid).unwrap();
    for (what, inode) in [("root directory", root), ("file", file)] {
        let size_at = inode.offset + 8;
        let sizes: Vec<Vec<u8>> = if inode.header_len == 32 {
            vec![
                u32::MAX.to_le_bytes().to_vec(),
                (1u32 << 31).to_le_bytes().to_vec(),
            ]
        } else {
            vec![
                u64::MAX.to_le_bytes().to_vec(),
                (1u64 << 62).to_le_bytes().to_vec(),
                (1u64 << 40).to_le_bytes().to_vec(),
            ]
        };
        for s in sizes {
            let mut bad = good.clone();
            put(&mut bad, size_at, &s);
            let e = bounded(what, &good, &bad).unwrap_err();
            eprintln!("{what} size {s:?}: {e}");
        }
        // The same size with every data layout.
        for layout in 0u16..8 {
            let mut bad = good.clone();
            put(&mut bad, size_at, &u32::MAX.to_le_bytes());
            let fmt =
                u16::from_le_bytes([bad[inode.offset as usize], bad[inode.offset as usize + 1]]);
            put(
                &mut bad,
                inode.offset,
                &((fmt & !0xE) | (layout << 1)).to_le_bytes(),
            );
            bounded(what, &good, &bad).unwrap_err();
        }
    }
    // A superblock that claims 2^64-1 inodes, and one whose root nid is past the end.
    let mut bad = good.clone();
    put(&mut bad, 1024 + 16, &u64::MAX.to_le_bytes());
    bounded("inos", &good, &bad).unwrap_err();
    let mut bad = good.clone();
    put(&mut bad, 1024 + 14, &u16::MAX.to_le_bytes());
    bounded("root nid", &good, &bad).unwrap_err();
}
