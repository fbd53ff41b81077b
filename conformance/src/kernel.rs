//! The Linux kernel as the reader of record: mount an image (EROFS, then composefs-style
//! overlayfs over an object folder) in a private mount namespace and list what it shows.
//!
//! [`expected_erofs_view`] restates, independently of the writer's code, what the kernel must
//! show for a tree written in each layout: the overlay escaping, the metacopy and redirect
//! xattrs, V1's whiteout rewriting, root opaque xattr and 256 stubs.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use cfs_erofs::fsverity;
use cfs_erofs::tree::{FileData, FileType, HashAlgorithm, Inode, InodeId, InodeKind, Mtime, Tree};
use cfs_erofs::write::{image_bytes, WriteOptions};

use crate::walk::Entry;

/// Whether this machine can mount images: root, erofs and overlay in the kernel, `unshare`.
/// Outside CI a test may skip when this is false; in CI (`CI=true`) it must not.
pub fn can_mount() -> Result<(), String> {
    let fs = std::fs::read_to_string("/proc/filesystems").map_err(|e| e.to_string())?;
    if !fs.lines().any(|l| l.trim_end().ends_with("erofs")) {
        return Err("the kernel has no erofs".into());
    }
    if !fs.lines().any(|l| l.trim_end().ends_with("overlay")) {
        return Err("the kernel has no overlayfs".into());
    }
    if !rustix::process::geteuid().is_root() {
        return Err("not root".into());
    }
    Ok(())
}

/// `true` when a mount test may run. In CI (`CI=true`) a machine that cannot mount fails the
/// test instead; elsewhere the test says why it skips.
pub fn mountable() -> bool {
    match can_mount() {
        Ok(()) => true,
        Err(why) if std::env::var_os("CI").is_some_and(|v| v == "true") => {
            panic!("mount tests must run in CI, but this machine cannot mount: {why}")
        }
        Err(why) => {
            eprintln!("skipping mount test: {why}");
            false
        }
    }
}

/// Mounts `image` read-only in a private mount namespace and walks it with the suite's walker
/// binary (`conformance walk`). With `objects`, mounts overlayfs on top (image as lower layer,
/// objects as data-only layer) and walks that instead, reading every regular file.
pub fn mount_and_walk(
    walker: &Path,
    image: &Path,
    objects: Option<&Path>,
) -> Result<String, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let lower = dir.path().join("lower");
    let top = dir.path().join("top");
    std::fs::create_dir(&lower)
        .and_then(|_| std::fs::create_dir(&top))
        .map_err(|e| e.to_string())?;
    let q = |p: &Path| format!("'{}'", p.display());
    let script = match objects {
        None => format!(
            "mount -t erofs -o ro,loop {img} {lower} && exec {walker} walk {lower}",
            img = q(image),
            lower = q(&lower),
            walker = q(walker)
        ),
        Some(obj) => format!(
            "mount -t erofs -o ro,loop {img} {lower} && \
             mount -t overlay overlay -o ro,metacopy=on,redirect_dir=on,lowerdir={lowerp}::{objp} {top} && \
             exec {walker} walk --content {top}",
            img = q(image),
            lower = q(&lower),
            lowerp = lower.display(),
            objp = obj.display(),
            top = q(&top),
            walker = q(walker)
        ),
    };
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .map_err(|e| format!("unshare: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "mounting {} failed: {}",
            image.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    String::from_utf8(out.stdout).map_err(|e| e.to_string())
}

const OVERLAY: &[u8] = b"trusted.overlay.";
const OVERLAY_ESCAPED: &[u8] = b"trusted.overlay.overlay.";

/// Namespaces the kernel lists as stored. EROFS lists no xattr outside a namespace it has a
/// handler for (`lustre.*`, bare names), and the walker leaves out `system.*`.
const LISTED: [&[u8]; 3] = [b"user.", b"trusted.", b"security."];

fn escape_xattrs(inode: &Inode) -> Vec<(Vec<u8>, Vec<u8>)> {
    inode
        .xattrs
        .iter()
        .filter(|x| {
            LISTED.iter().any(|p| x.name.starts_with(p))
                && !crate::walk::kernel_interpreted(&x.name)
        })
        .map(|x| {
            let name = match x.name.strip_prefix(OVERLAY) {
                Some(rest) => [OVERLAY_ESCAPED, rest].concat(),
                None => x.name.to_vec(),
            };
            (name, x.value.to_vec())
        })
        .collect()
}

fn set(xattrs: &mut Vec<(Vec<u8>, Vec<u8>)>, name: &[u8], value: &[u8]) {
    match xattrs.iter_mut().find(|(n, _)| n == name) {
        Some(x) => x.1 = value.to_vec(),
        None => xattrs.push((name.to_vec(), value.to_vec())),
    }
}

fn is_whiteout(inode: &Inode) -> bool {
    matches!(inode.kind, InodeKind::CharDevice(0))
}

/// The layout whose kernel view to predict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// V1 with the final composefs_version (0 or 1, after the upgrade rule).
    V1 {
        composefs_version: u32,
    },
    V2,
}

