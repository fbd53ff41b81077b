//! Broken repositories: a repository we imported, then damaged one way at a time (a truncated
//! splitstream, a wrong magic, a dangling ref, an object renamed, a `meta.json` with an unknown
//! incompatible feature or another algorithm). Every `mkcfs-rs repo` command, `karg resolve
//! --repo` and a further import give a clear one-line error or report, never a panic; `repo
//! fsck` exits 1 naming the problem in the repository's terms.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use conformance::oracle::{mkcfs_rs, repo_root};

fn run(args: &[&str], repo: &Path) -> (i32, String, String) {
    let mut cmd = Command::new(mkcfs_rs());
    cmd.args(args).arg(repo);
    let o = cmd.output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn import(repo: &Path) -> std::process::Output {
    Command::new(mkcfs_rs())
        .args(["oci", "--repo"])
        .arg(repo)
        .args(["--insecure", "--tag", "t", "--erofs-extra", "2"])
        .arg(repo_root().join("fixtures/oci/synthetic"))
        .output()
        .unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

/// The object a symlink under the repository resolves to.
fn target(repo: &Path, link: &str) -> PathBuf {
    let l = repo.join(link);
    l.parent().unwrap().join(fs::read_link(&l).unwrap())
}

fn first(repo: &Path, dir: &str, prefix: &str) -> String {
    let mut names: Vec<String> = fs::read_dir(repo.join(dir))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    format!("{dir}/{}", names[0])
}

#[test]
fn broken_repositories_give_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("good");
    let o = import(&good);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (code, out, err) = run(&["repo", "fsck"], &good);
    assert_eq!(code, 0, "good repository: {out}{err}");

    type Damage = fn(&Path);
    let cases: [(&str, Damage, &str); 6] = [
        (
            "truncated splitstream",
            |r| {
                let t = target(r, &first(r, "streams", "oci-layer-"));
                let len = fs::metadata(&t).unwrap().len();
                let f = fs::OpenOptions::new().write(true).open(&t).unwrap();
                f.set_len(len / 2).unwrap();
            },
            "stream does not parse",
        ),
        (
            "wrong magic",
            |r| {
                let t = target(r, &first(r, "streams", "oci-config-"));
                let mut b = fs::read(&t).unwrap();
                b[0] ^= 0xff;
                b[18] ^= 0xff;
                fs::write(&t, b).unwrap();
            },
            "bad magic",
        ),
        (
            "dangling symlink",
            |r| {
                std::os::unix::fs::symlink(
                    format!("../../oci-manifest-sha256:{}", "0".repeat(64)),
                    r.join("streams/refs/oci/dangling"),
                )
                .unwrap();
            },
            "broken ref",
        ),
        (
            "object renamed",
            |r| {
                let t = target(r, &first(r, "images", ""));
                let name = t.file_name().unwrap().to_string_lossy().into_owned();
                let other: String = name.chars().rev().collect();
                fs::rename(&t, t.with_file_name(other)).unwrap();
            },
            "object whose name is not its digest",
        ),
        (
            "unknown incompatible feature",
            |r| {
                let m = fs::read_to_string(r.join("meta.json")).unwrap();
                fs::write(
                    r.join("meta.json"),
                    m.replace(
                        "\"incompatible\": []",
                        "\"incompatible\": [\"zstd-objects\"]",
                    ),
                )
                .unwrap();
            },
            "unknown incompatible features: zstd-objects",
        ),
        (
            "wrong algorithm",
            |r| {
                let m = fs::read_to_string(r.join("meta.json")).unwrap();
                fs::write(r.join("meta.json"), m.replace("sha256", "sha512")).unwrap();
            },
            "not an object name",
        ),
    ];
    for (what, damage, expect) in cases {
        let r = tmp.path().join(what.replace(' ', "-"));
        copy_dir(&good, &r);
        damage(&r);
        let (code, out, err) = run(&["repo", "fsck"], &r);
        assert_eq!(code, 1, "{what}: fsck exit {code}: {out}{err}");
        assert!(
            out.contains(expect) || err.contains(expect),
            "{what}: fsck says {out}{err}, expected `{expect}`"
        );
        for args in [
            &["repo", "ls"][..],
            &["repo", "images"],
            &["repo", "gc", "--dry-run"],
            &[
                "karg",
                "resolve",
                &format!("composefs.digest=?v1-sha256-12:{}", "1".repeat(64)),
                "--repo",
            ],
        ] {
            let (code, out, err) = run(args, &r);
            assert!(
                code == 0 || code == 1,
                "{what}: {args:?} exit {code}: {err}"
            );
            assert!(!err.contains("panicked"), "{what}: {args:?}: {err}");
            if code == 1 {
                assert!(
                    err.starts_with("mkcfs-rs: ") && err.lines().count() == 1,
                    "{what}: {args:?}: {out}{err}"
                );
            }
        }
        let o = import(&r);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked"), "{what}: import: {err}");
    }
}
