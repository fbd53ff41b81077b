//! Applying tar layers on top of each other, and the post-processing every OCI image gets.
//!
//! [`LayerMerger`] applies [`TarEntry`]s in archive order with overlay semantics: `.wh.NAME`
//! removes `NAME`, `.wh..wh..opq` empties its directory, a directory on top of a directory only
//! replaces the metadata, anything else replaces what was there (a whole subtree included).
//! Parents must already exist. [`transform_for_oci`] then makes the result independent of how
//! the image was built: the root takes `/usr`'s metadata, `/run` is emptied, xattrs are filtered
//! to an allowlist, unreachable inodes are dropped and link counts derived from references.
//! These are the rules of composefs-rs 0.9.4 (`process_entry`, `transform_for_oci`).

#![forbid(unsafe_code)]

use crate::oci::tar::{TarEntry, TarItem};
use crate::tree::{display_bytes, Inode, InodeId, Tree, TreeError};

/// What is wrong with an entry or a tree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeFault {
    #[error("the root entry must be a directory")]
    RootNotDirectory,
    #[error("parent directory `{0}` does not exist")]
    MissingParent(String),
    #[error("`{0}` is not a directory")]
    NotADirectory(String),
    #[error("hardlink target `{0}` does not exist")]
    MissingLinkTarget(String),
    #[error("hardlink target `{0}` is a directory")]
    LinkToDirectory(String),
    #[error("hardlink target is the root directory")]
    LinkToRoot,
    #[error(transparent)]
    Tree(#[from] TreeError),
    #[error("/usr does not exist (the root takes its metadata)")]
    NoUsr,
}

/// An entry could not be applied, or the tree could not be transformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("/{path}: {fault}")]
pub struct MergeError {
    /// The entry's path (normalised, without the leading `/`).
    pub path: String,
    pub fault: MergeFault,
}

fn err(path: &[u8], fault: MergeFault) -> MergeError {
    MergeError {
        path: display_bytes(path),
        fault,
    }
}

/// Which xattrs survive [`transform_for_oci`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum XattrFilter {
    /// Only `security.capability` (composefs-rs's default).
    #[default]
    AllowlistOnly,
    /// `security.capability` and every `user.*` xattr.
    KeepUserXattrs,
}

impl XattrFilter {
    pub fn keeps(self, name: &[u8]) -> bool {
        name == b"security.capability"
            || (self == XattrFilter::KeepUserXattrs && name.starts_with(b"user."))
    }
}

/// Builds a tree from layers applied one after another.
#[derive(Debug, Clone)]
pub struct LayerMerger {
    tree: Tree,
}

impl Default for LayerMerger {
    fn default() -> Self {
        Self::new()
    }
}

impl LayerMerger {
    /// Starts from an empty root with all-zero metadata (mode 0), as composefs-rs does; the
    /// root's real metadata comes from a root entry or from `/usr` later.
    pub fn new() -> Self {
        let mut root = Inode::directory(0);
        root.nlink = 2;
        LayerMerger {
            tree: Tree::new(root),
        }
    }

    pub fn tree(&self) -> &Tree {
        &self.tree
    }

    pub fn into_tree(self) -> Tree {
        self.tree
    }

    /// Walks the directories named by `path`; every component must be a directory.
    fn find_dir(&self, path: &[u8]) -> Result<InodeId, MergeFault> {
        let mut cur = InodeId::ROOT;
        if path.is_empty() {
            return Ok(cur);
        }
        for (end, comp) in components_with_end(path) {
            let Some(e) = self.tree.lookup(cur, comp) else {
                return Err(MergeFault::MissingParent(display_bytes(&path[..end])));
            };
            if !self.tree.inode(e.inode).is_dir() {
                return Err(MergeFault::NotADirectory(display_bytes(&path[..end])));
            }
            cur = e.inode;
        }
        Ok(cur)
    }

    /// The inode a hardlink points at: it must exist and not be a directory.
    fn link_target(&self, target: &[u8]) -> Result<InodeId, MergeFault> {
        if target.is_empty() {
            return Err(MergeFault::LinkToRoot);
        }
        let (dir, name) = split_last(target);
        let dir = self.find_dir(dir)?;
        let e = self
            .tree
            .lookup(dir, name)
            .ok_or_else(|| MergeFault::MissingLinkTarget(display_bytes(target)))?;
        if self.tree.inode(e.inode).is_dir() {
            return Err(MergeFault::LinkToDirectory(display_bytes(target)));
        }
        Ok(e.inode)
    }

