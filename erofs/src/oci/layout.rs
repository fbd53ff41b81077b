//! Reading an OCI image layout folder (`oci-layout`, `index.json`, `blobs/sha256/…`).
//!
//! Every blob is checked against the sha256 digest (and size) its descriptor gives: manifest
//! and config when they are read, each layer while it streams by. Each layer's uncompressed
//! stream is also checked against its `rootfs.diff_ids` entry in the same single pass, so a
//! layout whose blobs were swapped or corrupted is an error, never a wrong tree.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::oci::merge::{transform_for_oci, LayerMerger, MergeError, XattrFilter};
use crate::oci::tar::{self, LayerChunk, ObjectHook, TarError, TarOptions};
use crate::tree::Tree;

/// The annotation naming a manifest in `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Largest manifest, config or index read into memory.
const MAX_JSON: u64 = 16 << 20;

/// A content descriptor.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    pub manifests: Vec<Descriptor>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ImageConfig {
    pub rootfs: RootFs,
}

/// Why a layout could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: invalid JSON: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: not an OCI image layout (missing or unsupported `oci-layout`)", path.display())]
    NotALayout { path: PathBuf },
    #[error("unsupported digest `{0}` (only sha256:<64 hex digits>)")]
    BadDigest(String),
    #[error("{}: digest mismatch: expected {expected}, content has {actual}", path.display())]
    DigestMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("{}: size mismatch: descriptor says {expected}, blob has {actual}", path.display())]
    SizeMismatch {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },
    #[error("no manifest named `{0}` in index.json")]
    NoSuchRef(String),
    #[error("index.json lists {0} manifests; choose one by name")]
    AmbiguousRef(usize),
    #[error("unsupported media type `{0}` (expected an image manifest)")]
    UnsupportedMediaType(String),
    #[error("manifest has {layers} layers but the config lists {diff_ids} diff_ids")]
    LayerCount { layers: usize, diff_ids: usize },
    #[error(
        "layer {layer} ({digest}): uncompressed content has {actual}, config diff_id is {expected}"
    )]
    DiffIdMismatch {
        layer: usize,
        digest: String,
        expected: String,
        actual: String,
    },
    #[error("layer {layer} ({digest}): {source}")]
    Tar {
        layer: usize,
        digest: String,
        #[source]
        source: TarError,
    },
    #[error("layer {layer} ({digest}): {source}")]
    Merge {
        layer: usize,
        digest: String,
        #[source]
        source: MergeError,
    },
    #[error(transparent)]
    Transform(MergeError),
}

fn io_err(path: &Path) -> impl Fn(io::Error) -> LayoutError + '_ {
    move |source| LayoutError::Io {
        path: path.to_owned(),
        source,
    }
}

/// `sha256:<hex>` → the lower-case hex, checked.
fn sha256_hex(digest: &str) -> Result<&str, LayoutError> {
    match digest.strip_prefix("sha256:") {
        Some(h) if h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) => {
            Ok(h)
        }
        _ => Err(LayoutError::BadDigest(digest.to_owned())),
    }
}

