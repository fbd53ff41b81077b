//! `mount.composefs` and `cfs_erofs::mount` against C's mount.composefs 1.0.8 and the kernel.
//!
//! Every test body runs in its own private mount namespace (see `conformance::namespace`),
//! most with a private tmpfs on /tmp so that every `/tmp/.composefs.*` there is the test's own.
//!
//! - every corpus and vector image, mounted by C's tool and by ours, shows the same tree
//!   (every stat field, xattr, and the content of every file up to 64 KiB through its object)
//!   with the same overlay options;
//! - each kernel path (file-backed EROFS, loop device, mount(2) EROFS, new-API overlay, legacy
//!   overlay with `::` and with `:`) shows the same tree; `verity`/`tryverity` reach the kernel
//!   where C makes them; upperdir/workdir gives a writable mount;
//! - bad command lines and bad images fail with C's exit code and messages, except mount(8)'s
//!   helper flags, which we accept (a documented divergence), and mount(8) runs our helper;
//! - a thousand failed mounts leave no mount, loop device or temporary directory behind;
//! - `mkcfs-rs karg mount` boots the first image of the command line present in a store and
//!   stops, naming the argument, on any other fault (lying image, wrong layout, no fs-verity
//!   for a secure argument, failed mount).
//!
//! This host has no fs-verity, so `digest=` always ends in "Image has no fs-verity" (C says the
//! same) and object reads under `verity=require` fail with EIO; the virtual-machine tests
//! check enforcement.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cfs_erofs::dumpfile::{parse_bytes, ParseOptions};
use cfs_erofs::mount::{
    self, Api, ErofsSource, ErofsVia, MountOptions, OverlayMode, OverlayVia, Strategy, Verity,
};
use cfs_erofs::tree::{FileData, InodeKind, Tree};
use cfs_erofs::write::{image_bytes, WriteOptions};
use conformance::kernel::tree_with_objects;
use conformance::namespace;
use conformance::oracle::{mkcfs_rs, Oracle};
use conformance::vectors::{self, Manifest};
use conformance::walk;

/// Files up to this size get an object with content and are read through the mount.
const READ_LIMIT: u64 = 64 * 1024;

/// A folder for a test's images and objects. It lives in the target folder, not on the
/// private /tmp: from a tmpfs the kernel mounts EROFS only through a loop device.
fn data_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

/// Our binary under the name mount.composefs (a symlink in `dir`).
fn ours(dir: &Path) -> PathBuf {
    let p = dir.join("mount.composefs");
    if !p.exists() {
        symlink(mkcfs_rs(), &p).unwrap();
    }
    p
}

/// Deterministic content of `len` bytes for the object at `payload`.
fn content(payload: &[u8], len: u64) -> Vec<u8> {
    let seed = payload
        .iter()
        .fold(7u32, |h, &b| h.wrapping_mul(31) ^ u32::from(b));
    (0..len)
        .map(|i| (seed.wrapping_add(i as u32).wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect()
}

/// Fills `objdir` with an object for every external file of `tree`, at the path its redirect
/// names: content for files up to [`READ_LIMIT`] bytes, a sparse file beyond. Payloads that cannot be a path inside the folder are left
/// out (both tools then show the same read error).
fn write_objects(tree: &Tree, objdir: &Path) {
    for (_, inode) in tree.inodes() {
        let InodeKind::Regular(FileData::External { payload, digest }) = &inode.kind else {
            continue;
        };
        let rel: Vec<u8> = match (payload, digest) {
            (Some(p), _) => p.to_vec(),
            (None, Some(d)) => d.object_path().into_bytes(),
            (None, None) => continue,
        };
        let rel = String::from_utf8_lossy(&rel)
            .trim_start_matches('/')
            .to_owned();
        if rel.is_empty()
            || rel
                .split('/')
                .any(|c| c == ".." || c == "." || c.is_empty())
        {
            continue;
        }
        let p = objdir.join(&rel);
        if let Some(parent) = p.parent() {
            if fs::create_dir_all(parent).is_err() {
                continue;
            }
        }
        if inode.size <= READ_LIMIT {
            let _ = fs::write(&p, content(rel.as_bytes(), inode.size));
        } else if let Ok(f) = fs::File::create(&p) {
            // A sparse object of the right size: it is looked up, never read.
            let _ = f.set_len(inode.size);
        }
    }
}

/// The canonical listing of a mounted tree (contents of files up to `limit` bytes), or the
/// walk's error.
fn listing(root: &Path, limit: u64) -> Result<String, String> {
    walk::walk(root, &|e| e.size.is_some_and(|s| s <= limit))
        .map(|entries| walk::format(&entries))
        .map_err(|e| e.to_string())
}

/// The mountinfo line of the mount at `target`: (mount options, fstype, source, super options).
fn mountinfo(target: &Path) -> Option<(String, String, String, String)> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let t = target.to_str().unwrap();
    info.lines().rev().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        let f: Vec<&str> = pre.split(' ').collect();
        if f.get(4) != Some(&t) {
            return None;
        }
        let g: Vec<&str> = post.splitn(3, ' ').collect();
        Some((
            f[5].into(),
            g[0].into(),
            g[1].into(),
            g.get(2).unwrap_or(&"").to_string(),
        ))
    })
}

