//! Reading one tar layer into composefs entries, streaming.
//!
//! Each tar member becomes a [`TarEntry`]: a normalised path and either an [`Inode`] (with the
//! member's metadata) or a hardlink target. Regular files of at most [`INLINE_MAX`] bytes are
//! kept inline; larger ones are hashed (fs-verity) as their bytes stream by and become external
//! objects named by that digest, optionally written into a digest store. Nothing holds a whole
//! layer or a whole large file in memory.
//!
//! The `tar` crate resolves GNU long names, the ustar prefix and PAX `size`; PAX `path` and
//! `linkpath` it ranks below GNU long names, and PAX `uid`, `gid`, `mtime` and `SCHILY.xattr.*`
//! it leaves to us, so those are read here from the raw PAX records (PAX wins over everything,
//! as in composefs-rs). The crate's own record parser splits at newlines, which a binary xattr
//! value may hold, so the raw PAX data is taken from the stream itself: a [`Tap`] under the
//! crate keeps the bytes between the end of one member's data and the next member's header
//! (only metadata members live there), and [`parse_pax`] reads the records by their length.
//!
//! Divergences from composefs-rs 0.9.4 (which reads PAX through `tar-core`), all on malformed
//! input: a PAX `mtime` fraction that is not all digits (`1.5x`) is an error here, where
//! composefs-rs silently uses 0 ns; a uid or gid above 2^32-1 is an error here, where
//! composefs-rs truncates it. A negative PAX `mtime` (`-1.5`) is an error in both.

#![forbid(unsafe_code)]

use std::cell::RefCell;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::fsverity::FsVerityHasher;
use crate::tree::{display_bytes, Digest, FileData, HashAlgorithm, Inode, InodeKind, Mtime};

/// Largest regular file kept inline; larger files become external objects.
pub const INLINE_MAX: u64 = 64;

/// Size of the buffer content is streamed through.
const CHUNK: usize = 64 * 1024;

/// How layers are read.
#[derive(Clone, Debug)]
pub struct TarOptions {
    /// fs-verity algorithm naming external objects.
    pub algorithm: HashAlgorithm,
    /// If set, external objects are written here as `XX/rest`.
    pub digest_store: Option<PathBuf>,
}

impl Default for TarOptions {
    fn default() -> Self {
        TarOptions {
            algorithm: HashAlgorithm::Sha256,
            digest_store: None,
        }
    }
}

/// Called with the path of each new object the layer reader wrote (complete, closed) before it
/// is renamed to its final name: a repository sets its mode and enables fs-verity there. With a
/// hook, objects are not synced one by one: the owner of the store syncs once (a repository's
/// `syncfs` before its symlinks).
#[derive(Clone)]
pub struct ObjectHook(std::sync::Arc<HookFn>);

type HookFn = dyn Fn(&Path) -> io::Result<()> + Send + Sync;

impl ObjectHook {
    pub fn new(f: impl Fn(&Path) -> io::Result<()> + Send + Sync + 'static) -> Self {
        ObjectHook(std::sync::Arc::new(f))
    }
}

impl std::fmt::Debug for ObjectHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ObjectHook")
    }
}

/// One piece of a layer split as composefs-rs splits it: every byte inline except the content
/// of regular files over [`INLINE_MAX`] bytes, which is the external object of that digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayerChunk {
    Inline(Vec<u8>),
    External { digest: Digest, size: u64 },
}

/// One tar member, ready to be applied to a tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TarEntry {
    /// Normalised path: components joined by `/`, no leading or trailing `/`, no `.`; empty for
    /// the root directory.
    pub path: Box<[u8]>,
    pub item: TarItem,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TarItem {
    /// A directory, file, symlink, device or FIFO with its metadata.
    Node(Inode),
    /// A hardlink to the (normalised) path of an earlier member.
    Hardlink(Box<[u8]>),
}