/// What the kernel should list for `tree` written in `layout` and mounted as bare EROFS.
/// Regular file contents are predicted for inline files only.
pub fn expected_erofs_view(tree: &Tree, layout: Layout) -> Vec<Entry> {
    let v1 = matches!(layout, Layout::V1 { .. });
    let refs = tree.reference_counts();
    let mut out = Vec::new();
    let mut pending: Vec<(Vec<u8>, InodeId)> = vec![(b"/".to_vec(), InodeId::ROOT)];
    while let Some((path, id)) = pending.pop() {
        let inode = tree.inode(id);
        let mut e = entry_for(tree, inode, &path, layout, refs[id.index()]);
        if let Some(dir) = inode.as_dir() {
            for c in dir.entries() {
                let mut p = path.clone();
                if p.len() > 1 {
                    p.push(b'/');
                }
                p.extend_from_slice(&c.name);
                pending.push((p, c.inode));
            }
            if v1
                && dir
                    .entries()
                    .iter()
                    .any(|c| is_whiteout(tree.inode(c.inode)))
            {
                set(&mut e.xattrs, b"trusted.overlay.overlay.whiteouts", b"");
                set(&mut e.xattrs, b"user.overlay.whiteouts", b"");
                if layout
                    == (Layout::V1 {
                        composefs_version: 1,
                    })
                {
                    set(&mut e.xattrs, b"trusted.overlay.overlay.opaque", b"x");
                    set(&mut e.xattrs, b"user.overlay.opaque", b"x");
                }
            }
            if v1 && id == InodeId::ROOT {
                set(&mut e.xattrs, b"trusted.overlay.opaque", b"y");
                out.extend(stubs(inode));
            }
        }
        e.xattrs.sort();
        out.push(e);
    }
    out.sort_by(|a, b| path_key(&a.path).cmp(&path_key(&b.path)));
    out
}

/// V1's 256 whiteout stubs `00`…`ff` in the root, except names the root already has.
fn stubs(root: &Inode) -> impl Iterator<Item = Entry> + '_ {
    let dir = root.as_dir().expect("root is a directory");
    (0..=255u8)
        .map(|i| format!("{i:02x}").into_bytes())
        .filter(|n| dir.get(n).is_none())
        .map(|name| {
            let xattrs = root
                .xattr(b"security.selinux")
                .map(|v| vec![(b"security.selinux".to_vec(), v.to_vec())])
                .unwrap_or_default();
            Entry {
                path: [b"/".as_slice(), &name].concat(),
                kind: 'c',
                perm: 0o644,
                uid: root.uid,
                gid: root.gid,
                size: Some(0),
                mtime: (root.mtime.sec, root.mtime.nsec),
                nlink: 1,
                rdev: 0,
                target: Vec::new(),
                content: None,
                xattrs,
            }
        })
}

/// Sort key giving depth-first order by components.
fn path_key(p: &[u8]) -> Vec<&[u8]> {
    p.split(|&b| b == b'/').filter(|c| !c.is_empty()).collect()
}

