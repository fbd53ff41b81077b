//! Helpers the suite's guest script calls as `conformance vm-read …`: what a mounted tree's
//! regular files read back, with the errno of a refused read (fs-verity enforcement shows as
//! `EIO`), compared with a reference listing.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use sha2::{Digest as _, Sha256};

/// Every regular file under `root` (relative path) → the sha256 of its bytes, or `E<n>` /
/// `EIO` when reading fails.
pub fn read_tree(root: &Path) -> io::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    read_into(root, "", &mut out)?;
    Ok(out)
}

fn read_into(dir: &Path, rel: &str, out: &mut BTreeMap<String, String>) -> io::Result<()> {
    let mut names: Vec<Vec<u8>> = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name().as_bytes().to_vec()))
        .collect::<Result<_, _>>()?;
    names.sort();
    for name in names {
        let path = dir.join(OsStr::from_bytes(&name));
        let child = format!("{rel}{}", String::from_utf8_lossy(&name));
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            // a whiteout listed but not looked up (see walk.rs)
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if meta.is_dir() {
            read_into(&path, &format!("{child}/"), out)?;
        } else if meta.is_file() {
            // streamed: a metacopy file may claim gigabytes its object does not have
            let v = match fs::File::open(&path).and_then(|mut f| {
                let mut h = Sha256::new();
                io::copy(&mut f, &mut h)?;
                Ok(h.finalize())
            }) {
                Ok(d) => hex::encode(d),
                Err(e) => errno_name(&e),
            };
            out.insert(child, v);
        }
    }
    Ok(())
}

/// `EIO`, `ENOENT`, … for the errors a read of a composefs mount gives; `E<n>` otherwise.
fn errno_name(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(5) => "EIO".into(),
        Some(2) => "ENOENT".into(),
        Some(61) => "ENODATA".into(),
        Some(1) => "EPERM".into(),
        Some(n) => format!("E{n}"),
        None => format!("E?{e}"),
    }
}

/// The listing as text, `PATH VALUE` per line.
pub fn format(listing: &BTreeMap<String, String>) -> String {
    listing.iter().map(|(p, v)| format!("{p} {v}\n")).collect()
}

/// Parses [`format`]'s text.
pub fn parse(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(p, v)| (p.to_string(), v.to_string()))
        .collect()
}

/// `same`, or the files that differ from `reference`: `PATH:EIO`, `PATH:differs`,
/// `PATH:missing`, `PATH:extra`, space-separated.
pub fn compare(got: &BTreeMap<String, String>, reference: &BTreeMap<String, String>) -> String {
    let mut diffs = Vec::new();
    for (p, want) in reference {
        match got.get(p) {
            None => diffs.push(format!("{p}:missing")),
            Some(v) if v == want => {}
            Some(v) if v.starts_with('E') && v.len() < 16 => diffs.push(format!("{p}:{v}")),
            Some(_) => diffs.push(format!("{p}:differs")),
        }
    }
    for p in got.keys().filter(|p| !reference.contains_key(*p)) {
        diffs.push(format!("{p}:extra"));
    }
    if diffs.is_empty() {
        "same".into()
    } else {
        diffs.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_names_each_difference() {
        let r = parse("a 00\nb 11\nc 22\n");
        let g = parse("a 00\nb EIO\nc 33\nd 44\n");
        assert_eq!(compare(&g, &r), "b:EIO c:differs d:extra");
        assert_eq!(compare(&r, &r), "same");
    }

    #[test]
    fn reads_a_tree() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("s")).unwrap();
        fs::write(d.path().join("s/x"), b"x").unwrap();
        let l = read_tree(d.path()).unwrap();
        assert_eq!(parse(&format(&l)), l);
        assert_eq!(l.keys().collect::<Vec<_>>(), ["s/x"]);
    }
}
