//! Building a tree from a directory on disk, the way C `mkcomposefs SOURCE IMAGE` does.
//!
//! C's rules, which decide bytes of the image:
//! - every entry is `lstat`ed; symlinks are not followed;
//! - each inode gets nlink 1: C does not detect hardlinks in a source directory, so two names of
//!   one file become two inodes;
//! - `st_size` is kept for every type (it matters to the V1 compact-inode choice);
//! - non-empty regular files of at most 64 bytes are inlined; larger ones become external, named
//!   by the sha256 fs-verity digest of their content (`XX/rest`), with that digest recorded;
//! - xattrs are read in `llistxattr` order (`--skip-xattrs`: none; `--user-xattrs`: only
//!   `user.*`; both at once is an error, EINVAL, as in C);
//! - `--use-epoch` zeroes every mtime; `--skip-devices` drops character and block devices below
//!   the root.
//!
//! Digests are computed while the walk goes on: the walking thread hands each regular file to
//! [`ScanOptions::threads`] digest workers, so that the walk's system calls overlap with
//! hashing and every core hashes.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};

use rustix::fs::OFlags;

use crate::fsverity::{self, FsVerityHasher};
use crate::tree::{FileData, HashAlgorithm, Inode, InodeId, InodeKind, Mtime, Tree, XattrInterner};

/// C's `LCFS_RECOMMENDED_INLINE_CONTENT_MAX`: files up to this size are stored in the image.
pub const INLINE_MAX: u64 = 64;

/// How to read a directory.
#[derive(Clone, Debug)]
pub struct ScanOptions {
    pub skip_xattrs: bool,
    pub user_xattrs: bool,
    pub use_epoch: bool,
    pub skip_devices: bool,
    /// Worker threads for digests; 0 means one per CPU.
    pub threads: usize,
    /// Algorithm of the object digests (C: always sha256).
    pub algorithm: HashAlgorithm,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            skip_xattrs: false,
            user_xattrs: false,
            use_epoch: false,
            skip_devices: false,
            threads: 0,
            algorithm: HashAlgorithm::Sha256,
        }
    }
}

/// Why a scan failed; `path` is the source path at fault, as C reports it.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("error accessing {}: {}", path.display(), crate::io_message(source))]
    Access { path: PathBuf, source: io::Error },
    #[error("error computing digest: {}", crate::io_message(source))]
    Digest { path: PathBuf, source: io::Error },
}

/// A scanned tree, and where on disk each external file's content is (for a digest store).
pub struct Scanned {
    pub tree: Tree,
    /// `(inode, source path)` of every external regular file, in walk order.
    pub external: Vec<(InodeId, PathBuf)>,
}

/// Reads the directory `src` into a tree.
pub fn scan(src: &Path, opts: &ScanOptions) -> Result<Scanned, ScanError> {
    let access = |path: &Path, source| ScanError::Access {
        path: path.to_path_buf(),
        source,
    };
    if opts.skip_xattrs && opts.user_xattrs {
        return Err(access(src, io::Error::from_raw_os_error(libc_einval())));
    }
    let meta = fs::symlink_metadata(src).map_err(|e| access(src, e))?;
    if !meta.is_dir() {
        return Err(access(src, io::Error::from_raw_os_error(20 /* ENOTDIR */)));
    }
    let threads = match opts.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let (job_tx, job_rx) = mpsc::channel::<(usize, PathBuf, u64)>();
    let (done_tx, done_rx) = mpsc::channel::<(usize, io::Result<FileData>)>();
    let jobs = Mutex::new(job_rx);
    let cancel = AtomicBool::new(false);
    let (walked, results) = std::thread::scope(|s| {
        for _ in 0..threads {
            let (jobs, done_tx, cancel) = (&jobs, done_tx.clone(), &cancel);
            s.spawn(move || digest_worker(jobs, done_tx, cancel, opts.algorithm));
        }
        drop(done_tx);
        let walked = walk(src, opts, &job_tx);
        drop(job_tx);
        if walked.is_err() {
            cancel.store(true, Ordering::Relaxed);
        }
        (walked, done_rx.iter().collect::<Vec<_>>())
    });
    let (mut tree, files) = walked?;

    // The first failing file in walk order is the one reported.
    let mut data: Vec<Option<io::Result<FileData>>> = (0..files.len()).map(|_| None).collect();
    for (i, r) in results {
        data[i] = Some(r);
    }
    let mut external = Vec::new();
    for ((id, path), r) in files.into_iter().zip(data) {
        let r = r.unwrap_or_else(|| Err(io::Error::other("digest worker stopped")));
        let d = r.map_err(|source| ScanError::Digest {
            path: path.clone(),
            source,
        })?;
        if matches!(d, FileData::External { .. }) {
            external.push((id, path));
        }
        tree.inode_mut(id).kind = InodeKind::Regular(d);
    }
    Ok(Scanned { tree, external })
}

