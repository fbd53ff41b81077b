//! composefs-rs repositories: the on-disk store composefs-rs 0.9.4 and its initramfs tool
//! (composefs-setup-root) boot from.
//!
//! A repository is a folder holding `meta.json` (version, fs-verity algorithm, EROFS formats),
//! `objects/XX/<rest>` (every blob named by its fs-verity digest: file contents, OCI JSON,
//! [`splitstream`]s, EROFS images), `images/<hex>` (a relative symlink per committed image) and
//! `streams/<content id>` (a relative symlink per splitstream), with named refs under
//! `images/refs/` and `streams/refs/` as garbage-collection roots.
//!
//! [`Repository`] creates and opens one with composefs-rs's rules (an unknown incompatible
//! feature, a newer version or another algorithm is refused), holds the shared `flock` on the
//! folder while it is open (garbage collection takes it exclusively), writes objects atomically
//! (a temporary file in `objects/`, renamed into place once complete, fs-verity enabled first:
//! required in a secure repository, attempted in an insecure one) and writes symlinks with the
//! same relative targets composefs-rs computes. [`import`] brings an OCI image in as
//! composefs-oci's `pull` does; [`check`] lists, verifies and collects any repository.

pub mod boot;
pub mod check;
pub mod import;
pub mod meta;
pub mod splitstream;
mod verity;

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{FlockOperation, Mode, OFlags};

use crate::fsverity::FsVerityHasher;
use crate::tree::{Digest, HashAlgorithm};
pub use meta::{ErofsFormat, Formats, MetaError, RepoMeta};

/// How a new repository is set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepoConfig {
    pub algorithm: HashAlgorithm,
    pub formats: Formats,
    /// fs-verity on `meta.json` and on every object; creating fails where the filesystem has
    /// no fs-verity.
    pub secure: bool,
}

impl Default for RepoConfig {
    /// composefs-rs's default: sha256, V1 images only, secure.
    fn default() -> Self {
        RepoConfig {
            algorithm: HashAlgorithm::Sha256,
            formats: Formats::single(ErofsFormat::V1),
            secure: true,
        }
    }
}

/// What went wrong, with the path at fault.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("{}: {}", path.display(), crate::io_message(source))]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: not a composefs repository (no meta.json)", path.display())]
    NotARepository { path: PathBuf },
    #[error("{}: repository without meta.json (written by composefs-rs before 0.9); upgrade it with composefs-rs first", path.display())]
    OldFormat { path: PathBuf },
    #[error("{}: {source}", path.display())]
    Meta {
        path: PathBuf,
        #[source]
        source: MetaError,
    },
    #[error("{}: the repository uses {found}, not {expected}", path.display())]
    WrongAlgorithm {
        path: PathBuf,
        found: &'static str,
        expected: &'static str,
    },
    #[error("{}: exists with a different configuration", path.display())]
    ConfigMismatch { path: PathBuf },
    #[error("{}: the filesystem does not support fs-verity (use an insecure repository)", path.display())]
    VerityUnsupported { path: PathBuf },
    #[error("{}: the repository was not initialized with fs-verity", path.display())]
    NotSecure { path: PathBuf },
    #[error("{}: fs-verity digest is {actual}, expected {expected}", path.display())]
    VerityMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("{}: fs-verity is not enabled (secure repository)", path.display())]
    VerityMissing { path: PathBuf },
    #[error("{}: {why}", path.display())]
    Invalid { path: PathBuf, why: String },
}

pub(crate) fn io_at(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> RepoError {
    let path = path.into();
    move |source| RepoError::Io { path, source }
}

/// An open repository. The shared lock is held until it is dropped.
pub struct Repository {
    root: PathBuf,
    lock: OwnedFd,
    meta: RepoMeta,
    meta_bytes: Vec<u8>,
    secure: bool,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("root", &self.root)
            .field("meta", &self.meta)
            .field("secure", &self.secure)
            .finish()
    }
}

/// The name of a new transient file (`<prefix><12 random alphanumerics>`).
fn transient_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ (u64::from(std::process::id()) << 32)
        ^ COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut x = seed | 1;
    let alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut s = String::from(prefix);
    for _ in 0..12 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push(alphabet[(x % alphabet.len() as u64) as usize] as char);
    }
    s
}

