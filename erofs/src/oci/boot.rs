//! The bootable transform: from an OCI image tree to the tree a bootable image id names.
//!
//! A bootable container image carries its kernel, initramfs and boot loader entries, but the
//! booted root must not: `/boot` and `/sysroot` are emptied (taking `/usr`'s mtime), and every
//! inode is relabelled with the SELinux policy found in the image itself
//! (`/etc/selinux/config` → `SELINUXTYPE` → `contexts/files/file_contexts*`). Without a policy
//! every `security.selinux` xattr is removed. These are the rules of composefs-boot 0.9.4
//! (`transform_for_boot`, `selabel`).
//!
//! Rule matching: each rule `REGEX [-TYPE] CONTEXT` matches the whole path followed by one
//! file-type character (`d - l p s b c`); the last matching rule wins; `<<none>>` means no
//! label. Patterns are compiled with the `regex` crate (bytes, no Unicode). composefs-rs falls
//! back to PCRE2 for patterns the DFA cannot take (look-arounds, back-references); here such
//! a pattern is an error naming the rule.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Cursor, Read};
use std::path::PathBuf;

use regex::bytes::{RegexSet, RegexSetBuilder};

use crate::oci::merge::set_nlinks;
use crate::tree::{display_bytes, Digest, FileData, Inode, InodeId, InodeKind, Tree};

pub const XATTR_SELINUX: &[u8] = b"security.selinux";

/// Where the bytes of external files can be read (the digest store they were written to).
pub trait ContentSource {
    fn open(&self, digest: &Digest) -> io::Result<Box<dyn Read + '_>>;
}

/// A folder of objects named `XX/rest` by their digest.
#[derive(Clone, Debug)]
pub struct DigestStore(pub PathBuf);

impl ContentSource for DigestStore {
    fn open(&self, digest: &Digest) -> io::Result<Box<dyn Read + '_>> {
        Ok(Box::new(std::fs::File::open(
            self.0.join(digest.object_path()),
        )?))
    }
}

/// Why the bootable transform failed.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error("/{0} is missing or not a directory (a bootable image needs it)")]
    MissingDir(String),
    #[error("/{path}: {reason}")]
    BadFile { path: String, reason: String },
    #[error("/{path}: reading: {source}")]
    Read {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("/{path} line {line}: {reason}")]
    Rule {
        path: String,
        line: usize,
        reason: String,
    },
    #[error("SELinux policy {policy:?}: file_contexts is missing")]
    NoFileContexts { policy: String },
    #[error("SELinux rules do not compile: {0}")]
    Regex(String),
}

/// A boot resource found in the image before `/boot` is emptied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BootResource {
    /// `/boot/loader/entries/*.conf` and the files its `linux`, `initrd` and `efi` lines name
    /// (paths from the image root; each must be a regular file).
    Type1Entry { path: String, files: Vec<String> },
    /// `/boot/EFI/Linux/*.efi` (a UKI) and `/boot/loader/addons/*.efi`.
    Type2Entry(String),
    /// `/usr/lib/modules/<kver>/` holding `vmlinuz` (and maybe `initramfs.img`).
    ModulesKernel { kver: String, initramfs: bool },
}

fn lookup_dir(tree: &Tree, path: &[u8]) -> Option<InodeId> {
    tree.lookup_path(path).filter(|&id| tree.inode(id).is_dir())
}

