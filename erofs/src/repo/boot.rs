//! A repository as the initramfs sees it: the image store composefs-setup-root 0.9.4 boots
//! from, for [`crate::karg::resolve`].
//!
//! Its rules, argument by argument: the repository is opened with the algorithm the argument's
//! digest uses (another algorithm in `meta.json` is an error, not a miss); an argument without
//! `?` requires a secure repository (fs-verity on `meta.json`); the image is `images/<hex>`,
//! else `images/refs/<hex>`, and a missing one moves on to the next argument. An image that
//! exists must measure to its name: with kernel fs-verity when it has it (required without
//! `?`), else in userspace (composefs-setup-root skips that check for an insecure argument on a
//! file without verity; refusing a mismatch there too is stricter, never looser).

use std::fs::File;
use std::io;
use std::path::PathBuf;

use super::{verity, Repository};
use crate::fsverity;
use crate::karg::{ImageStore, Karg, StoreFault};

/// The images of a composefs-rs repository, probed with composefs-setup-root's rules.
#[derive(Clone, Debug)]
pub struct RepoImages {
    root: PathBuf,
}

impl RepoImages {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        RepoImages { root: root.into() }
    }

    /// Where the image an argument names would be: `images/<hex>`, else `images/refs/<hex>`.
    pub fn image_path(&self, k: &Karg) -> Option<PathBuf> {
        let hex = k.digest.to_hex();
        [
            self.root.join("images").join(&hex),
            self.root.join("images/refs").join(&hex),
        ]
        .into_iter()
        .find(|p| p.exists())
    }
}

impl ImageStore for RepoImages {
    fn probe(&self, k: &Karg) -> Result<bool, StoreFault> {
        let other = |e: &dyn std::fmt::Display| StoreFault::Other(e.to_string());
        let repo = Repository::open_with(&self.root, k.algorithm()).map_err(|e| other(&e))?;
        if !k.insecure && !repo.is_secure() {
            return Err(StoreFault::Other(format!(
                "{}: the repository was not initialized with fs-verity (use `?` for insecure)",
                self.root.display()
            )));
        }
        let Some(path) = self.image_path(k) else {
            return Ok(false);
        };
        let fault = |e: io::Error| {
            StoreFault::Other(format!("{}: {}", path.display(), crate::io_message(&e)))
        };
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(fault(e)),
        };
        let actual = match verity::measure(&file, k.algorithm()).map_err(fault)? {
            Some(d) => d,
            None if !k.insecure => {
                return Err(StoreFault::Other(format!(
                    "{}: fs-verity is not enabled on the image",
                    path.display()
                )))
            }
            None => fsverity::digest_reader(k.algorithm(), file).map_err(fault)?,
        };
        if actual != k.digest {
            return Err(StoreFault::DigestMismatch {
                actual: actual.to_hex(),
            });
        }
        Ok(true)
    }
}
