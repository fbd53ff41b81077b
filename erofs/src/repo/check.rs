//! Listing, checking and garbage-collecting any composefs-rs repository (ours or composefs-rs's).
//!
//! [`fsck`] reports [`Problem`]s in the repository's own terms: an object whose name is not its
//! digest, a missing object, a broken or misplaced symlink, a stream that does not parse, an
//! image that is not a valid composefs image. [`gc`] follows composefs-rs's reachability rules:
//! the roots are `images/refs/**` (an image keeps the objects its files name) and
//! `streams/refs/**` (a stream keeps its objects and the targets of its named refs, recursing
//! into those that are streams); a ref must name a top-level entry of its folder. `images/<hex>`
//! alone is not a root. Unreachable objects are removed, then symlinks left dangling.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::FlockOperation;

use super::splitstream::{Limits, SplitStream};
use super::{digest_from_hex, digest_of_target, io_at, RepoError, Repository};
use crate::fsverity;
use crate::tree::{Digest, FileData, InodeKind};

/// One thing wrong with a repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// An object's content does not hash to its name.
    ObjectDigest { path: PathBuf, actual: String },
    /// A file in `objects/XX/` whose name is not a digest remainder.
    ObjectName { path: PathBuf },
    /// fs-verity is missing or differs on an object of a secure repository.
    ObjectVerity { path: PathBuf, why: String },
    /// A stream or image names an object that is not there.
    MissingObject { from: PathBuf, object: String },
    /// A top-level entry of `images/` or `streams/` that is not a symlink.
    NotSymlink { path: PathBuf },
    /// A symlink whose target does not exist or is not where composefs-rs expects it.
    BrokenLink { path: PathBuf, why: String },
    /// A stream that does not parse.
    BadStream { path: PathBuf, why: String },
    /// An image that is not a valid composefs image, or is not named by its digest.
    BadImage { path: PathBuf, why: String },
    /// Something could not be read.
    Unreadable { path: PathBuf, why: String },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::ObjectDigest { path, actual } => write!(
                f,
                "{}: object whose name is not its digest (content has {actual})",
                path.display()
            ),
            Problem::ObjectName { path } => {
                write!(f, "{}: not an object name", path.display())
            }
            Problem::ObjectVerity { path, why } => write!(f, "{}: {why}", path.display()),
            Problem::MissingObject { from, object } => {
                write!(f, "{}: missing object {object}", from.display())
            }
            Problem::NotSymlink { path } => write!(f, "{}: not a symlink", path.display()),
            Problem::BrokenLink { path, why } => {
                write!(f, "{}: broken ref: {why}", path.display())
            }
            Problem::BadStream { path, why } => {
                write!(f, "{}: stream does not parse: {why}", path.display())
            }
            Problem::BadImage { path, why } => write!(f, "{}: bad image: {why}", path.display()),
            Problem::Unreadable { path, why } => write!(f, "{}: {why}", path.display()),
        }
    }
}

/// A symlink of `images/` or `streams/`: its path relative to the root and raw target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub name: String,
    pub target: String,
}

/// What a repository holds, names only.
#[derive(Clone, Debug, Default)]
pub struct Listing {
    pub images: Vec<Link>,
    pub image_refs: Vec<Link>,
    pub streams: Vec<Link>,
    pub stream_refs: Vec<Link>,
    pub objects: usize,
}

/// The symlinks directly in `dir` (sorted), and the other entries except `refs`.
fn top_level(root: &Path, dir: &str) -> Result<(Vec<Link>, Vec<PathBuf>), RepoError> {
    let path = root.join(dir);
    let mut links = Vec::new();
    let mut others = Vec::new();
    let rd = match fs::read_dir(&path) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((links, others)),
        Err(e) => return Err(io_at(path)(e)),
    };
    for e in rd {
        let e = e.map_err(io_at(&path))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let ft = e.file_type().map_err(io_at(e.path()))?;
        if ft.is_symlink() {
            let t = fs::read_link(e.path()).map_err(io_at(e.path()))?;
            links.push(Link {
                name: format!("{dir}/{name}"),
                target: t.to_string_lossy().into_owned(),
            });
        } else if !(name == "refs" && ft.is_dir()) {
            others.push(e.path());
        }
    }
    links.sort_by(|a, b| a.name.cmp(&b.name));
    others.sort();
    Ok((links, others))
}

