//! `mkcomposefs`: the drop-in for C mkcomposefs 1.0.8 — same options, output and exit codes.
//!
//! One deliberate difference: on any error C leaves an empty or partial image behind; we write
//! to a temporary file beside the destination and rename it into place only on success.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};

use cfs_erofs::atomic::AtomicFile;
use cfs_erofs::dumpfile::{self, ParseOptions};
use cfs_erofs::fsverity::FsVerityHasher;
use cfs_erofs::scan::{self, ScanOptions};
use cfs_erofs::store::ObjectStore;
use cfs_erofs::tree::{FileData, HashAlgorithm, InodeKind, Tree};
use cfs_erofs::write::{self, FormatVersion, WriteOptions};

use crate::getopt::{getopt_long, GetoptError, LongOpt};
use crate::tee::Tee;
use crate::{fail, Exit};

const LONG_OPTS: &[LongOpt] = &[
    LongOpt {
        name: "skip-xattrs",
        takes_value: false,
    },
    LongOpt {
        name: "user-xattrs",
        takes_value: false,
    },
    LongOpt {
        name: "skip-devices",
        takes_value: false,
    },
    LongOpt {
        name: "use-epoch",
        takes_value: false,
    },
    LongOpt {
        name: "digest-store",
        takes_value: true,
    },
    LongOpt {
        name: "print-digest",
        takes_value: false,
    },
    LongOpt {
        name: "print-digest-only",
        takes_value: false,
    },
    LongOpt {
        name: "from-file",
        takes_value: false,
    },
    LongOpt {
        name: "max-version",
        takes_value: true,
    },
    LongOpt {
        name: "min-version",
        takes_value: true,
    },
    LongOpt {
        name: "threads",
        takes_value: true,
    },
    LongOpt {
        name: "erofs-version",
        takes_value: true,
    },
    LongOpt {
        name: "help",
        takes_value: false,
    },
];

fn usage(prog: &str) {
    eprint!(
        "Usage: {prog} [OPTIONS] SOURCE IMAGE\n\
         Options:\n  \
         --digest-store=PATH   Store content files in this directory\n  \
         --use-epoch           Make all mtimes zero\n  \
         --skip-devices        Don't store device nodes\n  \
         --skip-xattrs         Don't store file xattrs\n  \
         --user-xattrs         Only store user.* xattrs\n  \
         --print-digest        Print the digest of the image\n  \
         --print-digest-only   Print the digest of the image, don't write image\n  \
         --from-file           The source is a dump file, not a directory\n  \
         --min-version=N       Use this minimal format version (default=0)\n  \
         --max-version=N       Use this maximum format version (default=1)\n  \
         --threads=N           Use this to override the default number of threads used to calculate digest and copy files (default={})\n  \
         --erofs-version=N     Image layout: 1 = C mkcomposefs (default), 2 = composefs-rs legacy\n",
        default_threads()
    );
}

fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// C's `strtol(arg, &end, 10)` accepted only when the whole argument is a number.
fn parse_long(arg: &OsString) -> Option<i64> {
    let s = arg.to_str()?;
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    if t.is_empty() {
        return None;
    }
    let (neg, digits) = match t.as_bytes()[0] {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // strtol saturates on overflow; the value is still accepted.
    let mag = digits.bytes().fold(0i128, |acc, b| {
        (acc * 10 + i128::from(b - b'0')).min(1 << 64)
    });
    let v = if neg { -mag } else { mag };
    Some(v.clamp(i64::MIN.into(), i64::MAX.into()) as i64)
}

struct Options {
    scan: ScanOptions,
    digest_store: Option<PathBuf>,
    print_digest: bool,
    print_digest_only: bool,
    from_file: bool,
    min_version: i64,
    max_version: i64,
    erofs_version: u32,
}

pub fn main(prog: &str, args: &[OsString]) -> Exit {
    let (opts, operands) = match getopt_long(args, LONG_OPTS) {
        Ok(x) => x,
        Err(GetoptError::MissingValue(_)) => {
            eprintln!("option needs a value");
            return Exit::Failure;
        }
        Err(GetoptError::Unrecognized(_)) => {
            usage(prog);
            return Exit::Failure;
        }
    };
    let mut o = Options {
        scan: ScanOptions {
            threads: default_threads(),
            ..Default::default()
        },
        digest_store: None,
        print_digest: false,
        print_digest_only: false,
        from_file: false,
        min_version: 0,
        max_version: 0,
        erofs_version: 1,
    };
    let mut version_set = false;
    for opt in opts {
        let value = opt.value.unwrap_or_default();
        match opt.name {
            "use-epoch" => o.scan.use_epoch = true,
            "skip-xattrs" => o.scan.skip_xattrs = true,
            "user-xattrs" => o.scan.user_xattrs = true,
            "skip-devices" => o.scan.skip_devices = true,
            "digest-store" => o.digest_store = Some(value.into()),
            "print-digest" => o.print_digest = true,
            "print-digest-only" => (o.print_digest, o.print_digest_only) = (true, true),
            "from-file" => o.from_file = true,
            "min-version" | "max-version" => {
                version_set = true;
                let which = if opt.name == "min-version" {
                    "min"
                } else {
                    "max"
                };
                let Some(v) = parse_long(&value) else {
                    eprintln!("Invalid {which} version {}", value.to_string_lossy());
                    return Exit::Failure;
                };
                if which == "min" {
                    o.min_version = v;
                } else {
                    o.max_version = v;
                }
            }
            "threads" => match parse_long(&value) {
                None => {
                    eprintln!("Invalid threads count {}", value.to_string_lossy());
                    return Exit::Failure;
                }
                Some(n) if n <= 0 || n > i64::from(i32::MAX) => {
                    eprintln!("Invalid threads count {}", n as i32);
                    return Exit::Failure;
                }
                Some(n) => o.scan.threads = n as usize,
            },
            "erofs-version" => match value.to_str() {
                Some("1") => o.erofs_version = 1,
                Some("2") => o.erofs_version = 2,
                _ => {
                    eprintln!(
                        "Invalid erofs version {} (expected 1 or 2)",
                        value.to_string_lossy()
                    );
                    return Exit::Failure;
                }
            },
            _ => {
                usage(prog);
                return Exit::Failure;
            }
        }
    }
    if !version_set {
        (o.min_version, o.max_version) = (0, 1);
    }
    let (src, dest) = match operands.as_slice() {
        [] => {
            eprintln!("No source path specified");
            usage(prog);
            return Exit::Failure;
        }
        [s, ..] if s.is_empty() => return fail(prog, "Empty source path specified"),
        [_, _, _, ..] => {
            eprintln!("Too many arguments");
            usage(prog);
            return Exit::Failure;
        }
        [_] if !o.print_digest_only => {
            eprintln!("No destination path specified");
            usage(prog);
            return Exit::Failure;
        }
        [s] => (PathBuf::from(s), None),
        [_, _] if o.print_digest_only => {
            eprintln!("Cannot specify destination path with --print-digest-only");
            usage(prog);
            return Exit::Failure;
        }
        [s, d] => (PathBuf::from(s), Some(PathBuf::from(d))),
    };
    match run(prog, &o, &src, dest.as_deref()) {
        Ok(()) => Exit::Success,
        Err(msg) => fail(prog, &msg),
    }
}

/// Where the image goes.
enum Sink {
    None,
    Stdout(io::StdoutLock<'static>),
    File(AtomicFile),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::None => Ok(buf.len()),
            Sink::Stdout(s) => s.write(buf),
            Sink::File(f) => f.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Sink::None => Ok(()),
            Sink::Stdout(s) => s.write_all(buf),
            Sink::File(f) => f.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::None => Ok(()),
            Sink::Stdout(s) => s.flush(),
            Sink::File(f) => f.flush(),
        }
    }
}

