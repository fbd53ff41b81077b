//! OCI images and bare tar layers into a repository, as composefs-oci 0.9.4's
//! `pull("oci:LAYOUT…")` leaves them.
//!
//! For an OCI layout, in one pass over the layers: each uncompressed layer becomes a layer
//! splitstream (`streams/oci-layer-<diff_id>`; file contents over 64 bytes are its objects), the
//! merged tree becomes one EROFS image per configured format (`images/<hex>`; with `bootable`,
//! the transformed tree's images too), the config becomes a config splitstream whose named refs
//! are the layers (diff_id order), then `composefs.image` (V2), `composefs.image.v1` (V1),
//! `composefs.image.boot` and `composefs.image.boot.v1`, and the manifest a manifest splitstream
//! naming the config first and then the layers. Only then, after a `syncfs`, do the `streams/`
//! symlinks and the tag appear (composefs-rs's crash ordering).
//!
//! Differences from composefs-oci, on purpose: the config and manifest splitstreams are written
//! once, in their final form, so the two unreachable objects composefs-oci leaves behind (its
//! first config and manifest splitstreams) do not exist; and the stream-ref order that
//! composefs-oci takes from a hash map (manifest layers of multi-layer images; boot refs) is
//! fixed here: config first, then layers in diff_id order; plain images before boot images,
//! V2 before V1.

use std::io::{self, Read};
use std::path::Path;

use sha2::{Digest as _, Sha256};

use super::meta::ErofsFormat;
use super::splitstream::{content_type, SplitStreamWriter};
use super::{io_at, RepoError, Repository};
use crate::oci::boot::{transform_for_boot, BootError, DigestStore};
use crate::oci::layout::{LayoutError, OciImage, OciLayout};
use crate::oci::merge::{transform_for_oci, LayerMerger, XattrFilter};
use crate::oci::tar::{self, LayerChunk, TarError, TarOptions};
use crate::oci::{LayerError, StepError};
use crate::tree::{Digest, Tree};
use crate::write::{write_image, WriteError, WriteOptions};

/// Named-ref keys of the config splitstream.
pub const IMAGE_REF_V2: &str = "composefs.image";
pub const IMAGE_REF_V1: &str = "composefs.image.v1";
pub const BOOT_REF_V2: &str = "composefs.image.boot";
pub const BOOT_REF_V1: &str = "composefs.image.boot.v1";
/// Where OCI tags live under `streams/refs/`.
pub const OCI_REF_PREFIX: &str = "oci/";

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error("bootable transform: {0}")]
    Boot(#[from] BootError),
    #[error("writing the {format} image: {source}")]
    Image {
        format: ErofsFormat,
        #[source]
        source: WriteError,
    },
    #[error("invalid tag `{0}`: a leading `@` is reserved for digests")]
    BadTag(String),
}

/// What to import besides the image itself.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Tag the manifest as `streams/refs/oci/<tag>` (a GC root).
    pub tag: Option<String>,
    /// Also commit the images of the bootable transform.
    pub bootable: bool,
}

/// What an import wrote.
#[derive(Clone, Debug)]
pub struct Imported {
    /// `(diff_id, layer splitstream)` in config order.
    pub layers: Vec<(String, Digest)>,
    /// The image of each configured format, default first.
    pub images: Vec<(ErofsFormat, Digest)>,
    /// With `bootable`: the transformed tree's images.
    pub boot_images: Vec<(ErofsFormat, Digest)>,
    /// The config and manifest splitstreams (OCI imports only).
    pub config: Option<(String, Digest)>,
    pub manifest: Option<(String, Digest)>,
    /// The merged tree (after the OCI transform, before the bootable one).
    pub tree: Tree,
}

impl Imported {
    /// The image of the repository's default format (the boot one when bootable).
    pub fn default_image(&self) -> &Digest {
        let list = if self.boot_images.is_empty() {
            &self.images
        } else {
            &self.boot_images
        };
        &list[0].1
    }
}

