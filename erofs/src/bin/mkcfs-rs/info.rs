//! `composefs-info`: the drop-in for C composefs-info 1.0.8 (`ls`, `dump`, `objects`,
//! `missing-objects`, `measure-file`), run as `mkcfs-rs info …` or through a symlink named
//! `composefs-info`. Output, messages and exit codes follow C's `main`: option errors print
//! GNU getopt's message, the usage line and C's stray `Def` on stdout; failures name the file
//! and the system error C would report (`Invalid argument` for an image the reader refuses,
//! `Operation not supported` for an unknown header version). Our reader's own reason follows
//! on a second line.
//!
//! Also `diff A B` (not in C): where two images differ, one difference per line in the format's
//! terms (`cfs_erofs::diff`); exit 0 when identical, 1 when they differ, 2 on error, like `cmp`.
//!
//! Deliberate differences from C 1.0.8:
//! - `measure-file` of an empty file prints the kernel's digest (what `fsverity digest` and
//!   `FS_IOC_MEASURE_VERITY` give); C computes a different value for empty files.
//! - `measure-file` asks the kernel first, like C (`FS_IOC_MEASURE_VERITY`), and computes the
//!   digest itself only for a file without fs-verity. A file with a sha512 fs-verity digest is
//!   refused with that reason (C prints a stale `errno`).
//! - a `measure-file` read failure ends with a newline (C's message lacks it) and reports the
//!   read's own error (C reports a stale `errno`, e.g. `No data available` for a directory).

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use cfs_erofs::fsverity;
use cfs_erofs::info::{self, Filter, InfoError, Objects};
use cfs_erofs::read::{ReadError, ReadErrorKind};
use cfs_erofs::tree::HashAlgorithm;

use crate::getopt::{getopt_long, GetoptError, LongOpt};
use crate::Exit;

const LONG_OPTS: &[LongOpt] = &[
    LongOpt {
        name: "basedir",
        takes_value: true,
    },
    LongOpt {
        name: "filter",
        takes_value: true,
    },
];

/// How the command names itself: `bin` is argv[0] as run (usage line, getopt messages, as
/// GNU getopt does), `short` prefixes other errors (as `err(3)` does).
pub struct Names<'a> {
    pub bin: &'a str,
    pub short: &'a str,
}

fn usage(bin: &str) {
    eprintln!(
        "usage: {bin} [--basedir=path] [ls|objects|dump|missing-objects|measure-file] IMAGES..."
    );
}

/// `err(3)`: `short: message: strerror`, exit 1.
fn fail_errno(short: &str, message: &str, e: &io::Error) -> Exit {
    eprintln!("{short}: {message}: {}", cfs_erofs::io_message(e));
    Exit::Failure
}

/// GNU getopt's own message for an option it refused, then C's usage and `Def`.
fn option_error(names: &Names, e: &GetoptError) -> Exit {
    match e {
        GetoptError::MissingValue(name) => {
            eprintln!("{}: option '--{name}' requires an argument", names.bin)
        }
        GetoptError::Unrecognized(arg) => {
            let a = arg.as_bytes();
            if a.starts_with(b"--") {
                eprintln!(
                    "{}: unrecognized option '{}'",
                    names.bin,
                    arg.to_string_lossy()
                );
            } else {
                eprintln!(
                    "{}: invalid option -- '{}'",
                    names.bin,
                    String::from_utf8_lossy(&a[1..2])
                );
            }
        }
    }
    usage(names.bin);
    println!("Def");
    Exit::Failure
}

/// The options C had processed before getopt stopped at `e`: C checks each `--filter` as it
/// meets it, so a bad filter before a bad option is the error reported.
fn options_before_error(args: &[OsString], e: &GetoptError) -> Vec<crate::getopt::Opt> {
    let end = match e {
        GetoptError::MissingValue(_) => args.len().saturating_sub(1),
        GetoptError::Unrecognized(bad) => {
            // The first position of `bad` that getopt reaches as an option.
            match (0..args.len())
                .filter(|&i| &args[i] == bad)
                .find(|&i| getopt_long(&args[..i], LONG_OPTS).is_ok())
            {
                Some(i) => i,
                None => return Vec::new(),
            }
        }
    };
    getopt_long(&args[..end], LONG_OPTS)
        .map(|(o, _)| o)
        .unwrap_or_default()
}

