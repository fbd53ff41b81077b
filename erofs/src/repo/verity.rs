//! Kernel fs-verity as a repository uses it: enable on a new object, measure an existing one,
//! over `crate::fsverity::kernel`.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;

use crate::fsverity::kernel;
use crate::tree::{Digest, HashAlgorithm};

/// Enables fs-verity on a file opened read-only (no writable handle may be open anywhere).
pub fn enable(file: &File, alg: HashAlgorithm) -> io::Result<()> {
    kernel::enable(file.as_fd(), alg)
}

/// The file's fs-verity digest, or `None` if verity is not enabled on it (or the filesystem has
/// none).
pub fn measure(file: &File, _alg: HashAlgorithm) -> io::Result<Option<Digest>> {
    kernel::measure(file.as_fd())
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
