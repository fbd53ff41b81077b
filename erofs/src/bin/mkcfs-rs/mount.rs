//! `mount.composefs IMAGE MOUNTPOINT -o basedir=…` (also `mkcfs-rs mount`): drop-in for C
//! mount.composefs 1.0.8 — its getopt command line, option syntax, messages (`prog: …` and an
//! empty line, as C's `errx` with a format ending in `\n` prints) and exit codes — over
//! `cfs_erofs::mount`.
//!
//! Deliberate divergence: mount(8) calls helpers as `mount.TYPE SPEC DIR [-sfnv] [-N NS]
//! [-o OPTS]`, and C rejects those flags. Here `-n` (no mtab) is accepted and does nothing,
//! `-v` prints which kernel paths the mount took, `-s` (sloppy) ignores unknown options, `-f`
//! (fake) does everything except the mount itself, and `-N NS` enters the mount namespace
//! NS (a path such as /proc/PID/ns/mnt) first.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Write as _;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use cfs_erofs::mount::{self, optstring, MountOptions, Verity};

use crate::getopt::{getopt_short, Short};
use crate::Exit;

/// C's `-h` text, printed on stderr.
fn usage(bin: &str) {
    eprint!(
        "usage: {bin} [-t type] [-o opt[,opts..]] IMAGE MOUNTPOINT\n\
Example:\n  {bin} -o basedir=/composefs/objects exampleimage.cfs /mnt/exampleimage\n\
or, as a mount helper:\n  mount -t composefs -o basedir=/composefs/objects exampleimage.cfs /mnt/exampleimage\n\
\n\
Supported options:\n\
\x20 basedir=PATH[:PATH]    Specify location of basedir(s)\n\
\x20 digest=DIGEST          Specify required image digest\n\
\x20 idmap=PATH             Specify path to a user namespace whose ID mapping should be used\n\
\x20 verity                 Require all files to have specified and valid fs-verity digests\n\
\x20 tryverity              If supported by kernel, require fs-verity\n\
\x20 ro                     Read only\n\
\x20 rw                     Read/write\n\
\x20 upperdir               Overlayfs upperdir\n\
\x20 workdir                Overlayfs workdir\n"
    );
}

/// Names the command prints: `argv0` as run (getopt's messages), `short` (its basename, or
/// `mkcfs-rs mount`) for usage and error prefixes.
pub struct Names<'a> {
    pub argv0: &'a OsStr,
    pub short: &'a str,
}

/// `errx(1, "…\n")`: prefix, message, and the empty line C's trailing `\n` leaves.
fn errx(short: &str, message: impl AsRef<[u8]>) -> Exit {
    let mut e = std::io::stderr().lock();
    let _ = e.write_all(short.as_bytes());
    let _ = e.write_all(b": ");
    let _ = e.write_all(message.as_ref());
    let _ = e.write_all(b"\n\n");
    Exit::Failure
}