/// A reader that hashes (sha256) and counts what passes through it.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> Hashing<R> {
    fn new(inner: R) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Reads and hashes whatever is left, then returns `sha256:<hex>` and the byte count.
    fn finish(mut self) -> io::Result<(String, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((
            format!("sha256:{}", hex::encode(self.hasher.finalize())),
            self.count,
        ))
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// An opened OCI image layout.
#[derive(Debug, Clone)]
pub struct OciLayout {
    root: PathBuf,
    pub index: Index,
}

/// A manifest and its config, both verified.
#[derive(Debug, Clone)]
pub struct OciImage {
    pub manifest_digest: String,
    pub manifest: Manifest,
    pub config: ImageConfig,
    /// The manifest and config blobs exactly as stored (their sha256 are their digests).
    pub manifest_raw: Vec<u8>,
    pub config_raw: Vec<u8>,
}

impl OciLayout {
    pub fn open(root: impl AsRef<Path>) -> Result<Self, LayoutError> {
        let root = root.as_ref().to_owned();
        let marker = root.join("oci-layout");
        let text =
            std::fs::read(&marker).map_err(|_| LayoutError::NotALayout { path: root.clone() })?;
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Marker {
            image_layout_version: String,
        }
        let m: Marker = serde_json::from_slice(&text).map_err(|source| LayoutError::Json {
            path: marker.clone(),
            source,
        })?;
        if !m.image_layout_version.starts_with("1.") {
            return Err(LayoutError::NotALayout { path: root });
        }
        let index_path = root.join("index.json");
        let index = read_json(
            &index_path,
            &std::fs::read(&index_path).map_err(io_err(&index_path))?,
        )?;
        Ok(OciLayout { root, index })
    }

    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, LayoutError> {
        Ok(self.root.join("blobs/sha256").join(sha256_hex(digest)?))
    }

    /// Reads a small blob whole and checks its digest and size.
    fn read_blob(&self, d: &Descriptor) -> Result<Vec<u8>, LayoutError> {
        let path = self.blob_path(&d.digest)?;
        let file = File::open(&path).map_err(io_err(&path))?;
        let mut r = Hashing::new(file.take(MAX_JSON));
        let mut data = Vec::new();
        r.read_to_end(&mut data).map_err(io_err(&path))?;
        let (digest, size) = r.finish().map_err(io_err(&path))?;
        check_blob(&path, d, &digest, size)?;
        Ok(data)
    }

    /// The names (`org.opencontainers.image.ref.name`) of the manifests, in index order.
    pub fn refs(&self) -> Vec<Option<&str>> {
        self.index
            .manifests
            .iter()
            .map(|d| d.annotations.get(REF_NAME).map(String::as_str))
            .collect()
    }

    /// Selects a manifest by name, or the only one when `reference` is `None`, and reads and
    /// verifies it and its config.
    pub fn image(&self, reference: Option<&str>) -> Result<OciImage, LayoutError> {
        let desc = match reference {
            Some(name) => self
                .index
                .manifests
                .iter()
                .find(|d| d.annotations.get(REF_NAME).map(String::as_str) == Some(name))
                .ok_or_else(|| LayoutError::NoSuchRef(name.to_owned()))?,
            None => match self.index.manifests.as_slice() {
                [only] => only,
                many => return Err(LayoutError::AmbiguousRef(many.len())),
            },
        };
        if !desc.media_type.is_empty()
            && desc.media_type != "application/vnd.oci.image.manifest.v1+json"
            && desc.media_type != "application/vnd.docker.distribution.manifest.v2+json"
        {
            return Err(LayoutError::UnsupportedMediaType(desc.media_type.clone()));
        }
        let manifest_raw = self.read_blob(desc)?;
        let manifest: Manifest = read_json(&self.blob_path(&desc.digest)?, &manifest_raw)?;
        let config_raw = self.read_blob(&manifest.config)?;
        let config: ImageConfig =
            read_json(&self.blob_path(&manifest.config.digest)?, &config_raw)?;
        if manifest.layers.len() != config.rootfs.diff_ids.len() {
            return Err(LayoutError::LayerCount {
                layers: manifest.layers.len(),
                diff_ids: config.rootfs.diff_ids.len(),
            });
        }
        for id in &config.rootfs.diff_ids {
            sha256_hex(id)?;
        }
        Ok(OciImage {
            manifest_digest: desc.digest.clone(),
            manifest,
            config,
            manifest_raw,
            config_raw,
        })
    }

    /// Streams layer `n` of `image` into `merger`, checking its blob digest, size and diff_id.
    pub fn apply_layer(
        &self,
        image: &OciImage,
        n: usize,
        merger: &mut LayerMerger,
        opts: &TarOptions,
    ) -> Result<(), LayoutError> {
        self.apply_layer_inner(image, n, merger, opts, None)
            .map(drop)
    }

    /// Like [`OciLayout::apply_layer`], and also splits the uncompressed layer as composefs-rs
    /// stores it (see [`tar::split_layer`]); objects are sealed by `hook`.
    pub fn split_layer(
        &self,
        image: &OciImage,
        n: usize,
        merger: &mut LayerMerger,
        opts: &TarOptions,
        hook: Option<&ObjectHook>,
    ) -> Result<Vec<LayerChunk>, LayoutError> {
        self.apply_layer_inner(image, n, merger, opts, Some(hook))
    }

    fn apply_layer_inner(
        &self,
        image: &OciImage,
        n: usize,
        merger: &mut LayerMerger,
        opts: &TarOptions,
        split: Option<Option<&ObjectHook>>,
    ) -> Result<Vec<LayerChunk>, LayoutError> {
        let desc = &image.manifest.layers[n];
        let path = self.blob_path(&desc.digest)?;
        let file = File::open(&path).map_err(io_err(&path))?;
        let mut blob = Hashing::new(file);
        let chunks;
        let tar_err = |source| LayoutError::Tar {
            layer: n,
            digest: desc.digest.clone(),
            source,
        };
        {
            let plain = tar::decompress(&mut blob).map_err(|e| tar_err(TarError::Io(e)))?;
            let mut plain = Hashing::new(plain);
            enum Step {
                Tar(TarError),
                Merge(MergeError),
            }
            impl From<TarError> for Step {
                fn from(e: TarError) -> Self {
                    Step::Tar(e)
                }
            }
            let apply = |e| merger.apply(e).map_err(Step::Merge);
            let split_result = match split {
                None => tar::read_layer(&mut plain, opts, apply).map(|()| Vec::new()),
                Some(hook) => tar::split_layer(&mut plain, opts, hook, apply),
            };
            chunks = split_result.map_err(|e| match e {
                Step::Tar(e) => tar_err(e),
                Step::Merge(source) => LayoutError::Merge {
                    layer: n,
                    digest: desc.digest.clone(),
                    source,
                },
            })?;
            let (diff_id, _) = plain.finish().map_err(|e| tar_err(TarError::Io(e)))?;
            let expected = &image.config.rootfs.diff_ids[n];
            if &diff_id != expected {
                return Err(LayoutError::DiffIdMismatch {
                    layer: n,
                    digest: desc.digest.clone(),
                    expected: expected.clone(),
                    actual: diff_id,
                });
            }
        }
        let (digest, size) = blob.finish().map_err(io_err(&path))?;
        check_blob(&path, desc, &digest, size)?;
        Ok(chunks)
    }

    /// Applies every layer of `image` in order, then [`transform_for_oci`].
    pub fn tree(
        &self,
        image: &OciImage,
        opts: &TarOptions,
        filter: XattrFilter,
    ) -> Result<Tree, LayoutError> {
        let mut merger = LayerMerger::new();
        for n in 0..image.manifest.layers.len() {
            self.apply_layer(image, n, &mut merger, opts)?;
        }
        let mut tree = merger.into_tree();
        transform_for_oci(&mut tree, filter).map_err(LayoutError::Transform)?;
        Ok(tree)
    }
}

fn check_blob(path: &Path, d: &Descriptor, digest: &str, size: u64) -> Result<(), LayoutError> {
    if digest != d.digest {
        return Err(LayoutError::DigestMismatch {
            path: path.to_owned(),
            expected: d.digest.clone(),
            actual: digest.to_owned(),
        });
    }
    if size != d.size {
        return Err(LayoutError::SizeMismatch {
            path: path.to_owned(),
            expected: d.size,
            actual: size,
        });
    }
    Ok(())
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path, data: &[u8]) -> Result<T, LayoutError> {
    serde_json::from_slice(data).map_err(|source| LayoutError::Json {
        path: path.to_owned(),
        source,
    })
}

/// Opens a layout, selects an image and builds its OCI tree.
pub fn tree_from_layout(
    root: impl AsRef<Path>,
    reference: Option<&str>,
    opts: &TarOptions,
    filter: XattrFilter,
) -> Result<Tree, LayoutError> {
    let layout = OciLayout::open(root)?;
    let image = layout.image(reference)?;
    layout.tree(&image, opts, filter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::tests::Layer;
    use std::io::Write;

    fn sha(data: &[u8]) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(data)))
    }

    /// Writes a layout with one image per `(name, layers)`; returns the folder.
    fn write_layout(images: &[(&str, Vec<Vec<u8>>)], gzip: bool) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let blobs = dir.path().join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        let put = |data: &[u8]| -> String {
            let d = sha(data);
            std::fs::write(blobs.join(&d[7..]), data).unwrap();
            d
        };
        let mut manifests = Vec::new();
        for (name, layers) in images {
            let mut descs = Vec::new();
            let mut diff_ids = Vec::new();
            for l in layers {
                diff_ids.push(sha(l));
                let blob = if gzip {
                    let mut gz = flate2::write::GzEncoder::new(Vec::new(), Default::default());
                    gz.write_all(l).unwrap();
                    gz.finish().unwrap()
                } else {
                    l.clone()
                };
                descs.push(serde_json::json!({
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": put(&blob), "size": blob.len()}));
            }
            let config = serde_json::to_vec(&serde_json::json!({
                "architecture": "amd64", "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": diff_ids}}))
            .unwrap();
            let manifest = serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": put(&config), "size": config.len()},
                "layers": descs}))
            .unwrap();
            manifests.push(serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": put(&manifest), "size": manifest.len(),
                "annotations": {REF_NAME: name}}));
        }
        std::fs::write(
            dir.path().join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("index.json"),
            serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": manifests}))
                .unwrap(),
        )
        .unwrap();
        dir
    }

    fn layers() -> Vec<Vec<u8>> {
        vec![
            Layer::new().dir("usr", 0o755).file("usr/a", b"1").bytes(),
            Layer::new()
                .file("usr/.wh.a", b"")
                .file("usr/b", &[9; 200])
                .bytes(),
        ]
    }

    #[test]
    fn reads_and_verifies_a_layout() {
        for gzip in [false, true] {
            let dir = write_layout(&[("one", layers())], gzip);
            let t = tree_from_layout(dir.path(), None, &TarOptions::default(), Default::default())
                .unwrap();
            let usr = t.lookup_path(b"usr").unwrap();
            assert!(t.lookup(usr, b"a").is_none());
            assert_eq!(t.inode(t.lookup(usr, b"b").unwrap().inode).size, 200);
            let same = tree_from_layout(
                dir.path(),
                Some("one"),
                &TarOptions::default(),
                Default::default(),
            )
            .unwrap();
            assert_eq!(t, same);
        }
    }

    #[test]
    fn selects_by_ref_name() {
        let dir = write_layout(&[("a", layers()), ("b", layers()[..1].to_vec())], true);
        let layout = OciLayout::open(dir.path()).unwrap();
        assert_eq!(layout.refs(), [Some("a"), Some("b")]);
        assert!(matches!(
            layout.image(None),
            Err(LayoutError::AmbiguousRef(2))
        ));
        assert!(matches!(
            layout.image(Some("c")),
            Err(LayoutError::NoSuchRef(_))
        ));
        assert_eq!(layout.image(Some("b")).unwrap().manifest.layers.len(), 1);
    }

    #[test]
    fn corrupt_blobs_are_errors() {
        let opts = TarOptions::default();
        // A layer blob whose bytes changed after the manifest was written.
        let dir = write_layout(&[("x", layers())], false);
        let layout = OciLayout::open(dir.path()).unwrap();
        let image = layout.image(None).unwrap();
        let path = layout.blob_path(&image.manifest.layers[1].digest).unwrap();
        let mut data = std::fs::read(&path).unwrap();
        let at = data.len() - 1100;
        data[at] ^= 1; // inside the file content, so the tar still parses
        std::fs::write(&path, &data).unwrap();
        let err = layout.tree(&image, &opts, Default::default()).unwrap_err();
        assert!(
            matches!(err, LayoutError::DiffIdMismatch { layer: 1, .. }),
            "{err}"
        );

        // A config that names a different diff_id than the (intact) layer has.
        let dir = write_layout(&[("x", layers())], true);
        let layout = OciLayout::open(dir.path()).unwrap();
        let mut image = layout.image(None).unwrap();
        image.config.rootfs.diff_ids[0] = sha(b"other");
        let err = layout.tree(&image, &opts, Default::default()).unwrap_err();
        assert!(
            matches!(err, LayoutError::DiffIdMismatch { layer: 0, .. }),
            "{err}"
        );

        // A manifest blob that does not match its digest.
        let dir = write_layout(&[("x", layers())], true);
        let layout = OciLayout::open(dir.path()).unwrap();
        let d = &layout.index.manifests[0].digest;
        let path = layout.blob_path(d).unwrap();
        let mut data = std::fs::read(&path).unwrap();
        data.push(b' ');
        std::fs::write(&path, &data).unwrap();
        assert!(matches!(
            layout.image(None),
            Err(LayoutError::DigestMismatch { .. })
        ));

        assert!(matches!(
            OciLayout::open(dir.path().join("blobs")),
            Err(LayoutError::NotALayout { .. })
        ));
    }
}
