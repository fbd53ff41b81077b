//! `diff_images` names the first differing field of deliberately altered images.
//!
//! Each case starts from one V1 image written by our writer and alters one thing — by writing
//! a slightly different tree, or by patching bytes found through the reader's checked view —
//! then checks the first difference reported (its place, field and values), and that
//! identical images give none.

use cfs_erofs::diff::{diff_images, first_difference, Class, DiffError, Field, Place, Side};
use cfs_erofs::dumpfile::{parse_bytes, ParseOptions};
use cfs_erofs::read::image::{ImageView, RawDirent};
use cfs_erofs::write::{image_bytes, WriteOptions};

/// The base tree: inline files with xattrs, one xattr on three inodes (so it is shared), a
/// subdirectory, a symlink, an external file and a file of 2500 bytes that takes a data block.
fn base() -> String {
    let digest = "5a".repeat(32);
    format!(
        "/ 0 40755 2 0 0 0 1700000000.0 - - -
/a 3 100644 1 0 0 0 1700000000.0 - abc - user.x=1 user.y=2
/b 5 100644 1 0 0 0 1700000000.0 - hello - user.shared=same
/big 1234 100644 1 0 0 0 1700000000.0 5a/{} - {digest}
/c 0 40755 2 0 0 0 1700000000.0 - - - user.shared=same
/c/d 3 100644 1 0 0 0 1700000000.0 - xyz - user.shared=same
/e 7 120777 1 0 0 0 1700000000.0 /target - -
/f 2500 100644 1 0 0 0 1700000000.0 - {} -
",
        &digest[2..],
        "f".repeat(2500)
    )
}

fn build(dump: &str, opts: &WriteOptions) -> Vec<u8> {
    let tree = parse_bytes(dump.as_bytes(), &ParseOptions::default()).expect("test dumpfile");
    image_bytes(&tree, opts).expect("test tree writes")
}

fn v1(dump: &str) -> Vec<u8> {
    build(dump, &WriteOptions::v1())
}

/// `base()` with one line replaced (`None` removes it).
fn with_line(prefix: &str, line: Option<&str>) -> String {
    let mut out = String::new();
    let mut found = false;
    for l in base().lines() {
        if l.starts_with(prefix) {
            found = true;
            if let Some(n) = line {
                out.push_str(n);
                out.push('\n');
            }
        } else {
            out.push_str(l);
            out.push('\n');
        }
    }
    assert!(found, "no line {prefix}");
    out
}

fn dirents(bytes: &[u8], dir_nid: u64) -> Vec<RawDirent<'_>> {
    let view = ImageView::new(bytes).unwrap();
    view.dirents(&view.inode(dir_nid).unwrap()).unwrap()
}

/// The nid of a top-level entry.
fn nid_of(bytes: &[u8], name: &str) -> u64 {
    let root = ImageView::new(bytes).unwrap().root_nid;
    dirents(bytes, root)
        .into_iter()
        .find(|d| d.name == name.as_bytes())
        .unwrap_or_else(|| panic!("no entry {name}"))
        .nid
}

fn first(a: &[u8], b: &[u8]) -> cfs_erofs::diff::Difference {
    let all = diff_images(a, b).expect("both images read");
    let d = all.first().cloned().expect("the images differ");
    assert_eq!(first_difference(a, b).as_ref(), Some(&d));
    d
}

fn inode_path(d: &cfs_erofs::diff::Difference) -> &str {
    match &d.place {
        Place::Inode { path, .. } => path,
        p => panic!("not an inode difference: {p}"),
    }
}

#[test]
fn identical_images_have_no_differences() {
    for opts in [WriteOptions::v1(), WriteOptions::v2()] {
        let a = build(&base(), &opts);
        let b = build(&base(), &opts);
        assert_eq!(diff_images(&a, &b).unwrap(), []);
        assert_eq!(first_difference(&a, &b), None);
    }
}

#[test]
fn flipped_mode() {
    let a = v1(&base());
    let b = v1(&with_line(
        "/a ",
        Some("/a 3 100600 1 0 0 0 1700000000.0 - abc - user.x=1 user.y=2"),
    ));
    let d = first(&a, &b);
    let nid = nid_of(&a, "a");
    assert_eq!(
        d.to_string(),
        format!("inode {nid} (/a): i_mode 0100644 ≠ 0100600")
    );
    assert_eq!(d.class, Class::Semantic);
    // Nothing else differs, so nothing else is reported.
    assert_eq!(diff_images(&a, &b).unwrap().len(), 1);
}

