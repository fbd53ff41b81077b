//! Between the C node graph ([`crate::node`]) and the crate's [`Tree`].
//!
//! Writing: the subtree under the node given to `lcfs_write_to` becomes a `Tree` the way C's
//! `lcfs_compute_tree` sees it — nodes without a hardlink reference, met breadth-first in name
//! order, are inodes with a primary entry; hardlink nodes become link entries to the inode their
//! chain ends at, which must be inside the written subtree. C's deferred validation happens
//! here (mode 0 or an unknown type on a non-hardlink, a recorded invalid hardlink, children
//! under a non-directory: EINVAL), plus what C would abort or write garbage for (a symlink
//! without a target, a name the EROFS format cannot hold: EINVAL).
//!
//! Loading: a `Tree` read in [`ReadMode::Library`] becomes nodes as C's loader makes them:
//! a repeated inode is a fresh node whose only field is its hardlink reference.

use std::collections::HashMap;
use std::ffi::CString;

use cfs_erofs::read::ReadMode;
use cfs_erofs::{
    Digest, DirEntry, FileData, FileType, Inode, InodeId, InodeKind, Mtime, Tree, Xattr,
};

use crate::node::{
    follow_links, get as node_ref, unref, valid_mode, Errno, Node, NodePtr, Res, S_IFCHR, S_IFMT,
};

fn einval<T>() -> Res<T> {
    Err(Errno(libc::EINVAL))
}

/// The inode a (non-hardlink) node stands for.
fn inode_of(n: &Node) -> Res<Inode> {
    let d = n.d();
    let i = &n.i;
    if let Some(e) = d.link_error {
        return Err(Errno(e));
    }
    if !valid_mode(i.mode.get()) {
        return einval();
    }
    let ftype = FileType::from_mode(i.mode.get()).ok_or(Errno(libc::EINVAL))?;
    if ftype != FileType::Directory && !d.children_is_empty() {
        return einval();
    }
    drop(d);
    let kind = match ftype {
        FileType::Directory => InodeKind::Directory(Default::default()),
        FileType::Regular => match n.content() {
            Some(c) => InodeKind::Regular(FileData::Inline(c.into())),
            None => InodeKind::Regular(FileData::External {
                payload: n.payload().map(Into::into),
                digest: n.d().digest.map(Digest::Sha256),
            }),
        },
        // C asserts when it meets a symlink without a target.
        FileType::Symlink => InodeKind::Symlink(n.payload().ok_or(Errno(libc::EINVAL))?.into()),
        FileType::CharDevice => InodeKind::CharDevice(i.rdev.get()),
        FileType::BlockDevice => InodeKind::BlockDevice(i.rdev.get()),
        FileType::Fifo => InodeKind::Fifo,
        FileType::Socket => InodeKind::Socket,
    };
    let d = n.d();
    let mut inode = Inode::new(kind, (i.mode.get() & 0o7777) as u16);
    inode.uid = i.uid.get();
    inode.gid = i.gid.get();
    inode.nlink = i.nlink.get();
    inode.mtime = Mtime::new(i.mtime_sec.get(), i.mtime_nsec.get());
    // The writer takes a symlink's size from its target, as C does.
    if ftype != FileType::Symlink {
        inode.size = i.size.get();
    }
    inode.xattrs = d
        .xattrs
        .iter()
        .map(|x| Xattr::new(x.name.as_bytes(), x.value()))
        .collect();
    Ok(inode)
}

