//! `lcfs_mount_image` / `lcfs_mount_fd`, over the crate's mount module.

use std::ffi::{c_char, c_int, c_void};

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

#[no_mangle]
pub extern "C" fn lcfs_mount_image(
    _path: *const c_char,
    _mountpoint: *const c_char,
    _opts: *mut MountOptionsC,
) -> c_int {
    crate::guard(-1, || Err(crate::node::Errno(libc::ENOSYS)))
}

#[no_mangle]
pub extern "C" fn lcfs_mount_fd(
    _fd: c_int,
    _mountpoint: *const c_char,
    _opts: *mut MountOptionsC,
) -> c_int {
    crate::guard(-1, || Err(crate::node::Errno(libc::ENOSYS)))
}