/// The target composefs-rs gives a symlink `name` pointing at `target` (both relative to the
/// repository root): the leading components they share dropped, `..` for each remaining parent
/// of the link, then the rest of the target.
pub fn relative_target(name: &str, target: &str) -> String {
    let parents: Vec<&str> = match name.rsplit_once('/') {
        Some((dir, _)) => dir
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect(),
        None => Vec::new(),
    };
    let target: Vec<&str> = target
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    let common = parents
        .iter()
        .zip(&target)
        .take_while(|(a, b)| a == b)
        .count();
    let mut out: Vec<&str> = vec![".."; parents.len() - common];
    out.extend(&target[common..]);
    out.join("/")
}

impl Repository {
    /// Opens an existing repository, taking the shared lock.
    pub fn open(path: impl AsRef<Path>) -> Result<Repository, RepoError> {
        let root = path.as_ref().to_owned();
        let lock = rustix::fs::open(
            &root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| RepoError::Io {
            path: root.clone(),
            source: e.into(),
        })?;
        rustix::fs::flock(&lock, FlockOperation::LockShared).map_err(|e| RepoError::Io {
            path: root.clone(),
            source: e.into(),
        })?;
        let meta_path = root.join("meta.json");
        let meta_bytes = match fs::read(&meta_path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(if root.join("objects").is_dir() {
                    RepoError::OldFormat { path: root }
                } else {
                    RepoError::NotARepository { path: root }
                })
            }
            Err(e) => return Err(io_at(meta_path)(e)),
        };
        let meta = RepoMeta::parse(&meta_bytes).map_err(|source| RepoError::Meta {
            path: meta_path.clone(),
            source,
        })?;
        let file = File::open(&meta_path).map_err(io_at(&meta_path))?;
        let secure = verity::measure(&file, meta.algorithm)
            .map_err(io_at(&meta_path))?
            .is_some();
        Ok(Repository {
            root,
            lock,
            meta,
            meta_bytes,
            secure,
        })
    }

    /// Opens a repository, checking that it uses `algorithm`.
    pub fn open_with(
        path: impl AsRef<Path>,
        algorithm: HashAlgorithm,
    ) -> Result<Repository, RepoError> {
        let r = Repository::open(path)?;
        if r.algorithm() != algorithm {
            return Err(RepoError::WrongAlgorithm {
                path: r.root.join("meta.json"),
                found: r.algorithm().name(),
                expected: algorithm.name(),
            });
        }
        Ok(r)
    }

    /// Creates a repository (folder mode 0700 and `meta.json`), or opens it if it exists with
    /// the same configuration.
    pub fn create(path: impl AsRef<Path>, config: &RepoConfig) -> Result<Repository, RepoError> {
        let root = path.as_ref().to_owned();
        match fs::DirBuilder::new().mode(0o700).create(&root) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_at(&root)(e)),
        }
        let meta = RepoMeta::new(config.algorithm, config.formats.clone());
        let bytes = meta.to_json();
        let meta_path = root.join("meta.json");
        if !meta_path.exists() {
            let mut tmp = tempfile::Builder::new()
                .prefix(".tmp-meta-")
                .tempfile_in(&root)
                .map_err(io_at(&root))?;
            tmp.write_all(&bytes).map_err(io_at(tmp.path()))?;
            tmp.as_file()
                .set_permissions(fs::Permissions::from_mode(0o644))
                .map_err(io_at(tmp.path()))?;
            tmp.as_file().sync_all().map_err(io_at(tmp.path()))?;
            let tmp = tmp.into_temp_path();
            if config.secure {
                let ro = File::open(&tmp).map_err(io_at(&meta_path))?;
                verity::enable(&ro, config.algorithm).map_err(|e| {
                    if verity::is_unsupported(&e) {
                        RepoError::VerityUnsupported { path: root.clone() }
                    } else {
                        io_at(&meta_path)(e)
                    }
                })?;
            }
            // Link rather than rename: a meta.json someone else created meanwhile wins.
            match fs::hard_link(&tmp, &meta_path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_at(&meta_path)(e)),
            }
        }
        let r = Repository::open(&root)?;
        if r.meta_bytes != bytes || r.secure != config.secure {
            return Err(RepoError::ConfigMismatch { path: root });
        }
        Ok(r)
    }

    /// Opens the repository if it has a `meta.json`, else creates it with `config`.
    pub fn open_or_create(
        path: impl AsRef<Path>,
        config: &RepoConfig,
    ) -> Result<Repository, RepoError> {
        if path.as_ref().join("meta.json").exists() {
            Repository::open_with(path, config.algorithm)
        } else {
            Repository::create(path, config)
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn meta(&self) -> &RepoMeta {
        &self.meta
    }

    pub fn algorithm(&self) -> HashAlgorithm {
        self.meta.algorithm
    }

    /// Whether `meta.json` has fs-verity, which makes every object's verity mandatory.
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// The folder descriptor the shared lock is held on.
    pub fn lock_fd(&self) -> &OwnedFd {
        &self.lock
    }

    /// `objects/XX/<rest>` of a digest, relative to the root.
    pub fn object_name(d: &Digest) -> String {
        format!("objects/{}", d.object_path())
    }

    pub fn object_path(&self, d: &Digest) -> PathBuf {
        self.root.join(Self::object_name(d))
    }

    /// Opens an object for reading; in a secure repository its fs-verity must be enabled and
    /// equal its name.
    pub fn open_object(&self, d: &Digest) -> Result<File, RepoError> {
        let path = self.object_path(d);
        let f = File::open(&path).map_err(io_at(&path))?;
        if self.secure {
            match verity::measure(&f, self.algorithm()).map_err(io_at(&path))? {
                None => return Err(RepoError::VerityMissing { path }),
                Some(m) if m != *d => {
                    return Err(RepoError::VerityMismatch {
                        path,
                        expected: d.to_hex(),
                        actual: m.to_hex(),
                    })
                }
                Some(_) => {}
            }
        }
        Ok(f)
    }

    /// Reads a whole object.
    pub fn read_object(&self, d: &Digest) -> Result<Vec<u8>, RepoError> {
        let mut f = self.open_object(d)?;
        let mut out = Vec::new();
        f.read_to_end(&mut out)
            .map_err(io_at(self.object_path(d)))?;
        Ok(out)
    }

    /// Stores `data` as an object; returns its digest.
    pub fn write_object(&self, data: &[u8]) -> Result<Digest, RepoError> {
        self.write_object_with(|w| w.write_all(data))
            .map(|(d, _)| d)
    }

    /// Stores what `fill` writes as an object, streaming (never held whole in memory); returns
    /// its digest and size. An object already present is kept.
    pub fn write_object_with(
        &self,
        fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> Result<(Digest, u64), RepoError> {
        let objects = self.root.join("objects");
        ensure_dir(&objects)?;
        let tmp = tempfile::Builder::new()
            .prefix(".tmp-object-")
            .rand_bytes(12)
            .tempfile_in(&objects)
            .map_err(io_at(&objects))?;
        let at = tmp.path().to_owned();
        let mut hasher = FsVerityHasher::new(self.algorithm());
        {
            let mut sink = Hashing {
                inner: BufWriter::with_capacity(1 << 20, tmp.as_file()),
                hasher: &mut hasher,
            };
            fill(&mut sink).map_err(io_at(&at))?;
            sink.inner.flush().map_err(io_at(&at))?;
        }
        let size = hasher.len();
        let digest = hasher.finish();
        self.commit_object(tmp, &digest)?;
        Ok((digest, size))
    }

    /// Gives a complete temporary file its object name: mode 0644, fs-verity enabled (required
    /// when secure), then renamed into `objects/XX/`.
    fn commit_object(&self, tmp: tempfile::NamedTempFile, d: &Digest) -> Result<(), RepoError> {
        let dest = self.object_path(d);
        if let Ok(m) = fs::symlink_metadata(&dest) {
            if m.is_file() && m.len() == tmp.as_file().metadata().map_or(u64::MAX, |t| t.len()) {
                if self.secure {
                    self.open_object(d)?;
                }
                return Ok(());
            }
        }
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(0o644))
            .map_err(io_at(tmp.path()))?;
        let tmp = tmp.into_temp_path();
        seal_object(&tmp, self.algorithm(), self.secure)?;
        ensure_dir(dest.parent().expect("objects/XX"))?;
        tmp.persist(&dest).map_err(|e| io_at(&dest)(e.error))?;
        Ok(())
    }

    /// Flushes every object written so far to disk (`syncfs`), before symlinks make them
    /// reachable: composefs-rs's crash ordering.
    pub fn sync(&self) -> Result<(), RepoError> {
        rustix::fs::syncfs(&self.lock).map_err(|e| io_at(&self.root)(e.into()))
    }

    /// Creates or replaces the symlink `name` (relative to the root) so that it points at
    /// `target` (relative to the root), with composefs-rs's relative target; missing parents
    /// are created (0755). A link that already points there is left alone.
    pub fn symlink(&self, name: &str, target: &str) -> Result<(), RepoError> {
        let rel = relative_target(name, target);
        let path = self.root.join(name);
        if let Ok(old) = fs::read_link(&path) {
            if old.as_os_str().as_bytes() == rel.as_bytes() {
                return Ok(());
            }
        }
        if let Some(parent) = path.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(parent)
                .map_err(io_at(parent))?;
        }
        let tmp = self.root.join(transient_name(".symlink-"));
        std::os::unix::fs::symlink(&rel, &tmp).map_err(io_at(&tmp))?;
        fs::rename(&tmp, &path).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            io_at(&path)(e)
        })
    }

    /// `images/<hex>` → the image's object.
    pub fn link_image(&self, d: &Digest) -> Result<(), RepoError> {
        self.symlink(&format!("images/{}", d.to_hex()), &Self::object_name(d))
    }

    /// `streams/<content id>` → the splitstream's object.
    pub fn link_stream(&self, content_id: &str, d: &Digest) -> Result<(), RepoError> {
        check_component(&self.root, content_id)?;
        self.symlink(&format!("streams/{content_id}"), &Self::object_name(d))
    }

    /// `streams/refs/<name>` → `streams/<content id>`.
    pub fn name_stream(&self, name: &str, content_id: &str) -> Result<(), RepoError> {
        check_ref_name(&self.root, name)?;
        self.symlink(
            &format!("streams/refs/{name}"),
            &format!("streams/{content_id}"),
        )
    }

    /// The object a `streams/<content id>` symlink names, if it exists.
    pub fn stream_object(&self, content_id: &str) -> Result<Option<Digest>, RepoError> {
        let path = self.root.join("streams").join(content_id);
        match fs::read_link(&path) {
            Ok(t) => digest_of_target(&path, t.as_os_str(), self.algorithm()).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_at(path)(e)),
        }
    }
}