/// The tree `lcfs_write_to` writes for `root`.
pub fn to_tree(root: &Node) -> Res<Tree> {
    if root.link_to().is_some() {
        // C would write a hardlink root as garbage; no EROFS root can be one.
        return einval();
    }
    if !root.is_dir() {
        return Err(Errno(libc::ENOTDIR));
    }
    let mut tree = Tree::new(inode_of(root)?);
    let mut ids: HashMap<NodePtr, InodeId> = HashMap::new();
    ids.insert(root.ptr(), InodeId::ROOT);
    let mut links: Vec<(InodeId, Vec<u8>, &Node)> = Vec::new();
    let mut queue = std::collections::VecDeque::from([(root, InodeId::ROOT)]);
    while let Some((dir, dir_id)) = queue.pop_front() {
        for child in dir.children() {
            let name = child.name_bytes();
            if child.link_to().is_some() {
                links.push((dir_id, name, child));
                continue;
            }
            let inode = inode_of(child)?;
            let id = tree.add(dir_id, &name, inode).or_else(|_| einval())?;
            ids.insert(child.ptr(), id);
            queue.push_back((child, id));
        }
    }
    for (dir_id, name, link) in links {
        if let Some(e) = link.d().link_error {
            return Err(Errno(e));
        }
        let target = follow_links(link).ok_or(Errno(libc::ELOOP))?;
        // A link to an inode outside the written subtree.
        let id = *ids.get(&target.ptr()).ok_or(Errno(libc::EINVAL))?;
        tree.link(dir_id, &name, id).or_else(|_| einval())?;
    }
    Ok(tree)
}

/// C's `lcfs_write_update_version`: format 1 is needed when a non-hardlink node under `root`
/// (or `root` itself) is a whiteout, a character device 0:0.
pub fn has_whiteout(root: &Node) -> bool {
    let mut stack = vec![root];
    while let Some(n) = stack.pop() {
        if n.i.mode.get() & S_IFMT == S_IFCHR && n.i.rdev.get() == 0 {
            return true;
        }
        stack.extend(n.children().into_iter().filter(|c| c.link_to().is_none()));
    }
    false
}

/// Nodes for an image, as `lcfs_load_node_from_image_ext` builds them; `toplevel` limits the
/// root's children to those names.
pub fn load(bytes: &[u8], toplevel: Option<&[Vec<u8>]>) -> Res<NodePtr> {
    let image = cfs_erofs::read::read_image_with(bytes, ReadMode::Library)
        .map_err(|e| Errno(read_errno(&e)))?;
    let mut tree = image.tree;
    if let Some(names) = toplevel {
        let drop_names: Vec<Vec<u8>> = tree
            .root()
            .as_dir()
            .map(|d| {
                d.entries()
                    .iter()
                    .map(|e| e.name.to_vec())
                    .collect::<Vec<Vec<u8>>>()
            })
            .unwrap_or_default()
            .into_iter()
            .filter(|n| !names.contains(n))
            .collect();
        for n in drop_names {
            let _ = tree.unlink(InodeId::ROOT, &n);
        }
        tree.compact();
    }
    from_tree(&tree)
}

/// errno for a refused image, as C's loader reports the same cases.
fn read_errno(e: &cfs_erofs::read::ReadError) -> i32 {
    use cfs_erofs::read::ReadErrorKind as K;
    match e.kind {
        K::BadHeaderVersion(_) => libc::ENOTSUP,
        _ => libc::EINVAL,
    }
}

fn node_from_inode(inode: &Inode) -> NodePtr {
    let p = Node::new();
    let n = node_ref(p);
    n.i.mode.set(inode.mode());
    n.i.uid.set(inode.uid);
    n.i.gid.set(inode.gid);
    n.i.nlink.set(inode.nlink);
    n.i.rdev.set(inode.rdev());
    n.i.size.set(inode.size);
    n.i.mtime_sec.set(inode.mtime.sec);
    n.i.mtime_nsec.set(inode.mtime.nsec);
    match &inode.kind {
        InodeKind::Regular(FileData::Inline(c)) if !c.is_empty() => {
            let _ = n.set_content(Some(c), c.len());
        }
        InodeKind::Regular(FileData::External { payload, digest }) => {
            if let Some(p) = payload.as_ref().and_then(|p| CString::new(p.to_vec()).ok()) {
                let _ = n.set_payload(Some(&p));
            }
            if let Some(Digest::Sha256(d)) = digest {
                n.dm().digest = Some(*d);
            }
        }
        InodeKind::Symlink(t) => {
            if let Ok(t) = CString::new(t.to_vec()) {
                let _ = n.set_payload(Some(&t));
                n.i.size.set(t.as_bytes().len() as u64);
            }
        }
        _ => {}
    }
    for x in &inode.xattrs {
        if let Ok(name) = CString::new(x.name.to_vec()) {
            let _ = n.set_xattr(&name, &x.value);
        }
    }
    p
}

