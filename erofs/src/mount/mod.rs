//! Mounting a composefs image: the one home of kernel mounting in this crate.
//!
//! A composefs mount is two mounts. The image is mounted as EROFS on a private directory, then
//! overlayfs is mounted at the target with that EROFS mount as its lower layer and the object
//! folders ("basedirs") as data-only layers, so that each metacopy file of the image reads its
//! bytes from the object its redirect names. The private EROFS mount is then detached: the
//! overlay keeps it alive, and nothing else stays visible.
//!
//! [`mount_fd`] and [`mount_image`] follow C composefs 1.0.8's `lcfs_mount_fd`/`lcfs_mount_image`
//! step by step, so that the `mount.composefs` drop-in, the boot mount ([`crate::karg`]) and
//! the C ABI behave like C's library, errno for errno ([`MountError::errno`]):
//!
//! 1. validate the options ([`MountOptions`], which maps 1:1 onto `struct lcfs_mount_options_s`);
//! 2. when a digest is expected, measure the image's fs-verity digest before anything else;
//! 3. read the 32-byte composefs header (magic; `HAS_ACL` decides EROFS's `noacl`);
//! 4. mount EROFS on a fresh `/tmp/.composefs.XXXXXX` (or `image_mountdir`) — see [`erofs`];
//! 5. mount overlayfs at the target — see [`overlay`];
//! 6. detach the EROFS mount and remove the directory.
//!
//! Every kernel fallback C takes (loop device on ENOTBLK, mount(2) without the new mount API,
//! the legacy overlay option string) is taken here too, and a [`Strategy`] can force each one,
//! for old-kernel emulation and for testing every path on a new kernel. [`boot`] mounts the
//! image a kernel command line names (the initramfs step). Whatever fails,
//! nothing is left behind: the temporary directory, the EROFS mount and the loop device are
//! RAII guards released in reverse order. (C leaks its temporary directory when the loop device
//! cannot be set up; this module does not.)

#![forbid(unsafe_code)]

pub mod boot;
pub mod erofs;
pub mod optstring;
pub mod overlay;

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use zerocopy::FromBytes;

use crate::format::{ComposefsHeader, COMPOSEFS_FLAGS_HAS_ACL, COMPOSEFS_MAGIC};
use crate::fsverity;

/// The source name overlayfs mounts get (shown in /proc/self/mountinfo).
pub const MOUNT_SOURCE: &str = "composefs";

/// Where the private EROFS mount goes when no `image_mountdir` is given: `mkdtemp` of this.
pub const TMPDIR_PREFIX: &str = "/tmp/.composefs.";

/// How many bytes of the expected digest are compared (C's `LCFS_DIGEST_SIZE`).
pub const COMPARED_DIGEST_LEN: usize = 32;

/// The longest expected digest C accepts, in bytes.
pub const MAX_EXPECTED_DIGEST_LEN: usize = 64;

/// fs-verity for the overlay's metacopy files (overlayfs `verity=`, kernel 6.6+).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Verity {
    /// No `verity=` option.
    #[default]
    Off,
    /// `verity=require` where the kernel takes it through the new mount API; ignored otherwise
    /// (C's `LCFS_MOUNT_FLAGS_TRY_VERITY`).
    Try,
    /// `verity=require`, and a kernel that refuses it fails the mount
    /// (`LCFS_MOUNT_FLAGS_REQUIRE_VERITY`).
    Require,
}

/// Which syscalls mount: the new mount API (fsopen, fsconfig, fsmount, move_mount, 5.2+) or
/// mount(2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Api {
    /// The new API, mount(2) where the kernel lacks it (ENOSYS).
    #[default]
    Auto,
    /// mount(2) only.
    Legacy,
}

/// Where EROFS reads the image from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ErofsSource {
    /// The image file itself (file-backed EROFS, 6.12+), a loop device when the kernel answers
    /// ENOTBLK.
    #[default]
    Auto,
    /// Always a loop device.
    LoopDevice,
}

