//! Nodes from files on disk: `lcfs_load_node_from_file`, `lcfs_node_set_from_content` and
//! `lcfs_build`, with C's build flags.
//!
//! These work node by node, relative to a directory fd, because that is the C API's contract
//! (mkcomposefs builds with `NO_INLINE` and no digest, then fills digests and inline content
//! per node from its own threads). `cfs_erofs::scan` builds a whole `Tree` with mkcomposefs's
//! final policy in one go, so it cannot serve these calls; the rules are the same as there:
//! no-follow `lstat`, nlink not copied, xattrs in `listxattr` order, C's inline and digest
//! rules.

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{AtFlags, FileType as RFileType, Mode, OFlags};

use crate::node::{get, unref, Errno, Node, NodePtr, Res, S_IFMT};
use crate::verity;

pub const SKIP_XATTRS: i32 = 1;
pub const USE_EPOCH: i32 = 2;
pub const SKIP_DEVICES: i32 = 4;
pub const COMPUTE_DIGEST: i32 = 8;
pub const NO_INLINE: i32 = 16;
pub const USER_XATTRS: i32 = 32;
pub const BY_DIGEST: i32 = 64;
const ALL_FLAGS: i32 =
    SKIP_XATTRS | USE_EPOCH | SKIP_DEVICES | COMPUTE_DIGEST | NO_INLINE | USER_XATTRS | BY_DIGEST;
/// `LCFS_RECOMMENDED_INLINE_CONTENT_MAX`.
const INLINE_MAX: u64 = 64;

fn errno(e: rustix::io::Errno) -> Errno {
    Errno(e.raw_os_error())
}

/// A directory fd the caller passed (`AT_FDCWD` included).
pub fn dir_fd<'a>(dirfd: i32) -> Res<BorrowedFd<'a>> {
    if dirfd == libc::AT_FDCWD {
        return Ok(rustix::fs::CWD);
    }
    if dirfd < 0 {
        return Err(Errno(libc::EBADF));
    }
    // SAFETY: the caller owns `dirfd` for the duration of the call; it is not -1, and a
    // closed fd only makes the syscalls fail with EBADF.
    Ok(unsafe { BorrowedFd::borrow_raw(dirfd) })
}

/// `xx/<62 hex>`: the object path of a digest.
fn digest_path(d: &[u8; 32]) -> CString {
    let h = cfs_erofs::Digest::Sha256(*d).object_path();
    CString::new(h).expect("hex has no NUL")
}

/// `lcfs_node_set_from_content`: digest, by-digest payload and inline content of a regular
/// file of known size.
pub fn set_from_content(n: &Node, dirfd: BorrowedFd<'_>, fname: &CStr, flags: i32) -> Res<()> {
    let size = n.i.size.get();
    let compute = flags & COMPUTE_DIGEST != 0;
    let by_digest = flags & BY_DIGEST != 0;
    let do_digest = size != 0 && (compute || by_digest);
    let do_inline = size != 0 && flags & NO_INLINE == 0 && size <= INLINE_MAX;
    if !do_digest && !do_inline {
        return Ok(());
    }
    let fd = rustix::fs::openat(
        dirfd,
        fname,
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno)?;
    let raw = rustix::fd::AsRawFd::as_raw_fd(&fd);
    if do_digest {
        let d = verity::digest_fd(raw)?;
        n.dm().digest = Some(d);
        if by_digest {
            n.set_payload(Some(&digest_path(&d)))?;
            if !compute {
                n.dm().digest = None;
            }
        }
        let _ = rustix::fs::seek(&fd, rustix::fs::SeekFrom::Start(0));
    }
    if do_inline {
        let mut buf = vec![0u8; size as usize];
        let mut got = 0;
        while got < buf.len() {
            match verity::read_fd(raw, &mut buf[got..]) {
                0 => break,
                r if r < 0 => return Err(Errno(crate::errno())),
                r => got += r as usize,
            }
        }
        if got < buf.len() {
            return Err(Errno(libc::ENODATA));
        }
        n.set_content(Some(&buf), buf.len())?;
    }
    Ok(())
}

/// xattrs through `/proc/self/fd/N` of an `O_PATH` fd, in `listxattr` order.
fn read_xattrs(n: &Node, dirfd: BorrowedFd<'_>, fname: &CStr, flags: i32) -> Res<()> {
    let fd: OwnedFd = rustix::fs::openat(
        dirfd,
        fname,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno)?;
    let path = format!("/proc/self/fd/{}", rustix::fd::AsRawFd::as_raw_fd(&fd));
    let mut list = vec![0u8; rustix::fs::listxattr_query(&path).map_err(errno)?];
    let len = rustix::fs::listxattr(&path, &mut list[..]).map_err(errno)?;
    list.truncate(len);
    for name in list.split(|&b| b == 0).filter(|s| !s.is_empty()) {
        if flags & USER_XATTRS != 0 && !name.starts_with(b"user.") {
            continue;
        }
        let cname = CString::new(name).expect("split at NUL");
        let mut value = vec![0u8; rustix::fs::getxattr_query(&path, &*cname).map_err(errno)?];
        let vlen = rustix::fs::getxattr(&path, &*cname, &mut value[..]).map_err(errno)?;
        value.truncate(vlen);
        n.set_xattr(&cname, &value)?;
    }
    drop(fd);
    Ok(())
}