fn run(prog: &str, o: &Options, src: &Path, dest: Option<&Path>) -> Result<(), String> {
    let _ = prog;
    // C opens the destination before reading the source; keep that order so the same error
    // wins when both are wrong.
    let mut sink =
        match dest {
            None => Sink::None,
            Some(d) if d.as_os_str() == "-" => {
                if io::stdout().is_terminal() {
                    return Err("stdout is a tty.  Refusing to use it".into());
                }
                Sink::Stdout(io::stdout().lock())
            }
            Some(d) => Sink::File(AtomicFile::create(d, 0o666).map_err(|e| {
                format!("failed to open output file: {}", cfs_erofs::io_message(&e))
            })?),
        };

    let tree = if o.from_file {
        read_dumpfile(src)?
    } else {
        let scanned = scan::scan(src, &o.scan).map_err(|e| e.to_string())?;
        if let Some(store_dir) = &o.digest_store {
            fill_store(&scanned, store_dir, o.scan.threads)
                .map_err(|e| format!("cannot fill store: {}", cfs_erofs::io_message(&e)))?;
        }
        scanned.tree
    };

    let write_opts = match o.erofs_version {
        2 => WriteOptions::v2(),
        _ => {
            // C hands `(int)` of the parsed longs to the library, which refuses anything
            // outside 0..=1 with EINVAL.
            let (min, max) = (o.min_version as i32, o.max_version as i32);
            if min < 0 || max < 0 || min > 1 || max > 1 {
                return Err("cannot write file: Invalid argument".into());
            }
            WriteOptions {
                version: FormatVersion::V1,
                min_version: min as u32,
                max_version: max as u32,
            }
        }
    };
    let hasher = o
        .print_digest
        .then(|| FsVerityHasher::new(HashAlgorithm::Sha256));
    let mut tee = Tee {
        sink: io::BufWriter::with_capacity(1 << 20, &mut sink),
        hasher,
    };
    write::write_image(&tree, &write_opts, &mut tee)
        .map_err(|e| format!("cannot write file: {e}"))?;
    tee.flush()
        .map_err(|e| format!("cannot write file: {}", cfs_erofs::io_message(&e)))?;
    let digest = tee.hasher.take().map(FsVerityHasher::finish);
    drop(tee);
    // The process ends right after this; freeing a million-entry tree piece by piece would
    // only cost time.
    std::mem::forget(tree);
    match sink {
        Sink::File(f) => f
            .commit()
            .map_err(|e| format!("close output file: {}", cfs_erofs::io_message(&e)))?,
        Sink::Stdout(mut s) => s
            .flush()
            .map_err(|e| format!("close output file: {}", cfs_erofs::io_message(&e)))?,
        Sink::None => {}
    }
    if let Some(d) = digest {
        println!("{}", d.to_hex());
    }
    Ok(())
}

fn read_dumpfile(src: &Path) -> Result<Tree, String> {
    let opts = ParseOptions::from_env();
    let result = if src.as_os_str() == "-" {
        dumpfile::parse(io::stdin().lock(), &opts)
    } else {
        let f = File::open(src)
            .map_err(|e| format!("open `{}`: {}", src.display(), cfs_erofs::io_message(&e)))?;
        dumpfile::parse(BufReader::with_capacity(1 << 20, f), &opts)
    };
    // C's message first (scripts match on it), then where it happened.
    result.map_err(|e| match e.line() {
        Some(line) => format!("{} (line {line})", e.message()),
        None => e.message(),
    })
}

/// Copies every external file of a scanned tree into the store, in parallel.
fn fill_store(scanned: &scan::Scanned, dir: &Path, threads: usize) -> io::Result<()> {
    use rayon::prelude::*;
    let store = ObjectStore::new(dir);
    let work = || {
        scanned.external.par_iter().try_for_each(|(id, path)| {
            let InodeKind::Regular(FileData::External {
                payload: Some(p), ..
            }) = &scanned.tree.inode(*id).kind
            else {
                return Ok(());
            };
            store.insert_file(&String::from_utf8_lossy(p), path)
        })
    };
    match rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
    {
        Ok(pool) => pool.install(work),
        Err(_) => work(),
    }
}