#[test]
fn changed_name() {
    let a = v1(&base());
    let b = v1(&with_line(
        "/b ",
        // Not a two-digit hex name: those are whiteout stubs in V1.
        Some("/bz 5 100644 1 0 0 0 1700000000.0 - hello - user.shared=same"),
    ));
    let all = diff_images(&a, &b).unwrap();
    assert_eq!(all[0].field, Field::Entry);
    assert_eq!(inode_path(&all[0]), "/b");
    assert_eq!(
        (all[0].a.as_deref(), all[0].b.as_deref()),
        (Some("regular file"), None)
    );
    assert_eq!(all[1].field, Field::Entry);
    assert_eq!(inode_path(&all[1]), "/bz");
    assert_eq!(all[1].a, None);
    // The root stays one block; the stubs after "b" in BFS order moved down (layout).
    assert!(
        all[2..].iter().all(|d| d.class == Class::Layout),
        "{}",
        lines(&all)
    );
    assert!(all
        .iter()
        .any(|d| inode_path(d) == "/b0" && d.field == Field::DirentNid));
}

#[test]
fn changed_xattr_value() {
    let a = v1(&base());
    let b = v1(&with_line(
        "/a ",
        Some("/a 3 100644 1 0 0 0 1700000000.0 - abc - user.x=1 user.y=3"),
    ));
    let d = first(&a, &b);
    assert_eq!(inode_path(&d), "/a");
    assert_eq!(d.field, Field::Xattr(b"user.y".to_vec()));
    assert_eq!(
        (d.a.as_deref(), d.b.as_deref()),
        (Some("\"2\" (inline)"), Some("\"3\" (inline)"))
    );
}

#[test]
fn dropped_xattr() {
    let a = v1(&base());
    let b = v1(&with_line(
        "/a ",
        Some("/a 3 100644 1 0 0 0 1700000000.0 - abc - user.x=1"),
    ));
    let all = diff_images(&a, &b).unwrap();
    let d = &all[0];
    assert_eq!(inode_path(d), "/a");
    assert_eq!(d.field, Field::Xattr(b"user.y".to_vec()));
    assert_eq!(
        (d.a.as_deref(), d.b.as_deref()),
        (Some("\"2\" (inline)"), None)
    );
    // Then the inode's xattr header; the inode still fits the same slots, so nothing moved.
    let rest: Vec<_> = all[1..].iter().map(|d| d.field.clone()).collect();
    assert_eq!(
        rest,
        [
            Field::Inode("i_xattr_icount"),
            Field::Inode("h_name_filter")
        ],
        "{}",
        lines(&all)
    );
}

#[test]
fn changed_mtime() {
    let a = v1(&base());
    let b = v1(&with_line(
        "/a ",
        Some("/a 3 100644 1 0 0 0 1700000001.0 - abc - user.x=1 user.y=2"),
    ));
    let d = first(&a, &b);
    let nid = nid_of(&a, "a");
    assert_eq!(
        d.to_string(),
        format!("inode {nid} (/a): i_mtime 1700000000 ≠ 1700000001")
    );
    // The inode became extended (the mtime is no longer the minimum).
    let all = diff_images(&a, &b).unwrap();
    assert!(all.iter().any(|d| d.field == Field::Inode("i_format")
        && d.a.as_deref() == Some("compact")
        && d.b.as_deref() == Some("extended")));
}

#[test]
fn changed_size_reports_size_first_then_layout_and_nothing_unexplained() {
    let a = v1(&base());
    let b = v1(&with_line(
        "/a ",
        Some(&format!(
            "/a 100 100644 1 0 0 0 1700000000.0 - abc{} - user.x=1 user.y=2",
            "d".repeat(97)
        )),
    ));
    let all = diff_images(&a, &b).unwrap();
    assert_eq!(inode_path(&all[0]), "/a");
    assert_eq!(all[0].field, Field::Inode("i_size"));
    assert_eq!(
        (all[0].a.as_deref(), all[0].b.as_deref()),
        (Some("3"), Some("100"))
    );
    assert_eq!(all[1].field, Field::Content { at: 3 });
    assert_eq!(
        (all[1].a.as_deref(), all[1].b.as_deref()),
        (Some("\"\""), Some("\"dddddddddddddddd\""))
    );
    // The later inodes moved: reported as layout.
    assert!(
        all.iter()
            .any(|d| d.class == Class::Layout && d.field == Field::DirentNid),
        "{}",
        lines(&all)
    );
    // Every semantic difference comes before every layout one, and raw ones come last.
    let rank = |c: Class| match c {
        Class::Semantic => 0,
        Class::Layout => 1,
        Class::Raw => 2,
    };
    assert!(all.windows(2).all(|w| rank(w[0].class) <= rank(w[1].class)));
    assert!(
        all.iter().all(|d| d.class != Class::Raw),
        "unexplained bytes: {:#?}",
        all.iter()
            .filter(|d| d.class == Class::Raw)
            .collect::<Vec<_>>()
    );
}

