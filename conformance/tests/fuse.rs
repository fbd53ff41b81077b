//! composefs-fuse (our symlink to mkcfs-rs) against the kernel and against C's composefs-fuse:
//!
//! - random trees (C's gendir) served by our FUSE server show the same tree as the kernel's
//!   EROFS + overlayfs mount of the same image — every stat field, `user.*` xattr (the only
//!   ones C's server shows) and file content — and the same as C's composefs-fuse;
//! - a byte-corruption sweep and random mutations of an image: the server never dies (each
//!   mount is walked, reading every file, then unmounted, and the server exits 0), reads of
//!   damaged parts give EIO, and an image whose header or superblock is bad is refused at
//!   startup with a message;
//! - an object swapped for another (or altered) fails to open with EIO: the server checks the
//!   fs-verity digest the image records, which the kernel cannot here (no fs-verity);
//! - objects spread over several base directories (`basedir=A:B`) are all found.
//!
//! Every mount happens in a private mount namespace (`unshare -m`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use cfs_erofs::dumpfile::{parse_bytes, ParseOptions};
use cfs_erofs::fsverity;
use cfs_erofs::tree::HashAlgorithm;
use cfs_erofs::write::{image_bytes, WriteOptions};
use conformance::kernel::{can_mount, mount_and_walk};
use conformance::oracle::{mkcfs_rs, oracles_dir, Oracle};

fn walker() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_conformance"))
}

fn require_fuse_and_mount() {
    if let Err(why) = can_mount() {
        panic!("FUSE tests need root and a kernel with erofs and overlayfs: {why}");
    }
    assert!(
        Path::new("/dev/fuse").exists(),
        "/dev/fuse is missing: this kernel has no FUSE"
    );
}

/// A folder holding `composefs-fuse` → mkcfs-rs.
fn our_fuse(dir: &Path) -> PathBuf {
    let link = dir.join("composefs-fuse");
    if !link.exists() {
        std::os::unix::fs::symlink(mkcfs_rs(), &link).unwrap();
    }
    link
}

fn q(p: &Path) -> String {
    format!("'{}'", p.display())
}

/// Mounts `image` with `tool` in a private namespace and walks it, reading every file.
fn fuse_walk(tool: &Path, image: &Path, basedir: &str) -> Result<String, String> {
    let mnt = tempfile::tempdir().unwrap();
    let script = format!(
        "{tool} -o source={img},basedir={basedir} {mnt} && {walker} walk --content {mnt}; s=$?; umount {mnt}; exit $s",
        tool = q(tool),
        img = image.display(),
        mnt = q(mnt.path()),
        walker = q(&walker()),
    );
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8(out.stdout).unwrap())
}

/// A listing with only the `user.*` xattrs (in hex, as the walker prints them).
fn user_xattrs_only(listing: &str) -> String {
    let user = hex::encode("user.");
    let mut out = String::new();
    for line in listing.lines() {
        let (head, xattrs) = line.rsplit_once(' ').unwrap();
        let kept: Vec<&str> = xattrs.split(',').filter(|x| x.starts_with(&user)).collect();
        let kept = if kept.is_empty() {
            "-".to_string()
        } else {
            kept.join(",")
        };
        let _ = writeln!(out, "{head} {kept}");
    }
    out
}

/// Lines of `a` and `b` that differ, for a failure message.
fn differences(a: &str, b: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let mut out = format!("{} vs {} lines\n", a.len(), b.len());
    for (x, y) in a.iter().zip(&b).filter(|(x, y)| x != y).take(5) {
        let _ = writeln!(out, "- {x}\n+ {y}");
    }
    out
}

/// A gendir tree, its image (with objects) written by our mkcomposefs.
fn gendir_image(dir: &Path, seed: u32, privileged: bool) -> (PathBuf, PathBuf) {
    let gendir = oracles_dir().join("src/composefs/tests/gendir");
    let root = dir.join(format!("root{seed}"));
    let mut cmd = Command::new(gendir);
    cmd.arg(format!("--seed={seed}"));
    if privileged {
        cmd.arg("--privileged");
    }
    let out = cmd.arg(&root).output().unwrap();
    assert!(
        out.status.success(),
        "gendir: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let objects = dir.join("objects");
    let image = dir.join(format!("root{seed}.cfs"));
    let out = Command::new(mkcfs_rs())
        .arg(format!("--digest-store={}", objects.display()))
        .arg(&root)
        .arg(&image)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mkcomposefs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&root).unwrap();
    (image, objects)
}

