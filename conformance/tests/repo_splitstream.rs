//! The splitstream vectors of `fixtures/vectors/splitstream/` against composefs-rs 0.9.4's own
//! writer: for every case, the file composefs-rs writes for the same calls is byte-identical to
//! the expected file, and so is ours; composefs-rs's reader and ours agree on what it holds.

use std::io::Read;

use cfs_erofs::repo::splitstream::{Limits, SplitStream};
use composefs::fsverity::{FsVerityHashValue, Sha256HashValue, Sha512HashValue};
use composefs::repository::{Repository, RepositoryConfig};
use conformance::oracle::repo_root;
use conformance::splitstream_vectors::{load, Case, Op};
use sha2::{Digest as _, Sha256};

/// The file composefs-rs writes for a case.
fn theirs<H: FsVerityHashValue>(c: &Case) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let (repo, _) = Repository::<H>::init_path(
        rustix::fs::CWD,
        dir.path().join("r"),
        RepositoryConfig::new(H::ALGORITHM).set_insecure(),
    )
    .unwrap();
    let repo = std::sync::Arc::new(repo);
    let mut w = repo.create_stream(c.content_type()).unwrap();
    for (n, t) in &c.named_refs {
        w.add_named_stream_ref(n, &H::from_hex(t).unwrap());
    }
    for op in &c.ops {
        match op {
            Op::Inline(d) => w.write_inline(&d.bytes()),
            Op::External(d) => w.write_external(&d.bytes()).unwrap(),
        }
    }
    let id = repo.write_stream(w, "vector", None).unwrap();
    let mut out = Vec::new();
    std::fs::File::open(dir.path().join("r/objects").join(id.to_object_pathname()))
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    // composefs-rs reads it back with the same size and refs we parse.
    let mut reader = composefs::splitstream::SplitStreamReader::<H>::new(
        std::fs::File::open(dir.path().join("r/objects").join(id.to_object_pathname())).unwrap(),
        Some(c.content_type()),
    )
    .unwrap();
    let ours = SplitStream::parse(&out, None, &Limits::default()).unwrap();
    assert_eq!(reader.total_size, ours.stream_size, "{}", c.name);
    let mut n = 0;
    reader.get_object_refs(|_| n += 1).unwrap();
    assert!(n >= ours.object_refs.len(), "{}", c.name);
    out
}

#[test]
fn splitstream_vectors_equal_composefs_rs() {
    let dir = repo_root().join("fixtures/vectors/splitstream");
    let m = load(&dir).unwrap();
    assert!(m.cases.len() >= 10);
    for c in &m.cases {
        let expected = std::fs::read(dir.join(&c.expected)).unwrap();
        assert_eq!(expected.len(), c.size, "{}", c.name);
        assert_eq!(
            hex::encode(Sha256::digest(&expected)),
            c.sha256,
            "{}",
            c.name
        );
        assert!(
            c.write() == expected,
            "{}: our writer differs from the vector",
            c.name
        );
        let t = match c.algorithm.as_str() {
            "sha512" => theirs::<Sha512HashValue>(c),
            _ => theirs::<Sha256HashValue>(c),
        };
        if t != expected {
            let at = t
                .iter()
                .zip(&expected)
                .position(|(a, b)| a != b)
                .unwrap_or(t.len().min(expected.len()));
            panic!(
                "{}: composefs-rs writes {} bytes, the vector {}; first difference at {at}",
                c.name,
                t.len(),
                expected.len()
            );
        }
    }
    eprintln!(
        "{} splitstream vectors identical to composefs-rs",
        m.cases.len()
    );
}
