//! fs-verity for the C API: userspace digests and the kernel's measure/enable calls, all through
//! [`cfs_erofs::fsverity`], with C's `-errno` convention.
//!
//! The userspace digest of an empty input is the kernel's (the descriptor over an all-zero
//! root hash); C 1.0.8 hashes a zero block for it instead and so returns a digest no kernel
//! ever reports.

use std::os::fd::BorrowedFd;

use cfs_erofs::fsverity::{kernel, FsVerityHasher};
use cfs_erofs::{Digest, HashAlgorithm};

use crate::node::{Errno, Res, DIGEST_SIZE};

/// `ENOVERITY` of lcfs-mount.h.
pub const ENOVERITY: i32 = libc::ENOTTY;
/// `EWRONGVERITY` of lcfs-mount.h.
pub const EWRONGVERITY: i32 = libc::EILSEQ;

/// The digest of whatever `read` yields, in pieces of up to 4096 bytes, until it returns 0; a
/// negative return is ENODATA, as in C.
pub fn digest_from(mut read: impl FnMut(&mut [u8]) -> isize) -> Res<[u8; DIGEST_SIZE]> {
    let mut h = FsVerityHasher::new(HashAlgorithm::Sha256);
    let mut buf = vec![0u8; 4096];
    loop {
        let n = read(&mut buf);
        if n < 0 {
            return Err(Errno(libc::ENODATA));
        }
        if n == 0 {
            break;
        }
        let n = (n as usize).min(buf.len());
        h.update(&buf[..n]);
    }
    Ok(sha256(h.finish()))
}

pub fn digest_of(data: &[u8]) -> [u8; DIGEST_SIZE] {
    sha256(cfs_erofs::fsverity::digest(HashAlgorithm::Sha256, data))
}

fn sha256(d: Digest) -> [u8; DIGEST_SIZE] {
    let mut out = [0u8; DIGEST_SIZE];
    out.copy_from_slice(d.as_bytes());
    out
}

/// `read(2)` on a raw fd, retried on EINTR; -1 on error.
pub fn read_fd(fd: i32, buf: &mut [u8]) -> isize {
    loop {
        // SAFETY: `buf` is a valid writable buffer of `buf.len()` bytes; a bad fd only makes
        // read fail.
        let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if r < 0 && crate::errno() == libc::EINTR {
            continue;
        }
        return r;
    }
}

/// The userspace digest of an fd's content from its current offset.
pub fn digest_fd(fd: i32) -> Res<[u8; DIGEST_SIZE]> {
    digest_from(|b| read_fd(fd, b))
}

/// The kernel's fs-verity calls take a [`BorrowedFd`]; C callers pass any int. A negative one
/// is refused as the kernel would refuse it.
fn borrow(fd: i32) -> Result<BorrowedFd<'static>, i32> {
    if fd < 0 {
        return Err(libc::EBADF);
    }
    // SAFETY: the fd is only used for the one ioctl of this call, while the C caller keeps it
    // open (that is the contract of every lcfs_fd_* function); a closed one makes it fail
    // with EBADF, never touches memory.
    Ok(unsafe { BorrowedFd::borrow_raw(fd) })
}

/// The errno of a failed kernel call (rustix reports it without setting the thread's errno).
fn errno_of(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

/// `lcfs_fd_measure_fsverity`: the kernel's digest, or a negative errno (ENOVERITY when the
/// file has no verity or the filesystem cannot tell, EWRONGVERITY for a non-sha256 digest).
/// The ioctl is the library's ([`cfs_erofs::fsverity::kernel::measure`]).
pub fn measure(fd: i32) -> Result<[u8; DIGEST_SIZE], i32> {
    let failed = |e: i32| {
        crate::set_errno(e);
        -e
    };
    let fd = borrow(fd).map_err(failed)?;
    match kernel::measure(fd) {
        Ok(Some(d)) if d.as_bytes().len() == DIGEST_SIZE => Ok(sha256(d)),
        // Another algorithm's digest (the library knows sha512) or one it does not know.
        Ok(Some(_)) => Err(-EWRONGVERITY),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Err(-EWRONGVERITY),
        Ok(None) => Err(failed(ENOVERITY)),
        Err(e) => Err(failed(errno_of(&e))),
    }
}

/// `lcfs_fd_enable_fsverity`: sha256, 4096-byte blocks, no salt, no signature (the library's
/// [`cfs_erofs::fsverity::kernel::enable`]); a negative errno on failure, errno set as C's
/// ioctl leaves it.
pub fn enable(fd: i32) -> Result<(), i32> {
    let failed = |e: i32| {
        crate::set_errno(e);
        -e
    };
    let fd = borrow(fd).map_err(failed)?;
    kernel::enable(fd, HashAlgorithm::Sha256).map_err(|e| failed(errno_of(&e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_matches_the_kernel_algorithm_and_empty_is_the_kernels() {
        use sha2::Digest as _;
        // One partial block: the root hash is the hash of the zero-padded block.
        let mut block = [0u8; 4096];
        block[..6].copy_from_slice(b"hello\n");
        let root = sha2::Sha256::digest(block);
        let desc = |size: u64, root: &[u8]| {
            let mut d = [0u8; 256];
            d[0] = 1;
            d[1] = 1;
            d[2] = 12;
            d[8..16].copy_from_slice(&size.to_le_bytes());
            d[16..16 + root.len()].copy_from_slice(root);
            let out: [u8; 32] = sha2::Sha256::digest(d).into();
            out
        };
        assert_eq!(digest_of(b"hello\n"), desc(6, &root));
        // Empty input: the kernel's all-zero root hash (C 1.0.8 hashes a zero block instead).
        assert_eq!(digest_of(b""), desc(0, &[0; 32]));
        assert_ne!(digest_of(b""), desc(0, &sha2::Sha256::digest([0u8; 4096])));
    }
}