#[test]
fn same_tree_as_the_kernel_and_c() {
    require_fuse_and_mount();
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let ours = our_fuse(dir.path());
    let c = Oracle::ComposefsFuse.get();
    for (seed, privileged) in [(1, false), (3, true), (4, true), (5, true)] {
        let (image, objects) = gendir_image(dir.path(), seed, privileged);
        let basedir = objects.display().to_string();
        let kernel = mount_and_walk(&walker(), &image, Some(&objects)).expect("kernel mount");
        let kernel = user_xattrs_only(&kernel);
        let mine = fuse_walk(&ours, &image, &basedir).expect("our composefs-fuse");
        let theirs = fuse_walk(&c, &image, &basedir).expect("C's composefs-fuse");
        assert!(mine.lines().count() > 100, "seed {seed}: a real tree");
        assert_eq!(
            mine,
            theirs,
            "seed {seed}: ours vs C's composefs-fuse:\n{}",
            differences(&mine, &theirs)
        );
        assert_eq!(
            user_xattrs_only(&mine),
            kernel,
            "seed {seed}: ours vs the kernel:\n{}",
            differences(&user_xattrs_only(&mine), &kernel)
        );
        eprintln!(
            "seed {seed}: {} entries equal to the kernel's and C's",
            kernel.lines().count()
        );
    }
}

/// The image and objects the damage tests start from: directories, inline files (in a data
/// block and in tails), external files with digests, a symlink, xattrs (local and shared).
fn small_image(dir: &Path) -> (Vec<u8>, PathBuf) {
    let objects = dir.join("objects");
    let mut dump = String::from("/ 0 40755 2 0 0 0 0.0 - - - user.shared=1\n");
    dump += "/a 0 40755 2 0 0 0 0.0 - - - user.shared=1\n";
    dump += "/a/b 0 40755 2 0 0 0 0.0 - - -\n";
    for (i, len) in [(1, 5000usize), (2, 70_000), (3, 4096)].iter() {
        let data: Vec<u8> = (0..*len).map(|k| (k * i % 251) as u8).collect();
        let d = fsverity::digest(HashAlgorithm::Sha256, &data).to_hex();
        let path = format!("{}/{}", &d[..2], &d[2..]);
        std::fs::create_dir_all(objects.join(&d[..2])).unwrap();
        std::fs::write(objects.join(&path), &data).unwrap();
        let _ = writeln!(
            dump,
            "/a/x{i} {len} 100644 1 0 0 0 0.0 {path} - {d} user.k{i}=v"
        );
    }
    dump += "/a/b/inline 9 100644 1 0 0 0 0.0 - inlinedat - user.shared=1\n";
    dump += "/big 4100 100600 1 0 0 0 0.0 - ";
    dump += &"z".repeat(4100);
    dump += " -\n/link 6 120777 1 0 0 0 0.0 /a/b/c - -\n";
    dump += "/w 0 20000 1 0 0 0 0.0 - - -\n";
    let tree = parse_bytes(dump.as_bytes(), &ParseOptions { strict: true }).unwrap();
    (image_bytes(&tree, &WriteOptions::v1()).unwrap(), objects)
}

/// Corrupts a copy of `image` at each offset in `damage`, serves each copy with our
/// composefs-fuse (foreground, in one namespace), walks it reading every file, unmounts it
/// and checks how the server ended. Returns (served, refused at startup, walks that hit EIO).
fn serve_damaged(
    dir: &Path,
    image: &[u8],
    objects: &Path,
    damage: &[Vec<(usize, u8)>],
) -> (usize, usize, usize) {
    let imgs = dir.join("damaged");
    std::fs::create_dir_all(&imgs).unwrap();
    for (i, d) in damage.iter().enumerate() {
        let mut b = image.to_vec();
        for &(off, x) in d {
            b[off] ^= x;
        }
        std::fs::write(imgs.join(format!("{i}.img")), b).unwrap();
    }
    let mnt = dir.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let tool = our_fuse(dir);
    // For each image: start the server in the foreground, wait for the mount (or the server's
    // end), walk, check that the mount still answers, unmount, and report the exit status.
    let script = format!(
        r#"
for i in $(seq 0 {last}); do
  {tool} -f -o source={imgs}/$i.img,basedir={objects} {mnt} 2>{imgs}/$i.err & pid=$!
  up=n
  for t in $(seq 1 500); do
    if grep -q " {mnt_raw} " /proc/self/mountinfo; then up=y; break; fi
    kill -0 $pid 2>/dev/null || break
    sleep 0.01
  done
  if [ $up = y ]; then
    {walker} walk --content {mnt} >/dev/null 2>{imgs}/$i.walk
    # A dead server leaves "Transport endpoint is not connected"; EIO on a damaged root is fine.
    stat {mnt} 2>&1 >/dev/null | grep -q "not connected" && echo "DEAD $i"
    umount {mnt} || umount -l {mnt}
  fi
  wait $pid
  echo "END $i $up $?"
done
"#,
        last = damage.len() - 1,
        tool = q(&tool),
        imgs = imgs.display(),
        objects = objects.display(),
        mnt = q(&mnt),
        mnt_raw = mnt.display(),
        walker = q(&walker()),
    );
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "bash", "-c", &script])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("DEAD"), "the server died:\n{text}");
    let (mut served, mut refused, mut eio) = (0, 0, 0);
    for i in 0..damage.len() {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("END {i} ")))
            .unwrap_or_else(|| panic!("no result for damage {i}:\n{text}"));
        let err = std::fs::read_to_string(imgs.join(format!("{i}.err"))).unwrap_or_default();
        assert!(
            !err.contains("panicked"),
            "damage {i} ({:?}): the server panicked: {err}",
            damage[i]
        );
        let fields: Vec<&str> = line.split_whitespace().collect();
        match (fields[2], fields[3]) {
            ("y", "0") => {
                served += 1;
                let walk =
                    std::fs::read_to_string(imgs.join(format!("{i}.walk"))).unwrap_or_default();
                if !walk.is_empty() {
                    assert!(
                        walk.contains("Input/output error"),
                        "damage {i} ({:?}): a read failed otherwise than with EIO: {walk}",
                        damage[i]
                    );
                    eio += 1;
                }
            }
            ("n", "1") => {
                assert!(
                    err.starts_with("composefs-fuse: "),
                    "damage {i}: refused without a message: {err:?}"
                );
                refused += 1;
            }
            (up, status) => panic!(
                "damage {i} ({:?}): mounted={up}, server exit {status}, stderr {err:?}",
                damage[i]
            ),
        }
    }
    (served, refused, eio)
}

