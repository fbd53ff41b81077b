//! The filesystem composefs-fuse serves: a composefs image read on demand through the
//! library's checked per-inode access ([`ImageView::checked_inode`], `dir_listing`, `content`),
//! file contents from the objects the overlay redirects name.
//!
//! What it shows follows C's cfs-fuse wherever C's tests compare: inode numbers are nids (the
//! root is 1), compact inodes carry the superblock's build time, overlay whiteouts (character
//! or block devices 0/0) are hidden, only `user.*` xattrs are listed and returned (so escaped
//! `trusted.overlay.overlay.*` names never show), symlinks and inline files come from the image.
//! Beyond C: every read of the image is checked (a malformed inode, directory or xattr gives
//! EIO, never a crash), objects are looked up in several base directories, an object's
//! fs-verity digest is checked against the image's metacopy digest when it is opened (EIO on a
//! mismatch, cached per inode while the object file is unchanged), and statfs answers.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cfs_erofs::format::dirent_type;
use cfs_erofs::fsverity::FsVerityHasher;
use cfs_erofs::read::{Content, ImageView, RawInode, ReadError};
use cfs_erofs::tree::{Digest, FileType, Mtime};
use fuser::{
    Errno, FileAttr, FileHandle, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, OpenAccMode, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyLseek, ReplyOpen, ReplyStatfs, ReplyXattr, Request,
};

/// How long the kernel may cache entries and attributes (C uses an hour: nothing changes).
const TTL: Duration = Duration::from_secs(3600);

const ACL_NAMES: [&[u8]; 2] = [b"system.posix_acl_access", b"system.posix_acl_default"];

/// An xattr as served: full name and value.
type NamedValue = (Vec<u8>, &'static [u8]);

/// One entry of a directory as served.
#[derive(Clone, Debug)]
struct Child {
    name: &'static [u8],
    nid: u64,
    kind: fuser::FileType,
    /// An overlay whiteout: listed by neither readdir nor lookup.
    hidden: bool,
}

/// A directory as served: its `..` and its entries in stored (sorted) order.
struct Listing {
    parent: u64,
    children: Vec<Child>,
}

/// The identity of an object file whose digest was checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ObjectId {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
}

/// Options of the served filesystem.
pub struct Settings {
    /// Serve no POSIX ACL names (C's `noacl`).
    pub noacl: bool,
    /// Print one line per request on stderr (`-d`).
    pub debug: bool,
}

pub struct ComposefsFs {
    view: ImageView<'static>,
    basedirs: Vec<OwnedFd>,
    settings: Settings,
    /// Checked listings of the directories visited so far, by nid.
    dirs: Mutex<HashMap<u64, Arc<Listing>>>,
    /// Objects whose fs-verity digest matched, by nid.
    verified: Mutex<HashMap<u64, ObjectId>>,
    /// Open object files by handle (handle 0: content inline in the image).
    handles: Mutex<HashMap<u64, Arc<File>>>,
    next_handle: AtomicU64,
}

/// EIO for anything wrong in the image, logged when debugging.
fn image_error(debug: bool, what: &str, e: &ReadError) -> Errno {
    if debug {
        eprintln!("composefs-fuse: {what}: {e}");
    }
    Errno::EIO
}

fn system_time(m: Mtime) -> SystemTime {
    let nsec = Duration::from_nanos(u64::from(m.nsec.min(999_999_999)));
    if m.sec >= 0 {
        UNIX_EPOCH + Duration::from_secs(m.sec as u64) + nsec
    } else {
        UNIX_EPOCH - Duration::from_secs(m.sec.unsigned_abs()) + nsec
    }
}