/// The write options of an image format.
pub fn format_options(f: ErofsFormat) -> WriteOptions {
    match f {
        ErofsFormat::V0 => WriteOptions::v1_exact(0),
        ErofsFormat::V1 => WriteOptions::v1_exact(1),
        ErofsFormat::V2 => WriteOptions::v2(),
    }
}

/// `oci-layer-<diff_id>`, `oci-config-<digest>`, `oci-manifest-<digest>`.
pub fn layer_id(diff_id: &str) -> String {
    format!("oci-layer-{diff_id}")
}
pub fn config_id(digest: &str) -> String {
    format!("oci-config-{digest}")
}
pub fn manifest_id(digest: &str) -> String {
    format!("oci-manifest-{digest}")
}

/// A tag as composefs-oci stores it under `streams/refs/oci/`: `%` → `%25`, `/` → `%2F`.
pub fn encode_tag(tag: &str) -> String {
    tag.replace('%', "%25").replace('/', "%2F")
}

/// Inverse of [`encode_tag`].
pub fn decode_tag(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut rest = encoded;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 3);
        match code {
            Some("2F") => out.push('/'),
            Some("25") => out.push('%'),
            _ => {
                out.push('%');
                rest = &rest[i + 1..];
                continue;
            }
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    out
}

fn tar_options(repo: &Repository) -> TarOptions {
    TarOptions {
        algorithm: repo.algorithm(),
        digest_store: Some(repo.root().join("objects")),
    }
}

/// A layer's pieces as a splitstream, stored; returns its digest.
fn store_layer(repo: &Repository, chunks: &[LayerChunk]) -> Result<Digest, RepoError> {
    let mut w = SplitStreamWriter::new(repo.algorithm(), content_type::OCI_LAYER)
        .map_err(io_at(repo.root()))?;
    for c in chunks {
        match c {
            LayerChunk::Inline(bytes) => w.write_inline(bytes),
            LayerChunk::External { digest, size } => w
                .write_external(digest, *size)
                .map_err(io_at(repo.root()))?,
        }
    }
    repo.write_object(&w.finish().map_err(io_at(repo.root()))?)
}

/// A JSON blob as one external chunk, with named refs, stored; returns its digest.
fn store_json_stream(
    repo: &Repository,
    kind: u64,
    refs: &[(&str, &Digest)],
    json: &[u8],
) -> Result<Digest, RepoError> {
    let blob = repo.write_object(json)?;
    let mut w = SplitStreamWriter::new(repo.algorithm(), kind).map_err(io_at(repo.root()))?;
    for (name, target) in refs {
        w.add_named_ref(name, target);
    }
    w.write_external(&blob, json.len() as u64)
        .map_err(io_at(repo.root()))?;
    repo.write_object(&w.finish().map_err(io_at(repo.root()))?)
}

/// Commits the image of `tree` in every configured format.
fn commit_images(
    repo: &Repository,
    tree: &Tree,
) -> Result<Vec<(ErofsFormat, Digest)>, ImportError> {
    let mut out = Vec::new();
    for format in repo.meta().formats.all() {
        let mut failure = None;
        let written = repo.write_object_with(|w| {
            write_image(tree, &format_options(format), w)
                .map(drop)
                .map_err(|e| {
                    failure = Some(e);
                    io::Error::other("image writer failed")
                })
        });
        if let Some(source) = failure {
            return Err(ImportError::Image { format, source });
        }
        out.push((format, written?.0));
    }
    Ok(out)
}

fn image_of(list: &[(ErofsFormat, Digest)], f: ErofsFormat) -> Option<&Digest> {
    list.iter().find(|(g, _)| *g == f).map(|(_, d)| d)
}