/// A bare message, then usage, exit 1 (C's `fprintf` + `usage` + `exit(1)`).
fn fail_usage(short: &str, message: &str) -> Exit {
    eprintln!("{message}");
    usage(short);
    Exit::Failure
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// mount(8)'s helper flags, which C does not accept.
#[derive(Default)]
struct HelperFlags {
    fake: bool,
    sloppy: bool,
    verbose: bool,
    namespace: Option<OsString>,
}

pub fn main(names: &Names, args: &[OsString]) -> Exit {
    let short = names.short;
    let (steps, operands) = getopt_short(args, b"ht:o:nvsfN:");
    let mut option_string: Option<OsString> = None;
    let mut helper = HelperFlags::default();
    for step in steps {
        match step {
            Short::Opt(b't', Some(t)) => {
                if t != "composefs" {
                    return errx(short, cat(&[b"Unsupported fs type '", t.as_bytes(), b"'"]));
                }
            }
            Short::Opt(b'o', v) => option_string = v,
            Short::Opt(b'h', _) => {
                usage(short);
                return Exit::Success;
            }
            Short::Opt(b'n', _) => {}
            Short::Opt(b'v', _) => helper.verbose = true,
            Short::Opt(b's', _) => helper.sloppy = true,
            Short::Opt(b'f', _) => helper.fake = true,
            Short::Opt(b'N', v) => helper.namespace = v,
            Short::Opt(c, _) | Short::Invalid(c) => {
                getopt_message(names.argv0, b"invalid option", c);
                usage(short);
                return Exit::Failure;
            }
            Short::MissingValue(c) => {
                getopt_message(names.argv0, b"option requires an argument", c);
                usage(short);
                return Exit::Failure;
            }
        }
    }
    let Some(image) = operands.first() else {
        return fail_usage(short, "No source path specified");
    };
    let Some(target) = operands.get(1) else {
        return fail_usage(short, "No mount path specified");
    };

    let mut basedir: Option<Vec<u8>> = None;
    let mut digest: Option<Vec<u8>> = None;
    let mut upperdir: Option<Vec<u8>> = None;
    let mut workdir: Option<Vec<u8>> = None;
    let mut idmap: Option<Vec<u8>> = None;
    let (mut verity, mut tryverity, mut readonly) = (false, false, false);
    for opt in option_string
        .as_ref()
        .map(|s| optstring::split(s.as_bytes()))
        .unwrap_or_default()
    {
        let slot = match opt.key.as_slice() {
            b"basedir" => &mut basedir,
            b"digest" => &mut digest,
            b"upperdir" => &mut upperdir,
            b"workdir" => &mut workdir,
            b"idmap" => &mut idmap,
            b"verity" => {
                verity = true;
                continue;
            }
            b"tryverity" => {
                tryverity = true;
                continue;
            }
            b"ro" => {
                readonly = true;
                continue;
            }
            b"rw" => {
                readonly = false;
                continue;
            }
            _ if helper.sloppy => continue,
            key => return errx(short, cat(&[b"Unsupported option ", key])),
        };
        match opt.value {
            Some(v) => *slot = Some(v),
            None => {
                return errx(
                    short,
                    cat(&[b"No value specified for ", &opt.key, b" option"]),
                )
            }
        }
    }

    let mut objdirs = Vec::new();
    if let Some(b) = &basedir {
        match optstring::split_basedirs(b) {
            Some(dirs) => objdirs = dirs.iter().map(|d| path(d)).collect(),
            None => return errx(short, "Value for basedir option has incorrect format"),
        }
    }
    if objdirs.is_empty() {
        return fail_usage(short, "No object dirs specified");
    }
    if upperdir.is_some() != workdir.is_some() {
        return errx(short, "Both workdir and upperdir must be specified if used");
    }
    let userns = match &idmap {
        Some(p) => match File::open(path(p)) {
            Ok(f) => Some(f),
            Err(e) => {
                return errx(
                    short,
                    cat(&[
                        b"Failed to open userns ",
                        p,
                        b": ",
                        cfs_erofs::io_message(&e).as_bytes(),
                    ]),
                )
            }
        },
        None => None,
    };
    if let Some(ns) = &helper.namespace {
        if let Err(e) = enter_mount_namespace(Path::new(ns)) {
            return errx(
                short,
                cat(&[
                    b"Failed to enter namespace ",
                    ns.as_bytes(),
                    b": ",
                    e.as_bytes(),
                ]),
            );
        }
    }
    let file = match File::open(image) {
        Ok(f) => f,
        Err(e) => {
            return errx(
                short,
                cat(&[
                    b"Failed to open ",
                    image.as_bytes(),
                    b": ",
                    cfs_erofs::io_message(&e).as_bytes(),
                ]),
            )
        }
    };
    let opts = MountOptions {
        objdirs,
        upperdir: upperdir.as_deref().map(path),
        workdir: workdir.as_deref().map(path),
        expected_digest: digest
            .as_ref()
            .map(|d| String::from_utf8_lossy(d).into_owned()),
        verity: if verity || digest.is_some() {
            Verity::Require
        } else if tryverity {
            Verity::Try
        } else {
            Verity::Off
        },
        readonly,
        idmap: userns.as_ref().map(|f| f.as_fd()),
        ..Default::default()
    };
    if helper.fake {
        return match opts.validate() {
            Ok(_) => Exit::Success,
            Err(e) => mount_failed(short, image, &e.into()),
        };
    }
    match mount::mount_fd(file.as_fd(), Path::new(target), &opts) {
        Ok(m) => {
            if helper.verbose {
                println!(
                    "{short}: mounted {} on {} (erofs: {:?}{}, overlay: {:?}{})",
                    Path::new(image).display(),
                    Path::new(target).display(),
                    m.erofs,
                    m.loop_device
                        .map(|n| format!(" via /dev/loop{n}"))
                        .unwrap_or_default(),
                    m.overlay,
                    if m.verity_required {
                        ", verity=require"
                    } else {
                        ""
                    }
                );
            }
            Exit::Success
        }
        Err(e) => mount_failed(short, image, &e),
    }
}

fn mount_failed(short: &str, image: &OsStr, e: &mount::MountError) -> Exit {
    errx(
        short,
        cat(&[
            b"Failed to mount composefs ",
            image.as_bytes(),
            b": ",
            e.c_message().as_bytes(),
        ]),
    )
}

fn path(b: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(b))
}

/// glibc getopt's own complaint: `ARGV0: WHAT -- 'C'`.
fn getopt_message(argv0: &OsStr, what: &[u8], c: u8) {
    let mut e = std::io::stderr().lock();
    let _ = e.write_all(&cat(&[
        argv0.as_bytes(),
        b": ",
        what,
        b" -- '",
        &[c],
        b"'\n",
    ]));
}

/// `-N NS`: switch to the mount namespace at NS before mounting, as mount(8) asks helpers to.
fn enter_mount_namespace(ns: &Path) -> Result<(), String> {
    let f = File::open(ns).map_err(|e| cfs_erofs::io_message(&e))?;
    rustix::thread::move_into_link_name_space(
        f.as_fd(),
        Some(rustix::thread::LinkNameSpaceType::Mount),
    )
    .map_err(|e| cfs_erofs::io_message(&e.into()))
}
