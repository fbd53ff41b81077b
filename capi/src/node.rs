//! The C node graph: `struct lcfs_node_s`, refcounted, with parent pointers, sorted children,
//! hardlink references, xattrs in insertion order, payload, inline content and digest.
//!
//! C clients hold raw pointers to nodes and mutate them one call at a time, so the graph lives
//! here, at the FFI edge, and is converted to a [`cfs_erofs::Tree`] only when an image is
//! written (see [`crate::convert`]). Each node keeps its fields in a `RefCell`, so that a call
//! that names one node twice (`add_child(n, n)`) gets a clean error instead of aliasing.
//!
//! Ownership follows C exactly: a parent owns one reference to each child (the one the caller
//! gave to `add_child`); a hardlink node owns one reference to its target; a child's `parent`
//! pointer is borrowed and cleared when the parent lets go of it. Freeing a node first strips
//! the children of its whole subtree (C's `lcfs_node_destroy`), which breaks `.`-style loops.
//! All of this is done iteratively, so deep trees cannot overflow the stack.

use std::cell::{Cell, Ref, RefCell, RefMut};
use std::ffi::{CStr, CString};
use std::ptr::NonNull;

/// `LCFS_DIGEST_SIZE`.
pub const DIGEST_SIZE: usize = 32;
/// Longest child name (`LCFS_MAX_NAME_LENGTH`).
pub const NAME_MAX: usize = 255;
/// `PATH_MAX`: a payload must be shorter.
pub const PATH_MAX: usize = 4096;
/// `LCFS_INLINE_CONTENT_MAX`.
pub const INLINE_CONTENT_MAX: usize = 5000;
/// `LCFS_INODE_EXTERNAL_XATTR_MAX`: the per-inode xattr budget.
pub const XATTR_BUDGET: usize = 32767;
/// Budget cost of an entry beyond its name and value (two 4-byte headers minus one byte of
/// worst-case alignment), and of the first entry's ibody header.
const XATTR_ENTRY_COST: usize = 7;
const XATTR_HEADER_COST: usize = 12;

pub const S_IFMT: u32 = 0o170000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFCHR: u32 = 0o020000;
pub const S_IFBLK: u32 = 0o060000;

/// An errno value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub i32);

pub type Res<T> = Result<T, Errno>;

/// True for the seven file types C accepts (`lcfs_validate_mode`).
pub fn valid_mode(mode: u32) -> bool {
    cfs_erofs::FileType::from_mode(mode).is_some()
}

/// One xattr. The value carries one extra NUL byte so that the pointer handed to C is a real
/// allocation even for an empty value (C's writer tells "absent" from "empty" by NULL).
pub struct XattrEntry {
    pub name: CString,
    value: Box<[u8]>,
}

impl XattrEntry {
    fn new(name: &CStr, value: &[u8]) -> Self {
        let mut v = Vec::with_capacity(value.len() + 1);
        v.extend_from_slice(value);
        v.push(0);
        XattrEntry {
            name: name.to_owned(),
            value: v.into_boxed_slice(),
        }
    }

    pub fn value(&self) -> &[u8] {
        &self.value[..self.value.len() - 1]
    }

    pub fn value_ptr(&self) -> *const u8 {
        self.value.as_ptr()
    }

    fn cost(&self) -> usize {
        XATTR_ENTRY_COST + self.name.as_bytes().len() + self.value().len()
    }
}

/// The fields of a node.
pub struct Data {
    refs: usize,
    parent: Option<NonNull<Node>>,
    name: Option<CString>,
    children: Vec<NonNull<Node>>,
    link_to: Option<NonNull<Node>>,
    /// `make_hardlink` was refused: writing reports this errno (EINVAL for a link to itself
    /// or into an existing cycle, ELOOP for a link that would close a cycle, as C's write does).
    pub link_error: Option<i32>,
    payload: Option<CString>,
    content: Option<Box<[u8]>>,
    pub digest: Option<[u8; DIGEST_SIZE]>,
    pub xattrs: Vec<XattrEntry>,
    xattr_size: usize,
}