fn mount_count() -> usize {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .count()
}

/// Our `/tmp/.composefs.*` directories (only meaningful with a private /tmp).
fn composefs_tmpdirs() -> Vec<String> {
    fs::read_dir("/tmp")
        .unwrap()
        .filter_map(|e| {
            let n = e.unwrap().file_name().to_string_lossy().into_owned();
            n.starts_with(".composefs.").then_some(n)
        })
        .collect()
}

/// Loop devices whose backing file lies under `dir`.
fn loop_devices_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir("/sys/block") else {
        return out;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("loop") {
            continue;
        }
        if let Ok(b) = fs::read_to_string(e.path().join("loop/backing_file")) {
            if Path::new(b.trim()).starts_with(dir) {
                out.push(format!("{name} → {}", b.trim()));
            }
        }
    }
    out
}

fn umount(target: &Path) {
    rustix::mount::unmount(target, rustix::mount::UnmountFlags::empty())
        .unwrap_or_else(|e| panic!("umount {}: {e}", target.display()));
}

fn run(cmd: &Path, args: &[&str]) -> Output {
    Command::new(cmd).args(args).output().unwrap()
}

/// The image of a corpus asset as C's test script builds it (version pinned when it says).
fn corpus_images() -> Vec<(String, Tree, Vec<u8>)> {
    conformance::corpus::assets()
        .into_iter()
        .map(|a| {
            let tree = parse_bytes(&a.dump, &ParseOptions { strict: false }).unwrap();
            let opts = match a.version {
                Some(v) => WriteOptions::v1_exact(v),
                None => WriteOptions::v1(),
            };
            let img = image_bytes(&tree, &opts).unwrap();
            (a.name, tree, img)
        })
        .collect()
}

/// Every image the vectors' builds produce.
fn vector_images() -> Vec<(String, Tree, Vec<u8>)> {
    let dir = vectors::vectors_dir();
    let m = Manifest::load(&dir).unwrap();
    let mut out = Vec::new();
    for v in &m.vectors {
        let dump = fs::read(dir.join(&v.input)).unwrap();
        for r in v.results.iter().filter(|r| r.image.is_some()) {
            let build = m.build(&r.build).unwrap();
            let img = vectors::build_image(&dump, v.strict, build).unwrap();
            let tree = parse_bytes(&dump, &ParseOptions { strict: false }).unwrap();
            out.push((format!("{} {}", v.name, build.id), tree, img));
        }
    }
    out
}

