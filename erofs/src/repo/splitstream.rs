//! The composefs-rs splitstream: a byte stream split into inline bytes and references to
//! fs-verity-named objects, as composefs-rs 0.9.4 stores OCI layers, configs and manifests.
//!
//! File layout (all integers little-endian; offsets absolute):
//!
//! | range | what |
//! |---|---|
//! | `[0, 32)` | [`Header`]: magic `SplitStream`, version 0, flags, algorithm, lg block size, info range |
//! | info range | [`Info`]: the ranges of the four sections, content type, reassembled size |
//! | then | stream refs: raw digests of other splitstreams (named refs point into it) |
//! | then | object refs: raw digests of the external objects, in order of first use |
//! | then | named refs: one zstd frame of `"<idx>:<name>\0"` records, sorted by name |
//! | then | stream: one zstd frame of chunks, each an `i64`: `-n` then `n` inline bytes, or `k ≥ 0` for object ref `k` |
//!
//! [`SplitStreamWriter`] writes byte-identical files to composefs-rs's writer for the same
//! sequence of calls: consecutive inline writes coalesce into one chunk, refs are unique lists in
//! insertion order, and both zstd frames come from the streaming encoder at level 3 fed in the
//! same pieces (a frame written with no input at all carries its content size 0, as
//! composefs-rs's does). [`SplitStream::parse`] checks everything and never panics.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read, Write};
use std::ops::Range;

use zerocopy::little_endian::{I64, U16, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::tree::{Digest, HashAlgorithm};

/// The first 11 bytes of every splitstream.
pub const MAGIC: [u8; 11] = *b"SplitStream";
/// The only format version.
pub const VERSION: u8 = 0;
/// fs-verity block size (log2) the object names are computed with.
pub const LG_BLOCKSIZE: u8 = 12;
/// The zstd level composefs-rs passes (`Encoder::new(_, 0)`): 0 selects libzstd's default,
/// level 3; passed as 0 so that the encoder is set up exactly as composefs-rs's is.
pub const ZSTD_LEVEL: i32 = 0;

/// Content types composefs-oci records (a u64 of eight ASCII bytes, little-endian).
pub mod content_type {
    pub const OCI_LAYER: u64 = u64::from_le_bytes(*b"ocilayer");
    pub const OCI_CONFIG: u64 = u64::from_le_bytes(*b"ociconfg");
    pub const OCI_MANIFEST: u64 = u64::from_le_bytes(*b"ocimanif");
    pub const OCI_BLOB: u64 = u64::from_le_bytes(*b"oci_blob");

    /// The ASCII name of a content type, if it is eight printable bytes.
    pub fn name(value: u64) -> Option<String> {
        let b = value.to_le_bytes();
        b.iter()
            .all(|c| c.is_ascii_graphic())
            .then(|| String::from_utf8_lossy(&b).into_owned())
    }
}

/// A byte range of the file, `[start, end)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct FileRange {
    pub start: U64,
    pub end: U64,
}

/// The fixed header at offset 0.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct Header {
    pub magic: [u8; 11],
    pub version: u8,
    pub flags: U16,
    /// fs-verity algorithm number: 1 = sha256, 2 = sha512.
    pub algorithm: u8,
    pub lg_blocksize: u8,
    pub info: FileRange,
}

/// The header as bootc ≤ 1.15 wrote it (Rust's field reordering, before `repr(C)`): read only.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct LegacyHeader {
    pub info: FileRange,
    pub flags: U16,
    pub magic: [u8; 11],
    pub version: u8,
    pub algorithm: u8,
    pub lg_blocksize: u8,
}

/// Where the sections are; may be longer in a future version (extra bytes are ignored).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct Info {
    pub stream_refs: FileRange,
    pub object_refs: FileRange,
    pub stream: FileRange,
    pub named_refs: FileRange,
    pub content_type: U64,
    /// Length of the reassembled stream (inline plus external bytes).
    pub stream_size: U64,
}

const _: () = {
    assert!(size_of::<FileRange>() == 16);
    assert!(size_of::<Header>() == 32);
    assert!(std::mem::offset_of!(Header, info) == 16);
    assert!(size_of::<LegacyHeader>() == 32);
    assert!(std::mem::offset_of!(LegacyHeader, magic) == 18);
    assert!(size_of::<Info>() == 80);
};

