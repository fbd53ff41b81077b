//! Our libcomposefs.so.1 from C: installed by `scripts/install-capi`, it exports exactly C's 62
//! symbols under C's SONAME; its headers have C's layouts and constants; C's own
//! `tests/test-lcfs.c` passes against it; hostile arguments to every function get C's answers
//! (`capi/tests/hostile.c`, run on both libraries); and valgrind finds no leak or memory error
//! in test-lcfs, the hostile cases, or C's mkcomposefs and composefs-info on our library.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use conformance::capi::{c_binary, library_path, our_library, Lib};
use conformance::oracle::{oracles_dir, repo_root};

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| {
        panic!("cannot run {cmd:?}: {e} (scripts/install-oracles installs gcc and valgrind)")
    })
}

fn ok(cmd: &mut Command) -> Output {
    let o = run(cmd);
    assert!(
        o.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// `scripts/install-capi` into a fresh prefix (the library cargo built; no nested build).
fn install() -> (tempfile::TempDir, PathBuf) {
    our_library();
    let dir = tempfile::tempdir().expect("tempdir");
    let prefix = dir.path().join("prefix");
    ok(Command::new(repo_root().join("scripts/install-capi"))
        .arg(&prefix)
        .env("CAPI_NO_BUILD", "1"));
    (dir, prefix)
}

/// C's headers (composefs 1.0.8 source), for layout comparison and for nothing else.
fn c_headers() -> PathBuf {
    oracles_dir().join("src/composefs/libcomposefs")
}

/// Builds a C program from `capi/tests` or the C source tree against our installed headers and
/// library (through pkg-config, plus the header directory itself, which C's tests include
/// with quotes).
fn build(prefix: &Path, src: &Path, out: &Path) {
    let pc = ok(Command::new("pkg-config")
        .args(["--cflags", "--libs", "composefs"])
        .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig")));
    let flags = String::from_utf8(pc.stdout).unwrap();
    ok(Command::new("gcc")
        .arg("-Wall")
        .arg("-Wno-unused-result")
        .arg(format!(
            "-I{}",
            prefix.join("include/libcomposefs").display()
        ))
        .arg(src)
        .args(flags.split_whitespace())
        .arg(format!("-Wl,-rpath,{}", prefix.join("lib").display()))
        .arg("-o")
        .arg(out));
}

fn valgrind_args() -> Vec<String> {
    vec![
        "-q".into(),
        format!(
            "--extra-debuginfo-path={}",
            oracles_dir().join("valgrind-debug").display()
        ),
        "--leak-check=full".into(),
        "--errors-for-leak-kinds=definite,indirect,possible".into(),
        "--error-exitcode=99".into(),
    ]
}

fn symbols(lib: &Path) -> Vec<String> {
    let o = ok(Command::new("nm").args(["-D", "--defined-only"]).arg(lib));
    let mut v: Vec<String> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_owned))
        .collect();
    v.sort();
    v
}

#[test]
fn exports_exactly_c_symbols_under_c_soname() {
    let (_d, prefix) = install();
    let ours = prefix.join("lib/libcomposefs.so.1");
    let c = oracles_dir().join("prefix/usr/lib/x86_64-linux-gnu/libcomposefs.so.1");
    let c_syms = symbols(&c);
    assert_eq!(c_syms.len(), 62);
    assert_eq!(symbols(&ours), c_syms, "our exports differ from C's");
    let pinned: Vec<String> = std::fs::read_to_string(repo_root().join("capi/symbols.txt"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(pinned, c_syms, "capi/symbols.txt is not C's list");
    // Unversioned, like C's (no `@VERSION` on any export).
    let defined = ok(Command::new("nm").args(["-D", "--defined-only"]).arg(&ours)).stdout;
    assert!(!String::from_utf8_lossy(&defined).contains('@'));
    let dynamic =
        String::from_utf8(ok(Command::new("readelf").arg("-d").arg(&ours)).stdout).unwrap();
    assert!(
        dynamic.contains("Library soname: [libcomposefs.so.1]"),
        "{dynamic}"
    );
}

#[test]
fn headers_have_c_layouts_and_values() {
    let (d, prefix) = install();
    let src = repo_root().join("capi/tests/layout.c");
    let mut outputs = Vec::new();
    for inc in [prefix.join("include/libcomposefs"), c_headers()] {
        let exe = d.path().join("layout");
        ok(Command::new("gcc")
            .arg("-Wall")
            .arg(format!("-I{}", inc.display()))
            .arg(&src)
            .arg("-o")
            .arg(&exe));
        outputs.push(ok(&mut Command::new(&exe)).stdout);
    }
    assert_eq!(
        String::from_utf8_lossy(&outputs[0]),
        String::from_utf8_lossy(&outputs[1])
    );
    assert!(String::from_utf8_lossy(&outputs[0]).contains("sizeof(struct lcfs_write_options_s) 88"));
}

#[test]
fn c_test_lcfs_passes_and_is_valgrind_clean() {
    let (d, prefix) = install();
    let exe = d.path().join("test-lcfs");
    build(
        &prefix,
        &oracles_dir().join("src/composefs/tests/test-lcfs.c"),
        &exe,
    );
    let tmp = d.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    ok(Command::new(&exe).env("TMPDIR", &tmp));
    ok(Command::new("valgrind")
        .args(valgrind_args())
        .arg(&exe)
        .env("TMPDIR", &tmp));
}

/// The C library, started the way the oracle is (sid's loader, its library path).
fn on_c_library(exe: &Path) -> Command {
    let mut c =
        Command::new(oracles_dir().join("prefix/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"));
    c.arg("--library-path").arg(library_path(Lib::C)).arg(exe);
    c
}

#[test]
fn hostile_arguments_get_c_answers_without_leaks() {
    let (d, prefix) = install();
    let exe = d.path().join("hostile");
    build(&prefix, &repo_root().join("capi/tests/hostile.c"), &exe);
    let c = ok(&mut on_c_library(&exe)).stdout;
    let ours = ok(&mut Command::new(&exe)).stdout;
    let (c, ours) = (String::from_utf8_lossy(&c), String::from_utf8_lossy(&ours));
    for (a, b) in c.lines().zip(ours.lines()) {
        assert_eq!(a, b, "hostile case answered differently (C first)");
    }
    assert_eq!(c.lines().count(), ours.lines().count());
    assert!(c.lines().count() > 130, "hostile cases missing");
    // The cases where C aborts or crashes, on ours only, under valgrind.
    let o = ok(Command::new("valgrind")
        .args(valgrind_args())
        .arg(&exe)
        .arg("ours"));
    let text = String::from_utf8_lossy(&o.stdout);
    for (case, want) in [
        ("symlink payload on a file", "rc=-1 errno=22"),
        ("make_hardlink to itself", "errno=22"),
        ("add_child root under itself", "rc=-1 errno=40"),
        ("write symlink without target", "rc=-1 errno=22"),
        ("add_child NULL", "rc=-1 errno=22"),
        ("load_ext NULL opts", "NULL errno=22"),
        ("write NULL opts", "rc=-1 errno=22"),
        ("make_hardlink closing a cycle", "errno=22"),
        ("write . entry", "rc=-1 errno=22"),
        ("deep tree built", "rc=0 errno=0"),
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(case))
            .unwrap_or_else(|| panic!("{case} missing:\n{text}"));
        assert!(line.ends_with(want), "{line}: want {want}");
    }
    // The kernel's empty-input digest (the descriptor over an all-zero root hash).
    let empty = text
        .lines()
        .find(|l| l.starts_with("fsverity empty"))
        .unwrap();
    let want = cfs_erofs::fsverity::digest(cfs_erofs::HashAlgorithm::Sha256, b"").to_hex();
    assert!(empty.ends_with(&want), "{empty}");
}

#[test]
fn c_tools_on_our_library_are_valgrind_clean() {
    let d = tempfile::tempdir().unwrap();
    let loader = oracles_dir().join("prefix/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2");
    let image = d.path().join("image.cfs");
    let asset = conformance::corpus::asset("special.dump");
    let dump = d.path().join("in.dump");
    std::fs::write(&dump, &asset.dump).unwrap();
    let mut mk = Command::new("valgrind");
    mk.args(valgrind_args())
        .arg(&loader)
        .arg("--library-path")
        .arg(library_path(Lib::Ours))
        .arg(c_binary("mkcomposefs"))
        .args(
            asset
                .version
                .map(|v| vec![format!("--min-version={v}"), format!("--max-version={v}")])
                .unwrap_or_default(),
        )
        .arg("--from-file")
        .arg(&dump)
        .arg(&image);
    ok(&mut mk);
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
        std::fs::read(&image).unwrap(),
    ));
    assert_eq!(sha, asset.pinned_sha256);
    for cmd in ["dump", "ls", "objects"] {
        ok(Command::new("valgrind")
            .args(valgrind_args())
            .arg(&loader)
            .arg("--library-path")
            .arg(library_path(Lib::Ours))
            .arg(c_binary("composefs-info"))
            .arg(cmd)
            .arg(&image));
    }
}