/// Finishes an import once the tree and layer streams exist: images, then (OCI) config and
/// manifest streams, then, after a sync, every symlink.
fn finish(
    repo: &Repository,
    mut tree: Tree,
    layers: Vec<(String, Digest)>,
    oci: Option<&OciImage>,
    opts: &ImportOptions,
) -> Result<Imported, ImportError> {
    transform_for_oci(&mut tree, XattrFilter::AllowlistOnly).map_err(LayerError::Transform)?;
    let images = commit_images(repo, &tree)?;
    let boot_images = if opts.bootable {
        let mut t = tree.clone();
        transform_for_boot(&mut t, &DigestStore(repo.root().join("objects")))?;
        commit_images(repo, &t)?
    } else {
        Vec::new()
    };
    let (mut config, mut manifest) = (None, None);
    if let Some(img) = oci {
        let mut refs: Vec<(&str, &Digest)> =
            layers.iter().map(|(id, d)| (id.as_str(), d)).collect();
        for (key, list, format) in [
            (IMAGE_REF_V2, &images, ErofsFormat::V2),
            (IMAGE_REF_V1, &images, ErofsFormat::V1),
            (BOOT_REF_V2, &boot_images, ErofsFormat::V2),
            (BOOT_REF_V1, &boot_images, ErofsFormat::V1),
        ] {
            if let Some(d) = image_of(list, format) {
                refs.push((key, d));
            }
        }
        let config_stream =
            store_json_stream(repo, content_type::OCI_CONFIG, &refs, &img.config_raw)?;
        let config_key = format!("config:{}", img.manifest.config.digest);
        let mut mrefs: Vec<(&str, &Digest)> = vec![(&config_key, &config_stream)];
        mrefs.extend(layers.iter().map(|(id, d)| (id.as_str(), d)));
        let manifest_stream =
            store_json_stream(repo, content_type::OCI_MANIFEST, &mrefs, &img.manifest_raw)?;
        config = Some((img.manifest.config.digest.clone(), config_stream));
        manifest = Some((img.manifest_digest.clone(), manifest_stream));
    }

    repo.sync()?;
    for (_, d) in images.iter().chain(&boot_images) {
        repo.link_image(d)?;
    }
    for (diff_id, d) in &layers {
        repo.link_stream(&layer_id(diff_id), d)?;
    }
    if let Some((digest, d)) = &config {
        repo.link_stream(&config_id(digest), d)?;
    }
    if let Some((digest, d)) = &manifest {
        repo.link_stream(&manifest_id(digest), d)?;
        if let Some(tag) = &opts.tag {
            repo.name_stream(
                &format!("{OCI_REF_PREFIX}{}", encode_tag(tag)),
                &manifest_id(digest),
            )?;
        }
    }
    Ok(Imported {
        layers,
        images,
        boot_images,
        config,
        manifest,
        tree,
    })
}

fn check_tag(opts: &ImportOptions) -> Result<(), ImportError> {
    match &opts.tag {
        Some(t) if t.starts_with('@') || t.is_empty() => Err(ImportError::BadTag(t.clone())),
        _ => Ok(()),
    }
}

/// Imports image `image` of an opened OCI layout. `on_layer(n)` is called after layer `n`.
pub fn import_oci(
    repo: &Repository,
    layout: &OciLayout,
    image: &OciImage,
    opts: &ImportOptions,
    on_layer: &mut dyn FnMut(usize),
) -> Result<Imported, ImportError> {
    check_tag(opts)?;
    let topts = tar_options(repo);
    let hook = super::object_hook(repo.algorithm(), repo.is_secure());
    let mut merger = LayerMerger::new();
    let mut layers = Vec::new();
    for n in 0..image.manifest.layers.len() {
        let chunks = layout.split_layer(image, n, &mut merger, &topts, Some(&hook))?;
        let d = store_layer(repo, &chunks)?;
        layers.push((image.config.rootfs.diff_ids[n].clone(), d));
        on_layer(n);
    }
    finish(repo, merger.into_tree(), layers, Some(image), opts)
}

/// Imports an OCI layout folder: the manifest named `reference`, or the only one.
pub fn import_layout(
    repo: &Repository,
    layout: &Path,
    reference: Option<&str>,
    opts: &ImportOptions,
) -> Result<Imported, ImportError> {
    let layout = OciLayout::open(layout)?;
    let image = layout.image(reference)?;
    import_oci(repo, &layout, &image, opts, &mut |_| {})
}