fn fuse_kind(t: FileType) -> fuser::FileType {
    match t {
        FileType::Regular => fuser::FileType::RegularFile,
        FileType::Directory => fuser::FileType::Directory,
        FileType::Symlink => fuser::FileType::Symlink,
        FileType::CharDevice => fuser::FileType::CharDevice,
        FileType::BlockDevice => fuser::FileType::BlockDevice,
        FileType::Fifo => fuser::FileType::NamedPipe,
        FileType::Socket => fuser::FileType::Socket,
    }
}

/// A character or block device 0/0: what overlayfs takes for a whiteout.
fn is_whiteout(r: &RawInode) -> bool {
    matches!(r.file_type, FileType::CharDevice | FileType::BlockDevice) && r.u == 0
}

fn concat(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(a.len() + b.len());
    v.extend_from_slice(a);
    v.extend_from_slice(b);
    v
}

impl ComposefsFs {
    /// `image` lives as long as the process: the server never lets go of it.
    pub fn new(
        image: &'static [u8],
        basedirs: Vec<OwnedFd>,
        settings: Settings,
    ) -> Result<Self, ReadError> {
        Ok(ComposefsFs {
            view: ImageView::new(image)?,
            basedirs,
            settings,
            dirs: Mutex::new(HashMap::new()),
            verified: Mutex::new(HashMap::new()),
            handles: Mutex::new(HashMap::new()),
            next_handle: AtomicU64::new(1),
        })
    }

    fn has_acl(&self) -> bool {
        self.view.flags & cfs_erofs::format::COMPOSEFS_FLAGS_HAS_ACL != 0
    }

    fn nid(&self, ino: INodeNo) -> u64 {
        match u64::from(ino) {
            1 => self.view.root_nid,
            n => n,
        }
    }

    fn ino(&self, nid: u64) -> INodeNo {
        INodeNo(if nid == self.view.root_nid { 1 } else { nid })
    }

    fn inode(&self, nid: u64) -> Result<RawInode, Errno> {
        self.view
            .checked_inode(nid)
            .map_err(|e| image_error(self.settings.debug, &format!("inode {nid}"), &e))
    }

    fn attr(&self, r: &RawInode) -> FileAttr {
        let t = system_time(r.mtime);
        FileAttr {
            ino: self.ino(r.nid),
            size: r.size,
            blocks: r.size.div_ceil(512),
            atime: t,
            mtime: t,
            ctime: t,
            crtime: t,
            kind: fuse_kind(r.file_type),
            perm: r.mode & 0o7777,
            nlink: r.nlink,
            uid: r.uid,
            gid: r.gid,
            rdev: r.rdev(),
            blksize: 4096,
            flags: 0,
        }
    }

    /// The checked, typed entries of directory `nid`, read once.
    fn children(&self, nid: u64) -> Result<Arc<Listing>, Errno> {
        if let Some(c) = self.dirs.lock().expect("dirs lock").get(&nid) {
            return Ok(c.clone());
        }
        let dir = self.inode(nid)?;
        if !dir.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        let debug = self.settings.debug;
        let listing = self
            .view
            .dir_listing(&dir)
            .map_err(|e| image_error(debug, &format!("directory {nid}"), &e))?;
        let mut out = Vec::with_capacity(listing.entries.len());
        for d in listing.entries {
            let r = self.inode(d.nid)?;
            if d.file_type != dirent_type(r.file_type) {
                if debug {
                    eprintln!(
                        "composefs-fuse: directory {nid}: entry type differs from inode {}",
                        d.nid
                    );
                }
                return Err(Errno::EIO);
            }
            out.push(Child {
                name: d.name,
                nid: d.nid,
                kind: fuse_kind(r.file_type),
                hidden: is_whiteout(&r),
            });
        }
        let out = Arc::new(Listing {
            parent: listing.parent,
            children: out,
        });
        self.dirs
            .lock()
            .expect("dirs lock")
            .insert(nid, out.clone());
        Ok(out)
    }