/// Builds the node graph of a tree. Every entry's primary comes first in depth-first order
/// (the reader normalises this), so link targets exist when their links are made.
pub fn from_tree(tree: &Tree) -> Res<NodePtr> {
    let root = node_from_inode(tree.root());
    let mut nodes: HashMap<InodeId, NodePtr> = HashMap::new();
    nodes.insert(InodeId::ROOT, root);
    let mut entries: Vec<(InodeId, DirEntry)> = Vec::new();
    tree.walk(|parent, e, _| entries.push((parent, e.clone())));
    for (parent, e) in entries {
        let child = match (e.link, nodes.get(&e.inode)) {
            (true, Some(&target)) => {
                let l = Node::new();
                node_ref(target).incref();
                node_ref(l).set_link_raw(target);
                l
            }
            _ => {
                let c = node_from_inode(tree.inode(e.inode));
                nodes.insert(e.inode, c);
                c
            }
        };
        let name = CString::new(e.name.to_vec()).map_err(|_| Errno(libc::EINVAL));
        let added =
            name.and_then(|name| node_ref(nodes[&parent]).add_child(node_ref(child), &name));
        if let Err(err) = added {
            unref(child);
            unref(root);
            return Err(err);
        }
    }
    Ok(root)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::{S_IFDIR, S_IFREG};

    fn node(mode: u32) -> &'static Node {
        let p = Node::new();
        let n = node_ref(p);
        n.i.mode.set(mode);
        n
    }

    /// Nodes → tree → image → nodes keeps names, hardlinks (as link nodes to the first name),
    /// xattrs, payloads and digests; a payload whose redirect ends on a 4-byte boundary (where
    /// C 1.0.8 reads two bytes too many) comes back exactly.
    #[test]
    fn write_then_load_round_trips() {
        let root = node(S_IFDIR | 0o755);
        let f = node(S_IFREG | 0o644);
        f.set_size(100_000);
        f.set_payload(Some(c"ab/cdef")).unwrap();
        f.dm().digest = Some([7; 32]);
        f.set_xattr(c"user.k", b"v").unwrap();
        root.add_child(f, c"f").unwrap();
        let l = node(0);
        l.make_hardlink(f).unwrap();
        root.add_child(l, c"g").unwrap();
        let tree = to_tree(root).unwrap();
        let img =
            cfs_erofs::write::image_bytes(&tree, &cfs_erofs::write::WriteOptions::v1()).unwrap();
        let back = node_ref(load(&img, None).unwrap());
        let bf = back.lookup_child(b"f").unwrap();
        assert_eq!(bf.payload().unwrap(), b"ab/cdef");
        assert_eq!(bf.d().digest, Some([7; 32]));
        assert_eq!(bf.i.nlink.get(), 2);
        assert_eq!(bf.get_xattr(b"user.k").map(|x| x.1), Some(1));
        let bg = back.lookup_child(b"g").unwrap();
        assert!(std::ptr::eq(bg.link_to().unwrap(), bf));
        let only = node_ref(load(&img, Some(&[b"g".to_vec()])).unwrap());
        assert_eq!(only.n_children(), 1);
        assert!(
            only.child(0).unwrap().link_to().is_none(),
            "the kept name becomes primary"
        );
        unref(only.ptr());
        unref(back.ptr());
        unref(root.ptr());
    }
}