/// A reader that hashes (sha256) what passes through it.
struct Sha256Reader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for Sha256Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Imports bare tar layers (plain, gzip or zstd), lowest first: a layer splitstream each
/// (`oci-layer-sha256:<sha256 of the uncompressed layer>`) and the merged tree's images. There
/// is no config to root them, so `image_ref`, if given, names the default image under
/// `images/refs/` (a GC root).
pub fn import_tar_layers<R: Read>(
    repo: &Repository,
    layers: impl IntoIterator<Item = R>,
    image_ref: Option<&str>,
    opts: &ImportOptions,
) -> Result<Imported, ImportError> {
    let topts = tar_options(repo);
    let hook = super::object_hook(repo.algorithm(), repo.is_secure());
    let mut merger = LayerMerger::new();
    let mut done = Vec::new();
    for (n, layer) in layers.into_iter().enumerate() {
        let plain = tar::decompress(layer).map_err(|e| StepError::Tar(TarError::Io(e)).at(n))?;
        let mut hashing = Sha256Reader {
            inner: plain,
            hasher: Sha256::new(),
        };
        let chunks = tar::split_layer(&mut hashing, &topts, Some(&hook), |e| {
            merger.apply(e).map_err(StepError::Merge)
        })
        .map_err(|e| e.at(n))?;
        let diff_id = format!("sha256:{}", hex::encode(hashing.hasher.finalize()));
        done.push((diff_id, store_layer(repo, &chunks)?));
    }
    let imported = finish(repo, merger.into_tree(), done, None, opts)?;
    if let Some(name) = image_ref {
        let d = imported.default_image().clone();
        super::check_ref_name(repo.root(), name)?;
        repo.symlink(
            &format!("images/refs/{name}"),
            &format!("images/{}", d.to_hex()),
        )?;
    }
    Ok(imported)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::tests::Layer;
    use crate::repo::splitstream::{Limits, SplitStream};
    use crate::repo::RepoConfig;

    /// Layers imported, then reassembled from their splitstreams and objects: the same bytes
    /// (so the same diff_id); files over 64 bytes external, everything else inline.
    #[test]
    fn layer_streams_reassemble_to_the_layer() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::create(
            dir.path().join("r"),
            &RepoConfig {
                secure: false,
                ..RepoConfig::default()
            },
        )
        .unwrap();
        let layers = vec![
            Layer::new()
                .dir("usr", 0o755)
                .file("usr/small", &[1; 64])
                .file("usr/big", &[2; 65])
                .file("usr/huge", &[3; 70000])
                .bytes(),
            Layer::new()
                .file("usr/.wh.small", b"")
                .file("top", &[4; 5000])
                .bytes(),
        ];
        let imported = import_tar_layers(
            &repo,
            layers.iter().map(|l| &l[..]),
            Some("x/y"),
            &ImportOptions::default(),
        )
        .unwrap();
        assert_eq!(imported.layers.len(), 2);
        for ((diff_id, d), raw) in imported.layers.iter().zip(&layers) {
            assert_eq!(
                diff_id,
                &format!("sha256:{}", hex::encode(Sha256::digest(raw)))
            );
            let s = SplitStream::parse(
                &repo.read_object(d).unwrap(),
                Some(repo.algorithm()),
                &Limits::default(),
            )
            .unwrap();
            let mut out = Vec::new();
            s.reassemble(&mut out, |id, w| {
                w.write_all(&repo.read_object(id).unwrap())
            })
            .unwrap();
            assert_eq!(&out, raw);
            assert_eq!(s.stream_size, raw.len() as u64);
            let sizes: Vec<usize> = s
                .object_refs
                .iter()
                .map(|o| repo.read_object(o).unwrap().len())
                .collect();
            assert!(sizes.iter().all(|&n| n > 64), "{sizes:?}");
        }
        assert_eq!(
            std::fs::read_link(dir.path().join("r/images/refs/x/y")).unwrap(),
            Path::new(&format!("../../{}", imported.default_image().to_hex()))
        );
        let problems = crate::repo::check::fsck(&repo).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn tags_encode_like_composefs_oci() {
        assert_eq!(encode_tag("a/b:c%d"), "a%2Fb:c%25d");
        for t in ["a/b:c%d", "%2F", "plain:latest", "%", "%zz"] {
            assert_eq!(decode_tag(&encode_tag(t)), t);
        }
    }
}