impl FileRange {
    fn of(r: Range<u64>) -> Self {
        FileRange {
            start: r.start.into(),
            end: r.end.into(),
        }
    }
}

/// A list where each item appears once, indices in insertion order.
#[derive(Clone, Debug, Default)]
struct UniqueList {
    items: Vec<Digest>,
    index: HashMap<Digest, usize>,
}

impl UniqueList {
    fn ensure(&mut self, d: &Digest) -> usize {
        if let Some(&i) = self.index.get(d) {
            return i;
        }
        self.items.push(d.clone());
        self.index.insert(d.clone(), self.items.len() - 1);
        self.items.len() - 1
    }

    fn bytes(&self) -> Vec<u8> {
        self.items
            .iter()
            .flat_map(|d| d.as_bytes())
            .copied()
            .collect()
    }
}

/// Builds one splitstream in memory.
pub struct SplitStreamWriter {
    algorithm: HashAlgorithm,
    content_type: u64,
    stream_refs: UniqueList,
    object_refs: UniqueList,
    named_refs: BTreeMap<String, usize>,
    inline: Vec<u8>,
    stream: zstd::stream::write::Encoder<'static, Vec<u8>>,
    total: u64,
}

impl SplitStreamWriter {
    pub fn new(algorithm: HashAlgorithm, content_type: u64) -> io::Result<Self> {
        Ok(SplitStreamWriter {
            algorithm,
            content_type,
            stream_refs: UniqueList::default(),
            object_refs: UniqueList::default(),
            named_refs: BTreeMap::new(),
            inline: Vec::new(),
            stream: zstd::stream::write::Encoder::new(Vec::new(), ZSTD_LEVEL)?,
            total: 0,
        })
    }

    /// Records that this stream refers to the splitstream (or image) `target` under `name`; a
    /// later call with the same name replaces the earlier one, but the first target keeps its
    /// place in the stream refs.
    pub fn add_named_ref(&mut self, name: &str, target: &Digest) {
        let idx = self.stream_refs.ensure(target);
        self.named_refs.insert(name.to_owned(), idx);
    }

    /// Appends bytes stored in the stream itself.
    pub fn write_inline(&mut self, data: &[u8]) {
        self.total += data.len() as u64;
        self.inline.extend_from_slice(data);
    }

    /// Appends the whole content of the object `id`, `size` bytes long.
    pub fn write_external(&mut self, id: &Digest, size: u64) -> io::Result<()> {
        self.flush_inline()?;
        self.total += size;
        let idx = self.object_refs.ensure(id) as i64;
        self.stream.write_all(I64::new(idx).as_bytes())
    }

    fn flush_inline(&mut self) -> io::Result<()> {
        if self.inline.is_empty() {
            return Ok(());
        }
        let len = i64::try_from(self.inline.len()).map_err(io::Error::other)?;
        self.stream.write_all(I64::new(-len).as_bytes())?;
        self.stream.write_all(&self.inline)?;
        self.inline.clear();
        Ok(())
    }

    /// The finished file.
    pub fn finish(mut self) -> io::Result<Vec<u8>> {
        self.flush_inline()?;
        let stream = self.stream.finish()?;
        let mut names = zstd::stream::write::Encoder::new(Vec::new(), ZSTD_LEVEL)?;
        for (name, idx) in &self.named_refs {
            write!(names, "{idx}:{name}\0")?;
        }
        let names = names.finish()?;
        let stream_refs = self.stream_refs.bytes();
        let object_refs = self.object_refs.bytes();

        let info_at = size_of::<Header>() as u64;
        let stream_refs_at = info_at + size_of::<Info>() as u64;
        let object_refs_at = stream_refs_at + stream_refs.len() as u64;
        let names_at = object_refs_at + object_refs.len() as u64;
        let stream_at = names_at + names.len() as u64;
        let header = Header {
            magic: MAGIC,
            version: VERSION,
            flags: U16::ZERO,
            algorithm: self.algorithm.fsverity_id(),
            lg_blocksize: LG_BLOCKSIZE,
            info: FileRange::of(info_at..stream_refs_at),
        };
        let info = Info {
            stream_refs: FileRange::of(stream_refs_at..object_refs_at),
            object_refs: FileRange::of(object_refs_at..names_at),
            stream: FileRange::of(stream_at..stream_at + stream.len() as u64),
            named_refs: FileRange::of(names_at..stream_at),
            content_type: self.content_type.into(),
            stream_size: self.total.into(),
        };
        let mut out = Vec::with_capacity(stream_at as usize + stream.len());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(info.as_bytes());
        out.extend_from_slice(&stream_refs);
        out.extend_from_slice(&object_refs);
        out.extend_from_slice(&names);
        out.extend_from_slice(&stream);
        Ok(out)
    }
}

