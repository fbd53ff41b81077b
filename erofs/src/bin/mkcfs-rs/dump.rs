//! `composefs-dump SRC DEST`: the drop-in for C composefs 1.0.8's (uninstalled) test tool that
//! rewrites one image into another at the source's `composefs_version`. Run as `mkcfs-rs dump`
//! or through a symlink named `composefs-dump`.
//!
//! C loads the image with `lcfs_load_node_from_image` and writes it back with `lcfs_write_to`;
//! here the reader's [`ReadMode::ComposefsInfo`] builds the same tree and the V1 writer writes it
//! with `--min-version = --max-version = composefs_version`, so the output equals C's byte for
//! byte — including where C's differs from the source (hardlink placement). Messages, the
//! order of the checks and exit codes are C's.
//!
//! Deliberate differences from C 1.0.8:
//! - an empty SRC is refused (`Failed to get image version`); C dies of SIGBUS;
//! - our reader checks the whole image: a truncated image (C segfaults on some, rewrites
//!   others) or any structure no writer produces is refused (`Failed to load … Invalid
//!   argument`), with our reader's reason on a second line;
//! - a regular (or missing) DEST is replaced atomically (a temporary file renamed into place,
//!   the permissions of an existing file kept), so a failure leaves DEST untouched; C truncates
//!   DEST first and leaves it empty on a write failure. DEST that exists and is not a regular
//!   file (`/dev/stdout`, a FIFO) is written in place, as C does.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

use cfs_erofs::atomic::AtomicFile;
use cfs_erofs::read::{self, ReadError, ReadMode};
use cfs_erofs::write::{self, WriteError, WriteOptions};

use crate::Exit;

/// Linux errno values C reports here.
const EINVAL: i32 = 22;
const ENODEV: i32 = 19;

/// How the command names itself: `bin` (argv[0] as run) in the usage line, `short` as the
/// prefix of `err(3)` messages.
pub struct Names<'a> {
    pub bin: &'a str,
    pub short: &'a str,
}

fn usage(bin: &str) {
    eprintln!("usage: {bin} SRC DEST");
}

/// `err(3)`: `short: message: strerror`.
fn fail_errno(short: &str, message: &str, e: &io::Error) -> Exit {
    eprintln!("{short}: {message}: {}", cfs_erofs::io_message(e));
    Exit::Failure
}

/// C's message for a refused image, then our reader's reason.
fn refused(short: &str, message: &str, e: &ReadError) -> Exit {
    fail_errno(short, message, &io::Error::from_raw_os_error(EINVAL));
    eprintln!("{short}: {e}");
    Exit::Failure
}

pub fn main(names: &Names, args: &[OsString]) -> Exit {
    let Some(src) = args.first() else {
        eprintln!("No source path specified");
        usage(names.bin);
        return Exit::Failure;
    };
    let Some(dest) = args.get(1) else {
        eprintln!("No destination path specified");
        usage(names.bin);
        return Exit::Failure;
    };
    match run(names.short, Path::new(src), Path::new(dest)) {
        Ok(()) => Exit::Success,
        Err(e) => e,
    }
}

fn run(short: &str, src: &Path, dest: &Path) -> Result<(), Exit> {
    let shown = src.to_string_lossy();
    let mut file =
        File::open(src).map_err(|e| fail_errno(short, &format!("Failed to open '{shown}'"), &e))?;
    let version_msg = format!("Failed to get image version '{shown}'");
    let meta = file
        .metadata()
        .map_err(|e| fail_errno(short, &version_msg, &e))?;
    let ft = meta.file_type();
    if meta.is_dir() || ft.is_fifo() || ft.is_socket() || ft.is_char_device() {
        // C maps the header; such files cannot be mapped.
        return Err(fail_errno(
            short,
            &version_msg,
            &io::Error::from_raw_os_error(ENODEV),
        ));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.read_to_end(&mut bytes)
        .map_err(|e| fail_errno(short, &format!("Failed to load '{shown}'"), &e))?;
    drop(file);
    if bytes.is_empty() {
        fail_errno(short, &version_msg, &io::Error::from_raw_os_error(EINVAL));
        eprintln!("{short}: {shown}: the file is empty");
        return Err(Exit::Failure);
    }
    let version =
        read::header_composefs_version(&bytes).map_err(|e| refused(short, &version_msg, &e))?;
    let image = read::read_image_with(&bytes, ReadMode::ComposefsInfo)
        .map_err(|e| refused(short, &format!("Failed to load '{shown}'"), &e))?;
    drop(bytes);

    let opts = WriteOptions::v1_exact(version);
    let write_err = |e: &io::Error| fail_errno(short, "cannot write file", e);
    let open_err = |e: &io::Error| {
        fail_errno(
            short,
            &format!("failed to open '{}'", dest.to_string_lossy()),
            &errno_like(e),
        )
    };
    // Like fopen, DEST is written through a symlink.
    let target = std::fs::canonicalize(dest).unwrap_or_else(|_| dest.to_path_buf());
    match std::fs::metadata(&target) {
        Ok(m) if !m.is_file() => {
            let out = OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(&target)
                .map_err(|e| open_err(&e))?;
            let mut out = BufWriter::new(out);
            write_tree(&image.tree, &opts, &mut out, short)?;
            out.flush().map_err(|e| write_err(&e))
        }
        meta => {
            let mut out = match meta {
                Ok(m) => AtomicFile::create_with_exact_mode(&target, m.permissions().mode()),
                Err(_) => AtomicFile::create(&target, 0o666),
            }
            .map_err(|e| open_err(&e))?;
            {
                let mut buf = BufWriter::new(&mut out);
                write_tree(&image.tree, &opts, &mut buf, short)?;
                buf.flush().map_err(|e| write_err(&e))?;
            }
            out.commit().map_err(|e| write_err(&e))
        }
    }
}

/// The temporary file's errors carry its path; C reports fopen's bare errno.
fn errno_like(e: &io::Error) -> io::Error {
    let errno = match e.kind() {
        io::ErrorKind::NotFound => 2,
        io::ErrorKind::PermissionDenied => 13,
        io::ErrorKind::ReadOnlyFilesystem => 30,
        io::ErrorKind::NotADirectory => 20,
        io::ErrorKind::StorageFull => 28,
        _ => return io::Error::new(e.kind(), cfs_erofs::io_message(e)),
    };
    e.raw_os_error().map_or_else(
        || io::Error::from_raw_os_error(errno),
        io::Error::from_raw_os_error,
    )
}

fn write_tree(
    tree: &cfs_erofs::Tree,
    opts: &WriteOptions,
    out: &mut impl Write,
    short: &str,
) -> Result<(), Exit> {
    match write::write_image(tree, opts, out) {
        Ok(_) => Ok(()),
        Err(WriteError::Io(e)) => Err(fail_errno(short, "cannot write file", &e)),
        // C's writer refuses a composefs_version it does not write (V2's 2) with EINVAL.
        Err(WriteError::InvalidVersion { .. }) => Err(fail_errno(
            short,
            "cannot write file",
            &io::Error::from_raw_os_error(EINVAL),
        )),
        Err(e) => {
            fail_errno(
                short,
                "cannot write file",
                &io::Error::from_raw_os_error(EINVAL),
            );
            eprintln!("{short}: {e}");
            Err(Exit::Failure)
        }
    }
}
