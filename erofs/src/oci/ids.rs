//! Image ids of an OCI image: the fs-verity digests of its V1 and V2 images, plain and bootable.
//!
//! An image id is what a kernel argument names (see [`crate::karg`]). composefs-rs computes
//! V1 with `composefs_version` 1 (C `--min-version=1`) and V2 with the legacy layout; the
//! bootable ids come from the same tree after [`transform_for_boot`]. Images are streamed
//! straight into the fs-verity hasher, never held in memory.
//!
//! This is the one place where an input (OCI) meets the writer; it only calls the writer's
//! public API.

#![forbid(unsafe_code)]

use crate::fsverity::FsVerityHasher;
use crate::oci::boot::{transform_for_boot, BootError, BootResource, ContentSource};
use crate::tree::{Digest, HashAlgorithm, Tree};
use crate::write::{write_image, WriteError, WriteOptions};

/// Which image layout an id is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdVersion {
    V1,
    V2,
}

impl IdVersion {
    /// The write options of an image id: composefs-rs names V1 images by their
    /// composefs_version 1 layout.
    pub fn options(self) -> WriteOptions {
        match self {
            IdVersion::V1 => WriteOptions::v1_exact(1),
            IdVersion::V2 => WriteOptions::v2(),
        }
    }
}

/// The ids of one image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageIds {
    pub v1: Digest,
    pub v2: Digest,
    /// Present when the bootable transform was asked for.
    pub bootable: Option<BootableIds>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootableIds {
    pub v1: Digest,
    pub v2: Digest,
    pub resources: Vec<BootResource>,
}

#[derive(Debug, thiserror::Error)]
pub enum IdError {
    #[error("writing the {version:?} image: {source}")]
    Write {
        version: IdVersion,
        #[source]
        source: WriteError,
    },
    #[error("bootable transform: {0}")]
    Boot(#[from] BootError),
}

/// The fs-verity digest of the image of `tree` in the given layout.
pub fn image_id(tree: &Tree, version: IdVersion, alg: HashAlgorithm) -> Result<Digest, IdError> {
    let mut hasher = FsVerityHasher::new(alg);
    write_image(tree, &version.options(), &mut hasher)
        .map_err(|source| IdError::Write { version, source })?;
    Ok(hasher.finish())
}

/// Plain ids of `tree`, and, if `boot` gives the content of external files, the bootable ids
/// of a transformed copy.
pub fn image_ids(
    tree: &Tree,
    alg: HashAlgorithm,
    boot: Option<&dyn ContentSource>,
) -> Result<ImageIds, IdError> {
    let v1 = image_id(tree, IdVersion::V1, alg)?;
    let v2 = image_id(tree, IdVersion::V2, alg)?;
    let bootable = match boot {
        None => None,
        Some(content) => {
            let mut t = tree.clone();
            let resources = transform_for_boot(&mut t, content)?;
            Some(BootableIds {
                v1: image_id(&t, IdVersion::V1, alg)?,
                v2: image_id(&t, IdVersion::V2, alg)?,
                resources,
            })
        }
    };
    Ok(ImageIds { v1, v2, bootable })
}