/// One piece of a parsed stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Chunk {
    /// Bytes `range` of [`SplitStream::inline`].
    Inline(Range<usize>),
    /// The whole content of object ref `n`.
    External(usize),
}

/// A parsed splitstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitStream {
    pub algorithm: HashAlgorithm,
    pub content_type: u64,
    pub stream_size: u64,
    pub stream_refs: Vec<Digest>,
    pub object_refs: Vec<Digest>,
    /// `(name, index into stream_refs)`, in file order (sorted by name).
    pub named_refs: Vec<(String, usize)>,
    pub chunks: Vec<Chunk>,
    /// The inline bytes, concatenated.
    pub inline: Vec<u8>,
    /// The file was written with the legacy (bootc ≤ 1.15) header layout.
    pub legacy_header: bool,
}

/// Why a file is not a valid splitstream.
#[derive(Debug, thiserror::Error)]
pub enum SplitStreamError {
    #[error("file too short for a splitstream header ({0} bytes)")]
    Short(usize),
    #[error("bad magic: not a splitstream")]
    BadMagic,
    #[error("unsupported splitstream version {0}")]
    Version(u8),
    #[error("unknown fs-verity algorithm {0}")]
    Algorithm(u8),
    #[error("splitstream uses {found}, the repository {expected}")]
    WrongAlgorithm {
        found: &'static str,
        expected: &'static str,
    },
    #[error("unsupported fs-verity block size 2^{0} (only 2^12)")]
    BlockSize(u8),
    #[error("{section} range {start}..{end} is outside the {len}-byte file")]
    Range {
        section: &'static str,
        start: u64,
        end: u64,
        len: usize,
    },
    #[error("info section is {0} bytes, shorter than 80")]
    ShortInfo(u64),
    #[error("{section}: {len} bytes is not a whole number of {size}-byte digests")]
    RefsLength {
        section: &'static str,
        len: usize,
        size: usize,
    },
    #[error("{section}: zstd: {source}")]
    Zstd {
        section: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{section}: decompresses to more than {limit} bytes")]
    TooLarge { section: &'static str, limit: u64 },
    #[error("named refs: record {n}: {why}")]
    NamedRef { n: usize, why: String },
    #[error("stream at byte {at}: {why}")]
    Chunk { at: usize, why: String },
}

/// Bounds for parsing untrusted files.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest decompressed stream or named-refs section.
    pub max_decompressed: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_decompressed: 1 << 32,
        }
    }
}

fn algorithm_of(id: u8) -> Result<HashAlgorithm, SplitStreamError> {
    match id {
        1 => Ok(HashAlgorithm::Sha256),
        2 => Ok(HashAlgorithm::Sha512),
        other => Err(SplitStreamError::Algorithm(other)),
    }
}

fn section<'a>(
    data: &'a [u8],
    name: &'static str,
    r: &FileRange,
) -> Result<&'a [u8], SplitStreamError> {
    let (start, end) = (r.start.get(), r.end.get());
    let bad = || SplitStreamError::Range {
        section: name,
        start,
        end,
        len: data.len(),
    };
    let s = usize::try_from(start).map_err(|_| bad())?;
    let e = usize::try_from(end).map_err(|_| bad())?;
    data.get(s..e).ok_or_else(bad)
}