impl CInode {
    pub fn copy_from(&self, o: &CInode) {
        self.mode.set(o.mode.get());
        self.nlink.set(o.nlink.get());
        self.uid.set(o.uid.get());
        self.gid.set(o.gid.get());
        self.rdev.set(o.rdev.get());
        self.size.set(o.size.get());
        self.mtime_sec.set(o.mtime_sec.get());
        self.mtime_nsec.set(o.mtime_nsec.get());
    }
}

impl Data {
    pub fn children_is_empty(&self) -> bool {
        self.children.is_empty()
    }
}

/// C's `struct lcfs_inode_s`: the stat fields of a node.
#[repr(C)]
#[derive(Default)]
pub struct CInode {
    pub mode: Cell<u32>,
    pub nlink: Cell<u32>,
    pub uid: Cell<u32>,
    pub gid: Cell<u32>,
    /// C keeps `st_rdev` as 32 bits.
    pub rdev: Cell<u32>,
    pub size: Cell<u64>,
    pub mtime_sec: Cell<i64>,
    pub mtime_nsec: Cell<u32>,
}

/// `struct lcfs_node_s`.
///
/// Opaque to C clients, except that mkcomposefs 1.0.8 (built with C's internal header) reads
/// `node->inode.st_mode` directly; so `i` sits at C's offset of `inode`, 144 bytes in, with
/// C's field layout. The bytes before it are unused.
#[repr(C)]
pub struct Node {
    _c_head: [u64; 18],
    pub i: CInode,
    d: RefCell<Data>,
}

const _: () = assert!(std::mem::offset_of!(Node, i) == 144);
const _: () = assert!(std::mem::offset_of!(CInode, size) == 24);

/// A pointer to a live node. Valid while someone holds a reference to the node; every pointer
/// stored in the graph is backed by a reference the holder owns (children, link targets) or
/// is cleared before the reference goes (parents).
pub type NodePtr = NonNull<Node>;

/// Dereferences a graph pointer (or a node pointer the caller holds a reference to).
pub(crate) fn get<'a>(p: NodePtr) -> &'a Node {
    // SAFETY: graph pointers always point at live nodes (see `NodePtr`): a node is freed only
    // when its last reference goes, and every stored pointer owns or is covered by one.
    unsafe { p.as_ref() }
}

impl Node {
    /// A new node: refcount 1, nlink 1, everything else zero (C `lcfs_node_new`).
    pub fn new() -> NodePtr {
        let n = Box::new(Node {
            _c_head: [0; 18],
            i: CInode {
                nlink: Cell::new(1),
                ..Default::default()
            },
            d: RefCell::new(Data {
                refs: 1,
                parent: None,
                name: None,
                children: Vec::new(),
                link_to: None,
                link_error: None,
                payload: None,
                content: None,
                digest: None,
                xattrs: Vec::new(),
                xattr_size: 0,
            }),
        });
        NonNull::from(Box::leak(n))
    }

