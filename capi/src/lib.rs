//! `libcomposefs.so.1`: the library ABI of C composefs 1.0.8, implemented over `cfs_erofs`, so
//! that binaries linked against C's library (mkcomposefs, composefs-info, mount.composefs,
//! libostree) run unchanged on ours.
//!
//! - [`node`]: the C node graph (`struct lcfs_node_s`), refcounted, with parent pointers and
//!   hardlink references;
//! - [`convert`]: node graph → [`cfs_erofs::Tree`] for the writer, and reader tree → nodes;
//! - [`fsbuild`]: nodes from files on disk (`lcfs_load_node_from_file`, `lcfs_build`);
//! - [`verity`]: the fs-verity helpers and their kernel ioctls;
//! - [`api`]: the 62 exported functions, which only check pointers, convert arguments and
//!   call the above.
//!
//! This crate is the project's FFI edge and the only place with `unsafe` besides the syscall
//! shim: each block says why it is sound. No panic crosses into C: every export runs under
//! [`guard`], which turns a panic into the function's error return with errno EINVAL.
//!
//! Where C 1.0.8 aborts on an assert, these functions return an error instead; where it has a
//! bug, they do the right thing. Both are listed in the README's libcomposefs section.

pub mod api;
pub mod convert;
pub mod fsbuild;
pub mod mount;
pub mod node;
pub mod verity;

use std::panic::{catch_unwind, AssertUnwindSafe};

use node::Errno;

/// Sets the calling thread's errno.
pub(crate) fn set_errno(e: i32) {
    // SAFETY: __errno_location returns the calling thread's errno slot, always valid.
    unsafe { *libc::__errno_location() = e }
}

/// The calling thread's errno.
pub(crate) fn errno() -> i32 {
    // SAFETY: as in `set_errno`.
    unsafe { *libc::__errno_location() }
}

/// Runs an export's body: an error becomes `fail` with errno set, a panic becomes `fail` with
/// EINVAL. Success leaves errno alone (C does not clear it either).
pub(crate) fn guard<T>(fail: T, f: impl FnOnce() -> Result<T, Errno>) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => v,
        Ok(Err(Errno(e))) => {
            set_errno(e);
            fail
        }
        Err(_) => {
            set_errno(libc::EINVAL);
            fail
        }
    }
}