/// How overlayfs is mounted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OverlayMode {
    /// The new API with `lowerdir+`/`datadir+` (6.7+, no escaping needed); the legacy option
    /// string when the kernel refuses it.
    #[default]
    Auto,
    /// The legacy option string with data-only layers (`lowerdir=IMG::B1::B2`, 6.5+), the plain
    /// form when the kernel answers EINVAL.
    Legacy,
    /// The legacy option string with plain lower layers only (`lowerdir=IMG:B1:B2`); the image's
    /// whiteouts hide the object folders' fan-out directories.
    LegacyPlainLower,
}

/// Which kernel paths a mount may take. The default tries the newest interface first and falls
/// back like C; the other values force a fallback (for kernels that misreport, and for tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Strategy {
    pub erofs_api: Api,
    pub erofs_source: ErofsSource,
    pub overlay: OverlayMode,
}

/// What to mount and how: `struct lcfs_mount_options_s` of C's `lcfs-mount.h`, field by field.
#[derive(Clone, Debug, Default)]
pub struct MountOptions<'a> {
    /// The object folders (`basedir=`), data-only layers in this order. At least one.
    pub objdirs: Vec<PathBuf>,
    /// A writable upper layer; needs `workdir`.
    pub upperdir: Option<PathBuf>,
    /// overlayfs's work directory; needs `upperdir`.
    pub workdir: Option<PathBuf>,
    /// The image's expected fs-verity digest, in hex (upper or lower case, at most 64 bytes).
    /// Kept as text, as C keeps it, so that a malformed digest is an EINVAL of the mount
    /// (after the image was opened), exactly when C reports it. Empty means "not checked".
    pub expected_digest: Option<String>,
    pub verity: Verity,
    /// Mount the overlay read-only (`LCFS_MOUNT_FLAGS_READONLY`).
    pub readonly: bool,
    /// A user namespace whose ID mapping the EROFS layer gets (`LCFS_MOUNT_FLAGS_IDMAP` +
    /// `idmap_fd`).
    pub idmap: Option<BorrowedFd<'a>>,
    /// Mount EROFS here instead of a fresh temporary directory. Never removed by the mount.
    pub image_mountdir: Option<PathBuf>,
    pub strategy: Strategy,
}

/// How the EROFS layer was mounted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErofsVia {
    /// fsopen/fsconfig/fsmount/move_mount.
    NewApi,
    /// mount(2).
    Legacy,
}

/// How the overlay was mounted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverlayVia {
    /// New API, `lowerdir+`/`datadir+`.
    NewApi,
    /// mount(2), `lowerdir=IMG::B1::…` (data-only layers).
    LegacyDataOnly,
    /// mount(2), `lowerdir=IMG:B1:…`.
    LegacyPlainLower,
}

/// What a successful mount did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mounted {
    pub erofs: ErofsVia,
    /// The loop device number N of `/dev/loopN`, when one was needed. It is released when the
    /// overlay is unmounted (autoclear).
    pub loop_device: Option<u32>,
    pub overlay: OverlayVia,
    /// Whether `verity=require` reached the kernel.
    pub verity_required: bool,
}

/// Why options are invalid (C's `lcfs_validate_mount_options`: EINVAL).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidOptions {
    #[error("no object directory (basedir) given")]
    NoObjdirs,
    #[error("upperdir and workdir must be given together")]
    UpperWithoutWork,
    #[error("expected digest `{0}` is not hex of at most 64 bytes")]
    BadDigest(String),
}

/// A failed mount. [`errno`](Self::errno) is what C's library sets for the same failure.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("invalid mount options: {0}")]
    InvalidOptions(#[from] InvalidOptions),
    #[error("{}: {}", .path.display(), crate::io_message(.source))]
    Open { path: PathBuf, source: io::Error },
    /// The image has no fs-verity digest (ENOTTY, C's `ENOVERITY`).
    #[error("Image has no fs-verity")]
    NoVerity,
    /// The image's fs-verity digest is not the expected one, or not sha256 (EILSEQ, C's
    /// `EWRONGVERITY`).
    #[error("Image has wrong fs-verity")]
    WrongVerity { actual: Option<String> },
    /// Shorter than the composefs header, or the wrong magic (EINVAL).
    #[error("not a composefs image")]
    NotComposefs,
    /// An ID-mapped mount needs the new mount API (ENOTSUP).
    #[error("an ID-mapped mount needs the new mount API")]
    IdmapNeedsNewApi,
    /// A syscall failed; `what` names it and its arguments.
    #[error("{what}: {}", crate::io_message(.source))]
    Os { what: String, source: io::Error },
}