fn digests(
    bytes: &[u8],
    name: &'static str,
    alg: HashAlgorithm,
) -> Result<Vec<Digest>, SplitStreamError> {
    let size = alg.digest_len();
    if bytes.len() % size != 0 {
        return Err(SplitStreamError::RefsLength {
            section: name,
            len: bytes.len(),
            size,
        });
    }
    Ok(bytes
        .chunks_exact(size)
        .map(|c| Digest::from_bytes(c).expect("chunk has a digest's length"))
        .collect())
}

fn decompress(
    bytes: &[u8],
    name: &'static str,
    limits: &Limits,
) -> Result<Vec<u8>, SplitStreamError> {
    let zerr = |source| SplitStreamError::Zstd {
        section: name,
        source,
    };
    let decoder = zstd::stream::read::Decoder::with_buffer(bytes).map_err(zerr)?;
    let mut out = Vec::new();
    decoder
        .take(limits.max_decompressed + 1)
        .read_to_end(&mut out)
        .map_err(zerr)?;
    if out.len() as u64 > limits.max_decompressed {
        return Err(SplitStreamError::TooLarge {
            section: name,
            limit: limits.max_decompressed,
        });
    }
    Ok(out)
}

impl SplitStream {
    /// Parses a whole splitstream file. `expected`, if given, is the repository's algorithm.
    pub fn parse(
        data: &[u8],
        expected: Option<HashAlgorithm>,
        limits: &Limits,
    ) -> Result<SplitStream, SplitStreamError> {
        let head = data
            .get(..size_of::<Header>())
            .ok_or(SplitStreamError::Short(data.len()))?;
        let (header, legacy_header) = if head.starts_with(&MAGIC) {
            (
                Header::read_from_bytes(head).expect("length checked"),
                false,
            )
        } else {
            let old = LegacyHeader::read_from_bytes(head).expect("length checked");
            if old.magic != MAGIC {
                return Err(SplitStreamError::BadMagic);
            }
            let h = Header {
                magic: old.magic,
                version: old.version,
                flags: old.flags,
                algorithm: old.algorithm,
                lg_blocksize: old.lg_blocksize,
                info: old.info,
            };
            (h, true)
        };
        if header.version != VERSION {
            return Err(SplitStreamError::Version(header.version));
        }
        let algorithm = algorithm_of(header.algorithm)?;
        if let Some(want) = expected {
            if want != algorithm {
                return Err(SplitStreamError::WrongAlgorithm {
                    found: algorithm.name(),
                    expected: want.name(),
                });
            }
        }
        if header.lg_blocksize != LG_BLOCKSIZE {
            return Err(SplitStreamError::BlockSize(header.lg_blocksize));
        }
        let info_bytes = section(data, "info", &header.info)?;
        let info = Info::read_from_prefix(info_bytes)
            .map_err(|_| SplitStreamError::ShortInfo(info_bytes.len() as u64))?
            .0;
        let stream_refs = digests(
            section(data, "stream refs", &info.stream_refs)?,
            "stream refs",
            algorithm,
        )?;
        let object_refs = digests(
            section(data, "object refs", &info.object_refs)?,
            "object refs",
            algorithm,
        )?;
        let names = decompress(
            section(data, "named refs", &info.named_refs)?,
            "named refs",
            limits,
        )?;
        let named_refs = parse_named_refs(&names, stream_refs.len())?;
        let stream = decompress(section(data, "stream", &info.stream)?, "stream", limits)?;
        let (chunks, inline) = parse_chunks(&stream, object_refs.len())?;
        Ok(SplitStream {
            algorithm,
            content_type: info.content_type.get(),
            stream_size: info.stream_size.get(),
            stream_refs,
            object_refs,
            named_refs,
            chunks,
            inline,
            legacy_header,
        })
    }

    /// The digest a named ref points at.
    pub fn named_ref(&self, name: &str) -> Option<&Digest> {
        self.named_refs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, i)| &self.stream_refs[*i])
    }

    /// Total inline bytes.
    pub fn inline_len(&self) -> u64 {
        self.inline.len() as u64
    }

    /// Reassembles the original stream into `out`, reading external objects through `object`.
    pub fn reassemble(
        &self,
        out: &mut dyn Write,
        mut object: impl FnMut(&Digest, &mut dyn Write) -> io::Result<()>,
    ) -> io::Result<()> {
        for c in &self.chunks {
            match c {
                Chunk::Inline(r) => out.write_all(&self.inline[r.clone()])?,
                Chunk::External(i) => object(&self.object_refs[*i], out)?,
            }
        }
        Ok(())
    }
}