pub fn main(names: &Names, args: &[OsString]) -> Exit {
    let (opts, operands) = match getopt_long(args, LONG_OPTS) {
        Ok(x) => x,
        Err(e) => {
            for o in options_before_error(args, &e) {
                if o.name == "filter" {
                    if let Some(exit) = check_filter(names, o.value.as_deref()) {
                        return exit;
                    }
                }
            }
            return option_error(names, &e);
        }
    };
    let mut basedir: Option<OsString> = None;
    let mut filters: Vec<OsString> = Vec::new();
    for o in opts {
        match o.name {
            "basedir" => basedir = o.value,
            _ => {
                if let Some(exit) = check_filter(names, o.value.as_deref()) {
                    return exit;
                }
                filters.extend(o.value);
            }
        }
    }
    let Some(command) = operands.first() else {
        eprintln!("No command specified");
        usage(names.bin);
        return Exit::Failure;
    };
    let paths = &operands[1..];
    let command = command.as_bytes();
    match command {
        b"ls" | b"dump" | b"objects" | b"missing-objects" => {}
        b"measure-file" => return measure_files(names, paths),
        b"diff" => return diff(names, paths),
        _ => {
            // C's message carries its own newline before errx adds one.
            eprintln!(
                "{}: Unknown command '{}'\n",
                names.short,
                String::from_utf8_lossy(command)
            );
            return Exit::Failure;
        }
    }
    if let Some(dir) = &basedir {
        if let Err(e) = open_basedir(Path::new(dir)) {
            return fail_errno(
                names.short,
                &format!("Can't open basedir `{}`\n", dir.to_string_lossy()),
                &e,
            );
        }
    }
    if paths.is_empty() {
        eprintln!("No image path specified");
        usage(names.bin);
        return Exit::Failure;
    }
    let filter = if filters.is_empty() {
        None
    } else {
        match Filter::new(filters.iter().map(|f| f.as_bytes())) {
            Ok(f) => Some(f),
            Err(e) => return fail(names.short, &e.to_string()),
        }
    };
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let mut objects = Objects::new();
    for path in paths {
        let image = match load(names, Path::new(path)) {
            Ok(bytes) => bytes,
            Err(exit) => return exit,
        };
        let result = match command {
            b"ls" => info::ls(&image, filter.as_ref(), &mut out),
            b"dump" => info::dump(&image, filter.as_ref(), &mut out),
            _ => objects.add_image(&image, filter.as_ref()),
        };
        if let Err(e) = result {
            return info_error(names, Path::new(path), &e);
        }
    }
    let written = match command {
        b"objects" => objects.write(&mut out),
        b"missing-objects" => objects.write_missing(basedir.as_deref().map(Path::new), &mut out),
        _ => Ok(()),
    };
    match written.and_then(|()| out.flush()) {
        Ok(()) => Exit::Success,
        Err(e) => fail_errno(names.short, "write error", &e),
    }
}

fn fail(short: &str, message: &str) -> Exit {
    eprintln!("{short}: {message}");
    Exit::Failure
}

/// C refuses a filter naming a path with `err`, whose `errno` is still 0 then.
fn check_filter(names: &Names, value: Option<&OsStr>) -> Option<Exit> {
    let v = value?;
    v.as_bytes().contains(&b'/').then(|| {
        eprintln!(
            "{}: Filter must be a single name: {}: Success",
            names.short,
            v.to_string_lossy()
        );
        Exit::Failure
    })
}