/// Every symlink under `dir/refs/`, recursively (other files are ignored, as composefs-rs does).
fn refs_under(root: &Path, dir: &str) -> Result<Vec<Link>, RepoError> {
    fn walk(root: &Path, rel: &str, out: &mut Vec<Link>) -> Result<(), RepoError> {
        let path = root.join(rel);
        let rd = match fs::read_dir(&path) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_at(path)(e)),
        };
        for e in rd {
            let e = e.map_err(io_at(&path))?;
            let name = format!("{rel}/{}", e.file_name().to_string_lossy());
            let ft = e.file_type().map_err(io_at(e.path()))?;
            if ft.is_dir() {
                walk(root, &name, out)?;
            } else if ft.is_symlink() {
                let t = fs::read_link(e.path()).map_err(io_at(e.path()))?;
                out.push(Link {
                    name,
                    target: t.to_string_lossy().into_owned(),
                });
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(root, &format!("{dir}/refs"), &mut out)?;
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Object files by the digest their name gives, and the files whose name is not a digest.
type ObjectFiles = (Vec<(Digest, PathBuf)>, Vec<PathBuf>);

/// Every object file: (digest from its name, path), plus names that are not objects.
fn objects(repo: &Repository) -> Result<ObjectFiles, RepoError> {
    let alg = repo.algorithm();
    let dir = repo.root().join("objects");
    let mut good = Vec::new();
    let mut bad = Vec::new();
    let rd = match fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((good, bad)),
        Err(e) => return Err(io_at(dir)(e)),
    };
    let mut subdirs = Vec::new();
    for e in rd {
        let e = e.map_err(io_at(&dir))?;
        let name = e.file_name();
        let n = name.as_bytes();
        let is_dir = e.file_type().map_err(io_at(e.path()))?.is_dir();
        if is_dir && n.len() == 2 && n.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            subdirs.push((e.path(), n.to_vec()));
        }
        // Anything else directly under objects/ is ignored (transient files).
    }
    subdirs.sort();
    for (path, prefix) in subdirs {
        let mut names: Vec<_> = fs::read_dir(&path)
            .map_err(io_at(&path))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(io_at(&path))?;
        names.sort();
        for name in names {
            let hex: Vec<u8> = prefix.iter().chain(name.as_bytes()).copied().collect();
            let p = path.join(&name);
            match digest_from_hex(&hex, alg) {
                Some(d) => good.push((d, p)),
                None => bad.push(p),
            }
        }
    }
    Ok((good, bad))
}

/// Lists a repository.
pub fn list(repo: &Repository) -> Result<Listing, RepoError> {
    let root = repo.root();
    Ok(Listing {
        images: top_level(root, "images")?.0,
        image_refs: refs_under(root, "images")?,
        streams: top_level(root, "streams")?.0,
        stream_refs: refs_under(root, "streams")?,
        objects: objects(repo)?.0.len(),
    })
}

/// Where a top-level link points: its object's digest, or why not.
fn link_object(repo: &Repository, link: &Link) -> Result<Digest, String> {
    if !link.target.starts_with("../") {
        return Err(format!(
            "target `{}` is not relative to its folder",
            link.target
        ));
    }
    let path = repo.root().join(&link.name);
    let d = digest_of_target(&path, link.target.as_ref(), repo.algorithm())
        .map_err(|e| e.to_string())?;
    if !repo.object_path(&d).is_file() {
        return Err(format!("target `{}` does not exist", link.target));
    }
    Ok(d)
}

/// The top-level entry of `dir` a ref names (composefs-rs takes the target's last component).
fn ref_entry(link: &Link, dir: &str, tops: &BTreeMap<String, Digest>) -> Result<Digest, String> {
    let base = link.target.rsplit('/').next().unwrap_or_default();
    tops.get(&format!("{dir}/{base}"))
        .cloned()
        .ok_or_else(|| format!("target `{}` names no entry of {dir}/", link.target))
}

/// The objects an image's files name.
fn image_objects(bytes: &[u8]) -> Result<Vec<Digest>, String> {
    let img = crate::read::read_image(bytes).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for (_, inode) in img.tree.inodes() {
        if let InodeKind::Regular(FileData::External { digest, payload }) = &inode.kind {
            if let Some(d) = digest {
                out.push(d.clone());
            } else if let Some(p) = payload {
                let hex: Vec<u8> = p.iter().copied().filter(|&b| b != b'/').collect();
                if let Some(d) = Digest::from_bytes(&hex::decode(&hex).unwrap_or_default()) {
                    out.push(d);
                }
            }
        }
    }
    Ok(out)
}

/// The state shared by fsck and gc: the top-level links resolved.
struct Resolved {
    images: BTreeMap<String, Digest>,
    streams: BTreeMap<String, Digest>,
}