    /// Borrows the fields; a second mutable borrow of the same node (one node passed as two
    /// arguments) panics, which the FFI guard turns into EINVAL.
    pub fn d(&self) -> Ref<'_, Data> {
        self.d.borrow()
    }

    pub fn dm(&self) -> RefMut<'_, Data> {
        self.d.borrow_mut()
    }

    pub fn ptr(&self) -> NodePtr {
        NonNull::from(self)
    }

    pub fn is_dir(&self) -> bool {
        self.i.mode.get() & S_IFMT == S_IFDIR
    }

    pub fn name(&self) -> Option<*const libc::c_char> {
        self.d().name.as_ref().map(|n| n.as_ptr())
    }

    pub fn name_bytes(&self) -> Vec<u8> {
        self.d()
            .name
            .as_ref()
            .map(|n| n.as_bytes().to_vec())
            .unwrap_or_default()
    }

    pub fn parent(&self) -> Option<&Node> {
        self.d().parent.map(get)
    }

    pub fn children(&self) -> Vec<&Node> {
        self.d().children.iter().map(|&c| get(c)).collect()
    }

    pub fn n_children(&self) -> usize {
        self.d().children.len()
    }

    pub fn child(&self, i: usize) -> Option<&Node> {
        self.d().children.get(i).map(|&c| get(c))
    }

    pub fn link_to(&self) -> Option<&Node> {
        self.d().link_to.map(get)
    }

    pub fn payload_ptr(&self) -> *const libc::c_char {
        self.d()
            .payload
            .as_ref()
            .map_or(std::ptr::null(), |p| p.as_ptr())
    }

    pub fn payload(&self) -> Option<Vec<u8>> {
        self.d().payload.as_ref().map(|p| p.as_bytes().to_vec())
    }

    pub fn content_ptr(&self) -> *const u8 {
        self.d()
            .content
            .as_ref()
            .map_or(std::ptr::null(), |c| c.as_ptr())
    }

    pub fn content(&self) -> Option<Vec<u8>> {
        self.d().content.as_ref().map(|c| c.to_vec())
    }

    /// Sets the hardlink reference as C's loader does: the caller has taken the reference for
    /// it, and the target's nlink is left alone.
    pub fn set_link_raw(&self, target: NodePtr) {
        self.dm().link_to = Some(target);
    }

    /// Takes one more reference.
    pub fn incref(&self) {
        let mut d = self.dm();
        d.refs = d.refs.saturating_add(1);
    }

    /// Binary search among the children by name (C's byte order, `strcmp`).
    fn search(children: &[NodePtr], name: &[u8]) -> Result<usize, usize> {
        children.binary_search_by(|&c| {
            let cd = get(c).d();
            cd.name
                .as_ref()
                .map_or(&b""[..], |n| n.as_bytes())
                .cmp(name)
        })
    }

    pub fn lookup_child(&self, name: &[u8]) -> Option<&Node> {
        let d = self.d();
        Self::search(&d.children, name)
            .ok()
            .map(|i| get(d.children[i]))
    }

    /// `lcfs_node_add_child`: on success the parent owns the caller's reference to `child`.
    pub fn add_child(&self, child: &Node, name: &CStr) -> Res<()> {
        if !self.is_dir() {
            return Err(Errno(libc::ENOTDIR));
        }
        let nb = name.to_bytes();
        if nb.is_empty() {
            return Err(Errno(libc::EINVAL));
        }
        if nb.len() > NAME_MAX {
            return Err(Errno(libc::ENAMETOOLONG));
        }
        if child.d().name.is_some() {
            return Err(Errno(libc::EMLINK));
        }
        // C would build a loop here (a node under itself or its descendant) and hang later;
        // refuse it. Only a node with children can be a proper ancestor, so the walk up is
        // skipped for the usual leaf or fresh directory.
        if std::ptr::eq(self, child) {
            return Err(Errno(libc::ELOOP));
        }
        if !child.d().children.is_empty() {
            let mut up = self.parent();
            while let Some(a) = up {
                if std::ptr::eq(a, child) {
                    return Err(Errno(libc::ELOOP));
                }
                up = a.parent();
            }
        }
        let pos = match Self::search(&self.d().children, nb) {
            Ok(_) => return Err(Errno(libc::EEXIST)),
            Err(pos) => pos,
        };
        {
            let mut cd = child.dm();
            cd.name = Some(name.to_owned());
            cd.parent = Some(self.ptr());
        }
        self.dm().children.insert(pos, child.ptr());
        Ok(())
    }

    /// `lcfs_node_make_hardlink`. C asserts on `node == target`, and records a link that closes
    /// a cycle (leaking both nodes; its write then fails with ELOOP); here both are refused
    /// without taking a reference, errno is EINVAL, and writing fails as C's would.
    pub fn make_hardlink(&self, target: &Node) -> Res<()> {
        let closes_cycle = follow_links(target).is_none() || {
            let mut cur = Some(target);
            let mut hit = false;
            while let Some(c) = cur {
                if std::ptr::eq(c, self) {
                    hit = true;
                    break;
                }
                cur = c.link_to();
            }
            hit
        };
        if std::ptr::eq(self, target) || follow_links(target).is_none() {
            self.dm().link_error = Some(libc::EINVAL);
            return Err(Errno(libc::EINVAL));
        }
        if closes_cycle {
            self.dm().link_error = Some(libc::ELOOP);
            return Err(Errno(libc::EINVAL));
        }
        target.incref();
        target.i.nlink.set(target.i.nlink.get().wrapping_add(1));
        let old = {
            let mut d = self.dm();
            d.link_error = None;
            d.link_to.replace(target.ptr())
        };
        // C leaks a previous target here; drop its reference instead.
        if let Some(old) = old {
            unref(old);
        }
        Ok(())
    }

    pub fn set_payload(&self, payload: Option<&CStr>) -> Res<()> {
        if let Some(p) = payload {
            if p.to_bytes().len() >= PATH_MAX {
                return Err(Errno(libc::ENAMETOOLONG));
            }
        }
        self.dm().payload = payload.map(CStr::to_owned);
        Ok(())
    }

    /// `lcfs_node_set_symlink_payload`. C asserts that the node is a symlink; here a node of
    /// another type gets EINVAL.
    pub fn set_symlink_payload(&self, payload: Option<&CStr>) -> Res<()> {
        if self.i.mode.get() & S_IFMT != S_IFLNK {
            return Err(Errno(libc::EINVAL));
        }
        match payload {
            Some(p) if !p.to_bytes().is_empty() => {
                self.set_payload(Some(p))?;
                self.i.size.set(p.to_bytes().len() as u64);
                Ok(())
            }
            _ => Err(Errno(libc::EINVAL)),
        }
    }

    /// `lcfs_node_set_content`: size becomes `data.len()` even when the content is cleared.
    pub fn set_content(&self, data: Option<&[u8]>, len: usize) -> Res<()> {
        let content = match data {
            Some(b) if !b.is_empty() => {
                if b.len() > INLINE_CONTENT_MAX {
                    return Err(Errno(libc::EINVAL));
                }
                Some(Box::from(b))
            }
            _ => None,
        };
        self.dm().content = content;
        self.i.size.set(len as u64);
        Ok(())
    }

    /// `lcfs_node_set_size`: a changed size drops the inline content.
    pub fn set_size(&self, size: u64) {
        if self.i.size.get() != size {
            self.dm().content = None;
            self.i.size.set(size);
        }
    }

    fn find_xattr(d: &Data, name: &[u8]) -> Option<usize> {
        d.xattrs.iter().position(|x| x.name.as_bytes() == name)
    }

    pub fn get_xattr(&self, name: &[u8]) -> Option<(*const u8, usize)> {
        let d = self.d();
        Self::find_xattr(&d, name).map(|i| (d.xattrs[i].value_ptr(), d.xattrs[i].value().len()))
    }

    /// `lcfs_node_unset_xattr`: the last entry moves into the gap.
    pub fn unset_xattr(&self, name: &[u8]) -> Res<()> {
        let mut d = self.dm();
        let i = Self::find_xattr(&d, name).ok_or(Errno(libc::ENODATA))?;
        let old = d.xattrs.swap_remove(i);
        d.xattr_size = if d.xattrs.is_empty() {
            0
        } else {
            d.xattr_size.saturating_sub(old.cost())
        };
        Ok(())
    }

    /// `lcfs_node_set_xattr`: replaces a value (the old entry is removed first, so it is gone
    /// even when the new one does not fit, as in C).
    pub fn set_xattr(&self, name: &CStr, value: &[u8]) -> Res<()> {
        let nb = name.to_bytes();
        if nb.is_empty() || nb.len() > NAME_MAX {
            return Err(Errno(libc::ERANGE));
        }
        if value.len() > usize::from(u16::MAX) {
            return Err(Errno(libc::EINVAL));
        }
        let _ = self.unset_xattr(nb);
        let entry = XattrEntry::new(name, value);
        let mut d = self.dm();
        let mut cost = entry.cost();
        if d.xattrs.is_empty() {
            cost += XATTR_HEADER_COST;
        }
        if d.xattr_size + cost > XATTR_BUDGET {
            return Err(Errno(libc::ERANGE));
        }
        d.xattr_size += cost;
        d.xattrs.push(entry);
        Ok(())
    }

    /// `lcfs_node_clone`: data, xattrs, digest and the hardlink reference; no name, parent or
    /// children. (C forgets the xattr budget on clones; the clone keeps it here.)
    pub fn clone_node(&self) -> NodePtr {
        let new = Node::new();
        let n = get(new);
        let s = self.d();
        if let Some(t) = s.link_to {
            get(t).incref();
        }
        let mut d = n.dm();
        d.link_to = s.link_to;
        d.link_error = s.link_error;
        n.i.copy_from(&self.i);
        d.payload = s.payload.clone();
        d.content = s.content.clone();
        d.digest = s.digest;
        d.xattrs = s
            .xattrs
            .iter()
            .map(|x| XattrEntry::new(&x.name, x.value()))
            .collect();
        d.xattr_size = s.xattr_size;
        drop(d);
        new
    }
}