    /// Applies one entry.
    pub fn apply(&mut self, entry: TarEntry) -> Result<(), MergeError> {
        let path = &*entry.path;
        if path.is_empty() {
            return match entry.item {
                TarItem::Node(inode) if inode.is_dir() => {
                    copy_stat(self.tree.root_mut(), &inode);
                    Ok(())
                }
                _ => Err(err(path, MergeFault::RootNotDirectory)),
            };
        }
        // The new item is resolved before the whiteout check, as composefs-rs does, so that a
        // broken hardlink is an error whatever its name.
        let link = match &entry.item {
            TarItem::Hardlink(target) => Some(self.link_target(target).map_err(|f| err(path, f))?),
            TarItem::Node(_) => None,
        };
        let (dir, name) = split_last(path);
        let parent = self.find_dir(dir).map_err(|f| err(path, f))?;
        if let Some(victim) = name.strip_prefix(b".wh.") {
            if victim == b".wh..opq" {
                self.tree
                    .clear_dir(parent)
                    .map_err(|f| err(path, f.into()))?;
            } else {
                // Removing something that is not there is fine.
                let _ = self.tree.unlink(parent, victim);
            }
            return Ok(());
        }
        let result = match (entry.item, link) {
            (_, Some(target)) => self.tree.replace(parent, name, target, true).map(drop),
            (TarItem::Node(inode), None) => {
                let existing_dir = self
                    .tree
                    .lookup(parent, name)
                    .map(|e| e.inode)
                    .filter(|&id| self.tree.inode(id).is_dir());
                match existing_dir {
                    Some(id) if inode.is_dir() => {
                        copy_stat(self.tree.inode_mut(id), &inode);
                        Ok(())
                    }
                    _ => {
                        crate::tree::check_name(name).map_err(|f| err(path, f.into()))?;
                        let id = self.tree.push_inode(inode);
                        self.tree.replace(parent, name, id, false).map(drop)
                    }
                }
            }
            (TarItem::Hardlink(_), None) => unreachable!("hardlinks are resolved above"),
        };
        result.map_err(|f| err(path, f.into()))
    }
}

/// Replaces a directory's metadata (mode, owner, mtime, xattrs) and keeps its entries.
fn copy_stat(dst: &mut Inode, src: &Inode) {
    dst.permissions = src.permissions;
    dst.uid = src.uid;
    dst.gid = src.gid;
    dst.mtime = src.mtime;
    dst.xattrs = src.xattrs.clone();
}

/// Splits `a/b/c` into (`a/b`, `c`); a single component has an empty directory part.
fn split_last(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&[], path),
    }
}

/// Components of a normalised path with the end offset of each (for error messages).
fn components_with_end(path: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut start = 0;
    path.split(|&b| b == b'/').map(move |c| {
        let end = start + c.len();
        start = end + 1;
        (end, c)
    })
}

/// Sets every reachable inode's link count from the tree: the number of names of a
/// non-directory, and 2 plus the number of subdirectories for a directory.
pub fn set_nlinks(tree: &mut Tree) {
    let refs = tree.reference_counts();
    for (i, &names) in refs.iter().enumerate() {
        let id = InodeId(i as u32);
        let nlink = match tree.inode(id).as_dir() {
            Some(d) => {
                2 + d
                    .entries()
                    .iter()
                    .filter(|e| !e.link && tree.inode(e.inode).is_dir())
                    .count() as u32
            }
            None => names,
        };
        tree.inode_mut(id).nlink = nlink;
    }
}

/// The post-processing composefs-rs applies to every OCI image (see the module doc). `/usr`
/// must exist and be a directory; `/run`, if present, must be a directory.
pub fn transform_for_oci(tree: &mut Tree, filter: XattrFilter) -> Result<(), MergeError> {
    let usr = match tree.lookup(InodeId::ROOT, b"usr") {
        None => return Err(err(b"usr", MergeFault::NoUsr)),
        Some(e) => e.inode,
    };
    if !tree.inode(usr).is_dir() {
        return Err(err(b"usr", MergeFault::NotADirectory("usr".into())));
    }
    let usr_inode = tree.inode(usr).clone_stat();
    copy_stat(tree.root_mut(), &usr_inode);
    if let Some(run) = tree.lookup(InodeId::ROOT, b"run").map(|e| e.inode) {
        if !tree.inode(run).is_dir() {
            return Err(err(b"run", MergeFault::NotADirectory("run".into())));
        }
        tree.clear_dir(run).map_err(|f| err(b"run", f.into()))?;
        tree.inode_mut(run).mtime = usr_inode.mtime;
    }
    for i in 0..tree.len() {
        tree.inode_mut(InodeId(i as u32))
            .xattrs
            .retain(|x| filter.keeps(&x.name));
    }
    tree.compact();
    set_nlinks(tree);
    Ok(())
}

trait CloneStat {
    fn clone_stat(&self) -> Inode;
}

impl CloneStat for Inode {
    /// A directory inode carrying only this inode's metadata (no entries to copy).
    fn clone_stat(&self) -> Inode {
        let mut i = Inode::directory(self.permissions);
        i.uid = self.uid;
        i.gid = self.gid;
        i.mtime = self.mtime;
        i.xattrs = self.xattrs.clone();
        i
    }
}
