//! `mkcfs-rs`: builds and inspects composefs images.
//!
//! Run as `mkcomposefs` (a symlink) it is a drop-in for C mkcomposefs 1.0.8; run as
//! `composefs-info` it is a drop-in for composefs-info. Otherwise the first argument names a
//! command: `mkcomposefs`, `info`, `oci`, `tar`, `karg`; anything else is taken as mkcomposefs
//! arguments. Every command is a thin layer over the `cfs_erofs` library.

mod getopt;
mod mkcomposefs;

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

/// Exit status of a command: C's tools exit 1 on every failure.
pub enum Exit {
    Success,
    Failure,
}

/// Prints `prog: message` on stderr, as C's `err`/`errx` do, and fails.
pub fn fail(prog: &str, message: &str) -> Exit {
    eprintln!("{prog}: {message}");
    Exit::Failure
}

const COMMANDS: &str = "commands: mkcomposefs, info";

fn main() -> ExitCode {
    let mut args: Vec<OsString> = std::env::args_os().collect();
    let argv0 = args.first().cloned().unwrap_or_else(|| "mkcfs-rs".into());
    let prog = Path::new(&argv0)
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "mkcfs-rs".into());
    let rest = args.split_off(1.min(args.len()));
    let exit = match prog.as_str() {
        "mkcomposefs" => mkcomposefs::main(&prog, &rest),
        _ => match rest.first().and_then(|s| s.to_str()) {
            Some("mkcomposefs") => mkcomposefs::main("mkcomposefs", &rest[1..]),
            Some("--help" | "-h" | "help") => {
                println!("usage: {prog} COMMAND [ARGS…]   ({COMMANDS}); with no command, mkcomposefs arguments");
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
    }
}
