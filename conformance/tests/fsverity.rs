//! fs-verity digests against fsverity-utils (`fsverity digest`), the userspace twin of the kernel.
//!
//! The sizes sit on the edges of the Merkle tree: empty, one byte, one block ± 1, one full hash
//! block of sha256 hashes (128 blocks) and one past it, one full hash block of sha512 hashes
//! (64 blocks) and one past it, and 16 MiB + 1, which needs three hash levels with sha512.

use std::io::Write;
use std::path::Path;

use cfs_erofs::fsverity::{self, FsVerityHasher, BLOCK_SIZE};
use cfs_erofs::HashAlgorithm;
use conformance::oracle::Oracle;

const SIZES: &[usize] = &[
    0,
    1,
    BLOCK_SIZE - 1,
    BLOCK_SIZE,
    BLOCK_SIZE + 1,
    64 * BLOCK_SIZE,
    64 * BLOCK_SIZE + 1,
    128 * BLOCK_SIZE,
    128 * BLOCK_SIZE + 1,
    64 * 64 * BLOCK_SIZE + 1,
];

/// Deterministic pseudo-random bytes (xorshift64*), so failures reproduce.
fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Runs `fsverity digest --hash-alg=ALG FILE` and returns the hex digest it prints.
fn oracle_digest(alg: HashAlgorithm, path: &Path) -> String {
    let out = Oracle::Fsverity
        .command()
        .arg("digest")
        .arg(format!("--hash-alg={}", alg.name()))
        .arg(path)
        .output()
        .expect("run fsverity");
    assert!(
        out.status.success(),
        "fsverity digest {} failed: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("fsverity prints UTF-8");
    // Format: "<alg>:<hex> <file>\n".
    let (tagged, file) = stdout
        .trim_end()
        .split_once(' ')
        .unwrap_or_else(|| panic!("unexpected fsverity output {stdout:?}"));
    assert_eq!(Path::new(file), path, "fsverity output {stdout:?}");
    let hex = tagged
        .strip_prefix(alg.name())
        .and_then(|t| t.strip_prefix(':'))
        .unwrap_or_else(|| panic!("unexpected fsverity output {stdout:?}"));
    hex.to_owned()
}

fn check_all(alg: HashAlgorithm) {
    let dir = tempfile::tempdir().unwrap();
    for (i, &size) in SIZES.iter().enumerate() {
        let data = content(size, i as u64 + 1);
        let path = dir.path().join(format!("f{size}"));
        std::fs::File::create(&path)
            .and_then(|mut f| f.write_all(&data))
            .unwrap();
        let want = oracle_digest(alg, &path);
        assert_eq!(want.len(), 2 * alg.digest_len());

        assert_eq!(
            fsverity::digest_file(alg, &path).unwrap().to_hex(),
            want,
            "digest_file {alg:?} size {size}"
        );
        assert_eq!(
            fsverity::digest(alg, &data).to_hex(),
            want,
            "digest {alg:?} size {size}"
        );
        // Odd chunk sizes, so blocks straddle calls.
        let mut h = FsVerityHasher::new(alg);
        for chunk in data.chunks(4093) {
            h.update(chunk);
        }
        assert_eq!(h.finish().to_hex(), want, "chunked {alg:?} size {size}");
    }
}

#[test]
fn sha256_matches_fsverity_utils() {
    check_all(HashAlgorithm::Sha256);
}

#[test]
fn sha512_matches_fsverity_utils() {
    check_all(HashAlgorithm::Sha512);
}

/// The empty file: fsverity-utils follows the kernel (all-zero root hash), and so do we; the
/// value C composefs 1.0.8 prints (root = hash of a zero block) must not be what we produce.
#[test]
fn empty_file_follows_the_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty");
    std::fs::File::create(&path).unwrap();
    let want = oracle_digest(HashAlgorithm::Sha256, &path);
    assert_eq!(
        want,
        "3d248ca542a24fc62d1c43b916eae5016878e2533c88238480b26128a1f1af95"
    );
    let ours = fsverity::digest_file(HashAlgorithm::Sha256, &path).unwrap();
    assert_eq!(ours.to_hex(), want);
    assert_ne!(
        ours.to_hex(),
        "cfc3391077edfd51859f6e5e16e03f82b1da3ee1a35d418b0d0b3b57740b4405"
    );
}
