//! The few Linux syscalls rustix does not wrap: loop-device setup, fs-verity ioctls and
//! `mount_setattr`. This is the crate's one home of `unsafe`; every other module forbids it.
//!
//! The ioctls go through rustix's typed [`rustix::ioctl`] machinery, with opcodes computed by
//! its `_IO*` equivalents, so the only unsafety is the promise that each argument has the layout
//! the kernel's uapi header gives it. `mount_setattr` has no wrapper in rustix 1.x, so it is a
//! raw `syscall(2)` through libc. Callers get safe functions taking `BorrowedFd`s and returning
//! `io::Result`.

use std::ffi::c_void;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use rustix::ioctl::{self, opcode, Ioctl, IoctlOutput, Opcode, Setter, Updater};

/// `_IO(0x4C, 0x82)` on `/dev/loop-control`: reserve a free loop device, returns its number.
const LOOP_CTL_GET_FREE: Opcode = opcode::none(0x4C, 0x82);
/// `_IO(0x4C, 0x0A)` on `/dev/loopN`: attach a backing file and configure in one step (5.8+).
const LOOP_CONFIGURE: Opcode = opcode::none(0x4C, 0x0A);

/// `LO_FLAGS_*` of `<linux/loop.h>`.
pub const LO_FLAGS_READ_ONLY: u32 = 1;
pub const LO_FLAGS_AUTOCLEAR: u32 = 4;
pub const LO_FLAGS_DIRECT_IO: u32 = 16;

/// `struct loop_info64` of `<linux/loop.h>` (232 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; 64],
    lo_crypt_name: [u8; 64],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

/// `struct loop_config` of `<linux/loop.h>` (304 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

const _: () = assert!(std::mem::size_of::<LoopInfo64>() == 232);
const _: () = assert!(std::mem::size_of::<LoopConfig>() == 304);

/// An ioctl without an argument whose result is the syscall's return value
/// (`LOOP_CTL_GET_FREE`); rustix's `NoArg` discards it.
struct NoArgReturning<const OPCODE: Opcode>;

// SAFETY: the opcode takes no argument (the pointer passed is null and never dereferenced),
// the kernel writes no user memory (IS_MUTATING = false), and the output is the plain return
// value, which needs no pointer.
unsafe impl<const OPCODE: Opcode> Ioctl for NoArgReturning<OPCODE> {
    type Output = IoctlOutput;
    const IS_MUTATING: bool = false;
    fn opcode(&self) -> Opcode {
        OPCODE
    }
    fn as_ptr(&mut self) -> *mut c_void {
        std::ptr::null_mut()
    }
    unsafe fn output_from_ptr(out: IoctlOutput, _: *mut c_void) -> rustix::io::Result<IoctlOutput> {
        Ok(out)
    }
}

/// `LOOP_CTL_GET_FREE` on an open `/dev/loop-control`: the number N of a free `/dev/loopN`.
pub fn loop_ctl_get_free(control: BorrowedFd<'_>) -> io::Result<u32> {
    // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns the device number.
    let n = unsafe { ioctl::ioctl(control, NoArgReturning::<LOOP_CTL_GET_FREE>) }?;
    u32::try_from(n).map_err(|_| io::Error::other(format!("LOOP_CTL_GET_FREE returned {n}")))
}

/// `LOOP_CONFIGURE` on an open `/dev/loopN`: back it by `backing` with `LO_FLAGS_*` `flags`
/// and the given logical block size. `lo_file_name` stays empty, as C's `lcfs_mount_fd` leaves it.
pub fn loop_configure(
    device: BorrowedFd<'_>,
    backing: BorrowedFd<'_>,
    flags: u32,
    block_size: u32,
) -> io::Result<()> {
    let config = LoopConfig {
        fd: backing.as_raw_fd() as u32,
        block_size,
        info: LoopInfo64 {
            lo_device: 0,
            lo_inode: 0,
            lo_rdevice: 0,
            lo_offset: 0,
            lo_sizelimit: 0,
            lo_number: 0,
            lo_encrypt_type: 0,
            lo_encrypt_key_size: 0,
            lo_flags: flags,
            lo_file_name: [0; 64],
            lo_crypt_name: [0; 64],
            lo_encrypt_key: [0; 32],
            lo_init: [0; 2],
        },
        reserved: [0; 8],
    };
    // SAFETY: LOOP_CONFIGURE reads one `struct loop_config`, whose layout LoopConfig
    // reproduces (size asserted above); the kernel only copies it in.
    unsafe { ioctl::ioctl(device, Setter::<LOOP_CONFIGURE, LoopConfig>::new(config)) }?;
    Ok(())
}