fn parse_named_refs(text: &[u8], refs: usize) -> Result<Vec<(String, usize)>, SplitStreamError> {
    let mut out = Vec::new();
    if text.is_empty() {
        return Ok(out);
    }
    let Some(body) = text.strip_suffix(b"\0") else {
        return Err(SplitStreamError::NamedRef {
            n: 0,
            why: "records do not end with NUL".into(),
        });
    };
    for (n, rec) in body.split(|&b| b == 0).enumerate() {
        let bad = |why: &str| SplitStreamError::NamedRef {
            n,
            why: why.to_owned(),
        };
        let colon = rec
            .iter()
            .position(|&b| b == b':')
            .ok_or_else(|| bad("no `:`"))?;
        let idx: usize = std::str::from_utf8(&rec[..colon])
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("index is not a decimal number"))?;
        if idx >= refs {
            return Err(bad(&format!("index {idx} past the {refs} stream refs")));
        }
        let name = std::str::from_utf8(&rec[colon + 1..]).map_err(|_| bad("name is not UTF-8"))?;
        out.push((name.to_owned(), idx));
    }
    Ok(out)
}

fn parse_chunks(stream: &[u8], objects: usize) -> Result<(Vec<Chunk>, Vec<u8>), SplitStreamError> {
    let mut chunks = Vec::new();
    let mut inline = Vec::new();
    let mut at = 0usize;
    while at < stream.len() {
        let here = at;
        let bad = move |why: String| SplitStreamError::Chunk { at: here, why };
        let word = stream
            .get(at..at + 8)
            .ok_or_else(|| bad("truncated chunk header".into()))?;
        let n = I64::read_from_bytes(word).expect("8 bytes").get();
        at += 8;
        if n >= 0 {
            let idx = n as u64;
            if idx >= objects as u64 {
                return Err(bad(format!(
                    "object ref {idx} past the {objects} object refs"
                )));
            }
            chunks.push(Chunk::External(idx as usize));
        } else {
            let len = n
                .checked_neg()
                .and_then(|l| usize::try_from(l).ok())
                .ok_or_else(|| bad(format!("inline length {n}")))?;
            let bytes = stream
                .get(at..at.saturating_add(len))
                .filter(|b| b.len() == len)
                .ok_or_else(|| bad(format!("inline chunk of {len} bytes runs past the end")))?;
            let start = inline.len();
            inline.extend_from_slice(bytes);
            chunks.push(Chunk::Inline(start..inline.len()));
            at += len;
        }
    }
    Ok((chunks, inline))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(n: u8) -> Digest {
        Digest::Sha256([n; 32])
    }

    #[test]
    fn empty_named_refs_is_the_nine_byte_frame() {
        let w = SplitStreamWriter::new(HashAlgorithm::Sha256, content_type::OCI_LAYER).unwrap();
        let bytes = w.finish().unwrap();
        let s =
            SplitStream::parse(&bytes, Some(HashAlgorithm::Sha256), &Limits::default()).unwrap();
        let info = Info::read_from_prefix(&bytes[32..]).unwrap().0;
        let names =
            &bytes[info.named_refs.start.get() as usize..info.named_refs.end.get() as usize];
        assert_eq!(hex::encode(names), "28b52ffd2000010000");
        assert_eq!(s.chunks, []);
        assert_eq!(
            content_type::name(s.content_type).as_deref(),
            Some("ocilayer")
        );
    }

    #[test]
    fn writer_coalesces_and_dedups() {
        let mut w = SplitStreamWriter::new(HashAlgorithm::Sha256, 7).unwrap();
        w.add_named_ref("b", &d(9));
        w.add_named_ref("a", &d(8));
        w.write_inline(b"he");
        w.write_inline(b"ad");
        w.write_external(&d(1), 100).unwrap();
        w.write_external(&d(2), 50).unwrap();
        w.write_external(&d(1), 100).unwrap();
        w.write_inline(b"tail");
        let bytes = w.finish().unwrap();
        let s = SplitStream::parse(&bytes, None, &Limits::default()).unwrap();
        assert_eq!(s.stream_size, 258);
        assert_eq!(s.object_refs, [d(1), d(2)]);
        assert_eq!(s.stream_refs, [d(9), d(8)]);
        assert_eq!(s.named_refs, [("a".into(), 1), ("b".into(), 0)]);
        assert_eq!(
            s.chunks,
            [
                Chunk::Inline(0..4),
                Chunk::External(0),
                Chunk::External(1),
                Chunk::External(0),
                Chunk::Inline(4..8)
            ]
        );
        assert_eq!(s.named_ref("a"), Some(&d(8)));
    }

    #[test]
    fn legacy_header_is_read() {
        let w = SplitStreamWriter::new(HashAlgorithm::Sha512, 1).unwrap();
        let mut bytes = w.finish().unwrap();
        let h = Header::read_from_bytes(&bytes[..32]).unwrap();
        let old = LegacyHeader {
            info: h.info,
            flags: h.flags,
            magic: h.magic,
            version: h.version,
            algorithm: h.algorithm,
            lg_blocksize: h.lg_blocksize,
        };
        bytes[..32].copy_from_slice(old.as_bytes());
        let s =
            SplitStream::parse(&bytes, Some(HashAlgorithm::Sha512), &Limits::default()).unwrap();
        assert!(s.legacy_header);
    }

    #[test]
    fn hostile_files_are_errors() {
        let mut w = SplitStreamWriter::new(HashAlgorithm::Sha256, 1).unwrap();
        w.add_named_ref("x", &d(1));
        w.write_inline(&[5; 300]);
        w.write_external(&d(2), 9).unwrap();
        let good = w.finish().unwrap();
        let lim = Limits::default();
        for cut in 0..good.len() {
            assert!(
                SplitStream::parse(&good[..cut], None, &lim).is_err(),
                "cut {cut}"
            );
        }
        let mut bad = good.clone();
        bad[0] = b'X';
        assert!(matches!(
            SplitStream::parse(&bad, None, &lim),
            Err(SplitStreamError::BadMagic)
        ));
        assert!(matches!(
            SplitStream::parse(&good, Some(HashAlgorithm::Sha512), &lim),
            Err(SplitStreamError::WrongAlgorithm { .. })
        ));
        let tiny = Limits {
            max_decompressed: 100,
        };
        assert!(matches!(
            SplitStream::parse(&good, None, &tiny),
            Err(SplitStreamError::TooLarge { .. })
        ));
    }

    proptest! {
        #[test]
        fn round_trip(ops in prop::collection::vec(
            prop_oneof![
                prop::collection::vec(any::<u8>(), 0..40).prop_map(Ok),
                (0u8..4, 0u64..1000).prop_map(Err),
            ], 0..20),
            names in prop::collection::btree_map("[a-z:.]{1,8}", 0u8..3, 0..4))
        {
            let mut w = SplitStreamWriter::new(HashAlgorithm::Sha256, 42).unwrap();
            for (n, t) in &names {
                w.add_named_ref(n, &d(*t));
            }
            let mut want = Vec::new();
            for op in &ops {
                match op {
                    Ok(bytes) => { w.write_inline(bytes); want.extend_from_slice(bytes); }
                    Err((o, _)) => { w.write_external(&d(*o), 3).unwrap(); want.extend_from_slice(&[*o; 3]); }
                }
            }
            let s = SplitStream::parse(&w.finish().unwrap(), None, &Limits::default()).unwrap();
            let mut got = Vec::new();
            s.reassemble(&mut got, |id, out| out.write_all(&[id.as_bytes()[0]; 3])).unwrap();
            prop_assert_eq!(got, want);
            prop_assert_eq!(s.named_refs.len(), names.len());
            for w in s.chunks.windows(2) {
                prop_assert!(!matches!(w, [Chunk::Inline(_), Chunk::Inline(_)]));
            }
        }
    }
}
