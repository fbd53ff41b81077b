//! `cfs-rs-adapter`: composefs-rs 0.9.4 behind mkcomposefs's command line, so that the vector
//! runner can judge it like any other implementation.
//!
//! `cfs-rs-adapter --from-file [--min-version=N] [--max-version=N] [--erofs-version=2] DUMP IMAGE`
//! parses DUMP (`-` for stdin) with composefs-rs's dumpfile parser and writes
//! `mkfs_erofs_versioned` output. The versions map to composefs-rs's `FormatVersion` as the
//! format note's §6.2 does: C's defaulting first (§6.1), then composefs_version 1 → `V1`,
//! 0 → `V0`, and C's default range 0..1 picks `V1` exactly when the input has a whiteout (a
//! character device 0:0), as C's upgrade rule does. `--erofs-version=2` → `V2`.
//!
//! Exit status 1 for anything composefs-rs refuses (the runner counts those as "refused"),
//! 2 for a usage error.

use std::io::Read;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::ExitCode;

use composefs::dumpfile::dumpfile_to_filesystem;
use composefs::dumpfile_parse::{Entry, Item};
use composefs::erofs::format::FormatVersion;
use composefs::erofs::writer::{mkfs_erofs_versioned, ValidatedFileSystem};
use composefs::fsverity::Sha256HashValue;
use composefs::generic_tree::LeafContent;

const USAGE: &str = "usage: cfs-rs-adapter --from-file [--min-version=N] [--max-version=N] \
                     [--erofs-version=1|2] DUMP IMAGE";

struct Args {
    min: Option<u32>,
    max: Option<u32>,
    erofs: u32,
    input: String,
    output: String,
}

fn parse_args(args: &[String]) -> Result<Args, String> {
    let (mut min, mut max, mut erofs, mut from_file) = (None, None, 1, false);
    let mut positional = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        let (key, inline) = match a.split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        let mut value = |name: &str| -> Result<u32, String> {
            let v = match inline.clone() {
                Some(v) => v,
                None => {
                    i += 1;
                    args.get(i - 1)
                        .cloned()
                        .ok_or(format!("{name} needs a value"))?
                }
            };
            v.parse().map_err(|_| format!("Invalid {name} {v}"))
        };
        match key {
            "--from-file" => from_file = true,
            "--min-version" => min = Some(value("min version")?),
            "--max-version" => max = Some(value("max version")?),
            "--erofs-version" => erofs = value("erofs version")?,
            "-" => positional.push(a.clone()),
            k if k.starts_with('-') => return Err(format!("unsupported option {a}")),
            _ => positional.push(a.clone()),
        }
    }
    if !from_file {
        return Err("only --from-file input is supported".into());
    }
    let [input, output]: [String; 2] = positional
        .try_into()
        .map_err(|_| "expected DUMP and IMAGE".to_string())?;
    if !matches!(erofs, 1 | 2) {
        return Err(format!("unsupported erofs version {erofs}"));
    }
    Ok(Args {
        min,
        max,
        erofs,
        input,
        output,
    })
}

/// composefs-rs's format for C's version options (§6.1, §6.2).
fn format_version(a: &Args, has_whiteout: bool) -> Result<FormatVersion, String> {
    if a.erofs == 2 {
        return Ok(FormatVersion::V2);
    }
    let (min, max) = match (a.min, a.max) {
        (None, None) => (0, 1),
        (min, max) => {
            let min = min.unwrap_or(0);
            (min, max.unwrap_or(0).max(min))
        }
    };
    if max > 1 {
        return Err("cannot write file: Invalid argument".into());
    }
    Ok(if min >= 1 || (max >= 1 && has_whiteout) {
        FormatVersion::V1
    } else {
        FormatVersion::V0
    })
}

/// composefs-rs names an external file's object by its digest and drops the PAYLOAD field, so
/// a payload other than the digest's object path (`XX/rest`) cannot be represented: refuse
/// it rather than write an image for another input.
fn check_payloads(text: &str) -> Result<(), String> {
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(entry) = Entry::parse(line) else {
            continue; // the parser proper reports it
        };
        if let Item::Regular {
            path,
            fsverity_digest: Some(d),
            ..
        } = &entry.item
        {
            let object = d.get(..2).zip(d.get(2..)).map(|(a, b)| format!("{a}/{b}"));
            if object.as_deref() != path.to_str() {
                return Err(format!(
                    "cannot represent payload {} (composefs-rs derives it from the digest)",
                    path.display()
                ));
            }
        }
    }
    Ok(())
}

fn run(a: &Args) -> Result<(), String> {
    let mut bytes = Vec::new();
    if a.input == "-" {
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| format!("stdin: {e}"))?;
    } else {
        bytes = std::fs::read(&a.input).map_err(|e| format!("{}: {e}", a.input))?;
    }
    let text = String::from_utf8(bytes).map_err(|_| "dumpfile is not UTF-8".to_string())?;
    check_payloads(&text)?;
    let fs = dumpfile_to_filesystem::<Sha256HashValue>(&text)
        .map_err(|e| format!("dumpfile: {}", e.root_cause()))?;
    let has_whiteout = fs
        .leaves
        .iter()
        .any(|l| matches!(l.content, LeafContent::CharacterDevice(0)));
    let version = format_version(a, has_whiteout)?;
    let fs = ValidatedFileSystem::new(fs).map_err(|e| format!("validate: {}", e.root_cause()))?;
    let image = catch_unwind(AssertUnwindSafe(|| mkfs_erofs_versioned(&fs, version)))
        .map_err(|_| "composefs-rs panicked".to_string())?;
    std::fs::write(&a.output, &image).map_err(|e| format!("{}: {e}", a.output))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a = match parse_args(&args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("cfs-rs-adapter: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // Quiet the default panic message; a panic is reported as a refusal.
    std::panic::set_hook(Box::new(|_| {}));
    match run(&a) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cfs-rs-adapter: {}", e.lines().next().unwrap_or(""));
            ExitCode::FAILURE
        }
    }
}