/// What is wrong with one member.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryFault {
    #[error("path component `..` is not allowed")]
    DotDot,
    #[error("invalid PAX mtime `{0}` (expected non-negative decimal seconds)")]
    BadPaxMtime(String),
    #[error("invalid PAX {key} `{value}`")]
    BadPaxNumber { key: &'static str, value: String },
    #[error("{field} {value} does not fit in 32 bits")]
    IdTooLarge { field: &'static str, value: u64 },
    #[error("mtime {0} is out of range")]
    MtimeTooLarge(u64),
    #[error("device entry without device numbers")]
    MissingDeviceNumbers,
    #[error("{0} entry without a link target")]
    MissingLinkTarget(&'static str),
    #[error("symlink target longer than 4095 bytes")]
    SymlinkTooLong,
    #[error("unsupported entry type {0:?}")]
    UnsupportedType(u8),
    /// GNU sparse members (type `S`, or PAX `GNU.sparse.*` records): their expanded size is
    /// whatever the header claims, so a few bytes of archive could demand exabytes of zeros to
    /// hash; container layers never carry them.
    #[error("sparse files are not supported")]
    Sparse,
    #[error("invalid header: {0}")]
    Header(String),
}

/// Why a layer could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TarError {
    #[error("reading tar stream: {0}")]
    Io(#[source] io::Error),
    #[error("tar entry {entry:?}: {fault}")]
    Entry { entry: String, fault: EntryFault },
    #[error("tar entry {entry:?}: reading content: {source}")]
    Content {
        entry: String,
        #[source]
        source: io::Error,
    },
    #[error("digest store {}: {source}", path.display())]
    Store {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Compression of a layer stream, detected by its magic bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// Looks at the first bytes of a stream without consuming them.
pub fn detect_compression(r: &mut impl BufRead) -> io::Result<Compression> {
    let head = r.fill_buf()?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    })
}

/// Wraps a (possibly compressed) layer stream into a reader of the plain tar bytes.
pub fn decompress<'a>(r: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
    let mut r = BufReader::with_capacity(CHUNK, r);
    Ok(match detect_compression(&mut r)? {
        Compression::None => Box::new(r),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(r)?),
    })
}

/// Normalises a tar path: a leading `/` and empty or `.` components vanish, `..` is an error.
/// The root (`/`, `./`, `.`) becomes the empty path.
pub fn normalize_path(raw: &[u8]) -> Result<Box<[u8]>, EntryFault> {
    let mut out = Vec::with_capacity(raw.len());
    for comp in raw.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => return Err(EntryFault::DotDot),
            c => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(c);
            }
        }
    }
    Ok(out.into())
}

/// Parses a PAX `mtime` value: decimal seconds with an optional fraction, kept exactly as
/// nanoseconds (up to 9 digits; further digits are truncated, fewer are right-padded).
pub fn parse_pax_mtime(value: &[u8]) -> Result<Mtime, EntryFault> {
    let bad = || EntryFault::BadPaxMtime(display_bytes(value));
    let (int, frac) = match value.iter().position(|&b| b == b'.') {
        Some(dot) => (&value[..dot], Some(&value[dot + 1..])),
        None => (value, None),
    };
    if int.is_empty() || !int.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    let sec: i64 = std::str::from_utf8(int)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    let mut nsec = 0u32;
    if let Some(frac) = frac {
        if !frac.iter().all(u8::is_ascii_digit) {
            return Err(bad());
        }
        for i in 0..9 {
            nsec = nsec * 10 + frac.get(i).map_or(0, |d| u32::from(d - b'0'));
        }
    }
    Ok(Mtime::new(sec, nsec))
}

fn parse_pax_u64(key: &'static str, value: &[u8]) -> Result<u64, EntryFault> {
    std::str::from_utf8(value)
        .ok()
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| EntryFault::BadPaxNumber {
            key,
            value: display_bytes(value),
        })
}

fn to_u32(field: &'static str, value: u64) -> Result<u32, EntryFault> {
    u32::try_from(value).map_err(|_| EntryFault::IdTooLarge { field, value })
}

/// Parses a numeric header field as tar implementations do: octal digits between padding
/// (spaces, NULs; the field ends at the first NUL, so an all-NUL field is 0), or GNU base-256
/// when the high bit of the first byte is set. The `tar` crate rejects empty fields, which
/// real archives (crates.io `.crate` files) contain.
pub fn parse_numeric(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut v: u64 = 0;
        for (i, &b) in field.iter().enumerate() {
            let b = if i == 0 { b & 0x7f } else { b };
            v = v.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return Some(v);
    }
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    let ws = |b: &u8| b.is_ascii_whitespace() || *b == 0x0b;
    let digits = &field[..end];
    let start = digits.iter().position(|b| !ws(b)).unwrap_or(digits.len());
    let stop = digits.iter().rposition(|b| !ws(b)).map_or(start, |p| p + 1);
    let digits = &digits[start..stop];
    if digits.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(std::str::from_utf8(digits).ok()?, 8).ok()
}

