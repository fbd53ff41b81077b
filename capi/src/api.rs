//! The 62 exported functions of libcomposefs 1.0.8 (lcfs-writer.h and lcfs-mount.h).
//!
//! Each checks and converts its raw arguments, then calls [`crate::node`], [`crate::convert`],
//! [`crate::fsbuild`] or [`crate::verity`] under [`guard`]. Pointers C would dereference
//! blindly are checked: a NULL node (or other required pointer) is EINVAL — the error value
//! for functions that have one, nothing (errno set) for `void` ones, 0 for getters.
#![allow(clippy::missing_safety_doc)]

use std::ffi::{c_char, c_int, c_void, CStr};
use std::ptr;

use cfs_erofs::write::{write_image, FormatVersion, WriteError, WriteOptions};

use crate::convert;
use crate::fsbuild;
use crate::guard;
use crate::node::{self, Errno, Node, Res, DIGEST_SIZE};
use crate::verity;

/// `lcfs_read_cb` / `lcfs_write_cb`.
pub type IoCb = Option<unsafe extern "C" fn(*mut c_void, *mut c_void, usize) -> isize>;

/// `struct lcfs_write_options_s` (88 bytes).
#[repr(C)]
pub struct WriteOptionsC {
    pub format: u32,
    pub version: u32,
    pub flags: u32,
    pub digest_out: *mut u8,
    pub file: *mut c_void,
    pub file_write_cb: IoCb,
    pub max_version: u32,
    pub reserved: [u32; 3],
    pub reserved2: [*mut c_void; 4],
}

/// `struct lcfs_read_options_s` (56 bytes).
#[repr(C)]
pub struct ReadOptionsC {
    pub toplevel_entries: *const *const c_char,
    pub reserved: [u32; 3],
    pub reserved2: [*mut c_void; 4],
}

const EINVAL: Errno = Errno(libc::EINVAL);

/// The node behind a caller's pointer.
///
/// # Safety
/// `p` is NULL or a node pointer this library returned, on which the caller holds (or borrows
/// from a holder) a reference — the C API's contract.
unsafe fn node<'a>(p: *mut Node) -> Res<&'a Node> {
    // SAFETY: per the function's contract, a non-NULL `p` points at a live node.
    unsafe { p.as_ref() }.ok_or(EINVAL)
}

/// A C string argument.
///
/// # Safety
/// `s` is NULL or a NUL-terminated string valid for the call.
unsafe fn cstr<'a>(s: *const c_char) -> Option<&'a CStr> {
    // SAFETY: per the function's contract.
    (!s.is_null()).then(|| unsafe { CStr::from_ptr(s) })
}

/// Raw bytes from C; NULL is allowed only for an empty range.
///
/// # Safety
/// `p` is NULL or valid for reading `len` bytes.
unsafe fn bytes<'a>(p: *const u8, len: usize) -> Res<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(EINVAL);
    }
    // SAFETY: per the function's contract, `p` is valid for `len` bytes.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

fn out_ptr<T>(r: Option<&Node>) -> *mut T {
    r.map_or(ptr::null_mut(), |n| n.ptr().as_ptr().cast())
}

// ---- lifetime and structure -------------------------------------------------------------

#[no_mangle]
pub extern "C" fn lcfs_node_new() -> *mut Node {
    guard(ptr::null_mut(), || Ok(Node::new().as_ptr()))
}

#[no_mangle]
pub unsafe extern "C" fn lcfs_node_ref(n: *mut Node) -> *mut Node {
    guard(ptr::null_mut(), || {
        // SAFETY: see `node`.
        let n = unsafe { node(n) }?;
        n.incref();
        Ok(n.ptr().as_ptr())
    })
}

