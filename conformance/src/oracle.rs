//! Finding and running the reference tools installed by `scripts/install-oracles`.
//!
//! Every conformance test goes through [`Oracle::get`]: a missing oracle is a test failure
//! whose message says how to install it, never a silent skip.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The repository root (the workspace that holds this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Where `scripts/install-oracles` puts everything; `MKCFS_ORACLES` overrides it.
pub fn oracles_dir() -> PathBuf {
    std::env::var_os("MKCFS_ORACLES")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".oracles"))
}

/// A reference tool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Oracle {
    /// C `mkcomposefs` 1.0.8.
    Mkcomposefs,
    /// C `composefs-info` 1.0.8.
    ComposefsInfo,
    /// erofs-utils `fsck.erofs`.
    FsckErofs,
    /// erofs-utils `dump.erofs`.
    DumpErofs,
    /// fsverity-utils `fsverity`.
    Fsverity,
    /// C `mount.composefs` 1.0.8 (scripts/oracles.d/10-mount-composefs.sh).
    MountComposefs,
}

impl Oracle {
    pub fn name(self) -> &'static str {
        match self {
            Oracle::Mkcomposefs => "mkcomposefs",
            Oracle::ComposefsInfo => "composefs-info",
            Oracle::FsckErofs => "fsck.erofs",
            Oracle::DumpErofs => "dump.erofs",
            Oracle::Fsverity => "fsverity",
            Oracle::MountComposefs => "mount.composefs",
        }
    }

    /// Path of the oracle's wrapper. Panics, with the fix, when it is not installed.
    pub fn get(self) -> PathBuf {
        let p = oracles_dir().join("bin").join(self.name());
        if !p.exists() {
            panic!(
                "oracle `{}` is missing at {}: run scripts/install-oracles (the README's test command does)",
                self.name(),
                p.display()
            );
        }
        p
    }

    pub fn command(self) -> Command {
        Command::new(self.get())
    }
}

/// The C test corpus (`tests/assets` of composefs 1.0.8). Panics, with the fix, when missing.
pub fn corpus_dir() -> PathBuf {
    let p = oracles_dir().join("corpus");
    if !p.join("special.dump").exists() {
        panic!(
            "the C test corpus is missing at {}: run scripts/install-oracles",
            p.display()
        );
    }
    p
}

/// Runs a command with `stdin` fed from `input` and returns its output.
pub fn run_with_input(mut cmd: Command, input: &[u8]) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn oracle");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait for oracle");
    writer.join().expect("stdin writer");
    out
}

/// Our own `mkcfs-rs`, built by `cargo test --workspace` beside the test executables
/// (`target/<profile>/mkcfs-rs`). Panics, with the fix, when it has not been built.
pub fn mkcfs_rs() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>/mkcfs-rs
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let p = profile_dir.join("mkcfs-rs");
    if !p.exists() {
        panic!(
            "mkcfs-rs is not built at {}: run the tests with `cargo test --workspace` (scripts/test), \
             or `cargo build -p cfs-erofs --bin mkcfs-rs` with the same profile",
            p.display()
        );
    }
    p
}
