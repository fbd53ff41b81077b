//! A random OCI image generator: one to three tar layers over a small namespace (so later
//! layers hit earlier paths), with directories, inline and external files, symlinks, hardlinks,
//! whiteouts, opaque markers, PAX nanosecond mtimes and xattrs; written as an OCI layout.

use std::path::Path;

use proptest::prelude::*;
use sha2::{Digest as _, Sha256};

/// The layers of one random image (each a list of members; the first layer also gets a base).
pub fn arb_layers() -> impl Strategy<Value = Vec<Vec<Entry>>> {
    prop::collection::vec(prop::collection::vec(arb_entry(), 0..12), 1..4)
}

/// The plain tar layers of [`arb_layers`]'s value.
pub fn tars(layers: &[Vec<Entry>]) -> Vec<Vec<u8>> {
    layers
        .iter()
        .enumerate()
        .map(|(i, l)| layer(l, i == 0))
        .collect()
}

/// One tar member.
#[derive(Clone, Debug)]
pub enum Member {
    Dir(&'static str),
    File(&'static str, Vec<u8>),
    Symlink(&'static str, &'static str),
    Hardlink(&'static str, &'static str),
    /// `.wh.<name>` in the named directory (`""` for the root).
    Whiteout(&'static str, &'static str),
    Opaque(&'static str),
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub member: Member,
    pub mode: u32,
    pub uid: u64,
    /// PAX mtime: seconds and nanoseconds.
    pub mtime: (u64, u32),
    pub xattr: Option<(&'static str, Vec<u8>)>,
}

const DIRS: [&str; 4] = ["usr", "a", "a/b", "usr/lib"];
const FILES: [&str; 7] = [
    "a/x",
    "a/b/y",
    "usr/z",
    "usr/lib/w",
    "top",
    "a/b",
    "usr/lib",
];
const XATTRS: [&str; 3] = ["user.k", "security.capability", "trusted.t"];

fn arb_member() -> impl Strategy<Value = Member> {
    let dir = prop::sample::select(&DIRS[..]);
    let file = prop::sample::select(&FILES[..]);
    prop_oneof![
        3 => dir.clone().prop_map(Member::Dir),
        4 => (file.clone(), prop::collection::vec(any::<u8>(), 0..200))
            .prop_map(|(p, c)| Member::File(p, c)),
        1 => (file.clone(), prop::sample::select(&["x", "/usr", "../a/x"][..]))
            .prop_map(|(p, t)| Member::Symlink(p, t)),
        1 => (file.clone(), file.clone()).prop_map(|(p, t)| Member::Hardlink(p, t)),
        1 => (
            prop::sample::select(&["", "a", "usr"][..]),
            prop::sample::select(&["a", "b", "x", "z", "top", "lib"][..])
        )
            .prop_map(|(d, n)| Member::Whiteout(d, n)),
        1 => prop::sample::select(&["a", "usr", "a/b"][..]).prop_map(Member::Opaque),
    ]
}

pub fn arb_entry() -> impl Strategy<Value = Entry> {
    (
        arb_member(),
        prop::sample::select(&[0o755u32, 0o644, 0o4755, 0o700][..]),
        prop::sample::select(&[0u64, 1000, 70000][..]),
        (
            1_600_000_000u64..1_600_000_100,
            prop_oneof![Just(0u32), 0u32..1_000_000_000],
        ),
        prop::option::of((
            prop::sample::select(&XATTRS[..]),
            // Any byte, newlines included (this test found that the tar crate's PAX parser
            // splits at them; we read the records by length now).
            prop::collection::vec(any::<u8>(), 0..20),
        )),
    )
        .prop_map(|(member, mode, uid, mtime, xattr)| Entry {
            member,
            mode,
            uid,
            mtime,
            xattr,
        })
}

fn pax_records(records: &[(String, Vec<u8>)]) -> Vec<u8> {
    let records: Vec<_> = records
        .iter()
        .map(|(k, v)| (k.as_bytes(), &v[..]))
        .collect();
    cfs_erofs::oci::tar::encode_pax(&records)
}

/// A plain tar layer; the first starts with every directory of [`DIRS`] (`usr/` is required by
/// the OCI transform) and two files, so that most members have their parents and link targets.
pub fn layer(entries: &[Entry], first: bool) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut all = Vec::new();
    if first {
        let base = |member| Entry {
            member,
            mode: 0o755,
            uid: 0,
            mtime: (1_600_000_000, 0),
            xattr: None,
        };
        all.extend(DIRS.map(|d| base(Member::Dir(d))));
        all.push(base(Member::File("a/x", b"base".to_vec())));
        all.push(base(Member::File("usr/z", vec![7; 100])));
    }
    all.extend_from_slice(entries);
    for e in &all {
        let mut pax = vec![(
            "mtime".to_owned(),
            format!("{}.{:09}", e.mtime.0, e.mtime.1).into_bytes(),
        )];
        if let Some((k, v)) = &e.xattr {
            pax.push((format!("SCHILY.xattr.{k}"), v.clone()));
        }
        let data = pax_records(&pax);
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::XHeader);
        h.set_size(data.len() as u64);
        h.set_path("PaxHeader").unwrap();
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, &data[..]).unwrap();

        let mut h = tar::Header::new_ustar();
        h.set_mode(e.mode);
        h.set_uid(e.uid);
        h.set_gid(e.uid / 2);
        h.set_mtime(e.mtime.0);
        let empty: &[u8] = &[];
        match &e.member {
            Member::Dir(p) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                b.append_data(&mut h, format!("{p}/"), empty).unwrap();
            }
            Member::File(p, c) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(c.len() as u64);
                b.append_data(&mut h, p, &c[..]).unwrap();
            }
            Member::Symlink(p, t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                b.append_link(&mut h, p, t).unwrap();
            }
            Member::Hardlink(p, t) => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_size(0);
                b.append_link(&mut h, p, t).unwrap();
            }
            Member::Whiteout(d, n) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(0);
                let p = if d.is_empty() {
                    format!(".wh.{n}")
                } else {
                    format!("{d}/.wh.{n}")
                };
                b.append_data(&mut h, p, empty).unwrap();
            }
            Member::Opaque(d) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(0);
                b.append_data(&mut h, format!("{d}/.wh..wh..opq"), empty)
                    .unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// Writes an OCI image layout with the given plain tar layers, named `random`.
pub fn write_layout(dir: &Path, layers: &[Vec<u8>]) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let blob = |bytes: &[u8]| {
        let h = sha256_hex(bytes);
        std::fs::write(blobs.join(&h), bytes).unwrap();
        (format!("sha256:{h}"), bytes.len())
    };
    let mut layer_descs = Vec::new();
    let mut diff_ids = Vec::new();
    for l in layers {
        let (digest, size) = blob(l);
        diff_ids.push(digest.clone());
        layer_descs.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": digest,
            "size": size,
        }));
    }
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let (config_digest, config_size) = blob(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config_size,
        },
        "layers": layer_descs,
    }))
    .unwrap();
    let (manifest_digest, manifest_size) = blob(&manifest);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest_size,
            "annotations": {"org.opencontainers.image.ref.name": "random"},
        }],
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}
