//! `lcfs_mount_image` / `lcfs_mount_fd`: C's options struct mapped onto
//! [`cfs_erofs::mount::MountOptions`], whose sequence, fallbacks and errno values follow C's
//! `lcfs_mount_fd` step by step.

use std::ffi::{c_char, c_int, c_void, CStr, OsStr};
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use cfs_erofs::mount::{self, MountOptions, Verity};

use crate::node::{Errno, Res};

/// `struct lcfs_mount_options_s` (104 bytes).
#[repr(C)]
pub struct MountOptionsC {
    pub objdirs: *const *const c_char,
    pub n_objdirs: usize,
    pub workdir: *const c_char,
    pub upperdir: *const c_char,
    pub expected_fsverity_digest: *const c_char,
    pub flags: u32,
    pub idmap_fd: c_int,
    pub image_mountdir: *const c_char,
    pub reserved: [u32; 4],
    pub reserved2: [*mut c_void; 4],
}

const REQUIRE_VERITY: u32 = 1;
const READONLY: u32 = 2;
const IDMAP: u32 = 8;
const TRY_VERITY: u32 = 16;
const FLAGS_MASK: u32 = 31;

const EINVAL: Errno = Errno(libc::EINVAL);

/// A C string argument as a path.
///
/// # Safety
/// `s` is NULL or a NUL-terminated string valid for the call.
unsafe fn path(s: *const c_char) -> Option<PathBuf> {
    // SAFETY: per the function's contract.
    (!s.is_null())
        .then(|| PathBuf::from(OsStr::from_bytes(unsafe { CStr::from_ptr(s) }.to_bytes())))
}

/// C's options as the mount module's; unknown flags and IDMAP without an fd are EINVAL (the
/// rest of C's validation is the module's).
///
/// # Safety
/// `o` is NULL or the caller's options struct, with `n_objdirs` valid strings in `objdirs`.
unsafe fn options<'a>(o: *const MountOptionsC) -> Res<MountOptions<'a>> {
    // SAFETY: per the function's contract.
    let o = unsafe { o.as_ref() }.ok_or(EINVAL)?;
    if o.flags & !FLAGS_MASK != 0 || (o.flags & IDMAP != 0 && o.idmap_fd < 0) {
        return Err(EINVAL);
    }
    if o.n_objdirs > 0 && o.objdirs.is_null() {
        return Err(EINVAL);
    }
    let mut objdirs = Vec::with_capacity(o.n_objdirs);
    for i in 0..o.n_objdirs {
        // SAFETY: `objdirs` holds `n_objdirs` strings (contract); a NULL one is EINVAL.
        objdirs.push(unsafe { path(*o.objdirs.add(i)) }.ok_or(EINVAL)?);
    }
    let verity = if o.flags & REQUIRE_VERITY != 0 {
        Verity::Require
    } else if o.flags & TRY_VERITY != 0 {
        Verity::Try
    } else {
        Verity::Off
    };
    // SAFETY: the string fields are NULL or C strings (contract).
    let (upperdir, workdir, image_mountdir, digest) = unsafe {
        (
            path(o.upperdir),
            path(o.workdir),
            path(o.image_mountdir),
            path(o.expected_fsverity_digest),
        )
    };
    Ok(MountOptions {
        objdirs,
        upperdir,
        workdir,
        expected_digest: digest.map(|d| d.to_string_lossy().into_owned()),
        verity,
        readonly: o.flags & READONLY != 0,
        // SAFETY: the caller's user-namespace fd, open for the duration of the call.
        idmap: (o.flags & IDMAP != 0).then(|| unsafe { BorrowedFd::borrow_raw(o.idmap_fd) }),
        image_mountdir,
        strategy: Default::default(),
    })
}

/// # Safety
/// C's contract (lcfs-mount.h): `image` and `mountpoint` are C strings, `opts` points at a
/// filled options struct.
#[no_mangle]
pub unsafe extern "C" fn lcfs_mount_image(
    image: *const c_char,
    mountpoint: *const c_char,
    opts: *mut MountOptionsC,
) -> c_int {
    crate::guard(-1, || {
        // SAFETY: see `path` and `options`.
        let (image, target) =
            unsafe { (path(image).ok_or(EINVAL)?, path(mountpoint).ok_or(EINVAL)?) };
        let opts = unsafe { options(opts) }?;
        mount::mount_image(&image, &target, &opts).map_err(|e| Errno(e.errno()))?;
        Ok(0)
    })
}

/// # Safety
/// As [`lcfs_mount_image`], with `fd` an open image file.
#[no_mangle]
pub unsafe extern "C" fn lcfs_mount_fd(
    fd: c_int,
    mountpoint: *const c_char,
    opts: *mut MountOptionsC,
) -> c_int {
    crate::guard(-1, || {
        // SAFETY: see `path` and `options`.
        let target = unsafe { path(mountpoint) }.ok_or(EINVAL)?;
        let opts = unsafe { options(opts) }?;
        let fd = crate::fsbuild::dir_fd(fd)?;
        mount::mount_fd(fd, &target, &opts).map_err(|e| Errno(e.errno()))?;
        Ok(0)
    })
}
