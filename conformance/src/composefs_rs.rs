//! Our trees and images beside composefs-rs 0.9.4's: an OCI layout imported by composefs-oci,
//! a [`Tree`] converted to its `FileSystem` (hardlinks as shared leaves), its dumpfile text, and
//! the image id it computes.
//! Comparing through composefs-rs's own dumpfile writer covers every stat field, xattr,
//! content reference and hardlink at once.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

use cfs_erofs::tree::{FileData, InodeId, InodeKind, Tree};
use composefs::dumpfile::write_dumpfile;
use composefs::erofs::format::{FormatConfig, FormatVersion};
use composefs::erofs::writer::{mkfs_erofs_versioned, ValidatedFileSystem};
use composefs::fsverity::{compute_verity, FsVerityHashValue};
use composefs::generic_tree::{OciTransformOptions, XattrFiltering};
use composefs::repository::{Repository, RepositoryConfig};
use composefs::tree::{Directory, FileSystem, Inode, LeafContent, RegularFile, Stat};

/// Our tree in composefs-rs's tree type, hardlinks kept as shared leaves.
pub fn to_composefs_rs<H: FsVerityHashValue>(t: &Tree) -> FileSystem<H> {
    fn stat(t: &Tree, id: InodeId) -> Stat {
        let i = t.inode(id);
        Stat {
            st_mode: u32::from(i.permissions),
            st_uid: i.uid,
            st_gid: i.gid,
            st_mtim_sec: i.mtime.sec,
            st_mtim_nsec: i.mtime.nsec,
            xattrs: i
                .xattrs
                .iter()
                .map(|x| (Box::from(OsStr::from_bytes(&x.name)), Box::from(&*x.value)))
                .collect(),
        }
    }
    fn dir<H: FsVerityHashValue>(
        t: &Tree,
        id: InodeId,
        fs: &mut FileSystem<H>,
        leaves: &mut HashMap<InodeId, composefs::generic_tree::LeafId>,
    ) -> Directory<H> {
        let mut d = Directory::new(stat(t, id));
        for e in t.dir(id).unwrap().entries() {
            let name = OsStr::from_bytes(&e.name);
            let inode = t.inode(e.inode);
            if inode.is_dir() {
                let sub = dir(t, e.inode, fs, leaves);
                d.insert(name, Inode::Directory(Box::new(sub)));
                continue;
            }
            let leaf = match leaves.get(&e.inode) {
                Some(&l) => l,
                None => {
                    let content = match &inode.kind {
                        InodeKind::Regular(FileData::Inline(c)) => {
                            LeafContent::Regular(RegularFile::Inline(c.to_vec().into()))
                        }
                        InodeKind::Regular(FileData::External { digest, .. }) => {
                            let d = digest.as_ref().expect("external files carry a digest");
                            LeafContent::Regular(RegularFile::External(
                                H::from_hex(d.to_hex()).unwrap(),
                                inode.size,
                            ))
                        }
                        InodeKind::Symlink(target) => {
                            LeafContent::Symlink(Box::from(OsStr::from_bytes(target)))
                        }
                        InodeKind::CharDevice(r) => LeafContent::CharacterDevice(u64::from(*r)),
                        InodeKind::BlockDevice(r) => LeafContent::BlockDevice(u64::from(*r)),
                        InodeKind::Fifo => LeafContent::Fifo,
                        InodeKind::Socket => LeafContent::Socket,
                        InodeKind::Directory(_) => unreachable!(),
                    };
                    let l = fs.push_leaf(stat(t, e.inode), content);
                    leaves.insert(e.inode, l);
                    l
                }
            };
            d.insert(name, Inode::leaf(leaf));
        }
        d
    }
    let mut fs = FileSystem::new(stat(t, InodeId::ROOT));
    let mut leaves = HashMap::new();
    fs.root = dir(t, InodeId::ROOT, &mut fs, &mut leaves);
    fs
}

/// composefs-rs's dumpfile of a tree.
pub fn dump<H: FsVerityHashValue>(fs: &FileSystem<H>) -> String {
    let mut out = Vec::new();
    write_dumpfile(&mut out, fs).unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// The image id (fs-verity digest of the image) composefs-rs computes for a tree.
pub fn image_id<H: FsVerityHashValue>(fs: &FileSystem<H>, version: FormatVersion) -> String {
    let validated = ValidatedFileSystem::new(fs.clone()).unwrap();
    compute_verity::<H>(&mkfs_erofs_versioned(&validated, version)).to_hex()
}

/// An OCI layout as composefs-oci sees it: the repository it was imported into (kept in `_dir`)
/// and the filesystem `create_filesystem` builds.
pub struct Imported<H: FsVerityHashValue> {
    pub _dir: tempfile::TempDir,
    pub repo: Arc<Repository<H>>,
    pub fs: FileSystem<H>,
}

/// Imports an OCI layout folder with composefs-oci into a fresh insecure repository; `Err` is
/// composefs-oci's refusal.
pub fn import_layout<H: FsVerityHashValue>(
    layout: &Path,
    filter: XattrFiltering,
) -> Result<Imported<H>, String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = RepositoryConfig::new(H::ALGORITHM).set_insecure();
    config.erofs_formats = FormatConfig {
        default: FormatVersion::V1,
        extra: [FormatVersion::V2].into(),
    };
    let (repo, _) = Repository::init_path(rustix::fs::CWD, dir.path().join("repo"), config)
        .expect("init repository");
    let repo = Arc::new(repo);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    let (pull, _) = rt
        .block_on(composefs_oci::oci_layout::import_oci_layout(
            &repo,
            composefs_oci::oci_layout::OciLayoutKind::Directory,
            layout,
            None,
            Arc::new(composefs::progress::NullReporter),
        ))
        .map_err(|e| format!("import: {e:#}"))?;
    let fs = composefs_oci::image::create_filesystem(
        &repo,
        &pull.config_digest,
        Some(&pull.config_verity),
        &OciTransformOptions { xattrs: filter },
    )
    .map_err(|e| format!("create_filesystem: {e:#}"))?;
    Ok(Imported {
        _dir: dir,
        repo,
        fs,
    })
}
