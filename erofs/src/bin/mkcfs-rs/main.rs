//! `mkcfs-rs`: builds and inspects composefs images.
//!
//! Run as `mkcomposefs` (a symlink) it is a drop-in for C mkcomposefs 1.0.8; run as
//! `composefs-info` it is a drop-in for composefs-info. Otherwise the first argument names a
//! command: `mkcomposefs`, `info`, `oci`, `tar`, `karg`, `repo`; anything else is taken as mkcomposefs
//! arguments. Every command is a thin layer over the `cfs_erofs` library. The drop-ins parse
//! options like GNU getopt and fail like C; the newer commands use clap and fail with one line
//! `mkcfs-rs: …` and exit 1.

mod dump;
mod emit;
mod fuse;
mod getopt;
mod info;
mod karg;
mod mkcomposefs;
mod mount;
mod oci;
mod progress;
mod repo;
mod tar;
mod tee;

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

/// Exit status of a command: C's tools exit 1 on every failure; `info diff` exits like `cmp`.
pub enum Exit {
    Success,
    Failure,
    Code(u8),
}

/// Prints `prog: message` on stderr, as C's `err`/`errx` do, and fails.
pub fn fail(prog: &str, message: &str) -> Exit {
    eprintln!("{prog}: {message}");
    Exit::Failure
}

/// `mkcfs-rs --help`: the commands, one line each.
const HELP: &str = "\
Build and inspect composefs images (EROFS metadata + fs-verity named objects).

Usage: mkcfs-rs COMMAND [ARGS…]
       mkcfs-rs [MKCOMPOSEFS OPTIONS] SOURCE IMAGE   (no command: as mkcomposefs)

Commands:
  mkcomposefs  Build an image from a directory or a dumpfile (drop-in for C mkcomposefs 1.0.8;
               adds --erofs-version=1|2)
  info         ls, dump, objects, missing-objects, measure-file (drop-in for composefs-info)
  oci          Build an image from an OCI image layout (layers merged, whiteouts applied)
  tar          Build an image from tar layers (gzip/zstd, PAX, xattrs, hardlinks)
  karg         Parse, make and resolve composefs kernel arguments; `karg mount` mounts the
               image the command line names (the initramfs boot mount)
  mount        Mount an image with its object folders (drop-in for mount.composefs)
  dump         Rewrite an image at its composefs_version (drop-in for C composefs-dump)
  fuse         Serve an image through FUSE (drop-in for C composefs-fuse)
  repo         Check, list and collect composefs-rs repositories (fsck, ls, gc, images);
               `oci … --repo DIR` and `tar … --repo DIR` import into one

`mkcfs-rs COMMAND --help` for each command's options. Run through a symlink named
`mkcomposefs`, `composefs-info`, `mount.composefs`, `composefs-dump` or `composefs-fuse`, the
binary behaves as that tool.
";

/// Runs a clap-parsed command: `--help` prints and succeeds; a usage error or a failure is one
/// line on stderr and exit 1.
fn clap_command<P: clap::Parser>(
    name: &str,
    args: &[OsString],
    run: impl FnOnce(&P) -> Result<(), String>,
) -> Exit {
    let argv =
        std::iter::once(OsString::from(format!("mkcfs-rs {name}"))).chain(args.iter().cloned());
    let parsed = match P::try_parse_from(argv) {
        Ok(p) => p,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return Exit::Success;
        }
        Err(e) => {
            // clap's message is its first paragraph; the rest is usage and tips.
            let message =
                if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                    "a subcommand is required".to_owned()
                } else {
                    let text = e.render().to_string();
                    let para: Vec<&str> = text
                        .lines()
                        .take_while(|l| !l.trim().is_empty())
                        .map(str::trim)
                        .collect();
                    let joined = para.join(" ");
                    joined.strip_prefix("error: ").unwrap_or(&joined).to_owned()
                };
            return fail(
                "mkcfs-rs",
                &format!("{message} (see `mkcfs-rs {name} --help`)"),
            );
        }
    };
    match run(&parsed) {
        Ok(()) => Exit::Success,
        Err(msg) => fail("mkcfs-rs", &msg),
    }
}

fn main() -> ExitCode {
    let mut args: Vec<OsString> = std::env::args_os().collect();
    let argv0 = args.first().cloned().unwrap_or_else(|| "mkcfs-rs".into());
    let prog = Path::new(&argv0)
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "mkcfs-rs".into());
    let rest = args.split_off(1.min(args.len()));
    let argv0_os = argv0.clone();
    let argv0 = argv0.to_string_lossy();
    let exit = match prog.as_str() {
        "mkcomposefs" => mkcomposefs::main(&prog, &rest),
        "composefs-info" => info::main(
            &info::Names {
                bin: &argv0,
                short: &prog,
            },
            &rest,
        ),
        "mount.composefs" => mount::main(
            &mount::Names {
                argv0: argv0_os.as_os_str(),
                short: &prog,
            },
            &rest,
        ),
        "composefs-dump" => dump::main(
            &dump::Names {
                bin: &argv0,
                short: &prog,
            },
            &rest,
        ),
        "composefs-fuse" => fuse::main(&argv0, &prog, &rest),
        _ => match rest.first().and_then(|s| s.to_str()) {
            Some("mkcomposefs") => mkcomposefs::main("mkcomposefs", &rest[1..]),
            Some("info") => info::main(
                &info::Names {
                    bin: &format!("{argv0} info"),
                    short: &format!("{prog} info"),
                },
                &rest[1..],
            ),
            Some("mount") => mount::main(
                &mount::Names {
                    argv0: &OsString::from(format!("{argv0} mount")),
                    short: &format!("{prog} mount"),
                },
                &rest[1..],
            ),
            Some("dump") => dump::main(
                &dump::Names {
                    bin: &format!("{argv0} dump"),
                    short: &format!("{prog} dump"),
                },
                &rest[1..],
            ),
            Some("fuse") => fuse::main(
                &format!("{argv0} fuse"),
                &format!("{prog} fuse"),
                &rest[1..],
            ),
            Some("oci") => clap_command("oci", &rest[1..], oci::run),
            Some("tar") => clap_command("tar", &rest[1..], tar::run),
            Some("karg") => clap_command("karg", &rest[1..], karg::run),
            Some("repo") => clap_command("repo", &rest[1..], repo::run),
            Some("--help" | "-h" | "help") => {
                print!("{HELP}");
                Exit::Success
            }
            Some("--version" | "-V") => {
                println!("{prog} {}", env!("CARGO_PKG_VERSION"));
                Exit::Success
            }
            _ => mkcomposefs::main(&prog, &rest),
        },
    };
    match exit {
        Exit::Success => ExitCode::SUCCESS,
        Exit::Failure => ExitCode::FAILURE,
        Exit::Code(c) => ExitCode::from(c),
    }
}
