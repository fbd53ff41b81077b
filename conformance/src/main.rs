//! `conformance`: the suite's command-line tools.
//!
//! - `conformance walk [--content] DIR`: print the canonical listing of a mounted tree (used by
//!   the kernel tests inside a private mount namespace).
//! - `conformance make-vectors [DIR]`: regenerate the test vectors (default
//!   `fixtures/vectors`; `scripts/make-vectors` wraps it).
//! - `conformance vm --kernel DEB [--kernel DEB…] [--work DIR] [--ours]`: boot a Debian kernel
//!   package under qemu and run the VM suite in it (`conformance::vm::suite`).
//! - `conformance vm-read [--against LIST] DIR`: (in the guest) what every regular file under
//!   DIR reads back, or how it differs from LIST.
//! - `conformance vm-matrix DIR OUT [--all-overlay-modes]`: (in the guest, and on the host in a
//!   private mount namespace, every overlay mode) mount and walk every image of a matrix
//!   folder (`conformance::vm::matrix`).
//! - `conformance [run] --mkcomposefs PATH [--composefs-info PATH] [--erofs-version 1|2]
//!   [--filter PATTERN] [--junit FILE]`: judge an mkcomposefs-compatible executable against
//!   the vectors; exits non-zero on any failure.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use conformance::vectors::{self, runner};

/// Runs the composefs test vectors against an mkcomposefs-compatible executable.
#[derive(Parser, Debug)]
#[command(name = "conformance run")]
struct RunArgs {
    /// The executable under test, called as `PATH [OPTIONS] --from-file INPUT IMAGE`.
    #[arg(long)]
    mkcomposefs: PathBuf,
    /// Also compare `PATH dump IMAGE` with the expected dump text.
    #[arg(long)]
    composefs_info: Option<PathBuf>,
    /// Which layout's builds to run: 1 (C layout: default, --min-version=1, --max-version=0)
    /// or 2 (--erofs-version=2).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=2))]
    erofs_version: u32,
    /// Only vectors whose name contains PATTERN.
    #[arg(long)]
    filter: Option<String>,
    /// Write a JUnit XML report to FILE.
    #[arg(long)]
    junit: Option<PathBuf>,
    /// The vector directory (default: the repository's fixtures/vectors).
    #[arg(long)]
    vectors: Option<PathBuf>,
    /// Parallel jobs (default: the number of CPUs).
    #[arg(long, default_value_t = 0)]
    jobs: usize,
    /// List passing vectors too.
    #[arg(long, short)]
    verbose: bool,
}

