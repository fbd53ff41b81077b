//! fs-verity for the C API: userspace digests through [`cfs_erofs::fsverity`], and the kernel's
//! `FS_IOC_MEASURE_VERITY` / `FS_IOC_ENABLE_VERITY` ioctls.
//!
//! The userspace digest of an empty input is the kernel's (the descriptor over an all-zero
//! root hash); C 1.0.8 hashes a zero block for it instead and so returns a digest no kernel
//! ever reports.

use cfs_erofs::fsverity::FsVerityHasher;
use cfs_erofs::{Digest, HashAlgorithm};

use crate::node::{Errno, Res, DIGEST_SIZE};

/// `ENOVERITY` of lcfs-mount.h.
pub const ENOVERITY: i32 = libc::ENOTTY;
/// `EWRONGVERITY` of lcfs-mount.h.
pub const EWRONGVERITY: i32 = libc::EILSEQ;

/// `_IOWR('f', 133, struct fsverity_enable_arg)` (128 bytes).
const FS_IOC_ENABLE_VERITY: libc::c_ulong = 0x4080_6685;
/// `_IOWR('f', 134, struct fsverity_digest)` (4-byte header).
const FS_IOC_MEASURE_VERITY: libc::c_ulong = 0xc004_6686;
const MAX_DIGEST_SIZE: usize = 64;

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

/// `lcfs_fd_measure_fsverity`: the kernel's digest, or a negative errno (ENOVERITY when the
/// file has no verity or the filesystem cannot tell, EWRONGVERITY for a non-sha256 digest).
pub fn measure(fd: i32) -> Result<[u8; DIGEST_SIZE], i32> {
    #[repr(C)]
    struct Arg {
        algorithm: u16,
        size: u16,
        digest: [u8; MAX_DIGEST_SIZE],
    }
    let mut arg = Arg {
        algorithm: 0,
        size: MAX_DIGEST_SIZE as u16,
        digest: [0; MAX_DIGEST_SIZE],
    };
    // SAFETY: the ioctl writes at most `size` digest bytes after the 4-byte header, and `arg`
    // has room for MAX_DIGEST_SIZE of them; a bad fd only makes it fail.
    let r = unsafe { libc::ioctl(fd, FS_IOC_MEASURE_VERITY as _, &mut arg as *mut Arg) };
    if r == -1 {
        let e = crate::errno();
        let e = match e {
            libc::ENODATA | libc::EOPNOTSUPP | libc::ENOTTY => ENOVERITY,
            e => e,
        };
        crate::set_errno(e);
        return Err(-e);
    }
    if usize::from(arg.size) != DIGEST_SIZE {
        return Err(-EWRONGVERITY);
    }
    let mut out = [0u8; DIGEST_SIZE];
    out.copy_from_slice(&arg.digest[..DIGEST_SIZE]);
    Ok(out)
}

/// `lcfs_fd_enable_fsverity`: sha256, 4096-byte blocks, no salt, no signature.
pub fn enable(fd: i32) -> Result<(), i32> {
    #[repr(C)]
    struct Arg {
        version: u32,
        hash_algorithm: u32,
        block_size: u32,
        salt_size: u32,
        salt_ptr: u64,
        sig_size: u32,
        reserved1: u32,
        sig_ptr: u64,
        reserved2: [u64; 11],
    }
    let arg = Arg {
        version: 1,
        hash_algorithm: 1,
        block_size: 4096,
        salt_size: 0,
        salt_ptr: 0,
        sig_size: 0,
        reserved1: 0,
        sig_ptr: 0,
        reserved2: [0; 11],
    };
    // SAFETY: the ioctl only reads the 128-byte argument; salt and signature are absent.
    let r = unsafe { libc::ioctl(fd, FS_IOC_ENABLE_VERITY as _, &arg as *const Arg) };
    if r != 0 {
        return Err(-crate::errno());
    }
    Ok(())
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
