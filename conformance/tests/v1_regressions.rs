//! Replays every dumpfile under `fixtures/regressions/` (failing cases the V1 property test
//! shrank and saved) through C mkcomposefs and our V1 writer, under the same three version
//! settings as the property test: images must be equal, or both sides must refuse the tree.

mod v1_common;

use cfs_erofs::dumpfile::{parse_bytes, ParseOptions};
use conformance::oracle::repo_root;
use v1_common::{c_image, Versions};

#[test]
fn saved_regressions_equal_c() {
    let dir = repo_root().join("fixtures/regressions");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixtures/regressions")
        .map(|e| e.unwrap().path())
        .filter(|p| v1_common::is_file(p, "dump"))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no regression files in {}",
        dir.display()
    );
    let mut failures = Vec::new();
    for f in &files {
        let dump = std::fs::read(f).unwrap();
        let name = f.file_name().unwrap().to_string_lossy();
        let tree = parse_bytes(&dump, &ParseOptions { strict: false });
        for v in [Versions::Default, Versions::Min1, Versions::Max0] {
            let theirs = c_image(&dump, v, false);
            let ours = tree.as_ref().map_err(|e| e.to_string()).and_then(|t| {
                cfs_erofs::write::image_bytes(t, &v.options()).map_err(|e| e.to_string())
            });
            match (ours, theirs) {
                (Ok(o), Ok(t)) if o == t => {}
                (Err(_), Err(_)) => {}
                (o, t) => failures.push(format!(
                    "{name} {v:?}: ours {:?}, C {:?}",
                    o.map(|b| b.len()),
                    t.map(|b| b.len())
                )),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
