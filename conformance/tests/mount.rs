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
//! - a thousand failed mounts leave no mount, loop device or temporary directory behind;
//! - ID-mapped mounts shift owners as C's do.
//!
//! The command line against C's (bad command lines, mount(8) as the caller) is in
//! mount_cli.rs, the boot mount (`mkcfs-rs karg mount`) in karg_mount.rs.
//!
//! This host has no fs-verity, so `digest=` always ends in "Image has no fs-verity" (C says the
//! same) and object reads under `verity=require` fail with EIO; the virtual-machine tests
//! check enforcement.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cfs_erofs::dumpfile::{parse_bytes, ParseOptions};
use cfs_erofs::mount::{
    self, Api, ErofsSource, ErofsVia, MountOptions, OverlayMode, OverlayVia, Strategy, Verity,
};
use cfs_erofs::tree::{FileData, InodeKind, Tree};
use cfs_erofs::write::{image_bytes, WriteOptions};
use conformance::kernel::{tree_with_objects, v1_image_with_objects};
use conformance::namespace::{
    self, composefs_tmpdirs, data_dir, loop_devices_under, mount_count, mountinfo, umount,
};
use conformance::oracle::{mkcfs_rs_as, Oracle};
use conformance::vectors::{self, Manifest};
use conformance::walk;

/// Files up to this size get an object with content and are read through the mount.
const READ_LIMIT: u64 = 64 * 1024;

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
    let ours = mkcfs_rs_as(dir.path(), "mount.composefs");
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
    let (image, objects, expect) = v1_image_with_objects(dir.path());
    let mnt = dir.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let external = mnt.join("file0");
    assert!(expect.contains_key(&b"/file0"[..]));
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
    // image_mountdir: EROFS goes there instead of a temporary directory, is detached after the
    // overlay is up, and the caller's directory stays.
    let own = dir.path().join("erofs-here");
    fs::create_dir(&own).unwrap();
    let o = MountOptions {
        objdirs: vec![objects.clone()],
        image_mountdir: Some(own.clone()),
        ..Default::default()
    };
    mount::mount_image(&image, &mnt, &o).unwrap();
    assert!(
        own.is_dir() && mountinfo(&own).is_none(),
        "EROFS still on {}",
        own.display()
    );
    assert!(fs::read_dir(&own).unwrap().next().is_none());
    assert!(mountinfo(&mnt)
        .unwrap()
        .3
        .contains(&format!("lowerdir+={}", own.display())));
    umount(&mnt);
    // An image whose EROFS superblock is broken: C removes the caller's directory then.
    let mut broken = fs::read(&image).unwrap();
    broken[1024] ^= 1;
    let broken_image = dir.path().join("broken.cfs");
    fs::write(&broken_image, broken).unwrap();
    let o = MountOptions {
        objdirs: vec![objects.clone()],
        image_mountdir: Some(own.clone()),
        ..Default::default()
    };
    mount::mount_image(&broken_image, &mnt, &o).unwrap_err();
    assert!(
        own.is_dir(),
        "a failed EROFS mount removed the caller's image_mountdir"
    );

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
    let ours = mkcfs_rs_as(d, "mount.composefs");
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

#[test]
fn idmap_shifts_owners_like_c() {
    if !namespace::enter("idmap_shifts_owners_like_c") {
        return;
    }
    namespace::private_tmp();
    let dir = data_dir();
    let (image, objects, _) = v1_image_with_objects(dir.path());
    let (mnt_c, mnt_r) = (dir.path().join("c"), dir.path().join("r"));
    fs::create_dir(&mnt_c).unwrap();
    fs::create_dir(&mnt_r).unwrap();
    // A user namespace mapping 0…65535 inside to 1000… outside, kept alive by a sleeper.
    // (root writes the maps itself: unshare's --map-users needs newuidmap from `uidmap`).
    let mut holder = Command::new("unshare")
        .args(["--user", "sleep", "60"])
        .spawn()
        .unwrap();
    let pid = holder.id();
    let userns = format!("/proc/{pid}/ns/user");
    let own = fs::read_link("/proc/self/ns/user").unwrap();
    for _ in 0..500 {
        if fs::read_link(&userns).is_ok_and(|ns| ns != own) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    for map in ["uid_map", "gid_map"] {
        fs::write(format!("/proc/{pid}/{map}"), "0 1000 65536\n").unwrap();
    }
    let opt = format!("basedir={},idmap={userns}", objects.display());
    let ours = mkcfs_rs_as(dir.path(), "mount.composefs");
    let c = Oracle::MountComposefs.get();
    let oc = run(
        &c,
        &["-o", &opt, image.to_str().unwrap(), mnt_c.to_str().unwrap()],
    );
    let or = run(
        &ours,
        &["-o", &opt, image.to_str().unwrap(), mnt_r.to_str().unwrap()],
    );
    let _ = holder.kill();
    let _ = holder.wait();
    assert!(
        oc.status.success(),
        "C: {}",
        String::from_utf8_lossy(&oc.stderr)
    );
    assert!(
        or.status.success(),
        "ours: {}",
        String::from_utf8_lossy(&or.stderr)
    );
    let (lc, lr) = (
        listing(&mnt_c, u64::MAX).unwrap(),
        listing(&mnt_r, u64::MAX).unwrap(),
    );
    assert_eq!(lr, lc);
    for line in lr.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        assert_eq!((f[3], f[4]), ("1000", "1000"), "not shifted: {line}");
    }
    umount(&mnt_c);
    umount(&mnt_r);
    // The legacy EROFS path cannot ID-map (C: ENOTSUP).
    let f = fs::File::open("/proc/self/ns/user").unwrap();
    let o = MountOptions {
        objdirs: vec![objects.clone()],
        idmap: Some(std::os::fd::AsFd::as_fd(&f)),
        strategy: Strategy {
            erofs_api: Api::Legacy,
            ..Default::default()
        },
        ..Default::default()
    };
    let e = mount::mount_image(&image, &mnt_r, &o).unwrap_err();
    assert_eq!(e.errno(), libc_enotsup(), "{e}");
    assert!(composefs_tmpdirs().is_empty());
}

/// ENOTSUP (= EOPNOTSUPP on Linux).
fn libc_enotsup() -> i32 {
    rustix::io::Errno::NOTSUP.raw_os_error()
}
