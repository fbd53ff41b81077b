//! Tar layers and OCI image layouts into a tree; the bootable transform.
//!
//! Container images reach composefs as tar layers. [`tar`] reads one layer (plain, gzip or
//! zstd) into entries, hashing large files as they stream by; [`merge`] applies layers with
//! overlay whiteouts and post-processes the result the way composefs-rs 0.9.4 does, so that the
//! image ids match; [`layout`] reads an OCI image layout folder, verifying every digest it
//! passes; [`boot`] turns an image tree into the tree a bootable image id is computed from.

#![forbid(unsafe_code)]

pub mod boot;
pub mod ids;
pub mod layout;
pub mod merge;
pub mod tar;

use std::io::Read;

pub use merge::{transform_for_oci, LayerMerger, MergeError, XattrFilter};
pub use tar::{TarEntry, TarError, TarItem, TarOptions};

use crate::tree::Tree;

/// Why layers could not be turned into a tree.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("layer {layer}: {source}")]
    Tar {
        layer: usize,
        #[source]
        source: TarError,
    },
    #[error("layer {layer}: {source}")]
    Merge {
        layer: usize,
        #[source]
        source: MergeError,
    },
    #[error(transparent)]
    Transform(MergeError),
}

/// An error from reading or applying one layer, before the layer number is known (the layer
/// readers of this module and of the repository import share it).
#[derive(Debug)]
pub(crate) enum StepError {
    Tar(TarError),
    Merge(MergeError),
}

impl From<TarError> for StepError {
    fn from(e: TarError) -> Self {
        StepError::Tar(e)
    }
}

impl StepError {
    pub(crate) fn at(self, layer: usize) -> LayerError {
        match self {
            StepError::Tar(source) => LayerError::Tar { layer, source },
            StepError::Merge(source) => LayerError::Merge { layer, source },
        }
    }
}

/// Reads one layer stream (plain, gzip or zstd tar) and applies it to `merger`.
pub fn apply_layer(
    merger: &mut LayerMerger,
    layer: impl Read,
    opts: &TarOptions,
) -> Result<(), LayerError> {
    apply_numbered(merger, layer, opts, 0)
}

fn apply_numbered(
    merger: &mut LayerMerger,
    layer: impl Read,
    opts: &TarOptions,
    n: usize,
) -> Result<(), LayerError> {
    let plain = tar::decompress(layer).map_err(|e| StepError::Tar(TarError::Io(e)).at(n))?;
    tar::read_layer(plain, opts, |entry| {
        merger.apply(entry).map_err(StepError::Merge)
    })
    .map_err(|e| e.at(n))
}

/// Builds an OCI image tree from layer streams in order, then applies
/// [`transform_for_oci`].
pub fn tree_from_layers<R: Read>(
    layers: impl IntoIterator<Item = R>,
    opts: &TarOptions,
    filter: XattrFilter,
) -> Result<Tree, LayerError> {
    let mut merger = LayerMerger::new();
    for (n, layer) in layers.into_iter().enumerate() {
        apply_numbered(&mut merger, layer, opts, n)?;
    }
    let mut tree = merger.into_tree();
    transform_for_oci(&mut tree, filter).map_err(LayerError::Transform)?;
    Ok(tree)
}

#[cfg(test)]
pub(crate) mod tests;
