//! Kernel fs-verity as a repository uses it: enable on a new object, measure an existing one.
//!
//! The ioctls themselves belong in `crate::fsverity::kernel` (with the one `unsafe` wrapper in
//! `crate::sys`); until that lands, [`enable`] and [`measure`] report "not supported", which is
//! exactly what a filesystem without fs-verity says, so insecure repositories work and a secure
//! one is refused with a clear error.

use std::fs::File;
use std::io;

use crate::tree::{Digest, HashAlgorithm};

/// Enables fs-verity on a file opened read-only (no writable handle may be open anywhere).
pub fn enable(_file: &File, _alg: HashAlgorithm) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// The file's fs-verity digest, or `None` if verity is not enabled on it.
pub fn measure(_file: &File, _alg: HashAlgorithm) -> io::Result<Option<Digest>> {
    Ok(None)
}

/// Whether an error from [`enable`] means "this filesystem has no fs-verity" rather than a
/// real failure.
pub fn is_unsupported(e: &io::Error) -> bool {
    use rustix::io::Errno;
    e.kind() == io::ErrorKind::Unsupported
        || matches!(
            Errno::from_io_error(e),
            Some(Errno::OPNOTSUPP | Errno::NOTTY)
        )
}