/// The byte range of the shared `user.shared` table entry.
fn shared_entry(bytes: &[u8]) -> (u64, u64) {
    let view = ImageView::new(bytes).unwrap();
    let r = view.inode(nid_of(bytes, "b")).unwrap();
    let mut it = view.xattrs(&r).unwrap();
    while let Some((x, start, end)) = it.next_entry().unwrap() {
        if x.shared && x.suffix == b"shared" {
            return (start, end);
        }
    }
    panic!("user.shared is not shared");
}

#[test]
fn altered_shared_xattr_table_entry() {
    let a = v1(&base());
    let mut b = a.clone();
    let (start, end) = shared_entry(&a);
    let value = &mut b[start as usize..end as usize];
    let at = value.windows(4).position(|w| w == b"same").unwrap();
    value[at + 2] = b'n';
    let all = diff_images(&a, &b).unwrap();
    assert_eq!(
        all[0].place,
        Place::SharedXattr {
            offset_a: start,
            offset_b: start
        }
    );
    assert_eq!(all[0].field, Field::SharedEntry);
    assert_eq!(
        all[0].to_string(),
        format!(
            "shared xattr at offset {start}: entry user.shared=\"same\" ≠ user.shared=\"sane\""
        )
    );
    // Reported once, although three inodes reference it.
    assert_eq!(all.len(), 1, "{}", lines(&all));
}

#[test]
fn changed_build_time() {
    let a = v1(&base());
    let mut b = a.clone();
    b[1024 + 24..1024 + 32].copy_from_slice(&1700000005u64.to_le_bytes());
    let all = diff_images(&a, &b).unwrap();
    assert_eq!(
        all[0].to_string(),
        "superblock: build_time 1700000000 ≠ 1700000005"
    );
    // Compact inodes take their mtime from it; they have no i_mtime of their own to differ.
    assert_eq!(all.len(), 1, "{}", lines(&all));
}

#[test]
fn changed_composefs_version() {
    let a = build(&base(), &WriteOptions::v1_exact(0));
    let b = build(&base(), &WriteOptions::v1_exact(1));
    let all = diff_images(&a, &b).unwrap();
    assert_eq!(all.len(), 1, "{}", lines(&all));
    assert_eq!(all[0].to_string(), "header: composefs_version 0 ≠ 1");
}

#[test]
fn swapped_directory_entries() {
    let a = v1(&base());
    let (na, nb) = (nid_of(&a, "a"), nid_of(&a, "b"));
    let root = ImageView::new(&a).unwrap().root_nid;
    let ents = dirents(&a, root);
    let off = |name: &str| {
        ents.iter()
            .find(|d| d.name == name.as_bytes())
            .unwrap()
            .offset as usize
    };
    let (oa, ob) = (off("a"), off("b"));
    let mut b = a.clone();
    b[oa..oa + 8].copy_from_slice(&nb.to_le_bytes());
    b[ob..ob + 8].copy_from_slice(&na.to_le_bytes());
    let all = diff_images(&a, &b).unwrap();
    assert_eq!(all[0].field, Field::DirentNid);
    assert_eq!(all[0].class, Class::Semantic);
    assert_eq!(
        all[0].to_string(),
        format!("inode {na}→{nb} (/a): directory entry nid {na} ≠ {nb} (swapped with /b)")
    );
    assert_eq!(inode_path(&all[1]), "/b");
    assert_eq!(all[1].field, Field::DirentNid);
    // Then what reading /a now gives.
    assert!(all
        .iter()
        .any(|d| inode_path(d) == "/a" && d.field == Field::Inode("i_size")));
    assert!(all.iter().all(|d| d.class != Class::Raw), "{}", lines(&all));
}

#[test]
fn unexplained_padding_is_reported_as_raw_bytes() {
    let a = v1(&base());
    let view = ImageView::new(&a).unwrap();
    let f = view.inode(nid_of(&a, "f")).unwrap();
    // /f has 2500 bytes in one data block; the rest of the block is padding.
    let at = u64::from(f.u) * 4096 + 3000;
    let mut b = a.clone();
    b[at as usize] = 0x55;
    let all = diff_images(&a, &b).unwrap();
    assert_eq!(all.len(), 1, "{}", lines(&all));
    assert_eq!(all[0].class, Class::Raw);
    assert_eq!(
        all[0].to_string(),
        format!(
            "bytes {at}..{} (data of inode {} (/f)): bytes 00 ≠ 55",
            at + 1,
            f.nid
        )
    );
}