/// `lcfs_load_node_from_file`. The returned node holds one reference for the caller.
pub fn load_node_from_file(dirfd: BorrowedFd<'_>, fname: &CStr, flags: i32) -> Res<NodePtr> {
    if flags & !ALL_FLAGS != 0 || (flags & SKIP_XATTRS != 0 && flags & USER_XATTRS != 0) {
        return Err(Errno(libc::EINVAL));
    }
    let st = rustix::fs::statat(dirfd, fname, AtFlags::SYMLINK_NOFOLLOW).map_err(errno)?;
    let p = Node::new();
    let fill = || -> Res<()> {
        let n = get(p);
        n.i.mode.set(st.st_mode);
        n.i.uid.set(st.st_uid);
        n.i.gid.set(st.st_gid);
        n.i.rdev.set(st.st_rdev as u32);
        n.i.size.set(st.st_size as u64);
        match st.st_mode & S_IFMT {
            crate::node::S_IFREG => set_from_content(n, dirfd, fname, flags)?,
            crate::node::S_IFLNK => {
                let t = rustix::fs::readlinkat(dirfd, fname, Vec::new()).map_err(errno)?;
                n.set_symlink_payload(Some(&t))?;
            }
            _ => {}
        }
        if flags & USE_EPOCH == 0 {
            n.i.mtime_sec.set(st.st_mtime);
            n.i.mtime_nsec.set(st.st_mtime_nsec as u32);
        }
        if flags & SKIP_XATTRS == 0 {
            read_xattrs(n, dirfd, fname, flags)?;
        }
        Ok(())
    };
    match fill() {
        Ok(()) => Ok(p),
        Err(e) => {
            unref(p);
            Err(e)
        }
    }
}

/// `lcfs_build`: a node for `fname` and, for a directory, everything below it. On failure,
/// the path that failed, relative to `dirfd`, as C joins it.
pub fn build(dirfd: BorrowedFd<'_>, fname: &CStr, flags: i32) -> Result<NodePtr, (Errno, Vec<u8>)> {
    let at_fault = |sub: Option<&[u8]>| {
        let mut p = fname.to_bytes().to_vec();
        if let Some(s) = sub {
            if !p.is_empty() && !p.ends_with(b"/") {
                p.push(b'/');
            }
            p.extend_from_slice(s);
        }
        p
    };
    let node = load_node_from_file(dirfd, fname, flags).map_err(|e| (e, at_fault(None)))?;
    if !get(node).is_dir() {
        return Ok(node);
    }
    let fail = |e: Errno, sub: Option<&[u8]>| {
        unref(node);
        (e, at_fault(sub))
    };
    let dfd = match rustix::fs::openat(
        dirfd,
        fname,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(e) => return Err(fail(errno(e), None)),
    };
    let mut dir = match rustix::fs::Dir::read_from(&dfd) {
        Ok(d) => d,
        Err(e) => return Err(fail(errno(e), None)),
    };
    while let Some(ent) = dir.read() {
        let ent = match ent {
            Ok(e) => e,
            Err(e) => return Err(fail(errno(e), None)),
        };
        let name = ent.file_name();
        if name.to_bytes() == b"." || name.to_bytes() == b".." {
            continue;
        }
        let mut ftype = ent.file_type();
        if ftype == RFileType::Unknown {
            match rustix::fs::statat(dfd.as_fd(), name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => ftype = RFileType::from_raw_mode(st.st_mode),
                Err(e) => return Err(fail(errno(e), Some(name.to_bytes()))),
            }
        }
        let child = if ftype == RFileType::Directory {
            match build(dfd.as_fd(), name, flags) {
                Ok(c) => c,
                Err((e, sub)) => return Err(fail(e, Some(&sub))),
            }
        } else {
            if flags & SKIP_DEVICES != 0
                && matches!(ftype, RFileType::BlockDevice | RFileType::CharacterDevice)
            {
                continue;
            }
            match load_node_from_file(dfd.as_fd(), name, flags) {
                Ok(c) => c,
                Err(e) => return Err(fail(e, Some(name.to_bytes()))),
            }
        };
        if let Err(e) = get(node).add_child(get(child), name) {
            unref(child);
            return Err(fail(e, None));
        }
    }
    Ok(node)
}