/// Readies a finished temporary object: verity enabled on a read-only handle (required when
/// `secure`, else attempted where the filesystem has it).
fn seal_object(path: &Path, alg: HashAlgorithm, secure: bool) -> Result<(), RepoError> {
    let ro = File::open(path).map_err(io_at(path))?;
    match verity::enable(&ro, alg) {
        Ok(()) => Ok(()),
        Err(e) if verity::is_unsupported(&e) && !secure => Ok(()),
        Err(e) if verity::is_unsupported(&e) => Err(RepoError::VerityUnsupported {
            path: path.to_owned(),
        }),
        Err(e) => Err(io_at(path)(e)),
    }
}

/// A hook for `oci::tar`: seals each object the layer reader writes into `objects/`.
pub(crate) fn object_hook(alg: HashAlgorithm, secure: bool) -> crate::oci::tar::ObjectHook {
    crate::oci::tar::ObjectHook::new(move |path: &Path| {
        fs::set_permissions(path, fs::Permissions::from_mode(0o644))?;
        seal_object(path, alg, secure).map_err(io::Error::other)
    })
}

fn ensure_dir(path: &Path) -> Result<(), RepoError> {
    match fs::DirBuilder::new().mode(0o755).create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(path)
            .map_err(io_at(path)),
        Err(e) => Err(io_at(path)(e)),
    }
}