fn resolve_tops(repo: &Repository, problems: &mut Vec<Problem>) -> Result<Resolved, RepoError> {
    let mut r = Resolved {
        images: BTreeMap::new(),
        streams: BTreeMap::new(),
    };
    for (dir, map) in [("images", &mut r.images), ("streams", &mut r.streams)] {
        let (links, others) = top_level(repo.root(), dir)?;
        problems.extend(others.into_iter().map(|path| Problem::NotSymlink { path }));
        for l in links {
            match link_object(repo, &l) {
                Ok(d) => {
                    map.insert(l.name.clone(), d);
                }
                Err(why) => problems.push(Problem::BrokenLink {
                    path: repo.root().join(&l.name),
                    why,
                }),
            }
        }
    }
    Ok(r)
}

/// Checks everything; an empty list means the repository is sound.
pub fn fsck(repo: &Repository) -> Result<Vec<Problem>, RepoError> {
    let mut problems = Vec::new();
    let alg = repo.algorithm();
    let (objs, bad_names) = objects(repo)?;
    problems.extend(
        bad_names
            .into_iter()
            .map(|path| Problem::ObjectName { path }),
    );
    let mut sizes: HashMap<Digest, u64> = HashMap::new();
    for (d, path) in &objs {
        match fsverity::digest_file(alg, path) {
            Ok(actual) if actual == *d => {
                sizes.insert(d.clone(), fs::metadata(path).map_or(0, |m| m.len()));
            }
            Ok(actual) => problems.push(Problem::ObjectDigest {
                path: path.clone(),
                actual: actual.to_hex(),
            }),
            Err(e) => problems.push(Problem::Unreadable {
                path: path.clone(),
                why: crate::io_message(&e),
            }),
        }
        if repo.is_secure() {
            if let Err(e) = repo.open_object(d) {
                problems.push(Problem::ObjectVerity {
                    path: path.clone(),
                    why: e.to_string(),
                });
            }
        }
    }
    let tops = resolve_tops(repo, &mut problems)?;
    let missing = |from: &Path, d: &Digest, problems: &mut Vec<Problem>| {
        if !sizes.contains_key(d) && !repo.object_path(d).is_file() {
            problems.push(Problem::MissingObject {
                from: from.to_owned(),
                object: d.to_hex(),
            });
        }
    };
    for (name, d) in &tops.streams {
        let path = repo.root().join(name);
        let bytes = match fs::read(repo.object_path(d)) {
            Ok(b) => b,
            Err(e) => {
                problems.push(Problem::Unreadable {
                    path,
                    why: crate::io_message(&e),
                });
                continue;
            }
        };
        let s = match SplitStream::parse(&bytes, Some(alg), &Limits::default()) {
            Ok(s) => s,
            Err(e) => {
                problems.push(Problem::BadStream {
                    path,
                    why: e.to_string(),
                });
                continue;
            }
        };
        for o in &s.object_refs {
            missing(&path, o, &mut problems);
        }
        for (_, i) in &s.named_refs {
            missing(&path, &s.stream_refs[*i], &mut problems);
        }
        let all_known = s.object_refs.iter().all(|o| sizes.contains_key(o));
        if all_known {
            let total = s.inline_len()
                + s.chunks
                    .iter()
                    .filter_map(|c| match c {
                        super::splitstream::Chunk::External(i) => sizes.get(&s.object_refs[*i]),
                        _ => None,
                    })
                    .sum::<u64>();
            if total != s.stream_size {
                problems.push(Problem::BadStream {
                    path,
                    why: format!(
                        "records a size of {} bytes, its pieces make {total}",
                        s.stream_size
                    ),
                });
            }
        }
    }
    for (name, d) in &tops.images {
        let path = repo.root().join(name);
        let hex = name.rsplit('/').next().unwrap_or_default();
        if hex != d.to_hex() {
            problems.push(Problem::BadImage {
                path: path.clone(),
                why: format!("points at object {}", d.to_hex()),
            });
        }
        match fs::read(repo.object_path(d)) {
            Ok(bytes) => match image_objects(&bytes) {
                Ok(objs) => {
                    for o in objs {
                        missing(&path, &o, &mut problems);
                    }
                }
                Err(why) => problems.push(Problem::BadImage { path, why }),
            },
            Err(e) => problems.push(Problem::Unreadable {
                path,
                why: crate::io_message(&e),
            }),
        }
    }
    for (dir, map) in [("images", &tops.images), ("streams", &tops.streams)] {
        for l in refs_under(repo.root(), dir)? {
            if let Err(why) = ref_entry(&l, dir, map) {
                problems.push(Problem::BrokenLink {
                    path: repo.root().join(&l.name),
                    why,
                });
            }
        }
    }
    Ok(problems)
}

