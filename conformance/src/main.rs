//! `conformance`: the suite's command-line tools.
//!
//! - `conformance walk [--content] DIR`: print the canonical listing of a mounted tree (used by
//!   the kernel tests inside a private mount namespace).

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("walk") => {
            let content = args.iter().any(|a| a == "--content");
            let Some(dir) = args.iter().skip(1).find(|a| !a.starts_with("--")) else {
                eprintln!("usage: conformance walk [--content] DIR");
                return ExitCode::FAILURE;
            };
            let read = move |e: &conformance::walk::Entry| {
                content
                    || !e
                        .xattrs
                        .iter()
                        .any(|(n, _)| n == b"trusted.overlay.metacopy")
            };
            match conformance::walk::walk(&PathBuf::from(dir), &read) {
                Ok(entries) => {
                    print!("{}", conformance::walk::format(&entries));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("walk {dir}: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        _ => {
            eprintln!("usage: conformance walk [--content] DIR");
            ExitCode::FAILURE
        }
    }
}