fn check_component(root: &Path, name: &str) -> Result<(), RepoError> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." || name == "refs" {
        return Err(RepoError::Invalid {
            path: root.join("streams").join(name),
            why: format!("`{name}` is not a valid stream name"),
        });
    }
    Ok(())
}

fn check_ref_name(root: &Path, name: &str) -> Result<(), RepoError> {
    if name.is_empty()
        || name
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(RepoError::Invalid {
            path: root.join("streams/refs").join(name),
            why: format!("`{name}` is not a valid ref name"),
        });
    }
    Ok(())
}

/// The digest a symlink into `objects/` names (`…/XX/<rest>`).
pub fn digest_of_target(
    link: &Path,
    target: &OsStr,
    alg: HashAlgorithm,
) -> Result<Digest, RepoError> {
    let t = target.as_bytes();
    let bad = || RepoError::Invalid {
        path: link.to_owned(),
        why: format!(
            "symlink target `{}` does not name an object",
            target.to_string_lossy()
        ),
    };
    let hex_len = alg.digest_len() * 2;
    if t.len() < hex_len + 1 {
        return Err(bad());
    }
    let tail = &t[t.len() - hex_len - 1..];
    if tail[2] != b'/' {
        return Err(bad());
    }
    let hex: Vec<u8> = tail[..2].iter().chain(&tail[3..]).copied().collect();
    digest_from_hex(&hex, alg).ok_or_else(bad)
}

