//! `mkcfs-rs info` and the `composefs-info` symlink against C composefs-info 1.0.8, as
//! processes: on every image C builds from its corpus, `ls`, `dump`, `objects` and
//! `missing-objects` print the same bytes and exit the same way; likewise with `--filter`,
//! `--basedir`, several images, options after operands, failing images and usage errors
//! (exit code, first stderr line, stdout). `measure-file` prints what `fsverity digest` prints.
//! `info diff` (ours only) prints the library's differences and exits like `cmp`.

mod read_support;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use conformance::oracle::{mkcfs_rs, Oracle};
use read_support::{assert_same, corpus_image, corpus_images};

fn run(mut cmd: Command) -> Output {
    cmd.output().expect("run")
}

/// How each tool is run.
#[derive(Clone, Copy, Debug)]
enum Tool {
    C,
    /// `mkcfs-rs info …`
    Sub,
    /// A symlink named `composefs-info`.
    Link,
}

struct Tools {
    _dir: tempfile::TempDir,
    link: PathBuf,
    /// argv[0] as C sees it (its wrapper runs the real binary), from its usage line.
    c_bin: String,
}

impl Tools {
    fn new() -> Tools {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("composefs-info");
        std::os::unix::fs::symlink(mkcfs_rs(), &link).unwrap();
        let o = run(Oracle::ComposefsInfo.command());
        let usage = String::from_utf8_lossy(&o.stderr)
            .lines()
            .find_map(|l| l.strip_prefix("usage: ").map(str::to_owned))
            .expect("C prints its usage");
        let c_bin = usage.split(" [").next().unwrap().to_owned();
        Tools {
            _dir: dir,
            link,
            c_bin,
        }
    }

    fn cmd(&self, tool: Tool) -> Command {
        match tool {
            Tool::C => Oracle::ComposefsInfo.command(),
            Tool::Sub => {
                let mut c = Command::new(mkcfs_rs());
                c.arg("info");
                c
            }
            Tool::Link => Command::new(&self.link),
        }
    }

    fn run<S: AsRef<OsStr>>(&self, tool: Tool, args: &[S]) -> Output {
        let mut c = self.cmd(tool);
        c.args(args);
        run(c)
    }

    /// stderr with the program's names replaced by C's, so messages compare.
    fn stderr(&self, tool: Tool, o: &Output) -> String {
        let s = String::from_utf8_lossy(&o.stderr).into_owned();
        match tool {
            Tool::C => s.replace(&self.c_bin, "BIN"),
            Tool::Sub => s
                .replace(&format!("{} info", mkcfs_rs().display()), "BIN")
                .replace("mkcfs-rs info", "composefs-info"),
            Tool::Link => s.replace(&self.link.display().to_string(), "BIN"),
        }
    }
}

/// Runs `args` with C and with each of our two entry points; stdout, exit code and stderr
/// (all of it, names normalised) must agree. Returns C's output.
fn same<S: AsRef<OsStr> + std::fmt::Debug>(t: &Tools, args: &[S]) -> Output {
    let c = t.run(Tool::C, args);
    for tool in [Tool::Sub, Tool::Link] {
        let o = t.run(tool, args);
        assert_same(&format!("{tool:?} {args:?}"), &o.stdout, &c.stdout);
        assert_eq!(o.status.code(), c.status.code(), "{tool:?} {args:?}: exit");
        assert_eq!(
            t.stderr(tool, &o),
            t.stderr(Tool::C, &c),
            "{tool:?} {args:?}: stderr"
        );
    }
    c
}

#[test]
fn every_command_matches_c_on_the_corpus() {
    let t = Tools::new();
    let mut lines = 0;
    for img in corpus_images() {
        for cmd in ["ls", "dump", "objects", "missing-objects"] {
            let c = same(&t, &[OsStr::new(cmd), img.path.as_os_str()]);
            assert!(c.status.success(), "C {cmd} {}", img.name);
            lines += c.stdout.iter().filter(|&&b| b == b'\n').count();
        }
    }
    assert!(corpus_images().len() >= 12, "corpus too small");
    assert!(lines > 10_000, "the corpus printed only {lines} lines");
}