impl MountError {
    /// The errno C's `lcfs_mount_fd` leaves for this failure.
    pub fn errno(&self) -> i32 {
        use rustix::io::Errno;
        match self {
            MountError::InvalidOptions(_) | MountError::NotComposefs => Errno::INVAL,
            MountError::NoVerity => Errno::NOTTY,
            MountError::WrongVerity { .. } => Errno::ILSEQ,
            MountError::IdmapNeedsNewApi => Errno::NOTSUP,
            MountError::Open { source, .. } | MountError::Os { source, .. } => {
                return source.raw_os_error().unwrap_or(Errno::IO.raw_os_error())
            }
        }
        .raw_os_error()
    }

    /// The text C's `mount.composefs` prints after "Failed to mount composefs IMG: ": its
    /// fixed texts for the verity errnos, `strerror` otherwise.
    pub fn c_message(&self) -> String {
        match self {
            MountError::NoVerity | MountError::WrongVerity { .. } => self.to_string(),
            _ => crate::io_message(&io::Error::from_raw_os_error(self.errno())),
        }
    }

    pub(crate) fn os(what: impl Into<String>, source: impl Into<io::Error>) -> MountError {
        MountError::Os {
            what: what.into(),
            source: source.into(),
        }
    }
}

/// Parses C's hex digest (`digest_to_raw`): pairs of hex digits, upper or lower case, at most 64
/// bytes; odd length or another character is an error.
pub fn parse_expected_digest(hex: &str) -> Result<Vec<u8>, InvalidOptions> {
    let bad = || InvalidOptions::BadDigest(hex.to_owned());
    let b = hex.as_bytes();
    if b.len() % 2 != 0 || b.len() / 2 > MAX_EXPECTED_DIGEST_LEN {
        return Err(bad());
    }
    ::hex::decode(b).map_err(|_| bad())
}

impl MountOptions<'_> {
    /// C's `lcfs_validate_mount_options`; returns the parsed expected digest (empty: none).
    pub fn validate(&self) -> Result<Vec<u8>, InvalidOptions> {
        if self.objdirs.is_empty() {
            return Err(InvalidOptions::NoObjdirs);
        }
        if self.upperdir.is_some() != self.workdir.is_some() {
            return Err(InvalidOptions::UpperWithoutWork);
        }
        match &self.expected_digest {
            Some(hex) => parse_expected_digest(hex),
            None => Ok(Vec::new()),
        }
    }
}

/// Opens `image` and mounts it at `target` (C's `lcfs_mount_image`: options are validated
/// before the image is opened; a missing image is ENOENT).
pub fn mount_image(
    image: &Path,
    target: &Path,
    opts: &MountOptions,
) -> Result<Mounted, MountError> {
    opts.validate()?;
    let file = File::open(image).map_err(|source| MountError::Open {
        path: image.to_owned(),
        source,
    })?;
    mount_fd(file.as_fd(), target, opts)
}

/// Mounts the image open on `image` at `target` (C's `lcfs_mount_fd`).
pub fn mount_fd(
    image: BorrowedFd,
    target: &Path,
    opts: &MountOptions,
) -> Result<Mounted, MountError> {
    let expected = opts.validate()?;
    if !expected.is_empty() {
        check_image_verity(image, &expected)?;
    }
    let header = read_header(image)?;
    let acl = header.flags.get() & COMPOSEFS_FLAGS_HAS_ACL != 0;
    let lower = erofs::mount_private(image, acl, opts)?;
    let overlay = overlay::mount(lower.dir(), target, opts)?;
    Ok(Mounted {
        erofs: lower.via(),
        loop_device: lower.loop_device(),
        overlay: overlay.via,
        verity_required: overlay.verity_required,
    })
    // `lower` drops here: the EROFS mount is detached and its temporary directory removed.
}