/// The node a hardlink chain ends at; `None` for a cycle.
pub fn follow_links(n: &Node) -> Option<&Node> {
    let mut cur = n;
    // A chain longer than the number of steps taken so far without repeating is impossible
    // to bound cheaply, so detect cycles with Brent's tortoise-and-hare.
    let mut tortoise = n;
    let mut power = 1usize;
    let mut lam = 0usize;
    while let Some(next) = cur.link_to() {
        cur = next;
        if std::ptr::eq(cur, tortoise) {
            return None;
        }
        lam += 1;
        if lam == power {
            tortoise = cur;
            power *= 2;
            lam = 0;
        }
    }
    Some(cur)
}

/// `lcfs_node_clone_deep`: clones a subtree; hardlinks pointing inside it are remapped to the
/// clones.
pub fn clone_deep(root: &Node) -> Res<NodePtr> {
    let mut map: std::collections::HashMap<NodePtr, NodePtr> = Default::default();
    let new_root = root.clone_node();
    map.insert(root.ptr(), new_root);
    let mut stack = vec![(root.ptr(), new_root)];
    let mut all = vec![new_root];
    while let Some((old, new)) = stack.pop() {
        for c in get(old).children() {
            let nc = c.clone_node();
            map.insert(c.ptr(), nc);
            all.push(nc);
            let name = c.d().name.clone().unwrap_or_default();
            if let Err(e) = get(new).add_child(get(nc), &name) {
                unref(nc);
                unref(new_root);
                return Err(e);
            }
            stack.push((c.ptr(), nc));
        }
    }
    for n in all {
        let target = get(n).d().link_to;
        if let Some(t) = target {
            if let Some(&nt) = map.get(&t) {
                get(nt).incref();
                get(n).dm().link_to = Some(nt);
                unref(t);
            }
        }
    }
    Ok(new_root)
}