#[test]
fn several_images_filters_and_permuted_options() {
    let t = Tools::new();
    let a = corpus_image("config.dump.gz").path.as_os_str();
    let b = corpus_image("config-with-hard-link.dump.gz")
        .path
        .as_os_str();
    let s = corpus_image("special.dump").path.as_os_str();
    let m = corpus_image("cs9-x86_64-minimal.dump.gz").path.as_os_str();
    let cases: Vec<Vec<&OsStr>> = vec![
        vec!["ls".as_ref(), a, b, s],
        vec!["dump".as_ref(), a, b, s],
        vec!["objects".as_ref(), a, m, b],
        vec!["missing-objects".as_ref(), m, a],
        vec!["--filter=var".as_ref(), "dump".as_ref(), m],
        vec![
            "ls".as_ref(),
            m,
            "--filter".as_ref(),
            "usr".as_ref(),
            "--filter=var".as_ref(),
        ],
        vec!["--filter=usr".as_ref(), "objects".as_ref(), m, a],
        vec!["--filter=nothing-here".as_ref(), "dump".as_ref(), m],
        vec!["--fil=var".as_ref(), "ls".as_ref(), m],
        vec!["--".as_ref(), "ls".as_ref(), s],
        vec!["--basedir=/".as_ref(), "ls".as_ref(), s],
    ];
    for args in &cases {
        let c = same(&t, args);
        assert!(c.status.success(), "{args:?}");
        assert!(
            !c.stdout.is_empty() || args.contains(&OsStr::new("--filter=nothing-here")),
            "{args:?} printed nothing"
        );
    }
}