/// Measures the image and compares the first 32 bytes with the expected digest, zero-padded
/// (C's `lcfs_validate_verity_fd`).
fn check_image_verity(image: BorrowedFd, expected: &[u8]) -> Result<(), MountError> {
    let found = fsverity::kernel::measure(image)
        .map_err(|e| MountError::os("FS_IOC_MEASURE_VERITY", e))?
        .ok_or(MountError::NoVerity)?;
    let wrong = || MountError::WrongVerity {
        actual: Some(found.to_hex()),
    };
    if found.as_bytes().len() != COMPARED_DIGEST_LEN {
        return Err(wrong());
    }
    let mut want = [0u8; COMPARED_DIGEST_LEN];
    let n = expected.len().min(COMPARED_DIGEST_LEN);
    want[..n].copy_from_slice(&expected[..n]);
    if want[..] != found.as_bytes()[..] {
        return Err(wrong());
    }
    Ok(())
}

/// One `pread` of the 32-byte composefs header at offset 0.
pub(crate) fn read_header(image: BorrowedFd) -> Result<ComposefsHeader, MountError> {
    let mut buf = [0u8; std::mem::size_of::<ComposefsHeader>()];
    let n = rustix::io::pread(image, &mut buf, 0).map_err(|e| MountError::os("pread", e))?;
    let header =
        ComposefsHeader::read_from_bytes(&buf[..n]).map_err(|_| MountError::NotComposefs)?;
    if header.magic.get() != COMPOSEFS_MAGIC {
        return Err(MountError::NotComposefs);
    }
    Ok(header)
}

/// Whether an errno-carrying error is `errno`.
fn is_errno(e: &io::Error, errno: rustix::io::Errno) -> bool {
    e.raw_os_error() == Some(errno.raw_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_parsing_follows_c() {
        assert_eq!(parse_expected_digest("").unwrap(), Vec::<u8>::new());
        assert_eq!(parse_expected_digest("aB01").unwrap(), vec![0xab, 0x01]);
        assert!(parse_expected_digest("abc").is_err());
        assert!(parse_expected_digest("zz").is_err());
        assert!(parse_expected_digest(&"00".repeat(64)).is_ok());
        assert!(parse_expected_digest(&"00".repeat(65)).is_err());
    }

    #[test]
    fn validation_errors_are_einval() {
        let mut o = MountOptions::default();
        assert_eq!(o.validate(), Err(InvalidOptions::NoObjdirs));
        o.objdirs.push("/objects".into());
        o.upperdir = Some("/u".into());
        assert_eq!(o.validate(), Err(InvalidOptions::UpperWithoutWork));
        o.workdir = Some("/w".into());
        o.expected_digest = Some("0".into());
        let e = MountError::from(o.validate().unwrap_err());
        assert_eq!(e.errno(), libc::EINVAL);
        assert_eq!(e.c_message(), "Invalid argument");
    }

    #[test]
    fn verity_errors_carry_c_errnos_and_texts() {
        assert_eq!(MountError::NoVerity.errno(), libc::ENOTTY);
        assert_eq!(MountError::NoVerity.c_message(), "Image has no fs-verity");
        let w = MountError::WrongVerity { actual: None };
        assert_eq!(w.errno(), libc::EILSEQ);
        assert_eq!(w.c_message(), "Image has wrong fs-verity");
        let os = MountError::os("x", io::Error::from_raw_os_error(libc::ENOENT));
        assert_eq!(os.errno(), libc::ENOENT);
        assert_eq!(os.c_message(), "No such file or directory");
    }

    #[test]
    fn header_must_be_whole_and_composefs() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        std::fs::write(&p, b"hello\n").unwrap();
        let f = File::open(&p).unwrap();
        assert!(matches!(
            read_header(f.as_fd()),
            Err(MountError::NotComposefs)
        ));
        std::fs::write(&p, [0u8; 64]).unwrap();
        let f = File::open(&p).unwrap();
        assert!(matches!(
            read_header(f.as_fd()),
            Err(MountError::NotComposefs)
        ));
    }
}
