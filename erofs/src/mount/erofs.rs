//! The private EROFS mount of a composefs image (C's `lcfs_mount_erofs` and its loop-device
//! fallback), held by a guard that detaches it and removes its directory when dropped.
//!
//! The image is mounted read-only from `/proc/self/fd/N`, with `noacl` unless the image says it
//! carries ACLs. File-backed EROFS (6.12+) takes the file directly; an older kernel answers
//! ENOTBLK and gets a loop device (`LOOP_CONFIGURE`: read-only, direct I/O, autoclear, 4096-byte
//! blocks). The loop device's fd is closed right after the mount attempt: autoclear then frees
//! the device when the last user (the mount, or nobody if the mount failed) lets go.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};

use rustix::fs::CWD;
use rustix::io::Errno;
use rustix::mount::{
    fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, move_mount, unmount,
    FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MoveMountFlags, UnmountFlags,
};

use super::{is_errno, Api, ErofsSource, ErofsVia, MountError, MountOptions, TMPDIR_PREFIX};
use crate::sys;

/// The loop device's logical block size: the EROFS block size.
const LOOP_BLOCK_SIZE: u32 = 4096;

/// A directory created for the EROFS mount; removed (never recursively) when dropped.
struct TempDir(PathBuf);

impl TempDir {
    /// `mkdtemp("/tmp/.composefs.XXXXXX")`: mode 0700, six random characters.
    fn create() -> Result<TempDir, MountError> {
        let (parent, prefix) = TMPDIR_PREFIX.rsplit_once('/').expect("prefix has a folder");
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .rand_bytes(6)
            .tempdir_in(parent)
            .map_err(|e| MountError::os(format!("mkdtemp {TMPDIR_PREFIX}XXXXXX"), e))?;
        Ok(TempDir(dir.keep()))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// The EROFS layer, mounted at a private directory. Dropping it detaches the mount
/// (`umount2(MNT_DETACH)`: an overlay on top keeps it alive) and then removes the directory if
/// it was created for it.
pub struct PrivateErofs {
    dir: PathBuf,
    via: ErofsVia,
    loop_device: Option<u32>,
    // Declared last: dropped after `drop` below has detached the mount.
    _created: Option<TempDir>,
}

impl PrivateErofs {
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn via(&self) -> ErofsVia {
        self.via
    }
    pub fn loop_device(&self) -> Option<u32> {
        self.loop_device
    }
}

impl Drop for PrivateErofs {
    fn drop(&mut self) {
        let _ = unmount(&self.dir, UnmountFlags::DETACH);
    }
}

/// Mounts the image open on `image` read-only at `opts.image_mountdir` or a fresh temporary
/// directory, following `opts.strategy` and C's fallbacks.
pub fn mount_private(
    image: BorrowedFd,
    has_acl: bool,
    opts: &MountOptions,
) -> Result<PrivateErofs, MountError> {
    let created = match &opts.image_mountdir {
        Some(_) => None,
        None => Some(TempDir::create()?),
    };
    let dir = match (&opts.image_mountdir, &created) {
        (Some(d), _) => d.clone(),
        (None, Some(t)) => t.0.clone(),
        (None, None) => unreachable!("one of the two is set"),
    };
    let source = PathBuf::from(format!("/proc/self/fd/{}", image.as_raw_fd()));
    let file_backed = match opts.strategy.erofs_source {
        ErofsSource::Auto => Some(mount_erofs(&source, &dir, has_acl, opts)),
        ErofsSource::LoopDevice => None,
    };
    let (via, loop_device) = match file_backed {
        Some(Ok(via)) => (via, None),
        Some(Err(e)) if !is_enotblk(&e) => return Err(e),
        _ => {
            let (n, device) = attach_loop(image)?;
            let via = mount_erofs(&PathBuf::from(format!("/dev/loop{n}")), &dir, has_acl, opts)?;
            // The mount holds the device now; closing our fd lets autoclear free it at unmount.
            drop(device);
            (via, Some(n))
        }
    };
    Ok(PrivateErofs {
        dir,
        via,
        loop_device,
        _created: created,
    })
}

fn is_enotblk(e: &MountError) -> bool {
    matches!(e, MountError::Os { source, .. } if is_errno(source, Errno::NOTBLK))
}

/// One EROFS mount attempt from `source` (the image's `/proc/self/fd/N`, or a loop device).
fn mount_erofs(
    source: &Path,
    target: &Path,
    has_acl: bool,
    opts: &MountOptions,
) -> Result<ErofsVia, MountError> {
    if opts.strategy.erofs_api == Api::Auto {
        match mount_erofs_new_api(source, target, has_acl, opts) {
            Err(NewApi::Unavailable) => {}
            Err(NewApi::Failed(e)) => return Err(e),
            Ok(()) => return Ok(ErofsVia::NewApi),
        }
    }
    if opts.idmap.is_some() {
        return Err(MountError::IdmapNeedsNewApi);
    }
    let data = (!has_acl).then_some(c"noacl");
    rustix::mount::mount(source, target, "erofs", MountFlags::RDONLY, data).map_err(|e| {
        MountError::os(
            format!("mount erofs {} on {}", source.display(), target.display()),
            e,
        )
    })?;
    Ok(ErofsVia::Legacy)
}

enum NewApi {
    /// fsopen answered ENOSYS.
    Unavailable,
    Failed(MountError),
}

fn mount_erofs_new_api(
    source: &Path,
    target: &Path,
    has_acl: bool,
    opts: &MountOptions,
) -> Result<(), NewApi> {
    let fs = match fsopen("erofs", FsOpenFlags::FSOPEN_CLOEXEC) {
        Ok(fd) => fd,
        Err(Errno::NOSYS) => return Err(NewApi::Unavailable),
        Err(e) => return Err(NewApi::Failed(MountError::os("fsopen erofs", e))),
    };
    let step = |what: String| move |e: Errno| NewApi::Failed(MountError::os(what, e));
    fsconfig_set_string(&fs, "source", source)
        .map_err(step(format!("erofs: fsconfig source={}", source.display())))?;
    fsconfig_set_flag(&fs, "ro").map_err(step("erofs: fsconfig ro".into()))?;
    if !has_acl {
        fsconfig_set_flag(&fs, "noacl").map_err(step("erofs: fsconfig noacl".into()))?;
    }
    fsconfig_create(&fs).map_err(step(format!("erofs: mounting {}", source.display())))?;
    let mnt = fsmount(
        &fs,
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::MOUNT_ATTR_RDONLY,
    )
    .map_err(step("erofs: fsmount".into()))?;
    if let Some(userns) = opts.idmap {
        sys::mount_setattr_idmap(mnt.as_fd(), userns).map_err(|e| {
            NewApi::Failed(MountError::os("erofs: mount_setattr MOUNT_ATTR_IDMAP", e))
        })?;
    }
    move_mount(
        &mnt,
        "",
        CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(step(format!("erofs: move_mount to {}", target.display())))?;
    Ok(())
}

/// Reserves a free loop device and backs it by the image: read-only, direct I/O, autoclear,
/// 4096-byte blocks. Returns its number and its open fd (closing the fd before a mount uses the
/// device frees it again).
fn attach_loop(image: BorrowedFd) -> Result<(u32, File), MountError> {
    let rw = |p: &str| OpenOptions::new().read(true).write(true).open(p);
    let control =
        rw("/dev/loop-control").map_err(|e| MountError::os("open /dev/loop-control", e))?;
    let n = sys::loop_ctl_get_free(control.as_fd())
        .map_err(|e| MountError::os("LOOP_CTL_GET_FREE", e))?;
    drop(control);
    let path = format!("/dev/loop{n}");
    let device = rw(&path).map_err(|e| MountError::os(format!("open {path}"), e))?;
    sys::loop_configure(
        device.as_fd(),
        image,
        sys::LO_FLAGS_READ_ONLY | sys::LO_FLAGS_DIRECT_IO | sys::LO_FLAGS_AUTOCLEAR,
        LOOP_BLOCK_SIZE,
    )
    .map_err(|e: io::Error| MountError::os(format!("LOOP_CONFIGURE {path}"), e))?;
    Ok((n, device))
}