/// Parses lower-case hex of the algorithm's length.
pub fn digest_from_hex(hex: &[u8], alg: HashAlgorithm) -> Option<Digest> {
    if hex.len() != alg.digest_len() * 2
        || !hex.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return None;
    }
    Digest::from_bytes(&hex::decode(hex).ok()?)
}

/// A writer that also feeds an fs-verity hasher.
struct Hashing<'a, W: Write> {
    inner: W,
    hasher: &'a mut FsVerityHasher,
}

impl<W: Write> Write for Hashing<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_targets_match_composefs_rs() {
        let r = relative_target;
        assert_eq!(r("images/ab12", "objects/ab/12"), "../objects/ab/12");
        assert_eq!(r("images/refs/sys/rootfs/one", "images/ab"), "../../../ab");
        assert_eq!(
            r(
                "streams/refs/oci/myimage:latest",
                "streams/oci-manifest-sha256:00"
            ),
            "../../oci-manifest-sha256:00"
        );
        assert_eq!(r("streams/refs/a/b/c", "streams/x"), "../../../x");
        assert_eq!(r("streams/x", "objects/ab/cd"), "../objects/ab/cd");
    }

    #[test]
    fn create_open_and_refuse() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        let cfg = RepoConfig {
            secure: false,
            ..RepoConfig::default()
        };
        let r = Repository::create(&root, &cfg).unwrap();
        assert_eq!(
            fs::metadata(&root).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let id = r.write_object(b"hello").unwrap();
        assert_eq!(id, crate::fsverity::digest(HashAlgorithm::Sha256, b"hello"));
        let p = r.object_path(&id);
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o644
        );
        assert_eq!(r.write_object(b"hello").unwrap(), id);
        r.link_stream("s", &id).unwrap();
        r.name_stream("x/y", "s").unwrap();
        assert_eq!(
            fs::read_link(root.join("streams/refs/x/y")).unwrap(),
            Path::new("../../s")
        );
        assert_eq!(r.stream_object("s").unwrap(), Some(id.clone()));
        drop(r);
        // Same config: reopened; another one: refused.
        Repository::create(&root, &cfg).unwrap();
        let other = RepoConfig {
            algorithm: HashAlgorithm::Sha512,
            ..cfg.clone()
        };
        assert!(matches!(
            Repository::create(&root, &other),
            Err(RepoError::ConfigMismatch { .. })
        ));
        assert!(matches!(
            Repository::open_with(&root, HashAlgorithm::Sha512),
            Err(RepoError::WrongAlgorithm { .. })
        ));
        // Nothing transient left behind.
        let names: Vec<_> = fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
        // A secure repository needs fs-verity: refused where the filesystem has none.
        let secure = dir.path().join("secure");
        match Repository::create(&secure, &RepoConfig::default()) {
            Ok(r) => assert!(r.is_secure()),
            Err(RepoError::VerityUnsupported { .. }) => {}
            Err(e) => panic!("{e}"),
        }
        assert!(matches!(
            Repository::open(dir.path()),
            Err(RepoError::NotARepository { .. })
        ));
    }
}