#[test]
fn c_and_ours_show_every_corpus_and_vector_image_alike() {
    if !namespace::enter("c_and_ours_show_every_corpus_and_vector_image_alike") {
        return;
    }
    namespace::private_tmp();
    let c = Oracle::MountComposefs.get();
    let dir = data_dir();
    let ours = ours(dir.path());
    let (mnt_c, mnt_r) = (dir.path().join("c"), dir.path().join("r"));
    fs::create_dir(&mnt_c).unwrap();
    fs::create_dir(&mnt_r).unwrap();
    let mut checked = 0;
    let mut read = 0;
    let t0 = std::time::Instant::now();
    for (name, tree, img) in corpus_images().into_iter().chain(vector_images()) {
        // Objects on the private tmpfs (quick to create and remove), the image on the target
        // folder's filesystem (mounted file-backed).
        let case = dir.path().join(format!("case{checked}"));
        let objdir = Path::new("/tmp/objects");
        fs::create_dir_all(objdir).unwrap();
        fs::create_dir_all(&case).unwrap();
        write_objects(&tree, objdir);
        let image = case.join("image.cfs");
        fs::write(&image, &img).unwrap();
        let basedir = format!("basedir={}", objdir.display());
        let args = ["-o", &basedir, image.to_str().unwrap()];
        let oc = run(&c, &[&args[..], &[mnt_c.to_str().unwrap()]].concat());
        let or = run(&ours, &[&args[..], &[mnt_r.to_str().unwrap()]].concat());
        assert!(
            oc.status.success(),
            "{name}: C failed: {}",
            String::from_utf8_lossy(&oc.stderr)
        );
        assert!(
            or.status.success(),
            "{name}: ours failed: {}",
            String::from_utf8_lossy(&or.stderr)
        );
        let unmounted = |l: Result<String, String>, mnt: &Path| {
            l.map_err(|e| e.replace(mnt.to_str().unwrap(), "MNT"))
        };
        // The two walks run side by side (the big corpus trees take seconds each).
        let (lc, lr) = std::thread::scope(|s| {
            let c = s.spawn(|| unmounted(listing(&mnt_c, READ_LIMIT), &mnt_c));
            let r = unmounted(listing(&mnt_r, READ_LIMIT), &mnt_r);
            (c.join().unwrap(), r)
        });
        assert!(
            lc == lr,
            "{name}: the trees differ\nC:    {lc:.2000?}\nours: {lr:.2000?}"
        );
        read += lr.as_ref().map_or(0, |l| {
            l.lines()
                .filter(|l| l.split(' ').nth(10) != Some("-"))
                .count()
        });
        // Same overlay options, up to the name of the temporary directory.
        let norm = |t: &Path| {
            let (o, fs, src, sup) = mountinfo(t).expect("mounted");
            let sup: Vec<String> = sup
                .split(',')
                .map(|s| match s.split_once("=/tmp/.composefs.") {
                    Some((k, _)) => format!("{k}=TMP"),
                    None => s.to_owned(),
                })
                .collect();
            (o, fs, src, sup.join(","))
        };
        assert_eq!(norm(&mnt_c), norm(&mnt_r), "{name}: mount options");
        umount(&mnt_c);
        umount(&mnt_r);
        fs::remove_dir_all(&case).unwrap();
        fs::remove_dir_all(objdir).unwrap();
        checked += 1;
    }
    assert!(
        composefs_tmpdirs().is_empty(),
        "left behind: {:?}",
        composefs_tmpdirs()
    );
    assert!(checked >= 15 + 40, "only {checked} images compared");
    eprintln!(
        "{checked} images mounted by C and by us show the same tree ({read} file contents read) in {:?}",
        t0.elapsed()
    );
}

/// Mounts with the library, checks the path taken, lists the tree and unmounts.
fn mount_and_list(image: &Path, target: &Path, opts: &MountOptions) -> (mount::Mounted, String) {
    let m = mount::mount_image(image, target, opts)
        .unwrap_or_else(|e| panic!("{:?}: {e}", opts.strategy));
    let l = listing(target, u64::MAX).unwrap_or_else(|e| panic!("{:?}: {e}", opts.strategy));
    umount(target);
    (m, l)
}