#[test]
fn missing_objects_with_a_basedir() {
    let t = Tools::new();
    let img = corpus_image("cs9-x86_64-minimal.dump.gz");
    let all = t.run(Tool::C, &[OsStr::new("objects"), img.path.as_os_str()]);
    let objects: Vec<String> = String::from_utf8(all.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(objects.len() > 10);
    let base = tempfile::tempdir().unwrap();
    for o in objects.iter().step_by(2) {
        let p = base.path().join(o.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"").unwrap();
    }
    let opt = format!("--basedir={}", base.path().display());
    let c = same(
        &t,
        &[
            OsStr::new(&opt),
            "missing-objects".as_ref(),
            img.path.as_os_str(),
        ],
    );
    let missing = c.stdout.iter().filter(|&&b| b == b'\n').count();
    assert_eq!(missing, objects.len() / 2, "half the objects are missing");
    // The value may also follow the option, and the option may follow the operands.
    same(
        &t,
        &[
            OsStr::new("missing-objects"),
            img.path.as_os_str(),
            "--basedir".as_ref(),
            base.path().as_os_str(),
        ],
    );
}

#[test]
fn failing_images_fail_like_c() {
    let t = Tools::new();
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage");
    std::fs::write(&garbage, vec![0x5au8; 8192]).unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    let short = dir.path().join("short");
    std::fs::write(&short, b"not an image").unwrap();
    // A good header with an unknown version: C says "Operation not supported".
    let mut bad_version = corpus_image("special.dump").bytes.clone();
    bad_version[4] = 9;
    let bad_version_path = dir.path().join("bad-version");
    std::fs::write(&bad_version_path, &bad_version).unwrap();
    let good = corpus_image("special.dump").path.as_os_str();
    let missing = dir.path().join("missing");
    for bad in [
        garbage.as_os_str(),
        empty.as_os_str(),
        short.as_os_str(),
        bad_version_path.as_os_str(),
        dir.path().as_os_str(),
        missing.as_os_str(),
    ] {
        for cmd in ["ls", "dump", "objects"] {
            // The good image's output comes first (C flushes it on exit), then the failure.
            let args = [OsStr::new(cmd), good, bad];
            let c = t.run(Tool::C, &args);
            assert_eq!(c.status.code(), Some(1), "C {args:?}");
            for tool in [Tool::Sub, Tool::Link] {
                let o = t.run(tool, &args);
                assert_eq!(o.status.code(), Some(1), "{tool:?} {args:?}");
                assert_same(&format!("{tool:?} {args:?}"), &o.stdout, &c.stdout);
                let first = |s: String| s.lines().next().unwrap_or_default().to_owned();
                assert_eq!(
                    first(t.stderr(tool, &o)),
                    first(t.stderr(Tool::C, &c)),
                    "{tool:?} {args:?}: first stderr line"
                );
            }
        }
    }
}

#[test]
fn usage_errors_match_c() {
    let t = Tools::new();
    let img = corpus_image("special.dump")
        .path
        .to_str()
        .unwrap()
        .to_owned();
    let cases: Vec<Vec<&str>> = vec![
        vec![],
        vec!["--bogus"],
        vec!["--bogus=1", "ls", &img],
        vec!["-x"],
        vec!["ls", "-vx", &img],
        vec!["--basedir"],
        vec!["ls", &img, "--filter"],
        vec!["--filter=a/b", "ls", &img],
        vec!["--filter=a/b"],
        vec!["--filter=a/b", "--bogus"],
        vec!["--bogus", "--filter=a/b"],
        vec!["ls"],
        vec!["dump", "--filter=etc"],
        vec!["objects"],
        vec!["bogus"],
        vec!["bogus", &img],
        vec!["LS", &img],
        vec!["measure-file"],
        vec!["--basedir=/nonexistent-dir", "ls", &img],
        vec!["--basedir=/nonexistent-dir", "ls"],
        vec!["--basedir=/etc/hostname", "objects", &img],
    ];
    for args in &cases {
        let c = same(&t, args);
        assert_eq!(c.status.code(), Some(1), "C {args:?}");
    }
}

#[test]
fn measure_file_equals_fsverity_digest() {
    let t = Tools::new();
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (i, len) in [1usize, 4095, 4096, 4097, 128 * 4096 + 1, 3 << 20]
        .into_iter()
        .enumerate()
    {
        let p = dir.path().join(format!("f{i}"));
        let data: Vec<u8> = (0..len).map(|j| (j * 7 + i) as u8).collect();
        std::fs::write(&p, data).unwrap();
        files.push(p);
    }
    let empty = dir.path().join("empty");
    std::fs::write(&empty, b"").unwrap();

    let fsverity = |paths: &[PathBuf]| -> String {
        let o = run({
            let mut c = Oracle::Fsverity.command();
            c.arg("digest").arg("--compact").args(paths);
            c
        });
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let mut args = vec![PathBuf::from("measure-file")];
    args.extend(files.iter().cloned());
    // Non-empty files: C, fsverity and we agree.
    let c = same(&t, &args);
    assert!(c.status.success());
    let expect = fsverity(&files);
    assert_eq!(String::from_utf8_lossy(&c.stdout), expect);
    assert_eq!(expect.lines().count(), files.len());
    // An empty file: we follow the kernel (fsverity), where C 1.0.8 does not.
    for tool in [Tool::Sub, Tool::Link] {
        let o = t.run(tool, &[Path::new("measure-file"), &empty]);
        assert!(o.status.success());
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            fsverity(std::slice::from_ref(&empty))
        );
    }
    // A missing file: C's message and exit code.
    let missing = dir.path().join("missing");
    same(
        &t,
        &[Path::new("measure-file"), files[0].as_path(), &missing],
    );
}

#[test]
fn diff_prints_the_differences_and_exits_like_cmp() {
    let t = Tools::new();
    let dir = tempfile::tempdir().unwrap();
    let a = corpus_image("special.dump");
    let b = corpus_image("special_v1.dump");
    let garbage = dir.path().join("garbage");
    std::fs::write(&garbage, vec![1u8; 4096]).unwrap();
    for tool in [Tool::Sub, Tool::Link] {
        let diff = |x: &Path, y: &Path| t.run(tool, &[Path::new("diff"), x, y]);
        // Identical: nothing printed, exit 0.
        let o = diff(&a.path, &a.path);
        assert_eq!(o.status.code(), Some(0), "{tool:?}");
        assert!(o.stdout.is_empty() && o.stderr.is_empty());
        // Different: the library's list, one per line, exit 1.
        let expect: String = cfs_erofs::diff::diff_images(&a.bytes, &b.bytes)
            .unwrap()
            .iter()
            .map(|d| format!("{d}\n"))
            .collect();
        assert!(!expect.is_empty(), "special and special_v1 differ");
        let o = diff(&a.path, &b.path);
        assert_eq!(o.status.code(), Some(1), "{tool:?}");
        assert_eq!(String::from_utf8_lossy(&o.stdout), expect, "{tool:?}");
        // Trouble: exit 2, one line on stderr, nothing on stdout.
        for o in [
            diff(&a.path, &garbage),
            diff(&garbage, &a.path),
            diff(&a.path, &dir.path().join("missing")),
            t.run(tool, &[Path::new("diff"), &a.path]),
        ] {
            assert_eq!(o.status.code(), Some(2), "{tool:?}");
            assert!(o.stdout.is_empty());
            assert_eq!(String::from_utf8_lossy(&o.stderr).lines().count(), 1);
        }
    }
}