/// Linux `makedev` (glibc encoding) truncated to the 32 bits EROFS stores.
pub fn makedev(major: u32, minor: u32) -> u32 {
    let full: u64 = ((u64::from(major) & 0xffff_f000) << 32)
        | ((u64::from(major) & 0xfff) << 8)
        | ((u64::from(minor) & 0xffff_ff00) << 12)
        | (u64::from(minor) & 0xff);
    full as u32
}

/// Metadata PAX records override in the header.
#[derive(Default)]
struct PaxFields {
    path: Option<Vec<u8>>,
    linkpath: Option<Vec<u8>>,
    uid: Option<u64>,
    gid: Option<u64>,
    mtime: Option<Mtime>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// A `GNU.sparse.*` record was seen.
    sparse: bool,
}

/// One PAX record: key and value, raw bytes.
pub type PaxRecord<'a> = (&'a [u8], &'a [u8]);

/// Splits PAX extended-header data into `(key, value)` records, each `"<len> <key>=<value>\n"`
/// with `<len>` counting the whole record; values may hold any byte, newlines included.
pub fn parse_pax(mut data: &[u8]) -> Result<Vec<PaxRecord<'_>>, EntryFault> {
    let bad = |why: &str| EntryFault::Header(format!("PAX record: {why}"));
    let mut out = Vec::new();
    while !data.is_empty() {
        let space = data
            .iter()
            .take(20)
            .position(|&b| b == b' ')
            .ok_or_else(|| bad("no length"))?;
        let len: usize = std::str::from_utf8(&data[..space])
            .ok()
            .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| bad("bad length"))?;
        if len <= space + 1 || len > data.len() || data[len - 1] != b'\n' {
            return Err(bad("length does not end the record"));
        }
        let record = &data[space + 1..len - 1];
        let eq = record
            .iter()
            .position(|&b| b == b'=')
            .ok_or_else(|| bad("no `=`"))?;
        out.push((&record[..eq], &record[eq + 1..]));
        data = &data[len..];
    }
    Ok(out)
}

/// Writes PAX records (the inverse of [`parse_pax`]): each `"<len> <key>=<value>\n"`, where
/// `<len>` counts its own digits too.
pub fn encode_pax(records: &[PaxRecord<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in records {
        let body = key.len() + value.len() + 3; // ' ', '=', '\n'
        let mut len = body + 1;
        while len != body + len.to_string().len() {
            len = body + len.to_string().len();
        }
        out.extend_from_slice(format!("{len} ").as_bytes());
        out.extend_from_slice(key);
        out.push(b'=');
        out.extend_from_slice(value);
        out.push(b'\n');
    }
    out
}

fn read_pax(raw: Option<&[u8]>, size: u64) -> Result<PaxFields, EntryFault> {
    let mut pax = PaxFields::default();
    let Some(raw) = raw else {
        return Ok(pax);
    };
    for (key, value) in parse_pax(raw)? {
        match key {
            b"path" => pax.path = Some(value.to_vec()),
            b"linkpath" => pax.linkpath = Some(value.to_vec()),
            b"uid" => pax.uid = Some(parse_pax_u64("uid", value)?),
            b"gid" => pax.gid = Some(parse_pax_u64("gid", value)?),
            b"mtime" => pax.mtime = Some(parse_pax_mtime(value)?),
            // `size` is applied by the tar crate itself; make sure it was.
            b"size" => {
                if parse_pax_u64("size", value)? != size {
                    return Err(EntryFault::Header("PAX size not applied".into()));
                }
            }
            _ => {
                if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    pax.xattrs.push((name.to_vec(), value.to_vec()));
                } else if key.starts_with(b"GNU.sparse.") {
                    pax.sparse = true;
                }
            }
        }
    }
    Ok(pax)
}

/// Stream bytes kept by a [`Tap`]: those at positions from `keep_from` on, while recording.
#[derive(Default)]
struct TapState {
    /// Stream position of the next byte read.
    pos: u64,
    /// Position of `kept[0]`.
    kept_at: u64,
    kept: Vec<u8>,
    recording: bool,
    /// When splitting: the pieces so far.
    split: Option<Splitter>,
}

/// Sorts the stream's bytes into inline runs and external file contents.
#[derive(Default)]
struct Splitter {
    chunks: Vec<(Option<Vec<u8>>, Option<Digest>, u64)>,
    inline: Vec<u8>,
    /// Stream positions of the current external content.
    hole: (u64, u64),
}