/// `listing` with its root line's nlink (field 8) checked to be 1 and set to `reference`'s.
fn root_nlink_from(listing: &str, reference: &str) -> String {
    let field = |l: &str| {
        l.lines()
            .next()
            .unwrap()
            .split(' ')
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let (mut root, want) = (field(listing), field(reference));
    assert_eq!(root[7], "1", "merged root: {}", root.join(" "));
    root[7] = want[7].clone();
    let rest: String = listing.lines().skip(1).map(|l| format!("{l}\n")).collect();
    format!("{}\n{rest}", root.join(" "))
}

#[test]
fn every_kernel_path_shows_the_same_tree() {
    if !namespace::enter("every_kernel_path_shows_the_same_tree") {
        return;
    }
    namespace::private_tmp();
    let dir = data_dir();
    let objects = dir.path().join("objects");
    let (tree, expect) = tree_with_objects(&objects);
    let mnt = dir.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let strategies = [
        (Api::Auto, ErofsSource::Auto, OverlayMode::Auto),
        (Api::Auto, ErofsSource::LoopDevice, OverlayMode::Auto),
        (Api::Legacy, ErofsSource::Auto, OverlayMode::Auto),
        (Api::Legacy, ErofsSource::LoopDevice, OverlayMode::Legacy),
        (Api::Auto, ErofsSource::Auto, OverlayMode::Legacy),
        (Api::Auto, ErofsSource::Auto, OverlayMode::LegacyPlainLower),
    ];
    for (n, opts) in [WriteOptions::v1(), WriteOptions::v2()].iter().enumerate() {
        let image = dir.path().join(format!("image{n}.cfs"));
        fs::write(&image, image_bytes(&tree, opts).unwrap()).unwrap();
        let mut reference: Option<String> = None;
        for (erofs_api, erofs_source, overlay) in strategies {
            // Plain lower layers need V1's 256 whiteouts and opaque root to hide the object
            // folders' fan-out; V2 images (composefs-rs) have none, so C's last fallback
            // shows `/00`…`/ff` there. Only V1 images take it.
            if overlay == OverlayMode::LegacyPlainLower && n == 1 {
                continue;
            }
            let strategy = Strategy {
                erofs_api,
                erofs_source,
                overlay,
            };
            let o = MountOptions {
                objdirs: vec![objects.clone()],
                readonly: true,
                strategy,
                ..Default::default()
            };
            let (m, l) = mount_and_list(&image, &mnt, &o);
            // The path forced is the path taken; the default on this kernel is the newest.
            let want_erofs = match erofs_api {
                Api::Auto => ErofsVia::NewApi,
                Api::Legacy => ErofsVia::Legacy,
            };
            assert_eq!(m.erofs, want_erofs, "{strategy:?}");
            assert_eq!(
                m.loop_device.is_some(),
                erofs_source == ErofsSource::LoopDevice,
                "{strategy:?}"
            );
            let want_overlay = match overlay {
                OverlayMode::Auto => OverlayVia::NewApi,
                OverlayMode::Legacy => OverlayVia::LegacyDataOnly,
                OverlayMode::LegacyPlainLower => OverlayVia::LegacyPlainLower,
            };
            assert_eq!(m.overlay, want_overlay, "{strategy:?}");
            for (path, bytes) in &expect {
                use sha2::Digest as _;
                let want = hex::encode(sha2::Sha256::digest(bytes));
                let p = String::from_utf8_lossy(path);
                assert!(
                    l.lines().any(|line| line.starts_with(&format!("{p} f "))
                        && line.split(' ').nth(10) == Some(&want)),
                    "{strategy:?}: {p} does not read back its object"
                );
            }
            // With plain lower layers the root is a merged directory, for which overlayfs
            // reports nlink 1; everything else must be identical.
            let l = if overlay == OverlayMode::LegacyPlainLower {
                root_nlink_from(&l, reference.as_deref().expect("default first"))
            } else {
                l
            };
            match &reference {
                None => reference = Some(l),
                Some(r) => assert_eq!(&l, r, "{strategy:?} shows another tree than the default"),
            }
            assert!(composefs_tmpdirs().is_empty());
        }
    }
    assert!(
        loop_devices_under(dir.path()).is_empty(),
        "{:?}",
        loop_devices_under(dir.path())
    );
}

#[test]
fn verity_upperdir_and_readonly_reach_the_kernel_as_c_sets_them() {
    if !namespace::enter("verity_upperdir_and_readonly_reach_the_kernel_as_c_sets_them") {
        return;
    }
    namespace::private_tmp();
    let dir = data_dir();
    let objects = dir.path().join("objects");
    let (tree, expect) = tree_with_objects(&objects);
    let image = dir.path().join("image.cfs");
    fs::write(&image, image_bytes(&tree, &WriteOptions::v1()).unwrap()).unwrap();
    let mnt = dir.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let external = mnt.join("file0");
    assert!(expect.contains_key(&b"/file0"[..].to_vec()));
    // (verity, overlay path, whether verity=require is on the mount)
    let cases = [
        (Verity::Off, OverlayMode::Auto, false),
        (Verity::Try, OverlayMode::Auto, true),
        (Verity::Require, OverlayMode::Auto, true),
        (Verity::Try, OverlayMode::Legacy, false),
        (Verity::Require, OverlayMode::Legacy, true),
        (Verity::Require, OverlayMode::LegacyPlainLower, true),
    ];
    for (verity, overlay, required) in cases {
        let o = MountOptions {
            objdirs: vec![objects.clone()],
            verity,
            readonly: true,
            strategy: Strategy {
                overlay,
                ..Default::default()
            },
            ..Default::default()
        };
        let m = mount::mount_image(&image, &mnt, &o).unwrap();
        assert_eq!(m.verity_required, required, "{verity:?} {overlay:?}");
        let (opts, fstype, source, sup) = mountinfo(&mnt).unwrap();
        assert_eq!((fstype.as_str(), source.as_str()), ("overlay", "composefs"));
        assert!(opts.starts_with("ro"), "{opts}");
        assert_eq!(
            sup.split(',').any(|s| s == "verity=require"),
            required,
            "{sup}"
        );
        assert!(
            sup.split(',').any(|s| s == "metacopy=on")
                && sup.split(',').any(|s| s == "redirect_dir=on")
        );
        // The objects carry no fs-verity digest: under verity=require they cannot be read.
        let r = fs::read(&external);
        assert_eq!(r.is_err(), required, "{verity:?} {overlay:?}: {r:?}");
        umount(&mnt);
    }
    // upperdir + workdir: a writable mount whose writes land in the upper layer.
    let (upper, work) = (dir.path().join("upper"), dir.path().join("work"));
    fs::create_dir(&upper).unwrap();
    fs::create_dir(&work).unwrap();
    for overlay in [OverlayMode::Auto, OverlayMode::Legacy] {
        let o = MountOptions {
            objdirs: vec![objects.clone()],
            upperdir: Some(upper.clone()),
            workdir: Some(work.clone()),
            strategy: Strategy {
                overlay,
                ..Default::default()
            },
            ..Default::default()
        };
        mount::mount_image(&image, &mnt, &o).unwrap();
        let (opts, _, _, sup) = mountinfo(&mnt).unwrap();
        assert!(opts.starts_with("rw"), "{opts}");
        assert!(
            sup.contains(&format!("upperdir={}", upper.display())),
            "{sup}"
        );
        fs::write(mnt.join("new"), b"written").unwrap();
        umount(&mnt);
        assert_eq!(fs::read(upper.join("new")).unwrap(), b"written");
        fs::remove_file(upper.join("new")).unwrap();
    }
    assert!(composefs_tmpdirs().is_empty());
}

/// Replaces the invoked path (getopt names argv[0] as run) so C's and our outputs compare.
fn normalized(out: &Output, argv0: &Path) -> (Option<i32>, String, String) {
    let fix = |b: &[u8]| String::from_utf8_lossy(b).replace(argv0.to_str().unwrap(), "ARGV0");
    (out.status.code(), fix(&out.stdout), fix(&out.stderr))
}

#[test]
fn bad_command_lines_and_images_fail_like_c() {
    if !namespace::enter("bad_command_lines_and_images_fail_like_c") {
        return;
    }
    namespace::private_tmp();
    let c = Oracle::MountComposefs.get();
    let dir = data_dir();
    let ours = ours(dir.path());
    let d = dir.path();
    let objects = d.join("objects");
    let (tree, _) = tree_with_objects(&objects);
    let img_bytes = image_bytes(&tree, &WriteOptions::v1()).unwrap();
    fs::write(d.join("img"), &img_bytes).unwrap();
    fs::write(d.join("text"), b"hello\n").unwrap();
    fs::write(d.join("empty"), b"").unwrap();
    fs::write(d.join("short"), &img_bytes[..20]).unwrap();
    let mut bad_magic = img_bytes.clone();
    bad_magic[0] ^= 1;
    fs::write(d.join("badmagic"), &bad_magic).unwrap();
    let mut not_erofs = img_bytes.clone();
    not_erofs[1024] ^= 1;
    fs::write(d.join("noterofs"), &not_erofs).unwrap();
    fs::create_dir(d.join("mnt")).unwrap();
    fs::create_dir(d.join("upper")).unwrap();
    fs::create_dir(d.join("work")).unwrap();
    let digest = cfs_erofs::fsverity::digest(cfs_erofs::HashAlgorithm::Sha256, &img_bytes).to_hex();
    let table: Vec<String> = [
        "",
        "-h",
        "-x",
        "-h -x",
        "-x -h",
        "--help",
        "-t",
        "-o",
        "-t ext4 img mnt",
        "-t composefs",
        "img",
        "-o basedir=objects img",
        "img mnt",
        "-o ro img mnt",
        "-o basedir=objects -o ro img mnt",
        "-o basedir img mnt",
        "-o basedir= img mnt",
        "-o basedir=objects: img mnt",
        "-o basedir=:objects img mnt",
        "-o basedir=objects::objects img mnt",
        "-o basedir=objects,noatime img mnt",
        "-o basedir=objects,defaults img mnt",
        "-o basedir=objects, img mnt",
        "-o ,basedir=objects img mnt",
        "-o  img mnt",
        "-o basedir=objects,digest img mnt",
        "-o basedir=objects,upperdir img mnt",
        "-o basedir=objects,workdir img mnt",
        "-o basedir=objects,idmap img mnt",
        "-o basedir=objects,upperdir=upper img mnt",
        "-o basedir=objects,workdir=work img mnt",
        "-o basedir=objects,idmap=nonexistent img mnt",
        "-o basedir=objects,idmap=text img mnt",
        "-o basedir=objects missing mnt",
        "-o basedir=objects,digest=zz missing mnt",
        "-o basedir=objects,digest=zz img mnt",
        "-o basedir=objects,digest=abc img mnt",
        &format!("-o basedir=objects,digest={digest}{digest}00 img mnt"),
        &format!("-o basedir=objects,digest={digest} img mnt"),
        "-o basedir=objects,digest=00 img mnt",
        "-o basedir=objects text mnt",
        "-o basedir=objects empty mnt",
        "-o basedir=objects short mnt",
        "-o basedir=objects badmagic mnt",
        "-o basedir=objects noterofs mnt",
        "-o basedir=objects img nonexistent",
        "-o basedir=objects img text",
        "-o basedir=nonexistent img mnt",
        "-o basedir=objects:nonexistent img mnt",
        "-o basedir=objects,upperdir=nonexistent,workdir=work img mnt",
        "-o basedir=objects,upperdir=upper,workdir=nonexistent img mnt",
        "-o basedir=objects,verity,digest=00 img mnt",
        "-o basedir=objects mnt img",
        "-o basedir=objects . mnt",
        "-o basedir=objects d mnt",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut same = 0;
    for case in &table {
        let args: Vec<&str> = case.split(' ').filter(|a| !a.is_empty()).collect();
        let args: Vec<&str> = if case.contains("-o  ") {
            // `-o ''`: an empty option string.
            let mut a = vec!["-o", ""];
            a.extend(args.iter().skip(1));
            a
        } else {
            args
        };
        let before = mount_count();
        let oc = Command::new(&c)
            .args(&args)
            .current_dir(d)
            .output()
            .unwrap();
        let or = Command::new(&ours)
            .args(&args)
            .current_dir(d)
            .output()
            .unwrap();
        let (nc, nr) = (normalized(&oc, &c), normalized(&or, &ours));
        assert_eq!(
            nr, nc,
            "`mount.composefs {case}`: ours (left) differs from C (right)"
        );
        assert_eq!(mount_count(), before, "`{case}` left a mount behind");
        same += 1;
    }
    assert!(
        composefs_tmpdirs().is_empty(),
        "left behind: {:?}",
        composefs_tmpdirs()
    );
    assert!(loop_devices_under(d).is_empty());
    // Divergence: mount(8)'s helper flags, which C refuses.
    for flag in ["-n", "-v", "-s", "-f"] {
        let args = [flag, "-o", "rw,basedir=objects", "img", "mnt"];
        let oc = Command::new(&c).args(args).current_dir(d).output().unwrap();
        assert_eq!(oc.status.code(), Some(1), "C accepts {flag} now");
        let or = Command::new(&ours)
            .args(args)
            .current_dir(d)
            .output()
            .unwrap();
        assert!(
            or.status.success(),
            "{flag}: {}",
            String::from_utf8_lossy(&or.stderr)
        );
        if flag == "-f" {
            assert!(mountinfo(&d.join("mnt")).is_none(), "-f mounted");
        } else {
            umount(&d.join("mnt"));
        }
    }
    // -s: unknown options are ignored instead of fatal.
    let or = Command::new(&ours)
        .args([
            "-s",
            "-o",
            "ro,noatime,basedir=objects,x-foo=1",
            "img",
            "mnt",
        ])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(
        or.status.success(),
        "{}",
        String::from_utf8_lossy(&or.stderr)
    );
    umount(&d.join("mnt"));
    eprintln!(
        "{same}/{} bad command lines and images: exit code and messages equal to C's",
        table.len()
    );
}

#[test]
fn mount8_runs_our_helper() {
    if !namespace::enter("mount8_runs_our_helper") {
        return;
    }
    namespace::private_tmp();
    let dir = data_dir();
    let objects = dir.path().join("objects");
    let (tree, expect) = tree_with_objects(&objects);
    let image = dir.path().join("image.cfs");
    fs::write(&image, image_bytes(&tree, &WriteOptions::v1()).unwrap()).unwrap();
    let mnt = dir.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    // mount(8) looks for /sbin/mount.TYPE; in this namespace /usr/sbin (where /sbin points on
    // merged-/usr systems, and which mount(8) also searches) holds only ours.
    let sbin = dir.path().join("sbin");
    fs::create_dir(&sbin).unwrap();
    symlink(mkcfs_rs(), sbin.join("mount.composefs")).unwrap();
    for target in ["/usr/sbin", "/sbin"] {
        if fs::symlink_metadata(target).is_ok_and(|m| m.is_dir()) {
            let st = Command::new("mount")
                .args(["--bind", sbin.to_str().unwrap(), target])
                .status()
                .unwrap();
            assert!(st.success());
        }
    }
    let basedir = format!("basedir={}", objects.display());
    for extra in [&[][..], &["-v"], &["-n"], &["-o", "ro"]] {
        let out = Command::new("mount")
            .args(extra)
            .args([
                "-t",
                "composefs",
                image.to_str().unwrap(),
                mnt.to_str().unwrap(),
                "-o",
                &basedir,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mount {extra:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (_, fstype, source, _) = mountinfo(&mnt).expect("mounted");
        assert_eq!((fstype.as_str(), source.as_str()), ("overlay", "composefs"));
        let content = fs::read(mnt.join("file0")).unwrap();
        assert_eq!(&content, &expect[&b"/file0"[..].to_vec()]);
        umount(&mnt);
    }
}

/// One failing mount per kind, through the library.
fn failing_options<'a>(kind: usize, d: &Path) -> (PathBuf, PathBuf, MountOptions<'a>) {
    let objects = d.join("objects");
    let strategies = [
        Strategy::default(),
        Strategy {
            erofs_source: ErofsSource::LoopDevice,
            ..Default::default()
        },
        Strategy {
            erofs_api: Api::Legacy,
            overlay: OverlayMode::Legacy,
            ..Default::default()
        },
    ];
    let mut o = MountOptions {
        objdirs: vec![objects.clone()],
        strategy: strategies[kind / 7 % strategies.len()],
        ..Default::default()
    };
    let (mut image, mut target) = (d.join("img"), d.join("mnt"));
    match kind % 7 {
        0 => o.objdirs = vec![d.join("missing-basedir")],
        1 => image = d.join("badmagic"),
        2 => o.expected_digest = Some("00".repeat(32)),
        3 => target = d.join("missing-mountpoint"),
        4 => image = d.join("noterofs"),
        5 => o.upperdir = Some(d.join("missing-upper")),
        _ => {
            o.upperdir = Some(d.join("missing-upper"));
            o.workdir = Some(d.join("work"));
        }
    }
    (image, target, o)
}

#[test]
fn a_thousand_failed_mounts_leave_nothing_behind() {
    if !namespace::enter("a_thousand_failed_mounts_leave_nothing_behind") {
        return;
    }
    namespace::private_tmp();
    let dir = data_dir();
    let d = dir.path();
    let (tree, _) = tree_with_objects(&d.join("objects"));
    let img = image_bytes(&tree, &WriteOptions::v1()).unwrap();
    fs::write(d.join("img"), &img).unwrap();
    let mut bad = img.clone();
    bad[0] ^= 1;
    fs::write(d.join("badmagic"), &bad).unwrap();
    let mut bad = img.clone();
    bad[1024] ^= 1;
    fs::write(d.join("noterofs"), &bad).unwrap();
    fs::create_dir(d.join("mnt")).unwrap();
    fs::create_dir(d.join("work")).unwrap();
    let mounts = mount_count();
    let mut errnos: BTreeMap<i32, usize> = BTreeMap::new();
    for i in 0..1000 {
        let (image, target, o) = failing_options(i, d);
        let e = mount::mount_image(&image, &target, &o).expect_err("must fail");
        *errnos.entry(e.errno()).or_default() += 1;
        assert_eq!(mount_count(), mounts, "failure {i} ({e}) left a mount");
        assert!(
            composefs_tmpdirs().is_empty(),
            "failure {i} ({e}) left {:?}",
            composefs_tmpdirs()
        );
        let loops = loop_devices_under(d);
        assert!(loops.is_empty(), "failure {i} ({e}) left {loops:?}");
    }
    // The same through the command line, fewer times (a process each).
    let ours = ours(d);
    let cases: [&[&str]; 5] = [
        &["-o", "basedir=missing-basedir", "img", "mnt"],
        &["-o", "basedir=objects", "badmagic", "mnt"],
        &["-o", "basedir=objects,digest=00", "img", "mnt"],
        &["-o", "basedir=objects,noatime", "img", "mnt"],
        &["-o", "basedir=objects", "img", "missing-mountpoint"],
    ];
    for i in 0..100 {
        let out = Command::new(&ours)
            .args(cases[i % cases.len()])
            .current_dir(d)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(mount_count(), mounts);
        assert!(composefs_tmpdirs().is_empty());
        assert!(loop_devices_under(d).is_empty());
    }
    eprintln!(
        "1000 library + 100 command-line failed mounts left nothing behind; errnos {errnos:?}"
    );
}

/// Runs `mkcfs-rs karg mount --store STORE --cmdline FILE TARGET EXTRA…` with `cmdline`.
fn karg_mount(store: &Path, cmdline: &str, target: &Path, extra: &[&str]) -> Output {
    let file = store.with_extension("cmdline");
    fs::write(&file, cmdline).unwrap();
    Command::new(mkcfs_rs())
        .args(["karg", "mount", "--store"])
        .arg(store)
        .arg("--cmdline")
        .arg(&file)
        .arg(target)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn karg_mount_boots_the_first_image_present_and_stops_on_any_other_fault() {
    if !namespace::enter("karg_mount_boots_the_first_image_present_and_stops_on_any_other_fault") {
        return;
    }
    namespace::private_tmp();
    use cfs_erofs::fsverity::digest;
    use cfs_erofs::karg::Karg;
    use cfs_erofs::HashAlgorithm::Sha256;
    let dir = data_dir();
    let store = dir.path().join("store");
    let (tree, expect) = tree_with_objects(&store.join("objects"));
    fs::create_dir_all(store.join("images")).unwrap();
    let put = |bytes: &[u8], name: &str| fs::write(store.join("images").join(name), bytes).unwrap();
    let v1 = image_bytes(&tree, &WriteOptions::v1()).unwrap();
    let v2 = image_bytes(&tree, &WriteOptions::v2()).unwrap();
    let (d1, d2) = (digest(Sha256, &v1), digest(Sha256, &v2));
    put(&v1, &d1.to_hex());
    put(&v2, &d2.to_hex());
    let missing = digest(Sha256, b"no such image");
    let liar = digest(Sha256, b"what the name promises");
    put(&v1, &liar.to_hex());
    let mnt = dir.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let mounts = mount_count();
    let insecure_v1 = |d| Karg::v1(d, true).to_string();
    let file0 = &expect[&b"/file0"[..].to_vec()];

    // The first argument's image is missing: the second boots.
    let cmdline = format!(
        "root=/dev/vda {} init=/sbin/init {}",
        insecure_v1(missing.clone()),
        insecure_v1(d1.clone())
    );
    let out = karg_mount(&store, &cmdline, &mnt, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        insecure_v1(d1.clone())
    );
    let (opts, _, source, sup) = mountinfo(&mnt).expect("mounted");
    assert_eq!(source, "composefs");
    assert!(opts.starts_with("ro"), "{opts}");
    assert!(
        !sup.contains("verity=require"),
        "insecure mounts do not require verity: {sup}"
    );
    assert!(
        sup.contains(&format!("datadir+={}", store.join("objects").display())),
        "{sup}"
    );
    assert_eq!(&fs::read(mnt.join("file0")).unwrap(), file0);
    umount(&mnt);

    // A V2 image through its legacy argument; and a writable root on a tmpfs.
    let out = karg_mount(
        &store,
        &format!("composefs=?{}", d2.to_hex()),
        &mnt,
        &["--tmpfs"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(&fs::read(mnt.join("file0")).unwrap(), file0);
    fs::write(mnt.join("new"), b"x").unwrap();
    assert!(mountinfo(&mnt).unwrap().0.starts_with("rw"));
    umount(&mnt);
    assert!(composefs_tmpdirs().is_empty(), "{:?}", composefs_tmpdirs());
    // … or on given directories.
    let (upper, work) = (dir.path().join("upper"), dir.path().join("work"));
    fs::create_dir(&upper).unwrap();
    fs::create_dir(&work).unwrap();
    let (u, w) = (upper.to_str().unwrap(), work.to_str().unwrap());
    let out = karg_mount(
        &store,
        &insecure_v1(d1.clone()),
        &mnt,
        &["--upperdir", u, "--workdir", w],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    fs::write(mnt.join("new"), b"kept").unwrap();
    umount(&mnt);
    assert_eq!(fs::read(upper.join("new")).unwrap(), b"kept");

    // Faults after the pick stop the boot, naming the argument; nothing is mounted and the
    // next argument is never tried.
    let v2_as_v1 = insecure_v1(d2.clone());
    let v1_as_v2 = format!("composefs=?{}", d1.to_hex());
    let secure = Karg::v1(d1.clone(), false).to_string();
    let cases: Vec<(String, String, &str)> = vec![
        // An image whose content does not measure to its name.
        (
            format!("{} {}", insecure_v1(liar.clone()), insecure_v1(d1.clone())),
            insecure_v1(liar.clone()),
            "digest mismatch",
        ),
        // Layouts that contradict the argument.
        (
            format!("{v2_as_v1} {}", insecure_v1(d1.clone())),
            v2_as_v1.clone(),
            "is a V2",
        ),
        (v1_as_v2.clone(), v1_as_v2.clone(), "is a V1"),
        // A secure argument needs the image's kernel fs-verity digest, which this host cannot
        // give (no CONFIG_FS_VERITY; a file on it cannot carry one): refused before mounting.
        (
            format!("{secure} {}", insecure_v1(d1.clone())),
            secure.clone(),
            "no fs-verity digest",
        ),
        // Nothing present at all.
        (
            insecure_v1(missing.clone()),
            String::new(),
            "no composefs image found",
        ),
        (
            String::from("root=/dev/vda"),
            String::new(),
            "no composefs argument",
        ),
    ];
    for (cmdline, arg, why) in &cases {
        let out = karg_mount(&store, cmdline, &mnt, &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "`{cmdline}` must fail: {err}");
        assert!(
            err.contains(arg.as_str()) && err.contains(why),
            "`{cmdline}`: {err}"
        );
        assert!(out.stdout.is_empty());
        assert_eq!(mount_count(), mounts, "`{cmdline}` left a mount");
        assert!(composefs_tmpdirs().is_empty());
    }
    // A failing mount (missing mountpoint) names the argument too.
    let out = karg_mount(
        &store,
        &insecure_v1(d1.clone()),
        &dir.path().join("nowhere"),
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains(&insecure_v1(d1.clone()))
            && err.contains("No such file"),
        "{err}"
    );
    assert_eq!(mount_count(), mounts);
}