const USAGE: &str = "usage: conformance walk [--content] DIR\n       \
                     conformance vm --kernel DEB [--kernel DEB…] [--work DIR] [--ours]\n       \
                     conformance make-vectors [DIR]\n       \
                     conformance [run] --mkcomposefs PATH [--composefs-info PATH] \
                     [--erofs-version 1|2] [--filter PATTERN] [--junit FILE]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("walk") => walk(&args),
        Some("vm") => vm(&args[1..]),
        Some("vm-read") => vm_read(&args[1..]),
        Some("vm-matrix") => match args.get(1..3) {
            Some([dir, out]) => {
                let all_modes = args.iter().any(|a| a == "--all-overlay-modes");
                match conformance::vm::matrix::read_folder(dir.as_ref(), out.as_ref(), all_modes) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("vm-matrix: {e}");
                        ExitCode::FAILURE
                    }
                }
            }
            _ => {
                eprintln!("usage: conformance vm-matrix DIR OUT [--all-overlay-modes]");
                ExitCode::FAILURE
            }
        },
        Some("make-vectors") => {
            let dir = args
                .get(1)
                .map(PathBuf::from)
                .unwrap_or_else(vectors::vectors_dir);
            match vectors::make(&dir) {
                Ok(m) => {
                    eprintln!("{} vectors written to {}", m.vectors.len(), dir.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("make-vectors: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Some("run") => run(&args[1..]),
        Some(a) if a.starts_with('-') && a != "-h" && a != "--help" => run(&args),
        Some("-h" | "--help") if args.len() == 1 => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> ExitCode {
    let a = RunArgs::parse_from(
        std::iter::once("conformance run".to_string()).chain(args.iter().cloned()),
    );
    let cfg = runner::RunConfig {
        vectors_dir: a.vectors.unwrap_or_else(vectors::vectors_dir),
        mkcomposefs: a.mkcomposefs,
        composefs_info: a.composefs_info,
        erofs_version: a.erofs_version,
        filter: a.filter,
        jobs: a.jobs,
    };
    let report = match runner::run(&cfg) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("conformance run: {e}");
            return ExitCode::from(2);
        }
    };
    print!("{}", report.table(a.verbose));
    if let Some(j) = a.junit {
        if let Err(e) = std::fs::write(&j, report.junit()) {
            eprintln!("conformance run: {}: {e}", j.display());
            return ExitCode::from(2);
        }
    }
    if report.outcomes.is_empty() {
        eprintln!("conformance run: no vector matched");
        return ExitCode::FAILURE;
    }
    if report.all_passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn walk(args: &[String]) -> ExitCode {
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

/// Boots a kernel package and runs the VM suite in it.
#[derive(Parser, Debug)]
#[command(name = "conformance vm")]
struct VmArgs {
    /// The kernel package; several for a kernel split into image, binary and modules packages.
    #[arg(long, required = true, num_args = 1..)]
    kernel: Vec<PathBuf>,
    /// Scratch folder (default: a temporary one).
    #[arg(long)]
    work: Option<PathBuf>,
    /// Also judge our mount.composefs (mkcfs-rs), not only C's.
    #[arg(long)]
    ours: bool,
    /// Our mkcfs-rs (default: beside this program).
    #[arg(long)]
    mkcfs_rs: Option<PathBuf>,
    /// Read only the first N images of the kernel matrix.
    #[arg(long)]
    matrix_limit: Option<usize>,
    /// Kill the machine after this many seconds.
    #[arg(long, default_value_t = 400)]
    timeout: u64,
}

fn vm(args: &[String]) -> ExitCode {
    use conformance::vm::suite;
    let a = VmArgs::parse_from(
        std::iter::once("conformance vm".to_string()).chain(args.iter().cloned()),
    );
    let me = std::env::current_exe().expect("own path");
    let temp = tempfile::tempdir().expect("temporary folder");
    let cfg = suite::Config {
        name: a.kernel[0]
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        kernel_debs: a.kernel.clone(),
        work: a.work.unwrap_or_else(|| temp.path().to_path_buf()),
        mkcfs_rs: a.mkcfs_rs.unwrap_or_else(|| me.with_file_name("mkcfs-rs")),
        conformance: me.clone(),
        mount_tools: if a.ours {
            vec![suite::MountTool::C, suite::MountTool::Ours]
        } else {
            vec![suite::MountTool::C]
        },
        deadline: std::time::Duration::from_secs(a.timeout),
        matrix_limit: a.matrix_limit,
    };
    match suite::run(&cfg) {
        Ok(report) => {
            print!("{}", report.summary());
            if report.failures.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("conformance vm: {e}");
            ExitCode::from(2)
        }
    }
}

fn vm_read(args: &[String]) -> ExitCode {
    use conformance::vm::guest;
    let (against, dir) = match args {
        [flag, list, dir] if flag == "--against" => (Some(list), dir),
        [dir] => (None, dir),
        _ => {
            eprintln!("usage: conformance vm-read [--against LIST] DIR");
            return ExitCode::FAILURE;
        }
    };
    let listing = match guest::read_tree(std::path::Path::new(dir)) {
        Ok(l) => l,
        Err(e) => {
            println!("unreadable: {e}");
            return ExitCode::FAILURE;
        }
    };
    match against {
        None => print!("{}", guest::format(&listing)),
        Some(list) => match std::fs::read_to_string(list) {
            Ok(text) => println!("{}", guest::compare(&listing, &guest::parse(&text))),
            Err(e) => {
                eprintln!("{list}: {e}");
                return ExitCode::FAILURE;
            }
        },
    }
    ExitCode::SUCCESS
}