/// Lists the boot resources of an image. They do not change the image id, but a Type 1 entry
/// naming a missing file makes the transform fail, as in composefs-boot.
pub fn boot_resources(
    tree: &Tree,
    content: &dyn ContentSource,
) -> Result<Vec<BootResource>, BootError> {
    let mut out = Vec::new();
    let files = |dir: &[u8], suffix: &[u8]| -> Vec<(Vec<u8>, InodeId)> {
        let Some(d) = lookup_dir(tree, dir) else {
            return Vec::new();
        };
        tree.dir(d)
            .map(|d| {
                d.entries()
                    .iter()
                    .filter(|e| e.name.ends_with(suffix))
                    .map(|e| {
                        let mut p = dir.to_vec();
                        p.push(b'/');
                        p.extend_from_slice(&e.name);
                        (p, e.inode)
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    for (path, _) in files(b"boot/loader/entries", b".conf") {
        let text = read_file(tree, &path, content)?.unwrap_or_default();
        let bad = |reason: String| BootError::BadFile {
            path: display_bytes(&path),
            reason,
        };
        let text = String::from_utf8(text).map_err(|_| bad("not UTF-8".into()))?;
        let mut named = Vec::new();
        for key in ["linux", "initrd", "efi"] {
            for line in text.split_terminator('\n') {
                let Some(rest) = line.strip_prefix(key) else {
                    continue;
                };
                if !rest.starts_with(|c: char| c.is_ascii_whitespace()) {
                    continue;
                }
                let value = rest.trim_start();
                let rel = crate::oci::tar::normalize_path(value.as_bytes())
                    .map_err(|e| bad(format!("{key} {value}: {e}")))?;
                let ok = !rel.is_empty()
                    && tree
                        .lookup_path(&rel)
                        .is_some_and(|id| matches!(tree.inode(id).kind, InodeKind::Regular(_)));
                if !ok {
                    return Err(bad(format!("{key} {value}: no such regular file")));
                }
                named.push(value.to_owned());
            }
        }
        out.push(BootResource::Type1Entry {
            path: format!("/{}", display_bytes(&path)),
            files: named,
        });
    }
    for dir in [&b"boot/EFI/Linux"[..], b"boot/loader/addons"] {
        for (path, id) in files(dir, b".efi") {
            if !tree.inode(id).is_dir() {
                out.push(BootResource::Type2Entry(format!(
                    "/{}",
                    display_bytes(&path)
                )));
            }
        }
    }
    if let Some(modules) = lookup_dir(tree, b"usr/lib/modules") {
        for e in tree.dir(modules).map(|d| d.entries()).unwrap_or_default() {
            if tree.inode(e.inode).is_dir() && tree.lookup(e.inode, b"vmlinuz").is_some() {
                out.push(BootResource::ModulesKernel {
                    kver: display_bytes(&e.name),
                    initramfs: tree.lookup(e.inode, b"initramfs.img").is_some(),
                });
            }
        }
    }
    Ok(out)
}

/// Applies the bootable transform in place and returns the boot resources it found.
pub fn transform_for_boot(
    tree: &mut Tree,
    content: &dyn ContentSource,
) -> Result<Vec<BootResource>, BootError> {
    let resources = boot_resources(tree, content)?;
    let usr = lookup_dir(tree, b"usr").ok_or_else(|| BootError::MissingDir("usr".into()))?;
    let usr_mtime = tree.inode(usr).mtime;
    for name in ["boot", "sysroot"] {
        let d =
            lookup_dir(tree, name.as_bytes()).ok_or_else(|| BootError::MissingDir(name.into()))?;
        tree.inode_mut(d).mtime = usr_mtime;
        tree.clear_dir(d).expect("checked to be a directory");
    }
    tree.compact();
    match load_policy(tree, content)? {
        Some(mut policy) => relabel(tree, &mut policy),
        None => {
            for i in 0..tree.len() {
                tree.inode_mut(InodeId(i as u32))
                    .remove_xattr(XATTR_SELINUX);
            }
        }
    }
    set_nlinks(tree);
    Ok(resources)
}

/// Reads a regular file of the tree; `Ok(None)` if it does not exist.
fn read_file(
    tree: &Tree,
    path: &[u8],
    content: &dyn ContentSource,
) -> Result<Option<Vec<u8>>, BootError> {
    let Some(id) = tree.lookup_path(path) else {
        return Ok(None);
    };
    let bad = |reason: &str| BootError::BadFile {
        path: display_bytes(path),
        reason: reason.into(),
    };
    let mut reader: Box<dyn Read + '_> = match &tree.inode(id).kind {
        InodeKind::Regular(FileData::Inline(c)) => Box::new(Cursor::new(&c[..])),
        InodeKind::Regular(FileData::External {
            digest: Some(d), ..
        }) => content.open(d).map_err(|source| BootError::Read {
            path: display_bytes(path),
            source,
        })?,
        InodeKind::Regular(_) => return Err(bad("external file without a digest")),
        InodeKind::Directory(_) => return Err(bad("is a directory")),
        _ => return Err(bad("is not a regular file")),
    };
    let mut data = Vec::new();
    reader
        .read_to_end(&mut data)
        .map_err(|source| BootError::Read {
            path: display_bytes(path),
            source,
        })?;
    Ok(Some(data))
}

/// A compiled policy: rules in reverse order (so the first match is the last rule), their
/// contexts, and exact-path substitutions.
struct Policy {
    rules: RegexSet,
    contexts: Vec<String>,
    aliases: HashMap<Vec<u8>, Vec<u8>>,
}

impl Policy {
    fn lookup(&self, path: &[u8], ifmt: u8) -> Option<&str> {
        let mut key = Vec::with_capacity(path.len() + 1);
        key.extend_from_slice(path);
        key.push(ifmt);
        let first = self.rules.matches(&key).iter().next()?;
        let ctx = self.contexts[first].as_str();
        (ctx != "<<none>>").then_some(ctx)
    }
}

fn lines(data: &[u8]) -> impl Iterator<Item = (usize, io::Result<String>)> + '_ {
    BufReader::new(data)
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
}

fn load_policy(tree: &Tree, content: &dyn ContentSource) -> Result<Option<Policy>, BootError> {
    match tree.lookup_path(b"etc/selinux") {
        None => return Ok(None),
        Some(id) if !tree.inode(id).is_dir() => {
            return Err(BootError::BadFile {
                path: "etc/selinux".into(),
                reason: "is not a directory".into(),
            })
        }
        Some(_) => {}
    }
    let Some(config) = read_file(tree, b"etc/selinux/config", content)? else {
        return Ok(None);
    };
    let mut policy_name = None;
    for (line, text) in lines(&config) {
        let text = text.map_err(|e| BootError::Rule {
            path: "etc/selinux/config".into(),
            line,
            reason: e.to_string(),
        })?;
        if let Some((k, v)) = text.split_once('=') {
            if k.trim().eq_ignore_ascii_case("SELINUXTYPE") {
                policy_name = Some(v.trim().to_owned());
                break;
            }
        }
    }
    let Some(policy_name) = policy_name else {
        return Ok(None);
    };
    let dir = format!("etc/selinux/{policy_name}/contexts/files");
    if policy_name.split('/').any(|c| c == "..") || lookup_dir(tree, dir.as_bytes()).is_none() {
        return Err(BootError::MissingDir(dir));
    }

    let mut regexps = Vec::new();
    let mut contexts = Vec::new();
    for suffix in ["", ".local", ".homedirs"] {
        let path = format!("{dir}/file_contexts{suffix}");
        match read_file(tree, path.as_bytes(), content)? {
            Some(data) => parse_spec(&path, &data, &mut regexps, &mut contexts)?,
            None if suffix.is_empty() => {
                return Err(BootError::NoFileContexts {
                    policy: policy_name,
                })
            }
            None => {}
        }
    }
    let mut aliases = HashMap::new();
    for suffix in [".subs", ".subs_dist"] {
        let path = format!("{dir}/file_contexts{suffix}");
        if let Some(data) = read_file(tree, path.as_bytes(), content)? {
            parse_subs(&path, &data, &mut aliases)?;
        }
    }
    regexps.reverse();
    contexts.reverse();
    let rules = RegexSetBuilder::new(&regexps)
        .unicode(false)
        .line_terminator(0)
        .size_limit(256 << 20)
        .dfa_size_limit(256 << 20)
        .build()
        .map_err(|e| BootError::Regex(e.to_string()))?;
    Ok(Some(Policy {
        rules,
        contexts,
        aliases,
    }))
}

fn parse_spec(
    path: &str,
    data: &[u8],
    regexps: &mut Vec<String>,
    contexts: &mut Vec<String>,
) -> Result<(), BootError> {
    for (line, text) in lines(data) {
        let fail = |reason: String| BootError::Rule {
            path: path.to_owned(),
            line,
            reason,
        };
        let text = text.map_err(|e| fail(e.to_string()))?;
        let mut parts = text.split_whitespace();
        let regex = match parts.next() {
            None => continue,
            Some(c) if c.starts_with('#') => continue,
            Some(r) => r,
        };
        let next = parts.next().ok_or_else(|| fail("missing context".into()))?;
        let (ifmt, context) = match next.strip_prefix('-') {
            Some(code) => {
                if !["b", "c", "d", "p", "l", "s", "-"].contains(&code) {
                    return Err(fail(format!("invalid file type -{code}")));
                }
                let ctx = parts.next().ok_or_else(|| fail("missing context".into()))?;
                (code, ctx)
            }
            None => (".", next),
        };
        if parts.next().is_some() {
            return Err(fail("trailing data".into()));
        }
        let pattern = format!("^({regex}){ifmt}$");
        // Check each rule alone so that a bad one is reported with its line.
        RegexSetBuilder::new([&pattern])
            .unicode(false)
            .line_terminator(0)
            .build()
            .map_err(|e| fail(format!("regex `{regex}`: {e}")))?;
        regexps.push(pattern);
        contexts.push(context.to_owned());
    }
    Ok(())
}

fn parse_subs(
    path: &str,
    data: &[u8],
    aliases: &mut HashMap<Vec<u8>, Vec<u8>>,
) -> Result<(), BootError> {
    for (line, text) in lines(data) {
        let fail = |reason: &str| BootError::Rule {
            path: path.to_owned(),
            line,
            reason: reason.into(),
        };
        let text = text.map_err(|e| fail(&e.to_string()))?;
        let mut parts = text.split_whitespace();
        let alias = match parts.next() {
            None => continue,
            Some(c) if c.starts_with('#') => continue,
            Some(a) => a,
        };
        let original = parts.next().ok_or_else(|| fail("missing original path"))?;
        if parts.next().is_some() {
            return Err(fail("trailing data"));
        }
        aliases.insert(alias.as_bytes().to_vec(), original.as_bytes().to_vec());
    }
    Ok(())
}

fn type_code(inode: &Inode) -> u8 {
    match inode.kind {
        InodeKind::Directory(_) => b'd',
        InodeKind::Regular(_) => b'-',
        InodeKind::Symlink(_) => b'l',
        InodeKind::Fifo => b'p',
        InodeKind::Socket => b's',
        InodeKind::BlockDevice(_) => b'b',
        InodeKind::CharDevice(_) => b'c',
    }
}

fn set_label(inode: &mut Inode, label: Option<&str>) {
    match label {
        Some(l) => inode.set_xattr(XATTR_SELINUX, l.as_bytes()),
        None => {
            inode.remove_xattr(XATTR_SELINUX);
        }
    }
}

/// Labels every inode depth-first in name order. A non-directory reached by names that get
/// different labels is split: later names with a label differing from the first get a copy.
fn relabel(tree: &mut Tree, policy: &mut Policy) {
    let label = policy.lookup(b"/", b'd').map(str::to_owned);
    set_label(tree.root_mut(), label.as_deref());
    // First label given to each non-directory inode, by id.
    let mut labeled: HashMap<InodeId, Option<String>> = HashMap::new();
    // Stack of (directory, next entry index, path of the directory after substitution).
    let mut stack: Vec<(InodeId, usize, Vec<u8>)> = vec![(InodeId::ROOT, 0, Vec::new())];
    while let Some((dir, pos, dir_path)) = stack.pop() {
        let Some(entry) = tree
            .dir(dir)
            .ok()
            .and_then(|d| d.entries().get(pos))
            .cloned()
        else {
            continue;
        };
        let mut path = dir_path.clone();
        path.push(b'/');
        path.extend_from_slice(&entry.name);
        let effective = policy.aliases.get(&path).cloned().unwrap_or(path);
        stack.push((dir, pos + 1, dir_path));
        let inode = tree.inode(entry.inode);
        let code = type_code(inode);
        let new = policy.lookup(&effective, code).map(str::to_owned);
        if inode.is_dir() {
            set_label(tree.inode_mut(entry.inode), new.as_deref());
            stack.push((entry.inode, 0, effective));
            continue;
        }
        let target = match labeled.get(&entry.inode) {
            Some(prev) if *prev != new => {
                let copy = tree.inode(entry.inode).clone();
                let id = tree.push_inode(copy);
                tree.replace(dir, &entry.name, id, false)
                    .expect("entry exists in a directory");
                id
            }
            _ => entry.inode,
        };
        set_label(tree.inode_mut(target), new.as_deref());
        labeled.entry(target).or_insert(new);
    }
    tree.normalize_primary_entries();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::tests::Layer;
    use crate::oci::{apply_layer, LayerMerger, TarOptions};

    struct NoContent;
    impl ContentSource for NoContent {
        fn open(&self, _: &Digest) -> io::Result<Box<dyn Read + '_>> {
            Err(io::ErrorKind::NotFound.into())
        }
    }

    fn base() -> Layer {
        let mut l = Layer::new();
        l.dir("usr", 0o755)
            .dir("boot", 0o755)
            .file("boot/vmlinuz", b"k")
            .dir("sysroot", 0o755)
            .dir("sysroot/ostree", 0o755)
            .dir("etc", 0o755);
        l
    }

    fn tree(layer: &mut Layer) -> Tree {
        tree_in(layer, &TarOptions::default())
    }

    fn tree_in(layer: &mut Layer, opts: &TarOptions) -> Tree {
        let mut m = LayerMerger::new();
        apply_layer(&mut m, &layer.bytes()[..], opts).unwrap();
        let mut t = m.into_tree();
        crate::oci::transform_for_oci(&mut t, Default::default()).unwrap();
        t
    }

    fn label<'t>(t: &'t Tree, path: &str) -> Option<&'t [u8]> {
        t.inode(t.lookup_path(path.as_bytes()).unwrap())
            .xattr(XATTR_SELINUX)
    }

    #[test]
    fn empties_boot_and_sysroot_and_strips_labels_without_policy() {
        let mut t = tree(&mut base());
        // transform_for_oci already dropped it; add one to see it stripped.
        t.inode_mut(t.lookup_path(b"etc").unwrap())
            .set_xattr(XATTR_SELINUX, b"host_t");
        transform_for_boot(&mut t, &NoContent).unwrap();
        assert!(t.dir(t.lookup_path(b"boot").unwrap()).unwrap().is_empty());
        assert!(t
            .dir(t.lookup_path(b"sysroot").unwrap())
            .unwrap()
            .is_empty());
        assert_eq!(label(&t, "etc"), None);
        let mut no_sysroot = tree(Layer::new().dir("usr", 0o755).dir("boot", 0o755));
        assert!(matches!(
            transform_for_boot(&mut no_sysroot, &NoContent),
            Err(BootError::MissingDir(d)) if d == "sysroot"
        ));
    }

    #[test]
    fn relabels_from_the_image_policy() {
        let mut l = base();
        l.dir("etc/selinux", 0o755)
            .file("etc/selinux/config", b"# c\nSELINUX=enforcing\n SELINUXTYPE = tgt \n")
            .dir("etc/selinux/tgt", 0o755)
            .dir("etc/selinux/tgt/contexts", 0o755)
            .dir("etc/selinux/tgt/contexts/files", 0o755)
            .file(
                "etc/selinux/tgt/contexts/files/file_contexts",
                b"/.*\tsystem_u:object_r:default_t:s0\n/usr(/.*)?  u:r:usr_t\n/usr/bin/.* -- u:r:bin_t\n/usr/x  <<none>>\n",
            )
            .file("etc/selinux/tgt/contexts/files/file_contexts.subs", b"/opt /usr\n")
            .dir("usr/bin", 0o755)
            .file("usr/bin/sh", b"")
            .hardlink("usr/sh-link", "usr/bin/sh")
            .file("usr/x", b"")
            .dir("opt", 0o755)
            .dir("opt/bin", 0o755)
            .file("opt/bin/tool", b"");
        let store = tempfile::tempdir().unwrap();
        let opts = TarOptions {
            digest_store: Some(store.path().to_owned()),
            ..TarOptions::default()
        };
        let mut t = tree_in(&mut l, &opts);
        // The rules are an external file: without its content the transform fails.
        assert!(matches!(
            transform_for_boot(&mut t.clone(), &NoContent),
            Err(BootError::Read { .. })
        ));
        transform_for_boot(&mut t, &DigestStore(store.path().to_owned())).unwrap();
        assert_eq!(label(&t, "/"), Some(&b"system_u:object_r:default_t:s0"[..]));
        assert_eq!(label(&t, "usr"), Some(&b"u:r:usr_t"[..]));
        assert_eq!(label(&t, "usr/bin"), Some(&b"u:r:usr_t"[..]));
        assert_eq!(label(&t, "usr/bin/sh"), Some(&b"u:r:bin_t"[..]));
        assert_eq!(label(&t, "usr/x"), None);
        // /opt is substituted by /usr, and its children follow.
        assert_eq!(label(&t, "opt"), Some(&b"u:r:usr_t"[..]));
        assert_eq!(label(&t, "opt/bin/tool"), Some(&b"u:r:bin_t"[..]));
        // The hardlink got a different label, so it became its own inode.
        let a = t.lookup_path(b"usr/bin/sh").unwrap();
        let b = t.lookup_path(b"usr/sh-link").unwrap();
        assert_ne!(a, b);
        assert_eq!(label(&t, "usr/sh-link"), Some(&b"u:r:usr_t"[..]));
        assert_eq!((t.inode(a).nlink, t.inode(b).nlink), (1, 1));
    }

    #[test]
    fn type1_entries_must_name_existing_files() {
        let mut l = base();
        l.dir("boot/loader", 0o755)
            .dir("boot/loader/entries", 0o755)
            .file(
                "boot/loader/entries/a.conf",
                b"title a\nlinux /boot/vmlinuz\n",
            )
            .dir("usr/lib", 0o755)
            .dir("usr/lib/modules", 0o755)
            .dir("usr/lib/modules/6.1", 0o755)
            .file("usr/lib/modules/6.1/vmlinuz", b"k");
        let t = tree(&mut l);
        assert_eq!(
            boot_resources(&t, &NoContent).unwrap(),
            [
                BootResource::Type1Entry {
                    path: "/boot/loader/entries/a.conf".into(),
                    files: vec!["/boot/vmlinuz".into()]
                },
                BootResource::ModulesKernel {
                    kver: "6.1".into(),
                    initramfs: false
                }
            ]
        );
        let mut l = base();
        l.dir("boot/loader", 0o755)
            .dir("boot/loader/entries", 0o755)
            .file("boot/loader/entries/a.conf", b"linux /vmlinuz\n");
        let mut t = tree(&mut l);
        let err = transform_for_boot(&mut t, &NoContent).unwrap_err();
        assert!(err.to_string().contains("linux /vmlinuz"), "{err}");
    }

    #[test]
    fn bad_rules_name_their_line() {
        let mut data = Vec::new();
        let mut ctx = Vec::new();
        let err = parse_spec("fc", b"/a  x\n/b -q y\n", &mut data, &mut ctx).unwrap_err();
        assert!(matches!(err, BootError::Rule { line: 2, .. }), "{err}");
        let err = parse_spec("fc", b"\n/(?=x) y\n", &mut data, &mut ctx).unwrap_err();
        assert!(matches!(err, BootError::Rule { line: 2, .. }), "{err}");
    }
}
