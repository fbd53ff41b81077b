//! The layout engine: turns a [`Tree`] into composefs image bytes.
//!
//! One engine serves both layout families. V1 (`composefs_version` 0/1) is byte-identical to C
//! mkcomposefs 1.0.8; V2 is composefs-rs 0.9.4's legacy `FormatVersion::V2`. Everything they
//! disagree on is a question to [`policy::Policy`]; the rest is shared:
//!
//! - [`plan`]: writer order, the writer's own xattrs (overlay escaping, metacopy/redirect,
//!   whiteouts, stubs, root opaque), the shared xattr table, sizes, positions and data blocks —
//!   all computed from the borrowed tree, which is never modified or cloned;
//! - [`emit`]: streams the planned image to any `Write` in file order.
//!
//! Memory stays proportional to the number of inodes and xattrs (a few dozen bytes each), and
//! the image itself is never held in memory.

#![forbid(unsafe_code)]

mod dirents;
mod emit;
mod plan;
mod policy;
mod xattrs;

use std::io::Write;

use crate::tree::Tree;

use plan::{Plan, Src};
use policy::Family;

/// The layout family of an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FormatVersion {
    /// C mkcomposefs 1.0.8 layout, `composefs_version` 0 or 1.
    V1,
    /// composefs-rs legacy layout, `composefs_version` 2.
    V2,
}

/// How to write an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WriteOptions {
    pub version: FormatVersion,
    /// V1 only: the lowest composefs_version to write (C `--min-version`, final value).
    pub min_version: u32,
    /// V1 only: the highest composefs_version the upgrade rule may pick (C `--max-version`).
    pub max_version: u32,
}

impl WriteOptions {
    /// V1 with C's defaults: min 0, max 1 (upgraded to 1 when the tree has whiteouts).
    pub fn v1() -> Self {
        WriteOptions {
            version: FormatVersion::V1,
            min_version: 0,
            max_version: 1,
        }
    }

    /// V2.
    pub fn v2() -> Self {
        WriteOptions {
            version: FormatVersion::V2,
            min_version: 2,
            max_version: 2,
        }
    }

    /// V1 with exactly this composefs_version (C `--min-version=V --max-version=V`).
    pub fn v1_exact(version: u32) -> Self {
        WriteOptions {
            version: FormatVersion::V1,
            min_version: version,
            max_version: version,
        }
    }
}

/// What was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageSummary {
    /// Image length in bytes (a multiple of 4096).
    pub size: u64,
    /// The header's composefs_version (after the V1 upgrade rule).
    pub composefs_version: u32,
    /// Inodes written (for V1 including the whiteout stubs).
    pub inodes: u64,
    /// Entries in the shared xattr table.
    pub shared_xattrs: usize,
}

/// Why an image could not be written. Messages follow C's wording where C has one.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("Invalid argument: composefs version {min}..{max} is not supported (at most 1)")]
    InvalidVersion { min: u32, max: u32 },
    #[error("the root of the tree is not a directory")]
    RootNotDirectory,
    #[error("{path}: File too large ({size} bytes need more than 1024 chunks)")]
    FileTooLarge { path: String, size: u64 },
    #[error("{path}: invalid xattr name {name:?} (1 to 255 bytes, no NUL)")]
    XattrName { path: String, name: String },
    #[error("{path}: xattr {name:?} has a value over 65535 bytes")]
    XattrValue { path: String, name: String },
    #[error("{path}: xattr {name:?} appears twice")]
    DuplicateXattr { path: String, name: String },
    #[error("{path}: xattrs exceed the per-inode limit of 32767 bytes (at {name:?})")]
    XattrBudget { path: String, name: String },
    #[error("{path}: too many xattrs for one inode")]
    TooManyXattrs { path: String },
    #[error("{path}: invalid symlink target (1 to 4095 bytes, no NUL)")]
    InvalidSymlink { path: String },
    #[error("{path}: {reason}")]
    BadStructure { path: String, reason: &'static str },
    #[error("too many inodes for one image")]
    TooManyInodes,
    #[error("image larger than 2^32 blocks")]
    ImageTooLarge,
    #[error("write failed: {0}")]
    Io(#[from] std::io::Error),
}

fn plan_for<'t>(tree: &'t Tree, opts: &WriteOptions) -> Result<Plan<'t>, WriteError> {
    match opts.version {
        FormatVersion::V1 => Plan::new(tree, Family::V1, opts.min_version, opts.max_version),
        FormatVersion::V2 => Plan::new(tree, Family::V2, 2, 2),
    }
}

fn summary(plan: &Plan<'_>, size: u64) -> ImageSummary {
    ImageSummary {
        size,
        composefs_version: plan.policy.composefs_version,
        inodes: plan.nodes.len() as u64,
        shared_xattrs: plan.shared.len(),
    }
}

/// Writes the image of `tree` to `out`. The tree is only read.
pub fn write_image(
    tree: &Tree,
    opts: &WriteOptions,
    out: impl Write,
) -> Result<ImageSummary, WriteError> {
    let plan = plan_for(tree, opts)?;
    let size = emit::emit(&plan, out)?;
    Ok(summary(&plan, size))
}

/// The image of `tree` as bytes.
pub fn image_bytes(tree: &Tree, opts: &WriteOptions) -> Result<Vec<u8>, WriteError> {
    let mut v = Vec::new();
    write_image(tree, opts, &mut v)?;
    Ok(v)
}

/// Writes several images of one tree (e.g. V1 and V2), one per `opts[k]` into `outs[k]`.
/// Options that resolve to the same layout (same family and final composefs_version) share
/// one plan. All plans are made, and so all errors found, before anything is written.
pub fn write_images(
    tree: &Tree,
    opts: &[WriteOptions],
    outs: &mut [&mut dyn Write],
) -> Result<Vec<ImageSummary>, WriteError> {
    assert_eq!(opts.len(), outs.len(), "one output per option set");
    let mut plans: Vec<Plan<'_>> = Vec::new();
    let mut which = Vec::with_capacity(opts.len());
    for o in opts {
        let p = plan_for(tree, o)?;
        let same = plans.iter().position(|q| {
            q.policy.family == p.policy.family
                && q.policy.composefs_version == p.policy.composefs_version
        });
        match same {
            Some(k) => which.push(k),
            None => {
                which.push(plans.len());
                plans.push(p);
            }
        }
    }
    let mut res = Vec::with_capacity(opts.len());
    for (k, out) in which.into_iter().zip(outs.iter_mut()) {
        let size = emit::emit(&plans[k], &mut **out)?;
        res.push(summary(&plans[k], size));
    }
    Ok(res)
}

impl Plan<'_> {
    /// Path of written inode `i`, for error messages.
    pub(crate) fn path(&self, i: usize) -> String {
        match self.nodes[i].src {
            Src::Tree(id) => plan::path_of(self.tree, id),
            Src::Stub(k) => format!("/{:02x}", k),
        }
    }
}