fn entry_for(tree: &Tree, inode: &Inode, path: &[u8], layout: Layout, refs: u32) -> Entry {
    let v1 = matches!(layout, Layout::V1 { .. });
    let mut xattrs = escape_xattrs(inode);
    let mut kind = match inode.file_type() {
        FileType::Directory => 'd',
        FileType::Regular => 'f',
        FileType::Symlink => 'l',
        FileType::CharDevice => 'c',
        FileType::BlockDevice => 'b',
        FileType::Fifo => 'p',
        FileType::Socket => 's',
    };
    let mut size = match &inode.kind {
        InodeKind::Directory(_) => None,
        InodeKind::Regular(_) => Some(inode.size),
        InodeKind::Symlink(t) => Some(t.len() as u64),
        _ => Some(0),
    };
    let mut content = None;
    let mut target = Vec::new();
    match &inode.kind {
        InodeKind::Regular(FileData::Inline(c)) => {
            use sha2::Digest as _;
            content = Some(sha2::Sha256::digest(c).into());
        }
        InodeKind::Regular(FileData::External { payload, digest }) if inode.size > 0 => {
            let mut meta = Vec::new();
            if let Some(d) = digest {
                let len = 4 + d.as_bytes().len();
                meta.extend_from_slice(&[0, len as u8, 0, d.algorithm().fsverity_id()]);
                meta.extend_from_slice(d.as_bytes());
            }
            set(&mut xattrs, b"trusted.overlay.metacopy", &meta);
            match (payload.as_deref().filter(|p| !p.is_empty()), digest) {
                (Some(p), _) => set(
                    &mut xattrs,
                    b"trusted.overlay.redirect",
                    &[b"/", p].concat(),
                ),
                // composefs-rs names the object by its digest when there is no payload.
                (None, Some(d)) if !v1 => {
                    let path = format!("/{}", d.object_path());
                    set(&mut xattrs, b"trusted.overlay.redirect", path.as_bytes())
                }
                _ => {}
            }
        }
        InodeKind::Symlink(t) => target = t.to_vec(),
        _ => {}
    }
    if v1 && is_whiteout(inode) {
        kind = 'f';
        size = Some(0);
        set(&mut xattrs, b"trusted.overlay.overlay.whiteout", b"");
        set(&mut xattrs, b"user.overlay.whiteout", b"");
        use sha2::Digest as _;
        content = Some(sha2::Sha256::digest(b"").into());
    }
    if kind != 'f' && kind != 'd' {
        for (name, value) in &mut xattrs {
            if name.starts_with(b"user.") {
                *value = crate::walk::UNREADABLE.to_vec();
            }
        }
    }
    let nlink = match &inode.kind {
        InodeKind::Directory(d) => {
            2 + d
                .entries()
                .iter()
                .filter(|c| !c.link && tree.inode(c.inode).is_dir())
                .count() as u64
        }
        // C keeps the source's link count; composefs-rs counts the names in the tree.
        _ if v1 => u64::from(inode.nlink),
        _ => u64::from(refs),
    };
    let mtime = if v1 {
        (inode.mtime.sec, inode.mtime.nsec)
    } else {
        (inode.mtime.sec, 0)
    };
    Entry {
        path: path.to_vec(),
        kind,
        perm: u32::from(inode.permissions),
        uid: inode.uid,
        gid: inode.gid,
        size,
        mtime,
        nlink,
        rdev: if kind == 'f' { 0 } else { inode.rdev() },
        target,
        content,
        xattrs,
    }
}

/// [`tree_with_objects`] with its objects in `dir/objects`, written as a V1 image at
/// `dir/image.cfs`: what most mount tests start from. Returns the image, the object folder and
/// the expected bytes of every regular file by path.
pub fn v1_image_with_objects(dir: &Path) -> (PathBuf, PathBuf, BTreeMap<Vec<u8>, Vec<u8>>) {
    let objects = dir.join("objects");
    let (tree, expect) = tree_with_objects(&objects);
    let image = dir.join("image.cfs");
    let bytes = image_bytes(&tree, &WriteOptions::v1()).expect("the fixture tree writes");
    fs::write(&image, bytes).unwrap_or_else(|e| panic!("{}: {e}", image.display()));
    (image, objects, expect)
}

/// A tree whose external files have real objects, in an object folder laid out as composefs
/// expects (`XX/rest`), plus the expected bytes of every regular file by path.
pub fn tree_with_objects(objects: &Path) -> (Tree, BTreeMap<Vec<u8>, Vec<u8>>) {
    let mut root = Inode::directory(0o755);
    root.set_xattr(b"security.selinux", b"system_u:object_r:root_t:s0");
    let mut tree = Tree::new(root);
    let mut expect = BTreeMap::new();
    let sub = tree
        .add(InodeId::ROOT, b"sub", Inode::directory(0o700))
        .unwrap();
    let sizes = [1usize, 64, 65, 4095, 4096, 4097, 70_000, 1 << 20];
    for (k, size) in sizes.iter().enumerate() {
        let content: Vec<u8> = (0..*size).map(|i| (i * 31 + k * 7) as u8).collect();
        let digest = fsverity::digest(HashAlgorithm::Sha256, &content);
        let payload = digest.object_path();
        let obj = objects.join(&payload);
        fs::create_dir_all(obj.parent().unwrap()).unwrap();
        fs::write(&obj, &content).unwrap();
        let mut inode = Inode::new(
            InodeKind::Regular(FileData::External {
                payload: Some(payload.into_bytes().into()),
                digest: Some(digest),
            }),
            0o644,
        );
        inode.size = *size as u64;
        inode.mtime = Mtime::new(1_700_000_000 + k as i64, 123);
        let name = format!("file{k}");
        let parent = if k % 2 == 0 { InodeId::ROOT } else { sub };
        tree.add(parent, name.as_bytes(), inode).unwrap();
        let path = if k % 2 == 0 {
            format!("/{name}")
        } else {
            format!("/sub/{name}")
        };
        expect.insert(path.into_bytes(), content);
    }
    let inline = Inode::new(
        InodeKind::Regular(FileData::Inline(b"inline bytes"[..].into())),
        0o600,
    );
    tree.add(InodeId::ROOT, b"inline", inline).unwrap();
    expect.insert(b"/inline".to_vec(), b"inline bytes".to_vec());
    let mut whiteout = Inode::new(InodeKind::CharDevice(0), 0o644);
    whiteout.size = 0;
    tree.add(sub, b"gone", whiteout).unwrap();
    (tree, expect)
}
