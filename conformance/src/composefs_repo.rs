//! composefs-rs 0.9.4 repositories as the oracle: pull an OCI layout with composefs-oci, run
//! composefs-rs's own checkers on a repository (ours or theirs), read the image ids it records,
//! and compare two repositories entry by entry.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cfs_erofs::repo::splitstream::{Limits, SplitStream};
use composefs::erofs::format::{FormatConfig, FormatVersion};
use composefs::fsverity::{FsVerityHashValue, Sha256HashValue};
use composefs::generic_tree::{OciTransformOptions, XattrFiltering};
use composefs::repository::{Repository, RepositoryConfig};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime")
}

/// Creates an insecure sha256 repository with V1 default and V2 extra (the layout the issue's
/// examples use) and pulls `oci:LAYOUT:REF` into it with composefs-oci, tagging it `tag`.
pub fn pull(
    layout: &Path,
    reference: &str,
    repo: &Path,
    tag: &str,
    bootable: bool,
) -> Result<(), String> {
    let mut config = RepositoryConfig::new(Sha256HashValue::ALGORITHM).set_insecure();
    config.erofs_formats = FormatConfig {
        default: FormatVersion::V1,
        extra: [FormatVersion::V2].into(),
    };
    let (r, _) = Repository::<Sha256HashValue>::init_path(rustix::fs::CWD, repo, config)
        .map_err(|e| format!("init: {e:#}"))?;
    let r = Arc::new(r);
    let imgref = format!("oci:{}:{reference}", layout.display());
    runtime()
        .block_on(composefs_oci::pull(
            &r,
            &imgref,
            Some(tag),
            composefs_oci::PullOptions {
                bootable,
                ..Default::default()
            },
        ))
        .map_err(|e| format!("pull: {e:#}"))?;
    Ok(())
}

/// What composefs-rs's checkers say about a repository.
#[derive(Debug)]
pub struct Verdict {
    pub fsck: Result<(), String>,
    pub oci_fsck: Result<(), String>,
    /// `gc_dry_run`: (objects it would remove, their bytes), or its refusal.
    pub garbage: Result<(u64, u64), String>,
}

/// Opens a sha256 repository read-only with composefs-rs.
pub fn open(repo: &Path) -> Result<Arc<Repository<Sha256HashValue>>, String> {
    Repository::<Sha256HashValue>::open_path(rustix::fs::CWD, repo)
        .map(Arc::new)
        .map_err(|e| format!("open: {e:#}"))
}

/// Runs `fsck`, `oci_fsck` and `gc_dry_run` on a repository.
pub fn verdict(repo: &Path) -> Result<Verdict, String> {
    let r = open(repo)?;
    let rt = runtime();
    let fsck = match rt.block_on(r.fsck()) {
        Ok(res) if res.is_ok() => Ok(()),
        Ok(res) => Err(res.to_string()),
        Err(e) => Err(format!("{e:#}")),
    };
    let oci_fsck = match rt.block_on(composefs_oci::oci_image::oci_fsck(&r)) {
        Ok(res) if res.is_ok() => Ok(()),
        Ok(res) => Err(format!("{res}")),
        Err(e) => Err(format!("{e:#}")),
    };
    let garbage = r
        .gc_dry_run(&[])
        .map(|g| (g.objects_removed, g.objects_bytes))
        .map_err(|e| format!("{e:#}"));
    Ok(Verdict {
        fsck,
        oci_fsck,
        garbage,
    })
}

/// The ids composefs-oci reads from a tagged image: (V1, V2, boot V1, boot V2), in hex.
pub fn recorded_ids(repo: &Path, tag: &str) -> Result<[Option<String>; 4], String> {
    let r = open(repo)?;
    let img =
        composefs_oci::oci_image::OciImage::open_ref(&r, tag).map_err(|e| format!("{e:#}"))?;
    let hex = |d: Option<&Sha256HashValue>| d.map(|d| d.to_hex());
    Ok([
        hex(img.image_ref_v1()),
        hex(img.image_ref_v2()),
        hex(img.boot_image_ref_v1()),
        hex(img.boot_image_ref_v2()),
    ])
}

/// The V1 and V2 ids composefs-rs computes from the tagged image's layer streams
/// (`create_filesystem` then `compute_image_id`).
pub fn computed_ids(repo: &Path, tag: &str) -> Result<[String; 2], String> {
    let r = open(repo)?;
    let img =
        composefs_oci::oci_image::OciImage::open_ref(&r, tag).map_err(|e| format!("{e:#}"))?;
    let fs = composefs_oci::image::create_filesystem(
        &r,
        img.config_digest(),
        Some(img.config_verity()),
        &OciTransformOptions {
            xattrs: XattrFiltering::AllowlistOnly,
        },
    )
    .map_err(|e| format!("create_filesystem: {e:#}"))?;
    Ok([
        crate::composefs_rs::image_id(&fs, FormatVersion::V1),
        crate::composefs_rs::image_id(&fs, FormatVersion::V2),
    ])
}

/// One entry of a repository, objects aside: a symlink's target, or a folder/file and its mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    Link(String),
    Dir(u32),
    File(u32, u64),
}

/// Every entry under `root`, by relative path.
pub fn entries(root: &Path) -> BTreeMap<String, Entry> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Entry>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let m = fs::symlink_metadata(&p).unwrap();
            if m.file_type().is_symlink() {
                let t = fs::read_link(&p).unwrap();
                out.insert(rel, Entry::Link(t.to_string_lossy().into_owned()));
            } else if m.is_dir() {
                out.insert(rel, Entry::Dir(m.permissions().mode() & 0o7777));
                walk(root, &p, out);
            } else {
                out.insert(rel, Entry::File(m.mode() & 0o7777, m.len()));
            }
        }
    }
    let mut out = BTreeMap::new();
    out.insert(
        String::new(),
        Entry::Dir(fs::metadata(root).unwrap().permissions().mode() & 0o7777),
    );
    walk(root, root, &mut out);
    out
}

/// A splitstream's meaning: content type, size, named refs by name → target hex, object refs
/// in chunk order. Two manifests that differ only in stream-ref order mean the same.
/// Named refs that lead to other splitstreams are compared by those streams' meaning.
pub fn meaning(repo: &Path, path: &Path) -> String {
    let s = SplitStream::parse(&fs::read(path).unwrap(), None, &Limits::default()).unwrap();
    let names: BTreeMap<_, _> = s
        .named_refs
        .iter()
        .map(|(n, i)| {
            let d = &s.stream_refs[*i];
            let obj = repo.join("objects").join(d.object_path());
            let nested = fs::read(&obj)
                .ok()
                .filter(|b| SplitStream::parse(b, None, &Limits::default()).is_ok());
            let value = match nested {
                Some(_) => format!("({})", meaning(repo, &obj)),
                None => d.to_hex(),
            };
            (n.clone(), value)
        })
        .collect();
    format!(
        "type {:x} size {} named {names:?} objects {:?}",
        s.content_type,
        s.stream_size,
        s.object_refs.iter().map(|d| d.to_hex()).collect::<Vec<_>>()
    )
}

/// The object file a `streams/` or `images/` symlink resolves to.
pub fn resolve(root: &Path, link: &str) -> PathBuf {
    let l = root.join(link);
    l.parent().unwrap().join(fs::read_link(&l).unwrap())
}
