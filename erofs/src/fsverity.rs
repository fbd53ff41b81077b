//! fs-verity digests (4096-byte blocks, sha256 and sha512, no salt), as the kernel computes them.
//!
//! composefs names every external object by its fs-verity digest, and the image id is the
//! fs-verity digest of the image file itself, so this hash runs over every byte the tools touch.
//! [`FsVerityHasher`] builds the Merkle tree while data streams in: it keeps one partial block
//! for the data and one per tree level, so memory grows with the tree height (log₁₂₈ of the
//! size), never with the size. Each full block is hashed as soon as it is complete, straight
//! from the caller's buffer when it is block-aligned, and the `sha2` crate picks its SHA-NI
//! code path at run time on CPUs that have it.
//!
//! Empty input: the kernel (and fsverity-utils, and composefs-rs) uses an all-zero root hash.
//! C composefs 1.0.8 instead hashes one zero-filled block as the root, so its
//! `composefs-info measure-file` of an empty file differs; this module follows the kernel.
//! Image bytes never depend on it, because empty files never carry a digest.

#![forbid(unsafe_code)]

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use sha2::digest::Digest as _;
use sha2::{Sha256, Sha512};

use crate::tree::{Digest, HashAlgorithm};

/// fs-verity block size used by composefs (`log_blocksize` = 12).
pub const BLOCK_SIZE: usize = 4096;

/// Read size for [`digest_reader`] and [`digest_file`]: large enough to amortise syscalls,
/// a multiple of [`BLOCK_SIZE`] so reads stay block-aligned and skip the copy into the buffer.
pub const READ_BUFFER_SIZE: usize = 128 * 1024;

/// Longest hash any supported algorithm produces (sha512).
const MAX_HASH: usize = 64;

/// Size of the fs-verity descriptor that is hashed to give the file digest.
const DESCRIPTOR_SIZE: usize = 256;

/// Hashes one whole block (or the descriptor) and returns the hash, zero-padded to 64 bytes.
#[inline]
fn hash(alg: HashAlgorithm, data: &[u8]) -> [u8; MAX_HASH] {
    let mut out = [0u8; MAX_HASH];
    match alg {
        HashAlgorithm::Sha256 => out[..32].copy_from_slice(&Sha256::digest(data)),
        HashAlgorithm::Sha512 => out.copy_from_slice(&Sha512::digest(data)),
    }
    out
}

/// One level of hashes above the data: the partial block being filled, and how many hashes it
/// has received in total (a level that received exactly one hash is the top of the tree).
struct Level {
    buf: [u8; BLOCK_SIZE],
    len: usize,
    count: u64,
}

/// Streaming fs-verity digest of a byte stream.
///
/// Feed it with [`update`](Self::update) (or through [`Write`]) in chunks of any size, then
/// [`finish`](Self::finish). The result does not depend on how the input was split.
pub struct FsVerityHasher {
    alg: HashAlgorithm,
    /// The data block being filled; only its first `block_len` bytes are meaningful.
    block: [u8; BLOCK_SIZE],
    block_len: usize,
    /// Total input length, which goes into the descriptor.
    size: u64,
    /// Hash levels, lowest (hashes of data blocks) first. Grown on demand.
    levels: Vec<Level>,
}

impl FsVerityHasher {
    pub fn new(alg: HashAlgorithm) -> Self {
        FsVerityHasher {
            alg,
            block: [0; BLOCK_SIZE],
            block_len: 0,
            size: 0,
            levels: Vec::new(),
        }
    }

    pub fn algorithm(&self) -> HashAlgorithm {
        self.alg
    }