/// Regular files whose content is read by the digest workers: `(inode, path)`, in walk order.
type Files = Vec<(InodeId, PathBuf)>;

/// The walk itself: every entry `lstat`ed, in sorted name order, depth-first; each non-empty
/// regular file is sent to the digest workers as soon as it is met.
fn walk(
    src: &Path,
    opts: &ScanOptions,
    jobs: &mpsc::Sender<(usize, PathBuf, u64)>,
) -> Result<(Tree, Files), ScanError> {
    let access = |path: &Path, source| ScanError::Access {
        path: path.to_path_buf(),
        source,
    };
    let mut interner = XattrInterner::new();
    let mut root = Inode::directory(0);
    let meta = fs::symlink_metadata(src).map_err(|e| access(src, e))?;
    fill_stat(&mut root, &meta, opts);
    read_xattrs(&mut root, src, opts, &mut interner).map_err(|e| access(src, e))?;
    let mut tree = Tree::new(root);

    let mut files: Files = Vec::new();
    let mut stack: Vec<(InodeId, PathBuf)> = vec![(InodeId::ROOT, src.to_path_buf())];
    while let Some((dir_id, dir_path)) = stack.pop() {
        let mut entries: Vec<(Vec<u8>, fs::FileType)> = Vec::new();
        for e in fs::read_dir(&dir_path).map_err(|e| access(&dir_path, e))? {
            let e = e.map_err(|e| access(&dir_path, e))?;
            let ft = e.file_type().map_err(|err| access(&e.path(), err))?;
            entries.push((e.file_name().as_bytes().to_vec(), ft));
        }
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (name, ft) in entries {
            let path = dir_path.join(OsStr::from_bytes(&name));
            if opts.skip_devices && (ft.is_block_device() || ft.is_char_device()) {
                continue;
            }
            let meta = fs::symlink_metadata(&path).map_err(|e| access(&path, e))?;
            let kind = kind_of(&meta, &path).map_err(|e| access(&path, e))?;
            let mut inode = Inode::new(kind, 0);
            fill_stat(&mut inode, &meta, opts);
            read_xattrs(&mut inode, &path, opts, &mut interner).map_err(|e| access(&path, e))?;
            let is_dir = inode.is_dir();
            let is_file = matches!(inode.kind, InodeKind::Regular(_)) && meta.len() > 0;
            let id = tree
                .add(dir_id, &name, inode)
                .map_err(|e| access(&path, io::Error::other(e)))?;
            if is_dir {
                stack.push((id, path));
            } else if is_file {
                // A send fails only when every worker is gone, which the result check reports.
                let _ = jobs.send((files.len(), path.clone(), meta.len()));
                files.push((id, path));
            }
        }
    }
    tree.shrink_to_fit();
    Ok((tree, files))
}

/// One digest worker: takes files until the walk is over (or failed), reusing one buffer.
fn digest_worker(
    jobs: &Mutex<mpsc::Receiver<(usize, PathBuf, u64)>>,
    done: mpsc::Sender<(usize, io::Result<FileData>)>,
    cancel: &AtomicBool,
    alg: HashAlgorithm,
) {
    let mut buf = vec![0u8; fsverity::READ_BUFFER_SIZE];
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok((i, path, size)) = job else { return };
        if cancel.load(Ordering::Relaxed) {
            return;
        }
        if done
            .send((i, file_data(&path, size, alg, &mut buf)))
            .is_err()
        {
            return;
        }
    }
}

fn file_data(path: &Path, size: u64, alg: HashAlgorithm, buf: &mut [u8]) -> io::Result<FileData> {
    if size <= INLINE_MAX {
        let mut content = Vec::with_capacity(size as usize);
        open_regular(path)?.take(size).read_to_end(&mut content)?;
        if content.len() as u64 != size {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        return Ok(FileData::Inline(content.into()));
    }
    // As `fsverity::digest_file`, with the worker's buffer; errors name the file.
    let with_path = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    let mut file = open_regular(path).map_err(with_path)?;
    let mut h = FsVerityHasher::new(alg);
    loop {
        match file.read(buf) {
            Ok(0) => break,
            Ok(n) => h.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(with_path(e)),
        }
    }
    let digest = h.finish();
    Ok(FileData::External {
        payload: Some(digest.object_path().into_bytes().into()),
        digest: Some(digest),
    })
}

/// Opens a file the walk saw as regular, without following a symlink or blocking on a FIFO
/// that replaced it since (either then fails to read as the size the walk saw).
fn open_regular(path: &Path) -> io::Result<File> {
    fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlags::NOFOLLOW | OFlags::NONBLOCK).bits() as i32)
        .open(path)
}