impl Splitter {
    fn feed(&mut self, pos: u64, bytes: &[u8]) {
        let end = pos + bytes.len() as u64;
        let (hs, he) = self.hole;
        // The part before the hole and the part after it are inline.
        let before = hs.clamp(pos, end) - pos;
        let after = he.clamp(pos, end) - pos;
        self.inline.extend_from_slice(&bytes[..before as usize]);
        self.inline
            .extend_from_slice(&bytes[after.max(before) as usize..]);
    }

    fn flush(&mut self) {
        if !self.inline.is_empty() {
            self.chunks
                .push((Some(std::mem::take(&mut self.inline)), None, 0));
        }
    }

    fn into_chunks(mut self) -> Result<Vec<LayerChunk>, EntryFault> {
        self.flush();
        self.chunks
            .into_iter()
            .map(|c| match c {
                (Some(bytes), _, _) => Ok(LayerChunk::Inline(bytes)),
                (None, Some(digest), size) => Ok(LayerChunk::External { digest, size }),
                (None, None, _) => Err(EntryFault::Header(
                    "external content without a digest".into(),
                )),
            })
            .collect()
    }
}

/// A reader under the tar crate that can keep what the crate reads between two members.
struct Tap<R> {
    inner: R,
    state: Rc<RefCell<TapState>>,
}

impl<R: Read> Read for Tap<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(out)?;
        let mut st = self.state.borrow_mut();
        if st.recording {
            let skip = st.kept_at.saturating_sub(st.pos).min(n as u64) as usize;
            st.kept.extend_from_slice(&out[skip..n]);
        }
        let pos = st.pos;
        if let Some(split) = &mut st.split {
            split.feed(pos, &out[..n]);
        }
        st.pos += n as u64;
        Ok(n)
    }
}

impl TapState {
    /// Starts keeping bytes from stream position `at` (the end of the last member's data).
    fn record_from(&mut self, at: u64) {
        self.kept.clear();
        self.kept_at = at;
        self.recording = true;
    }

    /// Stops recording and returns the data of the PAX member (`x`) among the metadata members
    /// kept before the header at `header_at`, if there is one.
    fn take_pax(&mut self, header_at: u64) -> Result<Option<Vec<u8>>, EntryFault> {
        self.recording = false;
        let lost = || EntryFault::Header("metadata members out of step".into());
        let end = usize::try_from(header_at.checked_sub(self.kept_at).ok_or_else(lost)?)
            .map_err(|_| lost())?;
        let kept = self.kept.get(..end).ok_or_else(lost)?;
        let mut pax = None;
        let mut at = 0usize;
        while at < kept.len() {
            // Every header here was read by the tar crate already; anything inconsistent
            // means we lost track, never a reason to read past what was kept.
            let data_at = at.checked_add(512).ok_or_else(lost)?;
            let header = kept.get(at..data_at).ok_or_else(lost)?;
            let size = parse_numeric(&header[124..136])
                .and_then(|n| usize::try_from(n).ok())
                .filter(|&n| n <= kept.len())
                .ok_or_else(lost)?;
            let data = kept.get(data_at..data_at + size).ok_or_else(lost)?;
            if header[156] == b'x' {
                pax = Some(data.to_vec());
            }
            at = data_at + size.div_ceil(512) * 512;
        }
        self.kept.clear(); // capacity kept for the next member
        Ok(pax)
    }
}

/// Writes external objects into a digest store, atomically.
struct ObjectWriter {
    store: PathBuf,
    file: tempfile::NamedTempFile,
    /// The fs-verity algorithm enabled on the object (the image's).
    verity: HashAlgorithm,
}

impl ObjectWriter {
    fn new(store: &Path, verity: HashAlgorithm) -> Result<Self, TarError> {
        let err = |source| TarError::Store {
            path: store.to_owned(),
            source,
        };
        std::fs::create_dir_all(store).map_err(err)?;
        let file = tempfile::Builder::new()
            .prefix(".tmp-object-")
            .tempfile_in(store)
            .map_err(err)?;
        Ok(ObjectWriter {
            store: store.to_owned(),
            file,
            verity,
        })
    }

    fn write(&mut self, data: &[u8]) -> Result<(), TarError> {
        self.file.write_all(data).map_err(|source| TarError::Store {
            path: self.file.path().to_owned(),
            source,
        })
    }