    /// Number of bytes fed so far.
    pub fn len(&self) -> u64 {
        self.size
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// Adds data to the stream.
    pub fn update(&mut self, mut data: &[u8]) {
        self.size += data.len() as u64;

        // Top up a partially filled block first.
        if self.block_len > 0 {
            let take = (BLOCK_SIZE - self.block_len).min(data.len());
            self.block[self.block_len..self.block_len + take].copy_from_slice(&data[..take]);
            self.block_len += take;
            data = &data[take..];
            if self.block_len < BLOCK_SIZE {
                return;
            }
            let h = hash(self.alg, &self.block);
            self.block_len = 0;
            self.push_hash(0, &h);
        }

        // Whole blocks are hashed in place, without a copy.
        let mut blocks = data.chunks_exact(BLOCK_SIZE);
        for block in &mut blocks {
            let h = hash(self.alg, block);
            self.push_hash(0, &h);
        }
        let rest = blocks.remainder();
        self.block[..rest.len()].copy_from_slice(rest);
        self.block_len = rest.len();
    }

    /// Appends a hash to hash level `start` (0 = hashes of data blocks), hashing every level
    /// that becomes full into the one above it.
    fn push_hash(&mut self, start: usize, hash_in: &[u8; MAX_HASH]) {
        let hlen = self.alg.digest_len();
        let mut h = *hash_in;
        let mut i = start;
        loop {
            if i == self.levels.len() {
                self.levels.push(Level {
                    buf: [0; BLOCK_SIZE],
                    len: 0,
                    count: 0,
                });
            }
            let level = &mut self.levels[i];
            level.buf[level.len..level.len + hlen].copy_from_slice(&h[..hlen]);
            level.len += hlen;
            level.count += 1;
            // The hash length divides the block size, so a level fills up exactly.
            if level.len < BLOCK_SIZE {
                return;
            }
            h = hash(self.alg, &level.buf);
            level.len = 0;
            i += 1;
        }
    }

    /// The Merkle tree root: all zeros for empty input, else the single hash at the top.
    fn root_hash(&mut self) -> [u8; MAX_HASH] {
        if self.size == 0 {
            return [0; MAX_HASH];
        }
        if self.block_len > 0 {
            self.block[self.block_len..].fill(0);
            let h = hash(self.alg, &self.block);
            self.block_len = 0;
            if self.levels.is_empty() {
                // Input shorter than one block (the common small file): its hash is the root,
                // no need to allocate a level for it.
                return h;
            }
            self.push_hash(0, &h);
        }
        let hlen = self.alg.digest_len();
        let mut i = 0;
        loop {
            let level = &mut self.levels[i];
            if level.count == 1 {
                // Only one hash ever reached this level, so nothing went above it: the root.
                let mut root = [0; MAX_HASH];
                root[..hlen].copy_from_slice(&level.buf[..hlen]);
                return root;
            }
            if level.len > 0 {
                level.buf[level.len..].fill(0);
                let h = hash(self.alg, &level.buf);
                level.len = 0;
                self.push_hash(i + 1, &h);
            }
            i += 1;
        }
    }

    /// Completes the tree and returns the fs-verity file digest: the hash of the descriptor.
    pub fn finish(mut self) -> Digest {
        let root = self.root_hash();
        let mut desc = [0u8; DESCRIPTOR_SIZE];
        desc[0] = 1; // version
        desc[1] = self.alg.fsverity_id();
        desc[2] = BLOCK_SIZE.trailing_zeros() as u8; // log_blocksize
        desc[3] = 0; // salt_size
        desc[8..16].copy_from_slice(&self.size.to_le_bytes());
        desc[16..16 + MAX_HASH].copy_from_slice(&root);
        let d = hash(self.alg, &desc);
        Digest::from_bytes(&d[..self.alg.digest_len()]).expect("digest length matches algorithm")
    }
}

impl Write for FsVerityHasher {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.update(buf);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// fs-verity digest of a byte slice.
pub fn digest(alg: HashAlgorithm, data: &[u8]) -> Digest {
    let mut h = FsVerityHasher::new(alg);
    h.update(data);
    h.finish()
}

/// fs-verity digest of everything a reader yields.
pub fn digest_reader(alg: HashAlgorithm, mut reader: impl Read) -> io::Result<Digest> {
    let mut h = FsVerityHasher::new(alg);
    let mut buf = vec![0u8; READ_BUFFER_SIZE];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return Ok(h.finish()),
            Ok(n) => h.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// fs-verity digest of a file's content. Errors name the file.
pub fn digest_file(alg: HashAlgorithm, path: &Path) -> io::Result<Digest> {
    let with_path = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    let file = File::open(path).map_err(with_path)?;
    digest_reader(alg, file).map_err(with_path)
}

/// fs-verity as the kernel keeps it on a file: measure the digest of a verity file, enable
/// verity on a file. Thin over the ioctls in `crate::sys`.
pub mod kernel {
    use std::io;
    use std::os::fd::BorrowedFd;

    use crate::sys;
    use crate::tree::{Digest, HashAlgorithm};

    /// `FS_IOC_MEASURE_VERITY`. `Ok(None)` means the file has no fs-verity digest: the file is
    /// not a verity file (ENODATA), or its filesystem or kernel has no fs-verity (EOPNOTSUPP,
    /// ENOTTY) — the three answers C composefs folds into "Image has no fs-verity". A digest
    /// of an algorithm other than sha256/sha512 is an `InvalidData` error.
    pub fn measure(fd: BorrowedFd<'_>) -> io::Result<Option<Digest>> {
        use rustix::io::Errno;
        let (alg, bytes) = match sys::fs_ioc_measure_verity(fd) {
            Ok(d) => d,
            Err(e)
                if [Errno::NODATA, Errno::OPNOTSUPP, Errno::NOTTY]
                    .iter()
                    .any(|n| e.raw_os_error() == Some(n.raw_os_error())) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(e),
        };
        let known = [HashAlgorithm::Sha256, HashAlgorithm::Sha512]
            .into_iter()
            .find(|a| u16::from(a.fsverity_id()) == alg && a.digest_len() == bytes.len());
        match known.and_then(|_| Digest::from_bytes(&bytes)) {
            Some(d) => Ok(Some(d)),
            None => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "unknown fs-verity algorithm {alg} ({} digest bytes)",
                    bytes.len()
                ),
            )),
        }
    }