fn kind_of(meta: &fs::Metadata, path: &Path) -> io::Result<InodeKind> {
    let ft = meta.file_type();
    Ok(if ft.is_dir() {
        InodeKind::Directory(Default::default())
    } else if ft.is_file() {
        InodeKind::Regular(FileData::Inline(Box::default()))
    } else if ft.is_symlink() {
        let target = fs::read_link(path)?;
        let target = target.as_os_str().as_bytes();
        if target.is_empty() || target.len() > 4095 {
            return Err(io::Error::from_raw_os_error(libc_einval()));
        }
        InodeKind::Symlink(target.into())
    } else if ft.is_char_device() {
        InodeKind::CharDevice(meta.rdev() as u32)
    } else if ft.is_block_device() {
        InodeKind::BlockDevice(meta.rdev() as u32)
    } else if ft.is_fifo() {
        InodeKind::Fifo
    } else {
        InodeKind::Socket
    })
}

fn fill_stat(inode: &mut Inode, meta: &fs::Metadata, opts: &ScanOptions) {
    inode.permissions = (meta.mode() & 0o7777) as u16;
    inode.uid = meta.uid();
    inode.gid = meta.gid();
    inode.nlink = 1;
    inode.size = meta.size();
    inode.mtime = if opts.use_epoch {
        Mtime::default()
    } else {
        Mtime::new(meta.mtime(), meta.mtime_nsec() as u32)
    };
}

fn read_xattrs(
    inode: &mut Inode,
    path: &Path,
    opts: &ScanOptions,
    interner: &mut XattrInterner,
) -> io::Result<()> {
    if opts.skip_xattrs {
        return Ok(());
    }
    let mut names = vec![0u8; 1024];
    let len = loop {
        match rustix::fs::llistxattr(path, &mut names[..]) {
            Ok(n) => break n,
            Err(rustix::io::Errno::RANGE) => names.resize(names.len() * 4, 0),
            Err(rustix::io::Errno::NOTSUP) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    };
    let mut value = vec![0u8; 256];
    for name in names[..len].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        if opts.user_xattrs && !name.starts_with(b"user.") {
            continue;
        }
        let cname = std::ffi::CString::new(name).map_err(io::Error::other)?;
        let n = loop {
            match rustix::fs::lgetxattr(path, cname.as_c_str(), &mut value[..]) {
                Ok(n) => break n,
                Err(rustix::io::Errno::RANGE) => value.resize(value.len() * 4, 0),
                Err(e) => return Err(e.into()),
            }
        };
        inode.xattrs.push(interner.xattr(name, &value[..n]));
    }
    Ok(())
}

const fn libc_einval() -> i32 {
    22
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn scans_types_inlining_and_digests() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::create_dir(d.join("sub")).unwrap();
        fs::write(d.join("sub/small"), b"x".repeat(64)).unwrap();
        fs::write(d.join("big"), b"y".repeat(65)).unwrap();
        fs::write(d.join("empty"), b"").unwrap();
        symlink("target", d.join("link")).unwrap();
        let s = scan(
            d,
            &ScanOptions {
                use_epoch: true,
                ..Default::default()
            },
        )
        .unwrap();
        let t = &s.tree;
        let small = t.inode(t.lookup_path(b"/sub/small").unwrap());
        assert_eq!(
            small.kind,
            InodeKind::Regular(FileData::Inline(b"x".repeat(64).into()))
        );
        let big = t.inode(t.lookup_path(b"/big").unwrap());
        let InodeKind::Regular(FileData::External { payload, digest }) = &big.kind else {
            panic!()
        };
        let digest = digest.as_ref().unwrap();
        assert_eq!(payload.as_deref(), Some(digest.object_path().as_bytes()));
        assert_eq!(
            *digest,
            fsverity::digest(HashAlgorithm::Sha256, &b"y".repeat(65))
        );
        let empty = t.inode(t.lookup_path(b"/empty").unwrap());
        assert_eq!(
            empty.kind,
            InodeKind::Regular(FileData::Inline(Box::default()))
        );
        let link = t.inode(t.lookup_path(b"/link").unwrap());
        assert_eq!(link.kind, InodeKind::Symlink(b"target"[..].into()));
        assert_eq!(link.size, 6);
        assert!(t.inodes().all(|(_, i)| i.mtime == Mtime::default()));
        assert_eq!(s.external.len(), 1);
    }

    #[test]
    fn skip_and_user_xattrs_conflict() {
        let dir = tempfile::tempdir().unwrap();
        let opts = ScanOptions {
            skip_xattrs: true,
            user_xattrs: true,
            ..Default::default()
        };
        let err = scan(dir.path(), &opts).err().unwrap();
        assert!(err.to_string().ends_with(": Invalid argument"), "{err}");
    }
}