#[no_mangle]
pub unsafe extern "C" fn lcfs_node_unref(n: *mut Node) {
    guard((), || {
        // SAFETY: see `node`; the caller gives up its reference.
        node::unref(unsafe { node(n) }?.ptr());
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn lcfs_node_clone(n: *mut Node) -> *mut Node {
    // SAFETY: see `node`.
    guard(ptr::null_mut(), || {
        Ok(unsafe { node(n) }?.clone_node().as_ptr())
    })
}

#[no_mangle]
pub unsafe extern "C" fn lcfs_node_clone_deep(n: *mut Node) -> *mut Node {
    // SAFETY: see `node`.
    guard(ptr::null_mut(), || {
        Ok(node::clone_deep(unsafe { node(n) }?)?.as_ptr())
    })
}

#[no_mangle]
pub unsafe extern "C" fn lcfs_node_add_child(
    parent: *mut Node,
    child: *mut Node,
    name: *const c_char,
) -> c_int {
    guard(-1, || {
        // SAFETY: see `node` and `cstr`.
        let (p, c) = unsafe { (node(parent)?, node(child)?) };
        let name = unsafe { cstr(name) }.ok_or(EINVAL)?;
        p.add_child(c, name)?;
        Ok(0)
    })
}

#[no_mangle]
pub unsafe extern "C" fn lcfs_node_lookup_child(n: *mut Node, name: *const c_char) -> *mut Node {
    guard(ptr::null_mut(), || {
        // SAFETY: see `node` and `cstr`.
        let n = unsafe { node(n) }?;
        let name = unsafe { cstr(name) }.ok_or(EINVAL)?;
        Ok(out_ptr(n.lookup_child(name.to_bytes())))
    })
}

#[no_mangle]
pub unsafe extern "C" fn lcfs_node_get_parent(n: *mut Node) -> *mut Node {
    // SAFETY: see `node`.
    guard(ptr::null_mut(), || {
        Ok(out_ptr(unsafe { node(n) }?.parent()))
    })
}

#[no_mangle]
pub unsafe extern "C" fn lcfs_node_get_name(n: *mut Node) -> *const c_char {
    guard(ptr::null(), || {
        // SAFETY: see `node`.
        Ok(unsafe { node(n) }?.name().unwrap_or(ptr::null()))
    })
}

#[no_mangle]
pub unsafe extern "C" fn lcfs_node_get_n_children(n: *mut Node) -> usize {
    // SAFETY: see `node`.
    guard(0, || Ok(unsafe { node(n) }?.n_children()))
}

#[no_mangle]
pub unsafe extern "C" fn lcfs_node_get_child(n: *mut Node, i: usize) -> *mut Node {
    // SAFETY: see `node`.
    guard(ptr::null_mut(), || {
        Ok(out_ptr(unsafe { node(n) }?.child(i)))
    })
}

#[no_mangle]
pub unsafe extern "C" fn lcfs_node_make_hardlink(n: *mut Node, target: *mut Node) {
    guard((), || {
        // SAFETY: see `node`.
        let (n, t) = unsafe { (node(n)?, node(target)?) };
        n.make_hardlink(t)
    })
}

#[no_mangle]
pub unsafe extern "C" fn lcfs_node_get_hardlink_target(n: *mut Node) -> *mut Node {
    // SAFETY: see `node`.
    guard(ptr::null_mut(), || {
        Ok(out_ptr(unsafe { node(n) }?.link_to()))
    })
}

#[no_mangle]
pub unsafe extern "C" fn lcfs_node_dirp(n: *mut Node) -> bool {
    // SAFETY: see `node`.
    guard(false, || Ok(unsafe { node(n) }?.is_dir()))
}

// ---- inode attributes -------------------------------------------------------------------

/// A getter of one field.
macro_rules! getter {
    ($name:ident, $t:ty, $f:ident) => {
        #[no_mangle]
        pub unsafe extern "C" fn $name(n: *mut Node) -> $t {
            // SAFETY: see `node`.
            guard(0, || Ok(unsafe { node(n) }?.i.$f.get() as $t))
        }
    };
}

/// A setter of one field, without checks (as C).
macro_rules! setter {
    ($name:ident, $t:ty, $f:ident) => {
        #[no_mangle]
        pub unsafe extern "C" fn $name(n: *mut Node, v: $t) {
            guard((), || {
                // SAFETY: see `node`.
                unsafe { node(n) }?.i.$f.set(v as _);
                Ok(())
            })
        }
    };
}

getter!(lcfs_node_get_mode, u32, mode);
setter!(lcfs_node_set_mode, u32, mode);
getter!(lcfs_node_get_uid, u32, uid);
setter!(lcfs_node_set_uid, u32, uid);
getter!(lcfs_node_get_gid, u32, gid);
setter!(lcfs_node_set_gid, u32, gid);
getter!(lcfs_node_get_nlink, u32, nlink);
setter!(lcfs_node_set_nlink, u32, nlink);
getter!(lcfs_node_get_rdev, u32, rdev);
setter!(lcfs_node_set_rdev, u32, rdev);
getter!(lcfs_node_get_rdev64, u64, rdev);
// C stores st_rdev in 32 bits, so a 64-bit device number is truncated.
setter!(lcfs_node_set_rdev64, u64, rdev);
getter!(lcfs_node_get_size, u64, size);

#[no_mangle]
pub unsafe extern "C" fn lcfs_node_try_set_mode(n: *mut Node, mode: u32) -> c_int {
    guard(-1, || {
        // SAFETY: see `node`.
        let n = unsafe { node(n) }?;
        if !node::valid_mode(mode) {
            return Err(EINVAL);
        }
        n.i.mode.set(mode);
        Ok(0)
    })
}

#[no_mangle]
pub unsafe extern "C" fn lcfs_node_set_size(n: *mut Node, size: u64) {
    guard((), || {
        // SAFETY: see `node`.
        unsafe { node(n) }?.set_size(size);
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn lcfs_node_set_mtime(n: *mut Node, t: *mut libc::timespec) {
    guard((), || {
        // SAFETY: see `node`; `t` is NULL or a timespec the caller owns.
        let (n, t) = unsafe { (node(n)?, t.as_ref().ok_or(EINVAL)?) };
        n.i.mtime_sec.set(t.tv_sec);
        n.i.mtime_nsec.set(t.tv_nsec as u32);
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn lcfs_node_get_mtime(n: *mut Node, t: *mut libc::timespec) {
    guard((), || {
        // SAFETY: see `node`; `t` is NULL or a timespec the caller lets us fill.
        let (n, t) = unsafe { (node(n)?, t.as_mut().ok_or(EINVAL)?) };
        t.tv_sec = n.i.mtime_sec.get();
        t.tv_nsec = i64::from(n.i.mtime_nsec.get());
        Ok(())
    })
}

// ---- xattrs -----------------------------------------------------------------------------

#[no_mangle]
pub unsafe extern "C" fn lcfs_node_get_xattr(
    n: *mut Node,
    name: *const c_char,
    len: *mut usize,
) -> *const c_char {
    guard(ptr::null(), || {
        // SAFETY: see `node` and `cstr`.
        let n = unsafe { node(n) }?;
        let name = unsafe { cstr(name) }.ok_or(EINVAL)?;
        match n.get_xattr(name.to_bytes()) {
            Some((p, l)) => {
                if !len.is_null() {
                    // SAFETY: a non-NULL `len` is the caller's size_t to fill.
                    unsafe { *len = l };
                }
                Ok(p.cast())
            }
            None => Ok(ptr::null()),
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn lcfs_node_set_xattr(
    n: *mut Node,
    name: *const c_char,
    value: *const c_char,
    len: usize,
) -> c_int {
    guard(-1, || {
        // SAFETY: see `node`, `cstr` and `bytes`.
        let n = unsafe { node(n) }?;
        let name = unsafe { cstr(name) }.ok_or(EINVAL)?;
        if len > usize::from(u16::MAX) {
            return Err(EINVAL);
        }
        let value = unsafe { bytes(value.cast(), len) }?;
        n.set_xattr(name, value)?;
        Ok(0)
    })
}

#[no_mangle]
pub unsafe extern "C" fn lcfs_node_unset_xattr(n: *mut Node, name: *const c_char) -> c_int {
    guard(-1, || {
        // SAFETY: see `node` and `cstr`.
        let n = unsafe { node(n) }?;
        let name = unsafe { cstr(name) }.ok_or(EINVAL)?;
        n.unset_xattr(name.to_bytes())?;
        Ok(0)
    })
}

#[no_mangle]
pub unsafe extern "C" fn lcfs_node_get_n_xattr(n: *mut Node) -> usize {
    // SAFETY: see `node`.
    guard(0, || Ok(unsafe { node(n) }?.d().xattrs.len()))
}

#[no_mangle]
pub unsafe extern "C" fn lcfs_node_get_xattr_name(n: *mut Node, i: usize) -> *const c_char {
    guard(ptr::null(), || {
        // SAFETY: see `node`.
        let n = unsafe { node(n) }?;
        Ok(n.d().xattrs.get(i).map_or(ptr::null(), |x| x.name.as_ptr()))
    })
}

// ---- payload, content, digest -----------------------------------------------------------

#[no_mangle]
pub unsafe extern "C" fn lcfs_node_set_payload(n: *mut Node, payload: *const c_char) -> c_int {
    guard(-1, || {
        // SAFETY: see `node` and `cstr`.
        let n = unsafe { node(n) }?;
        n.set_payload(unsafe { cstr(payload) })?;
        Ok(0)
    })
}

#[no_mangle]
pub unsafe extern "C" fn lcfs_node_set_symlink_payload(
    n: *mut Node,
    payload: *const c_char,
) -> c_int {
    guard(-1, || {
        // SAFETY: see `node` and `cstr`.
        let n = unsafe { node(n) }?;
        n.set_symlink_payload(unsafe { cstr(payload) })?;
        Ok(0)
    })
}

#[no_mangle]
pub unsafe extern "C" fn lcfs_node_get_payload(n: *mut Node) -> *const c_char {
    // SAFETY: see `node`.
    guard(ptr::null(), || Ok(unsafe { node(n) }?.payload_ptr()))
}

#[no_mangle]
pub unsafe extern "C" fn lcfs_node_set_content(n: *mut Node, data: *const u8, len: usize) -> c_int {
    guard(-1, || {
        // SAFETY: see `node` and `bytes`; NULL data clears the content (size still becomes
        // `len`, as in C).
        let n = unsafe { node(n) }?;
        if !data.is_null() && len > node::INLINE_CONTENT_MAX {
            return Err(EINVAL);
        }
        let data = if data.is_null() {
            None
        } else {
            Some(unsafe { bytes(data, len) }?)
        };
        n.set_content(data, len)?;
        Ok(0)
    })
}

#[no_mangle]
pub unsafe extern "C" fn lcfs_node_get_content(n: *mut Node) -> *const u8 {
    // SAFETY: see `node`.
    guard(ptr::null(), || Ok(unsafe { node(n) }?.content_ptr()))
}

#[no_mangle]
pub unsafe extern "C" fn lcfs_node_get_fsverity_digest(n: *mut Node) -> *const u8 {
    guard(ptr::null(), || {
        // SAFETY: see `node`. The digest lives inside the node, which does not move.
        let n = unsafe { node(n) }?;
        let d = n.d();
        Ok(d.digest.as_ref().map_or(ptr::null(), |d| d.as_ptr()))
    })
}

#[no_mangle]
pub unsafe extern "C" fn lcfs_node_set_fsverity_digest(n: *mut Node, digest: *const u8) {
    guard((), || {
        // SAFETY: see `node` and `bytes`.
        let n = unsafe { node(n) }?;
        let d = unsafe { bytes(digest, DIGEST_SIZE) }?;
        n.dm().digest = Some(d.try_into().expect("32 bytes"));
        Ok(())
    })
}

/// A C read callback as a Rust reader of pieces.
fn read_with(file: *mut c_void, cb: IoCb) -> Res<impl FnMut(&mut [u8]) -> isize> {
    let cb = cb.ok_or(EINVAL)?;
    // SAFETY: the callback is the caller's, called as documented: (file, buffer, capacity).
    Ok(move |b: &mut [u8]| unsafe { cb(file, b.as_mut_ptr().cast(), b.len()) })
}

#[no_mangle]
pub unsafe extern "C" fn lcfs_node_set_fsverity_from_content(
    n: *mut Node,
    file: *mut c_void,
    cb: IoCb,
) -> c_int {
    guard(-1, || {
        // SAFETY: see `node`.
        let n = unsafe { node(n) }?;
        let d = verity::digest_from(read_with(file, cb)?)?;
        n.dm().digest = Some(d);
        Ok(0)
    })
}

#[no_mangle]
pub unsafe extern "C" fn lcfs_node_set_fsverity_from_fd(n: *mut Node, fd: c_int) -> c_int {
    guard(-1, || {
        // SAFETY: see `node`.
        let n = unsafe { node(n) }?;
        let d = verity::digest_fd(fd)?;
        n.dm().digest = Some(d);
        Ok(0)
    })
}

#[no_mangle]
pub unsafe extern "C" fn lcfs_node_set_from_content(
    n: *mut Node,
    dirfd: c_int,
    fname: *const c_char,
    flags: c_int,
) -> c_int {
    guard(-1, || {
        // SAFETY: see `node` and `cstr`.
        let n = unsafe { node(n) }?;
        let fname = unsafe { cstr(fname) }.ok_or(EINVAL)?;
        fsbuild::set_from_content(n, fsbuild::dir_fd(dirfd)?, fname, flags)?;
        Ok(0)
    })
}

// ---- fs-verity --------------------------------------------------------------------------

/// Where a digest goes.
///
/// # Safety
/// `p` is NULL or valid for writing 32 bytes.
unsafe fn digest_out<'a>(p: *mut u8) -> Res<&'a mut [u8; DIGEST_SIZE]> {
    // SAFETY: per the function's contract.
    unsafe { p.cast::<[u8; DIGEST_SIZE]>().as_mut() }.ok_or(EINVAL)
}

#[no_mangle]
pub unsafe extern "C" fn lcfs_compute_fsverity_from_content(
    digest: *mut u8,
    file: *mut c_void,
    cb: IoCb,
) -> c_int {
    guard(-1, || {
        // SAFETY: see `digest_out`.
        let out = unsafe { digest_out(digest) }?;
        *out = verity::digest_from(read_with(file, cb)?)?;
        Ok(0)
    })
}

#[no_mangle]
pub unsafe extern "C" fn lcfs_compute_fsverity_from_fd(digest: *mut u8, fd: c_int) -> c_int {
    guard(-1, || {
        // SAFETY: see `digest_out`.
        let out = unsafe { digest_out(digest) }?;
        *out = verity::digest_fd(fd)?;
        Ok(0)
    })
}

#[no_mangle]
pub unsafe extern "C" fn lcfs_compute_fsverity_from_data(
    digest: *mut u8,
    data: *mut u8,
    len: usize,
) -> c_int {
    guard(-1, || {
        // SAFETY: see `digest_out` and `bytes`.
        let out = unsafe { digest_out(digest) }?;
        *out = verity::digest_of(unsafe { bytes(data, len) }?);
        Ok(0)
    })
}

#[no_mangle]
pub unsafe extern "C" fn lcfs_fd_measure_fsverity(digest: *mut u8, fd: c_int) -> c_int {
    guard(-libc::EINVAL, || {
        // SAFETY: see `digest_out`.
        let out = unsafe { digest_out(digest) }?;
        match verity::measure(fd) {
            Ok(d) => {
                *out = d;
                Ok(0)
            }
            Err(neg) => Ok(neg),
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn lcfs_fd_get_fsverity(digest: *mut u8, fd: c_int) -> c_int {
    guard(-libc::EINVAL, || {
        // SAFETY: see `digest_out`.
        let out = unsafe { digest_out(digest) }?;
        match verity::measure(fd) {
            Ok(d) => {
                *out = d;
                Ok(0)
            }
            Err(neg) if neg == -verity::ENOVERITY => {
                // No verity on the file: compute it from the start, in userspace.
                // SAFETY: lseek on a caller's fd; a bad fd only fails.
                if unsafe { libc::lseek(fd, 0, libc::SEEK_SET) } < 0 {
                    return Ok(-crate::errno());
                }
                match verity::digest_fd(fd) {
                    Ok(d) => {
                        *out = d;
                        Ok(0)
                    }
                    Err(Errno(e)) => {
                        crate::set_errno(e);
                        Ok(-1)
                    }
                }
            }
            Err(neg) => Ok(neg),
        }
    })
}

#[no_mangle]
pub extern "C" fn lcfs_fd_enable_fsverity(fd: c_int) -> c_int {
    guard(-libc::EINVAL, || Ok(verity::enable(fd).err().unwrap_or(0)))
}

// ---- build, write, load -----------------------------------------------------------------

#[no_mangle]
pub unsafe extern "C" fn lcfs_load_node_from_file(
    dirfd: c_int,
    fname: *const c_char,
    flags: c_int,
) -> *mut Node {
    guard(ptr::null_mut(), || {
        // SAFETY: see `cstr`.
        let fname = unsafe { cstr(fname) }.ok_or(EINVAL)?;
        Ok(fsbuild::load_node_from_file(fsbuild::dir_fd(dirfd)?, fname, flags)?.as_ptr())
    })
}

#[no_mangle]
pub unsafe extern "C" fn lcfs_build(
    dirfd: c_int,
    fname: *const c_char,
    flags: c_int,
    failed_path_out: *mut *mut c_char,
) -> *mut Node {
    guard(ptr::null_mut(), || {
        // SAFETY: see `cstr`.
        let fname = unsafe { cstr(fname) }.ok_or(EINVAL)?;
        match fsbuild::build(fsbuild::dir_fd(dirfd)?, fname, flags) {
            Ok(n) => Ok(n.as_ptr()),
            Err((e, path)) => {
                if !failed_path_out.is_null() {
                    // The caller frees the path with free(3), so it comes from malloc.
                    // SAFETY: malloc of len+1 bytes, filled with the path and a NUL; a
                    // non-NULL `failed_path_out` is the caller's char* to fill.
                    unsafe {
                        let p = libc::malloc(path.len() + 1).cast::<u8>();
                        if !p.is_null() {
                            ptr::copy_nonoverlapping(path.as_ptr(), p, path.len());
                            *p.add(path.len()) = 0;
                        }
                        *failed_path_out = p.cast();
                    }
                }
                Err(e)
            }
        }
    })
}

/// The write callback and the digest, as one `Write` sink for the writer.
struct CbSink {
    file: *mut c_void,
    cb: IoCb,
    hasher: Option<cfs_erofs::fsverity::FsVerityHasher>,
    /// errno the callback left on failure.
    failed: Option<i32>,
}

impl std::io::Write for CbSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(cb) = self.cb {
            let mut rest = buf;
            while !rest.is_empty() {
                crate::set_errno(libc::EIO);
                // SAFETY: the caller's callback, given (file, bytes, length) of a live buffer.
                let r = unsafe { cb(self.file, rest.as_ptr() as *mut c_void, rest.len()) };
                if r <= 0 {
                    let e = crate::errno();
                    self.failed = Some(e);
                    return Err(std::io::Error::from_raw_os_error(e));
                }
                rest = &rest[(r as usize).min(rest.len())..];
            }
        }
        if let Some(h) = &mut self.hasher {
            h.update(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn write_errno(e: &WriteError) -> i32 {
    match e {
        WriteError::FileTooLarge { .. } | WriteError::ImageTooLarge => libc::EFBIG,
        WriteError::XattrBudget { .. } | WriteError::TooManyXattrs { .. } => libc::ERANGE,
        WriteError::Io(io) => io.raw_os_error().unwrap_or(libc::EIO),
        _ => libc::EINVAL,
    }
}

#[no_mangle]
pub unsafe extern "C" fn lcfs_write_to(root: *mut Node, opts: *mut WriteOptionsC) -> c_int {
    guard(-1, || {
        // SAFETY: see `node`; `opts` is NULL or the caller's options struct, which C writes
        // back into as well.
        let (root, o) = unsafe { (node(root)?, opts.as_mut().ok_or(EINVAL)?) };
        if o.flags != 0 || o.version > 1 || o.max_version > 1 {
            return Err(EINVAL);
        }
        if o.max_version < o.version {
            o.max_version = o.version;
        }
        if o.version < 1 && o.max_version >= 1 && convert::has_whiteout(root) {
            o.version = 1;
        }
        if o.format != 0 {
            return Err(EINVAL);
        }
        let tree = convert::to_tree(root)?;
        let wopts = WriteOptions {
            version: FormatVersion::V1,
            min_version: o.version,
            max_version: o.max_version,
        };
        let mut sink = CbSink {
            file: o.file,
            cb: o.file_write_cb,
            hasher: (!o.digest_out.is_null()).then(|| {
                cfs_erofs::fsverity::FsVerityHasher::new(cfs_erofs::HashAlgorithm::Sha256)
            }),
            failed: None,
        };
        let res = write_image(&tree, &wopts, &mut sink);
        if let Some(e) = sink.failed {
            return Err(Errno(e));
        }
        res.map_err(|e| Errno(write_errno(&e)))?;
        if let Some(h) = sink.hasher.take() {
            // SAFETY: a non-NULL digest_out is the caller's 32-byte buffer.
            let out = unsafe { digest_out(o.digest_out) }?;
            out.copy_from_slice(h.finish().as_bytes());
        }
        Ok(0)
    })
}

/// Names of `toplevel_entries`, NULL-terminated.
///
/// # Safety
/// `opts` is the caller's options struct; its list, if any, is NULL-terminated.
unsafe fn toplevel(opts: &ReadOptionsC) -> Option<Vec<Vec<u8>>> {
    let mut p = opts.toplevel_entries;
    if p.is_null() {
        return None;
    }
    let mut names = Vec::new();
    // SAFETY: per the function's contract, each element up to the NULL is a C string.
    unsafe {
        while !(*p).is_null() {
            names.push(CStr::from_ptr(*p).to_bytes().to_vec());
            p = p.add(1);
        }
    }
    Some(names)
}

#[no_mangle]
pub unsafe extern "C" fn lcfs_load_node_from_image(data: *const u8, size: usize) -> *mut Node {
    guard(ptr::null_mut(), || {
        // SAFETY: see `bytes`.
        let img = unsafe { bytes(data, size) }?;
        Ok(convert::load(img, None)?.as_ptr())
    })
}

#[no_mangle]
pub unsafe extern "C" fn lcfs_load_node_from_image_ext(
    data: *const u8,
    size: usize,
    opts: *const ReadOptionsC,
) -> *mut Node {
    guard(ptr::null_mut(), || {
        // SAFETY: see `bytes` and `toplevel`; C asserts on NULL options, here it is EINVAL.
        let o = unsafe { opts.as_ref() }.ok_or(EINVAL)?;
        let img = unsafe { bytes(data, size) }?;
        let names = unsafe { toplevel(o) };
        Ok(convert::load(img, names.as_deref())?.as_ptr())
    })
}

/// The whole file behind an fd, from offset 0 (C maps it).
fn read_whole(fd: c_int) -> Res<Vec<u8>> {
    let fd = fsbuild::dir_fd(fd)?;
    let st = rustix::fs::fstat(fd).map_err(|e| Errno(e.raw_os_error()))?;
    let mut buf = vec![0u8; st.st_size.max(0) as usize];
    let mut at = 0;
    while at < buf.len() {
        match rustix::io::pread(fd, &mut buf[at..], at as u64) {
            Ok(0) => break,
            Ok(n) => at += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(Errno(e.raw_os_error())),
        }
    }
    buf.truncate(at);
    Ok(buf)
}

#[no_mangle]
pub extern "C" fn lcfs_load_node_from_fd(fd: c_int) -> *mut Node {
    guard(ptr::null_mut(), || {
        Ok(convert::load(&read_whole(fd)?, None)?.as_ptr())
    })
}

#[no_mangle]
pub unsafe extern "C" fn lcfs_load_node_from_fd_ext(
    fd: c_int,
    opts: *const ReadOptionsC,
) -> *mut Node {
    guard(ptr::null_mut(), || {
        // SAFETY: see `toplevel`; C asserts on NULL options, here it is EINVAL.
        let o = unsafe { opts.as_ref() }.ok_or(EINVAL)?;
        let names = unsafe { toplevel(o) };
        Ok(convert::load(&read_whole(fd)?, names.as_deref())?.as_ptr())
    })
}

#[no_mangle]
pub extern "C" fn lcfs_version_from_fd(fd: c_int) -> c_int {
    guard(-1, || {
        let fd = fsbuild::dir_fd(fd)?;
        // C maps the header: anything but a file or block device cannot be mapped.
        let st = rustix::fs::fstat(fd).map_err(|e| Errno(e.raw_os_error()))?;
        let ft = rustix::fs::FileType::from_raw_mode(st.st_mode);
        if !matches!(
            ft,
            rustix::fs::FileType::RegularFile | rustix::fs::FileType::BlockDevice
        ) {
            return Err(Errno(libc::ENODEV));
        }
        let mut h = [0u8; 32];
        let n = rustix::io::pread(fd, &mut h[..], 0).map_err(|e| Errno(e.raw_os_error()))?;
        let word = |i: usize| u32::from_le_bytes(h[i * 4..i * 4 + 4].try_into().expect("4"));
        if n < h.len() || word(0) != cfs_erofs::format::COMPOSEFS_MAGIC || word(1) != 1 {
            return Err(EINVAL);
        }
        Ok(word(3) as c_int)
    })
}