    /// `FS_IOC_ENABLE_VERITY` with `alg`, 4096-byte blocks and no salt: the parameters
    /// composefs names objects by. The file must be open read-only and not open for writing
    /// anywhere (ETXTBSY otherwise).
    pub fn enable(fd: BorrowedFd<'_>, alg: HashAlgorithm) -> io::Result<()> {
        sys::fs_ioc_enable_verity(fd, u32::from(alg.fsverity_id()), super::BLOCK_SIZE as u32)
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use std::os::fd::AsFd;

        /// Whatever the host's fs-verity support, a fresh file has no digest: the answer is
        /// `None`, never an error.
        #[test]
        fn fresh_file_has_no_verity() {
            let f = tempfile::tempfile().unwrap();
            assert_eq!(measure(f.as_fd()).unwrap(), None);
        }

        /// A character device has no fs-verity ioctl at all (ENOTTY): the same answer.
        #[test]
        fn device_has_no_verity() {
            let f = std::fs::File::open("/dev/null").unwrap();
            assert_eq!(measure(f.as_fd()).unwrap(), None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(alg: HashAlgorithm, data: &[u8]) -> String {
        digest(alg, data).to_hex()
    }

    /// Straightforward whole-input Merkle tree, level by level, to check the streaming one.
    fn reference(alg: HashAlgorithm, data: &[u8]) -> Digest {
        let hlen = alg.digest_len();
        let root = if data.is_empty() {
            vec![0u8; hlen]
        } else {
            let mut level = data.to_vec();
            loop {
                let mut next = Vec::new();
                for chunk in level.chunks(BLOCK_SIZE) {
                    let mut block = chunk.to_vec();
                    block.resize(BLOCK_SIZE, 0);
                    next.extend_from_slice(&hash(alg, &block)[..hlen]);
                }
                if next.len() == hlen {
                    break next;
                }
                level = next;
            }
        };
        let mut desc = vec![1u8, alg.fsverity_id(), 12, 0, 0, 0, 0, 0];
        desc.extend_from_slice(&(data.len() as u64).to_le_bytes());
        desc.extend_from_slice(&root);
        desc.resize(DESCRIPTOR_SIZE, 0);
        Digest::from_bytes(&hash(alg, &desc)[..hlen]).unwrap()
    }

    #[test]
    fn known_values() {
        assert_eq!(
            hex(HashAlgorithm::Sha256, b"hello world"),
            "1e2eaa4202d750a41174ee454970b92c1bc2f925b1e35076d8c7d5f56362ba64"
        );
        assert_eq!(
            hex(HashAlgorithm::Sha512, b"hello world"),
            "18430270729d162d4e469daca123ae61893db4b0583d8f7081e3bf4f92b88ba5\
             14e7982f10733fb6aa895195c5ae8fd2eb2c47a8be05513ce5a0c51a6f570409"
        );
        assert_eq!(
            hex(HashAlgorithm::Sha256, &[0u8; 100]),
            "b0fb44a8078cc2d7d91ede6d16dfe63943613e6286bd7c49efd0223940d51229"
        );
    }

    #[test]
    fn empty_input_uses_zero_root_like_the_kernel() {
        let d = hex(HashAlgorithm::Sha256, b"");
        assert_eq!(
            d,
            "3d248ca542a24fc62d1c43b916eae5016878e2533c88238480b26128a1f1af95"
        );
        // C 1.0.8's value (root = hash of one zero block) must not come out.
        assert_ne!(
            d,
            "cfc3391077edfd51859f6e5e16e03f82b1da3ee1a35d418b0d0b3b57740b4405"
        );
        assert_eq!(d, reference(HashAlgorithm::Sha256, b"").to_hex());
    }

    #[test]
    fn digest_has_the_algorithm_length() {
        assert_eq!(
            digest(HashAlgorithm::Sha256, b"x").algorithm(),
            HashAlgorithm::Sha256
        );
        assert_eq!(
            digest(HashAlgorithm::Sha512, b"x").algorithm(),
            HashAlgorithm::Sha512
        );
    }

    #[test]
    fn tree_boundaries_match_reference() {
        // Sizes around one block, one full hash block (128 sha256 / 64 sha512 hashes) and
        // two levels, where the top-of-tree decision changes.
        let max = 129 * BLOCK_SIZE + 1;
        let data: Vec<u8> = (0..max as u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
            .collect();
        for alg in [HashAlgorithm::Sha256, HashAlgorithm::Sha512] {
            let per_block = BLOCK_SIZE / alg.digest_len();
            for blocks in [1, 2, per_block - 1, per_block, per_block + 1] {
                for delta in [-1i64, 0, 1] {
                    let n = (blocks * BLOCK_SIZE) as i64 + delta;
                    let n = n as usize;
                    assert_eq!(
                        digest(alg, &data[..n]),
                        reference(alg, &data[..n]),
                        "{alg:?} len {n}"
                    );
                }
            }
        }
    }

    #[test]
    fn three_levels_match_reference() {
        // sha512: 64 hashes per block, so 64 * 64 + 1 blocks need three hash levels.
        let n = (64 * 64 + 1) * BLOCK_SIZE + 7;
        let data: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
        assert_eq!(
            digest(HashAlgorithm::Sha512, &data),
            reference(HashAlgorithm::Sha512, &data)
        );
        let exact = 64 * 64 * BLOCK_SIZE;
        assert_eq!(
            digest(HashAlgorithm::Sha512, &data[..exact]),
            reference(HashAlgorithm::Sha512, &data[..exact])
        );
    }

    #[test]
    fn reader_file_and_write_agree() {
        let data: Vec<u8> = (0..(READ_BUFFER_SIZE * 2 + 4097))
            .map(|i| (i * 7) as u8)
            .collect();
        let want = digest(HashAlgorithm::Sha256, &data);
        assert_eq!(
            digest_reader(HashAlgorithm::Sha256, &data[..]).unwrap(),
            want
        );

        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&data).unwrap();
        f.flush().unwrap();
        assert_eq!(digest_file(HashAlgorithm::Sha256, f.path()).unwrap(), want);

        let mut h = FsVerityHasher::new(HashAlgorithm::Sha256);
        io::copy(&mut &data[..], &mut h).unwrap();
        assert_eq!(h.len(), data.len() as u64);
        assert_eq!(h.finish(), want);
    }

    #[test]
    fn missing_file_error_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("no-such-file");
        let e = digest_file(HashAlgorithm::Sha256, &p).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("no-such-file"), "{e}");
    }

    proptest! {
        #[test]
        fn chunking_does_not_matter(
            data in proptest::collection::vec(any::<u8>(), 0..3 * BLOCK_SIZE + 100),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
            sha512 in any::<bool>(),
        ) {
            let alg = if sha512 { HashAlgorithm::Sha512 } else { HashAlgorithm::Sha256 };
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(data.len() + 1)).collect();
            points.sort_unstable();
            let mut h = FsVerityHasher::new(alg);
            let mut at = 0;
            for p in points {
                h.update(&data[at..p]);
                at = p;
            }
            h.update(&data[at..]);
            let got = h.finish();
            prop_assert_eq!(&got, &digest(alg, &data));
            prop_assert_eq!(got, reference(alg, &data));
        }
    }
}