    /// Renames the finished object to its final `XX/rest` name; an existing object of that name
    /// is kept (same digest, same content). Without a hook the object is synced and fs-verity is
    /// tried on it (as C mkcomposefs does); with one, the hook does what its store needs.
    fn commit(self, object_path: &str, hook: Option<&ObjectHook>) -> Result<(), TarError> {
        let dest = self.store.join(object_path);
        let err = |source| TarError::Store {
            path: dest.clone(),
            source,
        };
        if dest.exists() {
            return Ok(());
        }
        let dir = dest.parent().expect("object path has a folder");
        std::fs::create_dir_all(dir).map_err(err)?;
        match hook {
            // A repository syncs its filesystem once, before any object becomes reachable
            // (composefs-rs's ordering): no fsync per object.
            Some(hook) => {
                let temp = self.file.into_temp_path();
                (hook.0)(&temp).map_err(err)?;
                temp.persist(&dest).map_err(|e| err(e.error))?;
            }
            None => {
                self.file.as_file().sync_all().map_err(err)?;
                // fs-verity needs the file closed for writing.
                let temp = self.file.into_temp_path();
                crate::store::try_enable_verity(&temp, self.verity);
                temp.persist(&dest).map_err(|e| err(e.error))?;
                std::fs::File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(err)?;
            }
        }
        Ok(())
    }
}

/// Reads every member of a plain (already decompressed) tar stream and hands each to `f` in
/// archive order. Global PAX headers are skipped. Stops at the first error.
pub fn read_layer<R, E>(
    reader: R,
    opts: &TarOptions,
    f: impl FnMut(TarEntry) -> Result<(), E>,
) -> Result<(), E>
where
    R: Read,
    E: From<TarError>,
{
    read_layer_inner(reader, opts, None, false, f).map(drop)
}

/// Like [`read_layer`], and also splits the stream as composefs-rs stores a layer: the pieces
/// returned concatenate to every byte of `reader` (trailing padding after the end blocks
/// included; the reader is read to its end), each regular file over [`INLINE_MAX`] bytes being
/// one external piece. Objects go to the digest store through `hook`, if given.
pub fn split_layer<R, E>(
    reader: R,
    opts: &TarOptions,
    hook: Option<&ObjectHook>,
    f: impl FnMut(TarEntry) -> Result<(), E>,
) -> Result<Vec<LayerChunk>, E>
where
    R: Read,
    E: From<TarError>,
{
    read_layer_inner(reader, opts, hook, true, f)
}

/// Files up to this size are stored by the committer's threads when a hook is given.
const PARALLEL_MAX: u64 = 1 << 20;

/// An object read whole, to be stored by a committer thread.
struct Job {
    store: PathBuf,
    payload: String,
    data: Vec<u8>,
}

/// Threads that store small objects while the layer is read on, as composefs-rs writes objects
/// from several threads; a bounded queue keeps memory in check.
struct Committer {
    queue: std::sync::mpsc::SyncSender<Job>,
}

impl Committer {
    fn send(&self, job: Job) -> Result<(), TarError> {
        self.queue
            .send(job)
            .map_err(|_| TarError::Io(io::Error::other("object committer stopped")))
    }
}

fn read_layer_inner<R, E>(
    reader: R,
    opts: &TarOptions,
    hook: Option<&ObjectHook>,
    split: bool,
    f: impl FnMut(TarEntry) -> Result<(), E>,
) -> Result<Vec<LayerChunk>, E>
where
    R: Read,
    E: From<TarError>,
{
    let Some(hook) = hook else {
        return read_layer_serial(reader, opts, None, None, split, f);
    };
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 4));
    let (queue, jobs) = std::sync::mpsc::sync_channel::<Job>(4 * threads);
    let jobs = std::sync::Mutex::new(jobs);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| -> Result<(), TarError> {
                    loop {
                        let job = match jobs.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return Ok(()),
                        };
                        let Ok(job) = job else { return Ok(()) };
                        let mut w = ObjectWriter::new(&job.store, opts.algorithm)?;
                        w.write(&job.data)?;
                        w.commit(&job.payload, Some(hook))?;
                    }
                })
            })
            .collect();
        let committer = Committer { queue };
        let result = read_layer_serial(reader, opts, Some(hook), Some(&committer), split, f);
        drop(committer);
        let mut failure = None;
        for w in workers {
            match w.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failure = failure.or(Some(e)),
                Err(_) => {
                    failure = failure.or(Some(TarError::Io(io::Error::other(
                        "object committer thread panicked",
                    ))))
                }
            }
        }
        match failure {
            Some(e) => Err(e.into()),
            None => result,
        }
    })
}