/// A small deterministic generator (xorshift), so that the mutations are the same every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn damaged_images_never_kill_the_server() {
    require_fuse_and_mount();
    let dir = tempfile::tempdir().unwrap();
    let (image, objects) = small_image(dir.path());
    // The metadata: everything before the first data block the reader does not need to scan.
    let meta_end = image.len().min(3 * 4096);
    let mut damage: Vec<Vec<(usize, u8)>> = Vec::new();
    // Sweep: every 29th byte of the header, superblock and inodes, all bits flipped.
    damage.extend((0..meta_end).step_by(29).map(|off| vec![(off, 0xff)]));
    // Random mutations: 1 to 4 bytes anywhere in the metadata, random bits.
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..120 {
        let n = 1 + rng.next() % 4;
        damage.push(
            (0..n)
                .map(|_| {
                    let off = (rng.next() % meta_end as u64) as usize;
                    (off, (rng.next() % 255 + 1) as u8)
                })
                .collect(),
        );
    }
    let (served, refused, eio) = serve_damaged(dir.path(), &image, &objects, &damage);
    eprintln!(
        "{} damaged images: {served} served (reads hit EIO in {eio}), {refused} refused at startup",
        damage.len()
    );
    assert_eq!(served + refused, damage.len());
    assert!(eio > 20 && refused > 5, "the damage must reach both paths");
}

#[test]
fn swapped_or_altered_objects_give_eio() {
    require_fuse_and_mount();
    let dir = tempfile::tempdir().unwrap();
    let (image, objects) = small_image(dir.path());
    let img = dir.path().join("img.cfs");
    std::fs::write(&img, &image).unwrap();
    let tool = our_fuse(dir.path());
    // Intact: every file reads.
    fuse_walk(&tool, &img, &objects.display().to_string()).expect("intact image serves");

    // The objects, found by walking the store.
    let mut files: Vec<PathBuf> = Vec::new();
    for sub in std::fs::read_dir(&objects).unwrap() {
        for f in std::fs::read_dir(sub.unwrap().path()).unwrap() {
            files.push(f.unwrap().path());
        }
    }
    files.sort();
    assert_eq!(files.len(), 3);

    // Objects split over two base directories: all found.
    let second = dir.path().join("second");
    let moved = second.join(files[0].strip_prefix(&objects).unwrap());
    std::fs::create_dir_all(moved.parent().unwrap()).unwrap();
    std::fs::rename(&files[0], &moved).unwrap();
    let both = format!("{}:{}", objects.display(), second.display());
    let listing = fuse_walk(&tool, &img, &both).expect("objects over two basedirs");
    assert_eq!(listing.lines().count(), 10, "{listing}");
    std::fs::rename(&moved, &files[0]).unwrap();

    // One object altered in place, same size: its file gives EIO, the others still read.
    let original = std::fs::read(&files[1]).unwrap();
    let mut altered = original.clone();
    altered[original.len() / 2] ^= 1;
    std::fs::write(&files[1], &altered).unwrap();
    let err = fuse_walk(&tool, &img, &objects.display().to_string()).unwrap_err();
    assert!(err.contains("Input/output error"), "{err}");
    std::fs::write(&files[1], &original).unwrap();

    // Two objects swapped (names kept): both fail with EIO (different size or digest).
    let (a, b) = (
        std::fs::read(&files[0]).unwrap(),
        std::fs::read(&files[2]).unwrap(),
    );
    std::fs::write(&files[0], &b).unwrap();
    std::fs::write(&files[2], &a).unwrap();
    let err = fuse_walk(&tool, &img, &objects.display().to_string()).unwrap_err();
    assert!(err.contains("Input/output error"), "{err}");

    // C's composefs-fuse checks nothing and serves the swapped bytes.
    let c = fuse_walk(
        &Oracle::ComposefsFuse.get(),
        &img,
        &objects.display().to_string(),
    );
    assert!(c.is_ok(), "C serves swapped objects: {c:?}");
}