    /// The nid `name` names in directory `parent` (`.` and `..` included, which the kernel
    /// asks for when the mount is exported over NFS).
    fn lookup_nid(&self, parent: u64, name: &[u8]) -> Result<u64, Errno> {
        let listing = self.children(parent)?;
        let children = &listing.children;
        match name {
            b"." => return Ok(parent),
            b".." => return Ok(listing.parent),
            _ => {}
        }
        match children.binary_search_by(|c| c.name.cmp(name)) {
            Ok(i) if !children[i].hidden => Ok(children[i].nid),
            _ => Err(Errno::ENOENT),
        }
    }

    /// The xattrs served for an inode: `user.*` names, first occurrence of each name.
    fn user_xattrs(&self, r: &RawInode) -> Result<Vec<NamedValue>, Errno> {
        let debug = self.settings.debug;
        let err = |e: ReadError| image_error(debug, &format!("xattrs of inode {}", r.nid), &e);
        let mut it = self.view.xattrs(r).map_err(err)?;
        let mut out: Vec<NamedValue> = Vec::new();
        while let Some((x, _, _)) = it.next_entry().map_err(err)? {
            let name = concat(x.prefix, x.suffix);
            if name.starts_with(b"user.") && !out.iter().any(|(n, _)| *n == name) {
                out.push((name, x.value));
            }
        }
        Ok(out)
    }

    /// Opens the object `payload` in the first base directory that has it, without following
    /// symlinks or leaving the base directory. An object that no base directory has is EIO,
    /// as overlayfs answers for missing lower data (C passes on openat's ENOENT).
    fn open_object(&self, payload: &[u8]) -> Result<File, Errno> {
        use rustix::fs::{openat2, Mode, OFlags, ResolveFlags};
        let path = OsStr::from_bytes(payload.strip_prefix(b"/").unwrap_or(payload));
        let mut last = Errno::EIO;
        for dir in &self.basedirs {
            match openat2(
                dir,
                path,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
            ) {
                Ok(fd) => return Ok(File::from(fd)),
                Err(e) if e == rustix::io::Errno::NOENT => continue,
                Err(e) => last = Errno::from_i32(e.raw_os_error()),
            }
        }
        Err(last)
    }