fn read_layer_serial<R, E>(
    reader: R,
    opts: &TarOptions,
    hook: Option<&ObjectHook>,
    committer: Option<&Committer>,
    split: bool,
    mut f: impl FnMut(TarEntry) -> Result<(), E>,
) -> Result<Vec<LayerChunk>, E>
where
    R: Read,
    E: From<TarError>,
{
    let tap = Rc::new(RefCell::new(TapState {
        split: split.then(Splitter::default),
        ..TapState::default()
    }));
    let mut archive = ::tar::Archive::new(Tap {
        inner: reader,
        state: Rc::clone(&tap),
    });
    let mut entries = archive.entries().map_err(TarError::Io)?;
    let mut buf = vec![0u8; CHUNK];
    // Where the next member's metadata starts: the end of the last member's padded data.
    let mut next_header = 0u64;
    loop {
        tap.borrow_mut().record_from(next_header);
        let Some(entry) = entries.next() else { break };
        let mut entry = entry.map_err(TarError::Io)?;
        let name = || display_bytes(&entry.path_bytes());
        let pax = tap
            .borrow_mut()
            .take_pax(entry.raw_header_position())
            .map_err(|fault| TarError::Entry {
                entry: name(),
                fault,
            })?;
        next_header = entry.raw_file_position() + entry.size().div_ceil(512) * 512;
        let external = matches!(
            entry.header().entry_type(),
            ::tar::EntryType::Regular | ::tar::EntryType::Continuous
        ) && entry.size() > INLINE_MAX;
        if external {
            let mut st = tap.borrow_mut();
            let at = st.pos;
            if let Some(sp) = &mut st.split {
                if at != entry.raw_file_position() {
                    return Err(TarError::Entry {
                        entry: name(),
                        fault: EntryFault::Header("content out of step with the stream".into()),
                    }
                    .into());
                }
                sp.flush();
                sp.chunks.push((None, None, entry.size()));
                sp.hole = (at, at + entry.size());
            }
        }
        let converted = convert(&mut entry, opts, &mut buf, pax.as_deref(), hook, committer)?;
        if let Some(e) = converted {
            if external {
                if let (Some(sp), TarItem::Node(inode)) = (&mut tap.borrow_mut().split, &e.item) {
                    if let InodeKind::Regular(FileData::External { digest, .. }) = &inode.kind {
                        if let Some(last) = sp.chunks.last_mut() {
                            last.1 = digest.clone();
                        }
                    }
                }
            }
            f(e)?;
        }
    }
    if !split {
        return Ok(Vec::new());
    }
    // Everything after the end of the archive (the end blocks and record padding) is inline.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(TarError::Io)?;
    let splitter = tap.borrow_mut().split.take().unwrap_or_default();
    splitter.into_chunks().map_err(|fault| {
        TarError::Entry {
            entry: String::new(),
            fault,
        }
        .into()
    })
}