/// What garbage collection removed (or would remove).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Unreachable objects and their sizes.
    pub objects: Vec<(PathBuf, u64)>,
    /// Symlinks that no longer resolve.
    pub links: Vec<PathBuf>,
}

impl GcReport {
    pub fn bytes(&self) -> u64 {
        self.objects.iter().map(|(_, n)| n).sum()
    }
}

/// Why garbage collection refused to run.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("refusing to collect garbage: {0}")]
    Unsound(Problem),
}

/// Collects garbage (or, with `dry_run`, only reports it). A layout problem that makes
/// reachability uncertain (an entry that is not a symlink, a ref naming no entry, a stream that
/// does not parse, a file in `objects/` that is not an object) stops it before anything is
/// removed.
pub fn gc(repo: &Repository, dry_run: bool) -> Result<GcReport, GcError> {
    if !dry_run {
        rustix::fs::flock(repo.lock_fd(), FlockOperation::LockExclusive)
            .map_err(|e| io_at(repo.root())(e.into()))?;
    }
    let result = gc_locked(repo, dry_run);
    if !dry_run {
        rustix::fs::flock(repo.lock_fd(), FlockOperation::LockShared)
            .map_err(|e| io_at(repo.root())(e.into()))?;
    }
    result
}

fn gc_locked(repo: &Repository, dry_run: bool) -> Result<GcReport, GcError> {
    let alg = repo.algorithm();
    let mut problems = Vec::new();
    let tops = resolve_tops(repo, &mut problems)?;
    if let Some(p) = problems
        .into_iter()
        .find(|p| matches!(p, Problem::NotSymlink { .. }))
    {
        return Err(GcError::Unsound(p));
    }
    let (objs, bad) = objects(repo)?;
    if let Some(path) = bad.into_iter().next() {
        return Err(GcError::Unsound(Problem::ObjectName { path }));
    }
    let stream_by_digest: HashMap<&Digest, &String> =
        tops.streams.iter().map(|(n, d)| (d, n)).collect();
    let mut live: BTreeSet<Digest> = BTreeSet::new();
    let mut queue: Vec<Digest> = Vec::new();
    for l in refs_under(repo.root(), "images")? {
        let d = ref_entry(&l, "images", &tops.images).map_err(|why| {
            GcError::Unsound(Problem::BrokenLink {
                path: repo.root().join(&l.name),
                why,
            })
        })?;
        let bytes = fs::read(repo.object_path(&d)).map_err(io_at(repo.object_path(&d)))?;
        let files = image_objects(&bytes).map_err(|why| {
            GcError::Unsound(Problem::BadImage {
                path: repo.root().join(&l.name),
                why,
            })
        })?;
        live.extend(files);
        live.insert(d);
    }
    for l in refs_under(repo.root(), "streams")? {
        let d = ref_entry(&l, "streams", &tops.streams).map_err(|why| {
            GcError::Unsound(Problem::BrokenLink {
                path: repo.root().join(&l.name),
                why,
            })
        })?;
        queue.push(d);
    }
    let mut seen_streams = BTreeSet::new();
    while let Some(d) = queue.pop() {
        if !seen_streams.insert(d.clone()) {
            continue;
        }
        live.insert(d.clone());
        let path = repo.object_path(&d);
        let bytes = fs::read(&path).map_err(io_at(&path))?;
        let s = SplitStream::parse(&bytes, Some(alg), &Limits::default()).map_err(|e| {
            GcError::Unsound(Problem::BadStream {
                path: path.clone(),
                why: e.to_string(),
            })
        })?;
        live.extend(s.object_refs.iter().cloned());
        for (_, i) in &s.named_refs {
            let t = &s.stream_refs[*i];
            live.insert(t.clone());
            if stream_by_digest.contains_key(t) {
                queue.push(t.clone());
            }
        }
    }
    let mut report = GcReport::default();
    for (d, path) in objs {
        if live.contains(&d) {
            continue;
        }
        let size = fs::symlink_metadata(&path).map_or(0, |m| m.len());
        if !dry_run {
            fs::remove_file(&path).map_err(io_at(&path))?;
        }
        report.objects.push((path, size));
    }
    // Links left dangling (or that would be).
    let gone: BTreeSet<PathBuf> = report.objects.iter().map(|(p, _)| p.clone()).collect();
    let dangling = |target: &Path| !target.exists() || gone.contains(target);
    for (dir, map) in [("images", &tops.images), ("streams", &tops.streams)] {
        let mut dead_tops = BTreeSet::new();
        for (name, d) in map {
            if dangling(&repo.object_path(d)) {
                dead_tops.insert(name.clone());
                report.links.push(repo.root().join(name));
            }
        }
        for l in refs_under(repo.root(), dir)? {
            let base = l.target.rsplit('/').next().unwrap_or_default();
            if dead_tops.contains(&format!("{dir}/{base}")) {
                report.links.push(repo.root().join(&l.name));
            }
        }
    }
    if !dry_run {
        for l in &report.links {
            fs::remove_file(l).map_err(io_at(l))?;
        }
    }
    Ok(report)
}