/// C opens the basedir `O_PATH | O_DIRECTORY`: it must exist and be a directory.
fn open_basedir(dir: &Path) -> io::Result<()> {
    use rustix::fs::{Mode, OFlags};
    rustix::fs::open(
        dir,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map(drop)
    .map_err(io::Error::from)
}

/// Reads a whole image, failing as C's `open` + `fstat` + `mmap` would.
fn load(names: &Names, path: &Path) -> Result<Vec<u8>, Exit> {
    let shown = path.to_string_lossy();
    let mut file = File::open(path)
        .map_err(|e| fail_errno(names.short, &format!("Failed to open '{shown}'"), &e))?;
    let load_err = |e: &io::Error| fail_errno(names.short, &format!("Failed to load '{shown}'"), e);
    let meta = file.metadata().map_err(|e| load_err(&e))?;
    // mmap refuses a zero length (EINVAL) before it refuses a file it cannot map (ENODEV).
    if meta.len() == 0 {
        return Err(load_err(&io::Error::from_raw_os_error(libc_errno::EINVAL)));
    }
    let ft = meta.file_type();
    if meta.is_dir() || ft.is_fifo() || ft.is_socket() || ft.is_char_device() {
        return Err(load_err(&io::Error::from_raw_os_error(libc_errno::ENODEV)));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.read_to_end(&mut bytes).map_err(|e| load_err(&e))?;
    Ok(bytes)
}

/// The errno values C reports, by number (Linux).
mod libc_errno {
    pub const EINVAL: i32 = 22;
    pub const ENODEV: i32 = 19;
    pub const EOPNOTSUPP: i32 = 95;
}

/// The errno C's reader sets for what our reader refused.
fn errno_of(e: &ReadError) -> i32 {
    match e.kind {
        ReadErrorKind::BadHeaderVersion(_) => libc_errno::EOPNOTSUPP,
        _ => libc_errno::EINVAL,
    }
}

fn info_error(names: &Names, path: &Path, e: &InfoError) -> Exit {
    let shown = path.to_string_lossy();
    match e {
        InfoError::Read(r) => {
            let errno = io::Error::from_raw_os_error(errno_of(r));
            fail_errno(names.short, &format!("Failed to load '{shown}'"), &errno);
            eprintln!("{}: {shown}: {r}", names.short);
            Exit::Failure
        }
        InfoError::Io(io) => fail_errno(names.short, "write error", io),
        InfoError::BadFilter(_) => fail(names.short, &e.to_string()),
    }
}

/// `measure-file`: the fs-verity sha256 digest of each file: the kernel's measurement where
/// the file has fs-verity, else computed from its content.
fn measure_files(names: &Names, paths: &[OsString]) -> Exit {
    if paths.is_empty() {
        eprintln!("No files specified");
        usage(names.bin);
        return Exit::Failure;
    }
    let stdout = io::stdout();
    let mut out = stdout.lock();
    for path in paths {
        let shown = path.to_string_lossy();
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) => return fail_errno(names.short, &format!("Failed to open '{shown}'"), &e),
        };
        let measured =
            fsverity::kernel::measure(std::os::fd::AsFd::as_fd(&file)).and_then(|k| match k {
                Some(d) if d.algorithm() == HashAlgorithm::Sha256 => Ok(d),
                Some(d) => Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "its fs-verity digest is {}, not sha256",
                        d.algorithm().name()
                    ),
                )),
                None => fsverity::digest_reader(HashAlgorithm::Sha256, file),
            });
        let digest = match measured {
            Ok(d) => d,
            Err(e) => {
                eprintln!("failed to measure '{shown}': {}", cfs_erofs::io_message(&e));
                return Exit::Failure;
            }
        };
        if let Err(e) = writeln!(out, "{}", digest.to_hex()) {
            return fail_errno(names.short, "write error", &e);
        }
    }
    match out.flush() {
        Ok(()) => Exit::Success,
        Err(e) => fail_errno(names.short, "write error", &e),
    }
}

/// `diff A B`: the differences between two images, one per line.
fn diff(names: &Names, paths: &[OsString]) -> Exit {
    const TROUBLE: Exit = Exit::Code(2);
    let [a, b] = paths else {
        eprintln!("{}: diff needs two images: diff A B", names.short);
        return TROUBLE;
    };
    let read = |p: &OsString| {
        std::fs::read(p).map_err(|e| {
            let message = format!("Failed to open '{}'", p.to_string_lossy());
            fail_errno(names.short, &message, &e)
        })
    };
    let (bytes_a, bytes_b) = match (read(a), read(b)) {
        (Ok(x), Ok(y)) => (x, y),
        _ => return TROUBLE,
    };
    let differences = match cfs_erofs::diff::diff_images(&bytes_a, &bytes_b) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{}: {e}", names.short);
            return TROUBLE;
        }
    };
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let written = differences
        .iter()
        .try_for_each(|d| writeln!(out, "{d}"))
        .and_then(|()| out.flush());
    match written {
        Err(e) => {
            fail_errno(names.short, "write error", &e);
            TROUBLE
        }
        Ok(()) if differences.is_empty() => Exit::Success,
        Ok(()) => Exit::Code(1),
    }
}