/// Drops one reference; at zero the node is freed: its children are detached and destroyed
/// (their subtrees stripped even if someone else still holds them, as C does), and its link
/// target released. A node still attached to a parent is never freed here (C asserts): the
/// parent frees it when it lets go.
pub fn unref(p: NodePtr) {
    enum Work {
        Unref(NodePtr),
        Destroy(NodePtr),
    }
    let mut work = vec![Work::Unref(p)];
    while let Some(w) = work.pop() {
        match w {
            Work::Destroy(p) => {
                for c in detach_children(get(p)) {
                    work.push(Work::Destroy(c));
                }
                work.push(Work::Unref(p));
            }
            Work::Unref(p) => {
                let n = get(p);
                {
                    let mut d = n.dm();
                    d.refs = d.refs.saturating_sub(1);
                    if d.refs > 0 || d.parent.is_some() {
                        continue;
                    }
                }
                for c in detach_children(n) {
                    work.push(Work::Destroy(c));
                }
                if let Some(t) = n.dm().link_to.take() {
                    work.push(Work::Unref(t));
                }
                // SAFETY: the last reference is gone and no parent holds the node, so nothing
                // points at it any more; it was made by `Box::leak` in `Node::new`.
                drop(unsafe { Box::from_raw(p.as_ptr()) });
            }
        }
    }
}