#[test]
fn unreadable_side_is_named() {
    let a = v1(&base());
    let short = &a[..a.len() - 4096];
    match diff_images(&a, short) {
        Err(DiffError::Unreadable { side: Side::B, .. }) => {}
        other => panic!("{other:?}"),
    }
    match diff_images(short, &a) {
        Err(DiffError::Unreadable { side: Side::A, .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn v1_and_v2_of_one_tree() {
    let a = build(&base(), &WriteOptions::v1());
    let b = build(&base(), &WriteOptions::v2());
    let all = diff_images(&a, &b).unwrap();
    assert_eq!(all[0].to_string(), "header: composefs_version 0 ≠ 2");
    // V2 has no whiteout stubs and no root opaque xattr.
    assert!(all
        .iter()
        .any(|d| inode_path_opt(d) == Some("/00") && d.field == Field::Entry && d.b.is_none()));
    assert!(all.iter().any(|d| inode_path_opt(d) == Some("/")
        && d.field == Field::Xattr(b"trusted.overlay.opaque".to_vec())));
}

/// The differences as the tool prints them, one per line.
fn lines(all: &[cfs_erofs::diff::Difference]) -> String {
    all.iter().map(|d| format!("{d}\n")).collect()
}

fn inode_path_opt(d: &cfs_erofs::diff::Difference) -> Option<&str> {
    match &d.place {
        Place::Inode { path, .. } => Some(path),
        _ => None,
    }
}

#[test]
fn retargeted_hardlink() {
    let a = v1(&format!("{}/h 0 @100644 - - - - 0.0 a - -\n", base()));
    let b = v1(&format!("{}/h 0 @100644 - - - - 0.0 b - -\n", base()));
    let all = diff_images(&a, &b).unwrap();
    assert_eq!(all[0].field, Field::Hardlink, "{}", lines(&all));
    assert_eq!(
        all[0].to_string(),
        "entry /h: hardlink to /a ≠ to /b",
        "{}",
        lines(&all)
    );
    assert!(all.iter().all(|d| d.class != Class::Raw), "{}", lines(&all));
}

/// A large real tree (a CentOS Stream 9 minimal image's dumpfile from the C corpus).
fn big_tree() -> cfs_erofs::Tree {
    let dump = conformance::corpus::asset("cs9-x86_64-minimal.dump.gz").dump;
    parse_bytes(&dump, &ParseOptions::default()).unwrap()
}

#[test]
fn one_mtime_in_a_large_tree() {
    let tree = big_tree();
    let a = image_bytes(&tree, &WriteOptions::v1()).unwrap();
    // The last regular file of the arena: deep in the tree, with many inodes around it.
    let mut altered = tree.clone();
    let id = altered
        .inodes()
        .filter(|(_, i)| i.file_type() == cfs_erofs::FileType::Regular)
        .map(|(id, _)| id)
        .last()
        .unwrap();
    altered.inode_mut(id).mtime.sec += 1;
    let b = image_bytes(&altered, &WriteOptions::v1()).unwrap();
    let start = std::time::Instant::now();
    let all = diff_images(&a, &b).unwrap();
    let took = start.elapsed();
    eprintln!(
        "{} byte images, {} differences in {took:?}",
        a.len(),
        all.len()
    );
    assert_eq!(all[0].field, Field::Inode("i_mtime"), "{}", lines(&all));
    let sem: Vec<_> = all.iter().filter(|d| d.class == Class::Semantic).collect();
    // The inode became extended: i_mtime, i_mtime_nsec only if nonzero, then i_format.
    assert!(
        sem.iter().all(|d| inode_path(d) == inode_path(&all[0])),
        "{}",
        lines(&all)
    );
    assert!(all.iter().all(|d| d.class != Class::Raw), "{}", lines(&all));
}

#[test]
fn v1_and_v2_of_a_large_tree() {
    let tree = big_tree();
    let a = image_bytes(&tree, &WriteOptions::v1()).unwrap();
    let b = image_bytes(&tree, &WriteOptions::v2()).unwrap();
    let start = std::time::Instant::now();
    let all = diff_images(&a, &b).unwrap();
    eprintln!(
        "V1 {} / V2 {} bytes: {} differences in {:?}",
        a.len(),
        b.len(),
        all.len(),
        start.elapsed()
    );
    assert_eq!(all[0].to_string(), "header: composefs_version 0 ≠ 2");
    let rank = |c: Class| c as u8;
    assert!(all.windows(2).all(|p| rank(p[0].class) <= rank(p[1].class)));
}

#[test]
fn damaged_images_never_panic_and_always_differ() {
    // Every 7th byte flipped in turn: the diff either explains it or names the unreadable side,
    // and the convenience always finds a difference.
    let a = v1(&base());
    let mut explained = 0;
    for at in (0..a.len()).step_by(7) {
        let mut b = a.clone();
        b[at] ^= 0xff;
        match diff_images(&a, &b) {
            Ok(all) => {
                assert!(!all.is_empty(), "byte {at}: no difference found");
                explained += 1;
            }
            Err(DiffError::Unreadable { side, .. }) => assert_eq!(side, Side::B),
        }
        assert!(first_difference(&a, &b).is_some());
    }
    assert!(explained > 0);
}