    /// Checks an opened object against the inode: same size, and the fs-verity digest the
    /// metacopy xattr records (computed here: the object's filesystem need not have
    /// fs-verity). A match is remembered while the object file stays the same.
    fn verify(&self, r: &RawInode, file: &File, digest: Option<&Digest>) -> Result<(), Errno> {
        let debug = self.settings.debug;
        let meta = file.metadata().map_err(Errno::from)?;
        if meta.len() != r.size {
            if debug {
                eprintln!(
                    "composefs-fuse: inode {}: object has {} bytes, the image says {}",
                    r.nid,
                    meta.len(),
                    r.size
                );
            }
            return Err(Errno::EIO);
        }
        let Some(want) = digest else { return Ok(()) };
        let id = ObjectId {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        };
        if self.verified.lock().expect("verified lock").get(&r.nid) == Some(&id) {
            return Ok(());
        }
        let mut hasher = FsVerityHasher::new(want.algorithm());
        let mut buf = vec![0u8; 1 << 20];
        let mut f = file;
        loop {
            let n = f.read(&mut buf).map_err(Errno::from)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let got = hasher.finish();
        if got != *want {
            if debug {
                eprintln!(
                    "composefs-fuse: inode {}: object digest {} differs from the image's {}",
                    r.nid,
                    got.to_hex(),
                    want.to_hex()
                );
            }
            return Err(Errno::EIO);
        }
        self.verified
            .lock()
            .expect("verified lock")
            .insert(r.nid, id);
        Ok(())
    }

    fn log(&self, what: std::fmt::Arguments<'_>) {
        if self.settings.debug {
            eprintln!("composefs-fuse: {what}");
        }
    }
}

impl Filesystem for ComposefsFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        for cap in [
            InitFlags::FUSE_CACHE_SYMLINKS,
            InitFlags::FUSE_EXPORT_SUPPORT,
        ] {
            if config.capabilities().contains(cap) {
                let _ = config.add_capabilities(cap);
            }
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.log(format_args!("lookup {parent} {name:?}"));
        match self
            .lookup_nid(self.nid(parent), name.as_bytes())
            .and_then(|nid| self.inode(nid))
        {
            Ok(r) => reply.entry(&TTL, &self.attr(&r), Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        self.log(format_args!("getattr {ino}"));
        match self.inode(self.nid(ino)) {
            Ok(r) => reply.attr(&TTL, &self.attr(&r)),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        self.log(format_args!("readlink {ino}"));
        let r = match self.inode(self.nid(ino)) {
            Ok(r) if r.file_type == FileType::Symlink => r,
            Ok(_) => return reply.error(Errno::EINVAL),
            Err(e) => return reply.error(e),
        };
        match self.view.content(&r) {
            Ok(Content::Inline(b, t)) => reply.data(&concat(b, t)),
            Ok(_) => reply.error(Errno::EIO),
            Err(e) => reply.error(image_error(self.settings.debug, "symlink", &e)),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        self.log(format_args!("open {ino}"));
        if flags.acc_mode() != OpenAccMode::O_RDONLY {
            return reply.error(Errno::EROFS);
        }
        let r = match self.inode(self.nid(ino)) {
            Ok(r) if r.file_type == FileType::Regular => r,
            Ok(r) if r.is_dir() => return reply.error(Errno::EISDIR),
            Ok(_) => return reply.error(Errno::EINVAL),
            Err(e) => return reply.error(e),
        };
        let content = match self.view.content(&r) {
            Ok(c) => c,
            Err(e) => return reply.error(image_error(self.settings.debug, "file", &e)),
        };
        match content {
            Content::Inline(..) => reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE),
            // Data neither in the image nor named by a redirect: the image is wrong (C
            // answers ENXIO).
            Content::External { payload: None, .. } => {
                self.log(format_args!("inode {}: no redirect to read from", r.nid));
                reply.error(Errno::EIO)
            }
            Content::External {
                payload: Some(p),
                digest,
            } => {
                let file = match self.open_object(p) {
                    Ok(f) => f,
                    Err(e) => return reply.error(e),
                };
                if let Err(e) = self.verify(&r, &file, digest.as_ref()) {
                    return reply.error(e);
                }
                let fh = self.next_handle.fetch_add(1, Ordering::Relaxed);
                self.handles
                    .lock()
                    .expect("handles lock")
                    .insert(fh, Arc::new(file));
                reply.opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE)
            }
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        self.log(format_args!("read {ino} {offset}+{size}"));
        let fh = u64::from(fh);
        if fh != 0 {
            let Some(file) = self.handles.lock().expect("handles lock").get(&fh).cloned() else {
                return reply.error(Errno::EBADF);
            };
            let mut buf = vec![0u8; size as usize];
            let mut got = 0;
            while got < buf.len() {
                match file.read_at(&mut buf[got..], offset + got as u64) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return reply.error(Errno::from(e)),
                }
            }
            return reply.data(&buf[..got]);
        }
        let r = match self.inode(self.nid(ino)) {
            Ok(r) => r,
            Err(e) => return reply.error(e),
        };
        match self.view.content(&r) {
            Ok(Content::Inline(b, t)) => {
                let start = offset.min(r.size) as usize;
                let end = (offset.saturating_add(u64::from(size))).min(r.size) as usize;
                let mut out = Vec::with_capacity(end - start);
                for (part, at) in [(b, 0usize), (t, b.len())] {
                    let (s, e) = (start.max(at), end.min(at + part.len()));
                    if s < e {
                        out.extend_from_slice(&part[s - at..e - at]);
                    }
                }
                reply.data(&out)
            }
            Ok(_) => reply.error(Errno::EBADF),
            Err(e) => reply.error(image_error(self.settings.debug, "file", &e)),
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.handles
            .lock()
            .expect("handles lock")
            .remove(&u64::from(fh));
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        self.log(format_args!("opendir {ino}"));
        match self.children(self.nid(ino)) {
            Ok(_) => reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        self.log(format_args!("readdir {ino} from {offset}"));
        let nid = self.nid(ino);
        let listing = match self.children(nid) {
            Ok(c) => c,
            Err(e) => return reply.error(e),
        };
        let children = &listing.children;
        let dir = fuser::FileType::Directory;
        // Offsets: 1 after ".", 2 after "..", 3 + i after child i.
        let mut next = offset;
        if next == 0 {
            if reply.add(ino, 1, dir, ".") {
                return reply.ok();
            }
            next = 1;
        }
        if next == 1 {
            // The parent's number does not matter to the kernel, which answers ".." itself.
            if reply.add(ino, 2, dir, "..") {
                return reply.ok();
            }
            next = 2;
        }
        for (i, c) in children.iter().enumerate().skip((next - 2) as usize) {
            if c.hidden {
                continue;
            }
            if reply.add(
                self.ino(c.nid),
                3 + i as u64,
                c.kind,
                OsStr::from_bytes(c.name),
            ) {
                break;
            }
        }
        reply.ok()
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let blocks = self.view.bytes().len() as u64 / 4096;
        reply.statfs(blocks, 0, 0, self.view.inos, 0, 4096, 255, 4096);
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        self.log(format_args!("getxattr {ino} {name:?}"));
        let name = name.as_bytes();
        if ACL_NAMES.contains(&name) {
            // ACLs are not served (as C): unsupported unless the image has some.
            let e = if self.has_acl() && !self.settings.noacl {
                Errno::ENODATA
            } else {
                Errno::EOPNOTSUPP
            };
            return reply.error(e);
        }
        let r = match self.inode(self.nid(ino)) {
            Ok(r) => r,
            Err(e) => return reply.error(e),
        };
        let xattrs = match self.user_xattrs(&r) {
            Ok(x) => x,
            Err(e) => return reply.error(e),
        };
        match xattrs.iter().find(|(n, _)| n == name) {
            None => reply.error(Errno::ENODATA),
            Some((_, v)) if size == 0 => reply.size(v.len() as u32),
            Some((_, v)) if (size as usize) < v.len() => reply.error(Errno::ERANGE),
            Some((_, v)) => reply.data(v),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        self.log(format_args!("listxattr {ino}"));
        let r = match self.inode(self.nid(ino)) {
            Ok(r) => r,
            Err(e) => return reply.error(e),
        };
        let xattrs = match self.user_xattrs(&r) {
            Ok(x) => x,
            Err(e) => return reply.error(e),
        };
        let mut list = Vec::new();
        for (n, _) in &xattrs {
            list.extend_from_slice(n);
            list.push(0);
        }
        if size == 0 {
            reply.size(list.len() as u32)
        } else if (size as usize) < list.len() {
            reply.error(Errno::ERANGE)
        } else {
            reply.data(&list)
        }
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        // default_permissions: the kernel checks; nothing more to say.
        reply.ok();
    }

    fn lseek(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        // Only SEEK_DATA and SEEK_HOLE reach the server; files have no holes.
        const SEEK_DATA: i32 = 3;
        const SEEK_HOLE: i32 = 4;
        let r = match self.inode(self.nid(ino)) {
            Ok(r) => r,
            Err(e) => return reply.error(e),
        };
        let size = i64::try_from(r.size).unwrap_or(i64::MAX);
        match whence {
            _ if offset < 0 => reply.error(Errno::EINVAL),
            _ if offset >= size => reply.error(Errno::ENXIO),
            SEEK_DATA => reply.offset(offset),
            SEEK_HOLE => reply.offset(size),
            _ => reply.error(Errno::EINVAL),
        }
    }
}
