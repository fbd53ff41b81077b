//! The committed OCI fixtures are exactly what `scripts/make-fixtures` generates.
//!
//! The script is rerun into a temporary folder (offline: upstream inputs are committed under
//! `fixtures/oci/upstream/`) and every file of every fixture layout is compared byte for byte,
//! in both directions, so a stale or hand-edited fixture fails here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn files(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_owned();
            if rel.starts_with("upstream") {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn fixtures_are_reproducible() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = tempfile::tempdir().unwrap();
    let status = Command::new(repo.join("scripts/make-fixtures"))
        .arg(out.path())
        .status()
        .expect("run scripts/make-fixtures (needs python3, gzip, dpkg-deb)");
    assert!(status.success());
    let committed = files(&repo.join("fixtures/oci"));
    let rebuilt = files(out.path());
    assert!(committed.len() >= 20, "{} files", committed.len());
    let names = |m: &BTreeMap<PathBuf, Vec<u8>>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&committed), names(&rebuilt));
    for (path, data) in &committed {
        assert!(data == &rebuilt[path], "{} differs", path.display());
    }
}
