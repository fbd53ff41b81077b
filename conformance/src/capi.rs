//! Running C's own binaries (Debian's mkcomposefs, composefs-info, mount.composefs 1.0.8) on
//! either C's `libcomposefs.so.1` or ours (the `capi` crate), so that a test can compare the
//! two byte for byte.
//!
//! The binaries start through the oracle prefix's dynamic loader with an explicit
//! `--library-path`; for [`Lib::Ours`] our library's directory comes first, and
//! [`assert_ours_loaded`] checks with the loader's own trace that it is the one mapped.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::oracle::oracles_dir;

/// Which `libcomposefs.so.1` a C binary runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lib {
    C,
    Ours,
}

fn prefix() -> PathBuf {
    oracles_dir().join("prefix")
}

/// C's library directories in the oracle prefix.
fn c_libdirs() -> String {
    let p = prefix();
    format!(
        "{}:{}",
        p.join("usr/lib/x86_64-linux-gnu").display(),
        p.join("lib/x86_64-linux-gnu").display()
    )
}

/// Our `libcomposefs.so` (built by `cargo build --release -p composefs-capi`, which
/// scripts/test does), beside the test executables.
pub fn our_library() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let so = profile_dir.join("libcomposefs.so");
    if !so.exists() {
        panic!(
            "our libcomposefs is not built at {}: run scripts/test, or `cargo build --release -p composefs-capi`",
            so.display()
        );
    }
    so
}

/// A directory holding our library under its SONAME, `libcomposefs.so.1` (a symlink to the
/// build output, so it is always the fresh one).
pub fn our_libdir() -> PathBuf {
    let so = our_library();
    let dir = so.parent().expect("profile dir").join("capi-lib");
    let link = dir.join("libcomposefs.so.1");
    if std::fs::read_link(&link).ok().as_deref() != Some(so.as_path()) {
        std::fs::create_dir_all(&dir).expect("create capi-lib");
        // Tests race to make it: build under a unique name, then rename over.
        let tmp = dir.join(format!(".libcomposefs.so.1.{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&so, &tmp).expect("symlink our library");
        std::fs::rename(&tmp, &link).expect("rename our library link");
    }
    dir
}

/// The loader's `--library-path` for `lib`.
pub fn library_path(lib: Lib) -> String {
    match lib {
        Lib::C => c_libdirs(),
        Lib::Ours => format!("{}:{}", our_libdir().display(), c_libdirs()),
    }
}

/// Path of a C binary in the oracle prefix (`mkcomposefs`, `composefs-info`,
/// `mount.composefs`). Panics, with the fix, when missing.
pub fn c_binary(tool: &str) -> PathBuf {
    for dir in ["usr/bin", "usr/sbin", "sbin"] {
        let p = prefix().join(dir).join(tool);
        if p.exists() {
            return p;
        }
    }
    panic!(
        "C `{tool}` is missing under {}: run scripts/install-oracles",
        prefix().display()
    );
}

/// A command running C's `tool` on `lib`.
pub fn c_tool(lib: Lib, tool: &str) -> Command {
    let mut cmd = Command::new(prefix().join("usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"));
    cmd.arg("--library-path")
        .arg(library_path(lib))
        .arg(c_binary(tool));
    cmd
}

/// The `libcomposefs.so.1` file the loader maps for `tool` on `lib`, from its `LD_DEBUG=libs`
/// trace.
pub fn loaded_libcomposefs(lib: Lib, tool: &str) -> PathBuf {
    let out = c_tool(lib, tool)
        .arg("--help")
        .env("LD_DEBUG", "libs")
        .output()
        .expect("run C tool");
    let trace = String::from_utf8_lossy(&out.stderr);
    let line = trace
        .lines()
        .find(|l| l.contains("calling init:") && l.contains("libcomposefs.so.1"))
        .unwrap_or_else(|| panic!("no libcomposefs in the loader trace of {tool}:\n{trace}"));
    PathBuf::from(line.rsplit("calling init:").next().expect("path").trim())
}

/// Panics unless `tool` on [`Lib::Ours`] maps our library (and on [`Lib::C`] C's).
pub fn assert_ours_loaded(tool: &str) {
    let ours = loaded_libcomposefs(Lib::Ours, tool);
    assert_eq!(
        ours.canonicalize().expect("canonical path"),
        our_library().canonicalize().expect("canonical path"),
        "{tool} did not load our libcomposefs"
    );
    let c = loaded_libcomposefs(Lib::C, tool);
    assert!(
        c.starts_with(prefix()),
        "{tool} on C's library loaded {}",
        c.display()
    );
}