/// One committed image.
#[derive(Clone, Debug)]
pub struct ImageInfo {
    pub id: String,
    pub size: u64,
    /// `composefs_version` of its header (0, 1: C's layout; 2: composefs-rs V2), if readable.
    pub composefs_version: Option<u32>,
    /// Who names it: `images/refs/…` links and `<stream>:<named ref>` of streams.
    pub named_by: Vec<String>,
}

/// Every `images/<hex>` with its size, layout version and the refs naming it.
pub fn images(repo: &Repository) -> Result<Vec<ImageInfo>, RepoError> {
    let mut problems = Vec::new();
    let tops = resolve_tops(repo, &mut problems)?;
    let mut named: BTreeMap<Digest, Vec<String>> = BTreeMap::new();
    for l in refs_under(repo.root(), "images")? {
        if let Ok(d) = ref_entry(&l, "images", &tops.images) {
            named.entry(d).or_default().push(l.name.clone());
        }
    }
    let image_set: BTreeSet<&Digest> = tops.images.values().collect();
    for (name, d) in &tops.streams {
        let Ok(bytes) = fs::read(repo.object_path(d)) else {
            continue;
        };
        let Ok(s) = SplitStream::parse(&bytes, Some(repo.algorithm()), &Limits::default()) else {
            continue;
        };
        for (n, i) in &s.named_refs {
            if image_set.contains(&s.stream_refs[*i]) {
                named
                    .entry(s.stream_refs[*i].clone())
                    .or_default()
                    .push(format!("{name}:{n}"));
            }
        }
    }
    let mut out = Vec::new();
    for (name, d) in &tops.images {
        let path = repo.object_path(d);
        let bytes = fs::read(&path).map_err(io_at(&path))?;
        let composefs_version = crate::read::ImageView::new(&bytes)
            .ok()
            .map(|v| v.composefs_version);
        out.push(ImageInfo {
            id: name.rsplit('/').next().unwrap_or_default().to_owned(),
            size: bytes.len() as u64,
            composefs_version,
            named_by: named.remove(d).unwrap_or_default(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::tests::Layer;
    use crate::repo::import::{import_tar_layers, ImportOptions};
    use crate::repo::RepoConfig;

    /// A tar import rooted only by its image ref: GC keeps the image and every file object it
    /// names, removes the unrooted layer stream, a stray object and their symlinks, and
    /// leaves a sound repository.
    #[test]
    fn gc_keeps_what_refs_reach() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::create(
            dir.path().join("r"),
            &RepoConfig {
                secure: false,
                ..RepoConfig::default()
            },
        )
        .unwrap();
        let layer = Layer::new()
            .dir("usr", 0o755)
            .file("usr/big", &[7; 1000])
            .bytes();
        let imported =
            import_tar_layers(&repo, [&layer[..]], Some("root"), &ImportOptions::default())
                .unwrap();
        let stray = repo.write_object(b"nobody names me").unwrap();
        let dry = gc(&repo, true).unwrap();
        // The stray object and the layer splitstream; the stream's symlink.
        assert_eq!(dry.objects.len(), 2, "{dry:?}");
        assert_eq!(dry.links.len(), 1, "{dry:?}");
        assert!(repo.object_path(&stray).exists());
        assert_eq!(gc(&repo, false).unwrap(), dry);
        assert!(!repo.object_path(&stray).exists());
        assert!(repo.object_path(imported.default_image()).exists());
        assert_eq!(fsck(&repo).unwrap(), []);
        assert_eq!(gc(&repo, true).unwrap(), GcReport::default());
        let l = list(&repo).unwrap();
        assert_eq!(l.image_refs.len(), 1);
        assert!(l.streams.is_empty());
    }
}