/// Detaches every child (clearing its name and parent) and returns them; the caller now holds
/// the references the parent held.
fn detach_children(n: &Node) -> Vec<NodePtr> {
    let children = std::mem::take(&mut n.dm().children);
    for &c in &children {
        let mut cd = get(c).dm();
        cd.parent = None;
        cd.name = None;
    }
    children
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> NodePtr {
        let p = Node::new();
        get(p).i.mode.set(S_IFDIR | 0o755);
        p
    }

    #[test]
    fn children_sorted_and_checked() {
        let root = dir();
        let r = get(root);
        for name in [c"b", c"a", c"c"] {
            let c = Node::new();
            r.add_child(get(c), name).unwrap();
        }
        let names: Vec<Vec<u8>> = r.children().iter().map(|c| c.name_bytes()).collect();
        assert_eq!(names, [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
        let c = Node::new();
        assert_eq!(r.add_child(get(c), c"a"), Err(Errno(libc::EEXIST)));
        assert_eq!(r.add_child(get(c), c""), Err(Errno(libc::EINVAL)));
        assert_eq!(
            r.add_child(get(root), c"self"),
            Err(Errno(libc::ELOOP)),
            "a node under itself"
        );
        let a = r.lookup_child(b"a").unwrap();
        assert_eq!(a.add_child(get(c), c"x"), Err(Errno(libc::ENOTDIR)));
        unref(c);
        unref(root);
    }

    #[test]
    fn xattr_budget_and_swap_remove() {
        let n = Node::new();
        let node = get(n);
        node.set_xattr(c"user.a", b"1").unwrap();
        node.set_xattr(c"user.b", b"2").unwrap();
        node.set_xattr(c"user.c", b"3").unwrap();
        node.unset_xattr(b"user.a").unwrap();
        let names: Vec<Vec<u8>> = node
            .d()
            .xattrs
            .iter()
            .map(|x| x.name.as_bytes().to_vec())
            .collect();
        assert_eq!(names, [b"user.c".to_vec(), b"user.b".to_vec()]);
        assert_eq!(node.unset_xattr(b"user.a"), Err(Errno(libc::ENODATA)));
        node.set_xattr(c"user.big", &[0; 32000]).unwrap();
        assert_eq!(
            node.set_xattr(c"user.big2", &[0; 32000]),
            Err(Errno(libc::ERANGE))
        );
        unref(n);
    }

    #[test]
    fn hardlinks_and_deep_clone_remap() {
        let root = dir();
        let f = Node::new();
        get(f).i.mode.set(S_IFREG | 0o644);
        get(root).add_child(get(f), c"f").unwrap();
        let l = Node::new();
        get(l).make_hardlink(get(f)).unwrap();
        get(root).add_child(get(l), c"l").unwrap();
        assert_eq!(get(f).i.nlink.get(), 2);
        assert_eq!(get(l).make_hardlink(get(l)), Err(Errno(libc::EINVAL)));
        let c = clone_deep(get(root)).unwrap();
        let cf = get(c).lookup_child(b"f").unwrap();
        let cl = get(c).lookup_child(b"l").unwrap();
        assert!(std::ptr::eq(cl.link_to().unwrap(), cf));
        unref(c);
        unref(root);
    }
}