/// The fixed head of `struct fsverity_digest` (`<linux/fsverity.h>`), which the opcode encodes.
#[repr(C)]
struct FsverityDigestHead {
    digest_algorithm: u16,
    digest_size: u16,
}

/// `struct fsverity_digest` with room for the longest digest (sha512).
#[repr(C)]
struct FsverityDigest64 {
    digest_algorithm: u16,
    digest_size: u16,
    digest: [u8; 64],
}

/// `_IOWR('f', 134, struct fsverity_digest)`.
const FS_IOC_MEASURE_VERITY: Opcode = opcode::read_write::<FsverityDigestHead>(b'f', 134);

/// `struct fsverity_enable_arg` (128 bytes).
#[repr(C)]
struct FsverityEnableArg {
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

const _: () = assert!(std::mem::size_of::<FsverityEnableArg>() == 128);

/// `_IOW('f', 133, struct fsverity_enable_arg)`.
const FS_IOC_ENABLE_VERITY: Opcode = opcode::write::<FsverityEnableArg>(b'f', 133);

/// `FS_IOC_MEASURE_VERITY`: the file's fs-verity algorithm number and digest bytes. The raw
/// errno is returned as is (ENODATA: no verity on this file; EOPNOTSUPP/ENOTTY: none on
/// this filesystem or kernel); `fsverity::kernel` gives them meaning.
pub fn fs_ioc_measure_verity(fd: BorrowedFd<'_>) -> io::Result<(u16, Vec<u8>)> {
    let mut d = FsverityDigest64 {
        digest_algorithm: 0,
        digest_size: 64,
        digest: [0; 64],
    };
    // SAFETY: the kernel reads `digest_size` (64, the room that follows the head in
    // FsverityDigest64), fails with EOVERFLOW if the digest is longer, and otherwise writes the
    // head and at most 64 digest bytes, all inside `d`.
    unsafe {
        ioctl::ioctl(
            fd,
            Updater::<FS_IOC_MEASURE_VERITY, FsverityDigest64>::new(&mut d),
        )
    }?;
    let len = usize::from(d.digest_size).min(d.digest.len());
    Ok((d.digest_algorithm, d.digest[..len].to_vec()))
}

/// `FS_IOC_ENABLE_VERITY` with the given algorithm number and block size, no salt, no
/// signature.
pub fn fs_ioc_enable_verity(fd: BorrowedFd<'_>, algorithm: u32, block_size: u32) -> io::Result<()> {
    let arg = FsverityEnableArg {
        version: 1,
        hash_algorithm: algorithm,
        block_size,
        salt_size: 0,
        salt_ptr: 0,
        sig_size: 0,
        reserved1: 0,
        sig_ptr: 0,
        reserved2: [0; 11],
    };
    // SAFETY: FS_IOC_ENABLE_VERITY reads one `struct fsverity_enable_arg` (layout reproduced,
    // size asserted); salt and signature sizes are 0, so their null pointers are never read.
    unsafe {
        ioctl::ioctl(
            fd,
            Setter::<FS_IOC_ENABLE_VERITY, FsverityEnableArg>::new(arg),
        )
    }?;
    Ok(())
}

/// `MOUNT_ATTR_IDMAP` of `<linux/mount.h>`.
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// `struct mount_attr` (`MOUNT_ATTR_SIZE_VER0`, 32 bytes).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `mount_setattr(mnt, "", AT_EMPTY_PATH, {MOUNT_ATTR_IDMAP, userns})`: give a detached mount
/// (from `fsmount` or `open_tree`) the ID mapping of a user namespace (5.12+).
pub fn mount_setattr_idmap(mount: BorrowedFd<'_>, userns: BorrowedFd<'_>) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    // SAFETY: every pointer is valid for the call: an empty NUL-terminated path and a
    // `struct mount_attr` whose size is passed; both fds are borrowed, so open for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            mount.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