/// Turns one tar member into an entry; `None` for members that carry no file (global PAX).
fn convert<R: Read>(
    entry: &mut ::tar::Entry<'_, R>,
    opts: &TarOptions,
    buf: &mut [u8],
    raw_pax: Option<&[u8]>,
    hook: Option<&ObjectHook>,
    committer: Option<&Committer>,
) -> Result<Option<TarEntry>, TarError> {
    use ::tar::EntryType as T;
    let kind = entry.header().entry_type();
    if kind == T::XGlobalHeader {
        return Ok(None);
    }
    let pax = {
        let raw_name = display_bytes(&entry.path_bytes());
        read_pax(raw_pax, entry.size()).map_err(|fault| TarError::Entry {
            entry: raw_name,
            fault,
        })?
    };
    if pax.sparse || kind == T::GNUSparse {
        return Err(TarError::Entry {
            entry: display_bytes(&entry.path_bytes()),
            fault: EntryFault::Sparse,
        });
    }
    let raw_path: Vec<u8> = match &pax.path {
        Some(p) => p.clone(),
        None => entry.path_bytes().into_owned(),
    };
    let name = display_bytes(&raw_path);
    let fault = |fault| TarError::Entry {
        entry: name.clone(),
        fault,
    };
    let path = normalize_path(&raw_path).map_err(fault)?;
    let header = entry.header();
    let old = header.as_old();
    let numeric = |field: &'static str, bytes: &[u8]| {
        parse_numeric(bytes)
            .ok_or_else(|| fault(EntryFault::Header(format!("invalid {field} field"))))
    };
    let link_target = || -> Option<Vec<u8>> {
        pax.linkpath
            .clone()
            .or_else(|| entry.link_name_bytes().map(|c| c.into_owned()))
            .filter(|t| !t.is_empty())
    };

    let inode_kind = match kind {
        T::Link => {
            let target =
                link_target().ok_or_else(|| fault(EntryFault::MissingLinkTarget("hardlink")))?;
            let target = normalize_path(&target).map_err(fault)?;
            return Ok(Some(TarEntry {
                path,
                item: TarItem::Hardlink(target),
            }));
        }
        T::Directory => None,
        T::Symlink => {
            let target =
                link_target().ok_or_else(|| fault(EntryFault::MissingLinkTarget("symlink")))?;
            if target.len() > 4095 {
                return Err(fault(EntryFault::SymlinkTooLong));
            }
            Some(InodeKind::Symlink(target.into()))
        }
        T::Char | T::Block => {
            // Old (v7) headers have no device fields.
            let (major, minor) = match (header.as_ustar(), header.as_gnu()) {
                (Some(u), _) => (u.dev_major, u.dev_minor),
                (None, Some(g)) => (g.dev_major, g.dev_minor),
                _ => return Err(fault(EntryFault::MissingDeviceNumbers)),
            };
            let major = numeric("device major", &major)? as u32;
            let minor = numeric("device minor", &minor)? as u32;
            let rdev = makedev(major, minor);
            Some(if kind == T::Char {
                InodeKind::CharDevice(rdev)
            } else {
                InodeKind::BlockDevice(rdev)
            })
        }
        T::Fifo => Some(InodeKind::Fifo),
        T::Regular | T::Continuous => Some(InodeKind::Regular(FileData::Inline(Box::new([])))),
        other => return Err(fault(EntryFault::UnsupportedType(other.as_byte()))),
    };

    let mode = numeric("mode", &old.mode)?;
    let uid = match pax.uid {
        Some(v) => v,
        None => numeric("uid", &old.uid)?,
    };
    let gid = match pax.gid {
        Some(v) => v,
        None => numeric("gid", &old.gid)?,
    };
    let mtime = match pax.mtime {
        Some(m) => m,
        None => {
            let sec = numeric("mtime", &old.mtime)?;
            let sec = i64::try_from(sec).map_err(|_| fault(EntryFault::MtimeTooLarge(sec)))?;
            Mtime::new(sec, 0)
        }
    };
    let permissions = (mode & 0o7777) as u16;
    let mut inode = match inode_kind {
        None => Inode::directory(permissions),
        Some(k) => Inode::new(k, permissions),
    };
    inode.uid = to_u32("uid", uid).map_err(fault)?;
    inode.gid = to_u32("gid", gid).map_err(fault)?;
    inode.mtime = mtime;
    for (k, v) in &pax.xattrs {
        inode.set_xattr(k, v);
    }

    if let InodeKind::Regular(data) = &mut inode.kind {
        let size = entry.size();
        let content_err = |source| TarError::Content {
            entry: name.clone(),
            source,
        };
        if size <= INLINE_MAX {
            let mut content = Vec::with_capacity(size as usize);
            entry
                .by_ref()
                .take(size)
                .read_to_end(&mut content)
                .map_err(content_err)?;
            if content.len() as u64 != size {
                return Err(content_err(io::ErrorKind::UnexpectedEof.into()));
            }
            *data = FileData::Inline(content.into());
        } else {
            let mut hasher = FsVerityHasher::new(opts.algorithm);
            // Small objects go whole to the committer's threads; others stream to a file here.
            let queued = match (&opts.digest_store, committer) {
                (Some(store), Some(c)) if size <= PARALLEL_MAX => {
                    Some((store, c, Vec::with_capacity(size as usize)))
                }
                _ => None,
            };
            let mut object = match (&opts.digest_store, &queued) {
                (Some(store), None) => Some(ObjectWriter::new(store, opts.algorithm)?),
                _ => None,
            };
            let mut queued = queued;
            let mut seen = 0u64;
            loop {
                let n = match entry.read(buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(content_err(e)),
                };
                hasher.update(&buf[..n]);
                if let Some(o) = &mut object {
                    o.write(&buf[..n])?;
                }
                if let Some((_, _, data)) = &mut queued {
                    data.extend_from_slice(&buf[..n]);
                }
                seen += n as u64;
            }
            if seen != size {
                return Err(content_err(io::ErrorKind::UnexpectedEof.into()));
            }
            let digest = hasher.finish();
            let payload = digest.object_path();
            if let Some(o) = object {
                o.commit(&payload, hook)?;
            }
            if let Some((store, c, data)) = queued {
                c.send(Job {
                    store: store.clone(),
                    payload: payload.clone(),
                    data,
                })?;
            }
            *data = FileData::External {
                payload: Some(payload.into_bytes().into()),
                digest: Some(digest),
            };
        }
        inode.size = size;
    }
    Ok(Some(TarEntry {
        path,
        item: TarItem::Node(inode),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn paths_normalise() {
        for (raw, want) in [
            (&b"/"[..], &b""[..]),
            (b"./", b""),
            (b".", b""),
            (b"./usr/bin/", b"usr/bin"),
            (b"/usr//./lib", b"usr/lib"),
            (b"a\xff/b", b"a\xff/b"),
        ] {
            assert_eq!(&*normalize_path(raw).unwrap(), want, "{raw:?}");
        }
        assert_eq!(normalize_path(b"a/../b"), Err(EntryFault::DotDot));
        assert_eq!(normalize_path(b"../etc"), Err(EntryFault::DotDot));
    }

    #[test]
    fn pax_mtime_keeps_nanoseconds_exactly() {
        let m = |s: &str| parse_pax_mtime(s.as_bytes());
        assert_eq!(m("1700000000.5"), Ok(Mtime::new(1700000000, 500000000)));
        assert_eq!(m("1700000000"), Ok(Mtime::new(1700000000, 0)));
        assert_eq!(m("1.000000001"), Ok(Mtime::new(1, 1)));
        assert_eq!(m("1.1234567899999"), Ok(Mtime::new(1, 123456789)));
        assert_eq!(m("1."), Ok(Mtime::new(1, 0)));
        for bad in ["-1.5", "-1", "", ".5", "1.5x", "1e9", "x", " 1", "1.-5"] {
            assert!(
                matches!(m(bad), Err(EntryFault::BadPaxMtime(_))),
                "{bad}: {:?}",
                m(bad)
            );
        }
    }

    #[test]
    fn numeric_fields_parse_like_tar() {
        assert_eq!(parse_numeric(b"0000644\0"), Some(0o644));
        assert_eq!(parse_numeric(b"\0\0\0\0\0\0\0\0"), Some(0));
        assert_eq!(parse_numeric(b"        "), Some(0));
        assert_eq!(parse_numeric(b"  755 \0"), Some(0o755));
        assert_eq!(parse_numeric(b"\x80\0\0\0\0\0\x01\x00"), Some(256));
        assert_eq!(parse_numeric(b"12 34\0"), None);
        assert_eq!(parse_numeric(b"0009\0"), None);
    }

    #[test]
    fn makedev_matches_linux_encoding() {
        assert_eq!(makedev(0, 0), 0);
        assert_eq!(makedev(1, 3), 0x103);
        assert_eq!(makedev(8, 17), 0x811);
        // Minor above 255: high bits go above the major.
        assert_eq!(makedev(259, 0x12345), (0x123 << 20) | (259 << 8) | 0x45);
    }

    proptest! {
        #[test]
        fn pax_records_round_trip(
            records in prop::collection::vec(
                (
                    prop::collection::vec(any::<u8>().prop_filter("no =", |b| *b != b'='), 1..20),
                    prop::collection::vec(any::<u8>(), 0..300),
                ),
                0..6,
            )
        ) {
            let refs: Vec<PaxRecord<'_>> =
                records.iter().map(|(k, v)| (&k[..], &v[..])).collect();
            let encoded = encode_pax(&refs);
            prop_assert_eq!(parse_pax(&encoded).unwrap(), refs);
        }

        #[test]
        fn pax_mtime_round_trips(sec in 0i64..i64::MAX, nsec in 0u32..1_000_000_000) {
            let text = format!("{sec}.{nsec:09}");
            prop_assert_eq!(parse_pax_mtime(text.as_bytes()), Ok(Mtime::new(sec, nsec)));
        }
    }
}
