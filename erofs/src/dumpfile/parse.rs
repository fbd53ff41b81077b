//! The dumpfile parser: every acceptance rule and error message of C mkcomposefs 1.0.8
//! (`tree_from_dump` and friends), building a [`Tree`] in one pass.
//!
//! The order in which C checks things decides which message a bad line gets, so the line
//! handler follows C's order step by step. Speed comes from reusing scratch buffers (a field
//! without a backslash is never copied) and from caching the parent directory of the previous
//! line, since dumpfiles are normally written depth-first.
//!
//! Hardlink lines are resolved after the whole file, as in C. Until then each one sits in its
//! directory as a `link` entry whose inode number is the index of its pending fixup (never a
//! real inode): the parser is the only code that sees the tree in that state, and it rewrites
//! every such entry before returning.
#![forbid(unsafe_code)]

use std::fmt;
use std::io::{self, BufRead};

use super::escape::{unescape, UnescapeError};
use crate::tree::{
    find_byte, Digest, FileData, FileType, Inode, InodeId, InodeKind, Mtime, Tree, Xattr,
    XattrInterner, NAME_MAX,
};

/// Parser settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParseOptions {
    /// C's `CFS_PARSE_STRICT` checks (§9.3): no RDEV on non-devices, symlink SIZE equal to the
    /// target length and no symlink CONTENT, a trailing newline.
    pub strict: bool,
}

impl ParseOptions {
    /// Strict iff `CFS_PARSE_STRICT` is set to anything (even empty), as in C.
    pub fn from_env() -> Self {
        ParseOptions {
            strict: std::env::var_os("CFS_PARSE_STRICT").is_some(),
        }
    }
}

/// Longest inline CONTENT (`LCFS_INLINE_CONTENT_MAX`).
pub const INLINE_CONTENT_MAX: usize = 5000;
/// PAYLOAD and symlink targets must be shorter than `PATH_MAX` (4096).
pub const PAYLOAD_MAX: usize = 4095;
/// Longest xattr part of a line, and longest xattr value.
pub const XATTR_LINE_MAX: usize = 65535;
/// Per-inode xattr budget for dumpfile input (`LCFS_INODE_EXTERNAL_XATTR_MAX`, §5.9).
pub const XATTR_BUDGET: usize = 32767;
/// Largest number of chunks of an external file (`LCFS_MAX_NONINLINE_CHUNKS`).
const MAX_CHUNKS: u64 = 1024;

/// What went wrong; [`ParseError::message`] renders it exactly as C does.
#[derive(Debug)]
#[non_exhaustive]
pub enum ParseErrorKind {
    EmbeddedNul {
        position: usize,
    },
    Escape(UnescapeError),
    EmptyPath,
    /// The raw field text.
    InvalidInteger(Box<[u8]>),
    /// The mode truncated to 32 bits, as C prints it.
    InvalidMode(u32),
    RootNotDirectory,
    MultipleRoots,
    RootNotPresent,
    ParentMissing(Box<[u8]>),
    ParentNotDirectory(Box<[u8]>),
    DotName(Box<[u8]>),
    /// Empty, over-long or duplicate name.
    CantAddChild,
    DirectoryHardlink,
    ContentSize {
        actual: u64,
        expected: u64,
    },
    NonZeroDevnum,
    InvalidSymlink,
    SymlinkSize {
        actual: u64,
        expected: u64,
    },
    SymlinkContent,
    InvalidPayload,
    InlineTooLarge(u64),
    TooManyXattrs,
    MissingXattrEquals,
    CantSetXattr,
    MissingNewline,
    NoHardlinkTarget,
    HardlinkTargetMissing(Box<[u8]>),
    SelfHardlink(Box<[u8]>),
    /// C detects it when writing: "cannot write file: …".
    HardlinkCycle,
    /// C detects it when writing: an external file needs more than 1024 chunks.
    FileTooLarge,
    NoFiles,
    /// Not a C error: the DIGEST of an external file does not start with 64 hex digits. C
    /// leaves the missing bytes uninitialised, so no deterministic output could match it.
    InvalidDigest(Box<[u8]>),
    Io(io::Error),
}

/// A dumpfile rejected: C's reason plus the 1-based line at fault (0 when no line is).
#[derive(Debug)]
pub struct ParseError {
    line: u64,
    kind: ParseErrorKind,
}

impl ParseError {
    fn new(line: u64, kind: ParseErrorKind) -> Self {
        ParseError { line, kind }
    }

    /// The line at fault, if any.
    pub fn line(&self) -> Option<u64> {
        (self.line > 0).then_some(self.line)
    }

    pub fn kind(&self) -> &ParseErrorKind {
        &self.kind
    }

    /// C's message, byte for byte (paths are printed raw, as C's `%s` does), without the line.
    pub fn message_bytes(&self) -> Vec<u8> {
        use ParseErrorKind::*;
        let mut m = Vec::new();
        let text = |m: &mut Vec<u8>, s: &str| m.extend_from_slice(s.as_bytes());
        match &self.kind {
            EmbeddedNul { position } => text(
                &mut m,
                &format!("Invalid embedded NUL character at position {position}"),
            ),
            Escape(UnescapeError::UnsupportedEscape(c)) => {
                text(&mut m, "Unsupported escape type ");
                m.push(*c);
            }
            Escape(e) => text(&mut m, &e.to_string()),
            EmptyPath => text(&mut m, "Invalid empty path"),
            InvalidInteger(s) => {
                text(&mut m, "Invalid integer ");
                m.extend_from_slice(s);
            }
            InvalidMode(mode) => text(&mut m, &format!("Invalid mode {mode:o}")),
            RootNotDirectory => text(&mut m, "Root must be a directory"),
            MultipleRoots => text(&mut m, "Can't have multiple roots"),
            RootNotPresent => text(&mut m, "Root node not present"),
            ParentMissing(p) => {
                text(&mut m, "Parent directory missing for ");
                m.extend_from_slice(p);
            }
            ParentNotDirectory(p) => {
                text(&mut m, "Parent must be a directory for ");
                m.extend_from_slice(p);
            }
            DotName(p) => {
                text(&mut m, "Invalid . or .. in path: ");
                m.extend_from_slice(p);
            }
            CantAddChild => text(&mut m, "Can't add child"),
            DirectoryHardlink => text(&mut m, "Directories can't be hardlinked"),
            // C prints both with %lld.
            ContentSize { actual, expected } => text(
                &mut m,
                &format!(
                    "Invalid content size {}, must match size {}",
                    *actual as i64, *expected as i64
                ),
            ),
            NonZeroDevnum => text(&mut m, "Non-zero devnum on non-device"),
            InvalidSymlink => text(&mut m, "Invalid symlink"),
            SymlinkSize { actual, expected } => text(
                &mut m,
                &format!(
                    "Invalid symlink size {}, must match size {}",
                    *actual as i64, *expected as i64
                ),
            ),
            SymlinkContent => text(&mut m, "Symlink cannot have content"),
            InvalidPayload => text(&mut m, "Invalid payload"),
            InlineTooLarge(n) => text(
                &mut m,
                &format!("Inline content size {n} exceeds maximum {INLINE_CONTENT_MAX}"),
            ),
            TooManyXattrs => text(&mut m, "Too many xattrs"),
            MissingXattrEquals => text(&mut m, "Missing = in xattr"),
            CantSetXattr => text(&mut m, "Can't set xattr"),
            MissingNewline => text(&mut m, "Missing trailing newline"),
            NoHardlinkTarget => text(&mut m, "No target path for the hardlink"),
            HardlinkTargetMissing(p) => {
                text(&mut m, "No target at ");
                m.extend_from_slice(p);
                text(&mut m, " for hardlink");
            }
            SelfHardlink(p) => {
                text(&mut m, "Self-referential hardlink ");
                m.extend_from_slice(p);
            }
            HardlinkCycle => text(
                &mut m,
                "cannot write file: Too many levels of symbolic links",
            ),
            FileTooLarge => text(&mut m, "cannot write file: File too large"),
            NoFiles => text(&mut m, "No files in dump file"),
            InvalidDigest(d) => {
                text(&mut m, "Invalid digest ");
                m.extend_from_slice(d);
            }
            Io(e) => text(&mut m, &format!("Error reading from file: {e}")),
        }
        m
    }

    /// C's message as text (non-UTF-8 bytes replaced), e.g. for `mkcomposefs: <message>`.
    pub fn message(&self) -> String {
        String::from_utf8_lossy(&self.message_bytes()).into_owned()
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "line {}: {}", self.line, self.message())
        } else {
            f.write_str(&self.message())
        }
    }
}

impl std::error::Error for ParseError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ParseErrorKind::Io(e) => Some(e),
            ParseErrorKind::Escape(e) => Some(e),
            _ => None,
        }
    }
}

impl From<UnescapeError> for ParseErrorKind {
    fn from(e: UnescapeError) -> Self {
        ParseErrorKind::Escape(e)
    }
}

type Kind = ParseErrorKind;

/// Parses a dumpfile from a reader. See [`parse_bytes`].
pub fn parse(mut input: impl BufRead, opts: &ParseOptions) -> Result<Tree, ParseError> {
    let mut parser = Parser::new(*opts);
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        let n = input
            .read_until(b'\n', &mut line)
            .map_err(|e| ParseError::new(parser.lineno + 1, Kind::Io(e)))?;
        if n == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
            parser.line(&line)?;
        } else {
            parser.last_line(&line)?;
            break;
        }
    }
    parser.finish()
}

/// Parses a dumpfile held in memory, accepting and rejecting exactly what C mkcomposefs
/// 1.0.8 does (composefs-format.md §9), with C's messages.
///
/// The tree keeps what the lines say: a directory's NLINK and SIZE, the SIZE of devices,
/// FIFOs and sockets. A regular file with CONTENT becomes [`FileData::Inline`]; one of SIZE 0
/// is `Inline` and empty; any other is [`FileData::External`], whose payload is `None` when
/// PAYLOAD is `-` or empty (C then writes no redirect). Each hardlink line becomes a `link`
/// entry to its final target, whose own line keeps the primary entry.
///
/// Known divergences from C, all where C's output is undefined or it hangs:
/// - DIGEST of an external file that is not 64 hex digits (more are ignored, as in C): C
///   copies uninitialised memory into the image; here it is [`ParseErrorKind::InvalidDigest`].
///   An absent DIGEST field counts as malformed too; `-` means "no digest".
/// - A hardlink chain that runs into a cycle it is not part of makes C loop forever in some
///   orders; every cycle is [`ParseErrorKind::HardlinkCycle`] here.
/// - In strict mode C misses a missing final newline when the input ends exactly at the end of
///   one of its read buffers; here it is always reported.
pub fn parse_bytes(input: &[u8], opts: &ParseOptions) -> Result<Tree, ParseError> {
    let mut parser = Parser::new(*opts);
    let mut rest = input;
    while !rest.is_empty() {
        match rest.iter().position(|&b| b == b'\n') {
            Some(i) => {
                parser.line(&rest[..i])?;
                rest = &rest[i + 1..];
            }
            None => {
                parser.last_line(rest)?;
                break;
            }
        }
    }
    parser.finish()
}

/// A hardlink line waiting for the end of the file.
struct Fixup {
    parent: InodeId,
    name: Box<[u8]>,
    /// `None` for a `-` PAYLOAD.
    target: Option<Box<[u8]>>,
    line: u64,
}

/// Where a path lookup ended.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Node {
    Real(InodeId),
    /// A hardlink line not resolved yet (index into the fixups).
    Pending(usize),
}

/// Reusable buffers for unescaped fields.
#[derive(Default)]
struct Scratch {
    /// The current line has no backslash: fields need neither unescaping nor NUL truncation.
    plain: bool,
    path: Vec<u8>,
    payload: Vec<u8>,
    content: Vec<u8>,
    digest: Vec<u8>,
    key: Vec<u8>,
    value: Vec<u8>,
}

/// A field unescaped (into `buf` when it has escapes), then cut at its first NUL as C's
/// strings are.
fn c_field<'a>(plain: bool, field: &'a [u8], buf: &'a mut Vec<u8>) -> Result<&'a [u8], Kind> {
    if plain {
        return Ok(field);
    }
    Ok(c_str(unescape(field, buf)?))
}

/// A field unescaped (into `buf` when it has escapes), NULs kept (CONTENT, xattr values).
fn raw_field<'a>(plain: bool, field: &'a [u8], buf: &'a mut Vec<u8>) -> Result<&'a [u8], Kind> {
    if plain {
        return Ok(field);
    }
    Ok(unescape(field, buf)?)
}

struct Parser {
    opts: ParseOptions,
    lineno: u64,
    tree: Option<Tree>,
    fixups: Vec<Fixup>,
    /// Components of the last parent directory path, concatenated, with for each its end
    /// offset in `cache_names` and its directory.
    cache_names: Vec<u8>,
    cache: Vec<(usize, InodeId)>,
    /// First line holding an external file C's writer would refuse (too many chunks).
    too_large: Option<u64>,
    scratch: Scratch,
    /// Shares repeated xattr names and values (most lines repeat a few labels).
    interner: XattrInterner,
}

/// Splits like C's `split_at`: up to the separator, or everything when there is none.
fn split_at<'a>(rest: &mut &'a [u8], sep: u8) -> (&'a [u8], bool) {
    match find_byte(rest, sep) {
        Some(i) => {
            let part = &rest[..i];
            *rest = &rest[i + 1..];
            (part, true)
        }
        None => {
            let part = *rest;
            *rest = &[];
            (part, false)
        }
    }
}

/// The bytes before the first NUL: C keeps paths, payloads, digests and xattr names in C
/// strings, so an escaped `\x00` ends them.
fn c_str(b: &[u8]) -> &[u8] {
    match find_byte(b, 0) {
        Some(i) => &b[..i],
        None => b,
    }
}

/// C `strtoull` over the whole field: leading white space, an optional sign (`-` negates
/// modulo 2^64), digits of `radix`; overflow saturates (C ignores ERANGE). Empty fields and
/// trailing junk are errors.
fn parse_int(field: &[u8], radix: u32) -> Result<u64, Kind> {
    let invalid = || Kind::InvalidInteger(field.into());
    let mut i = 0;
    while i < field.len() && matches!(field[i], b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
        i += 1;
    }
    let mut negative = false;
    if let Some(&s @ (b'+' | b'-')) = field.get(i) {
        negative = s == b'-';
        i += 1;
    }
    let start = i;
    let mut value: u64 = 0;
    let mut overflow = false;
    while let Some(d) = field.get(i).and_then(|&c| char::from(c).to_digit(radix)) {
        match value
            .checked_mul(u64::from(radix))
            .and_then(|v| v.checked_add(u64::from(d)))
        {
            Some(v) => value = v,
            None => overflow = true,
        }
        i += 1;
    }
    if i == start || i != field.len() {
        return Err(invalid());
    }
    Ok(if overflow {
        u64::MAX
    } else if negative {
        value.wrapping_neg()
    } else {
        value
    })
}

/// `sec.nsec`, both integers; nsec is a count, truncated to 32 bits.
fn parse_mtime(field: &[u8]) -> Result<Mtime, Kind> {
    let mut rest = field;
    let (sec, _) = split_at(&mut rest, b'.');
    let sec = parse_int(sec, 10)?;
    let nsec = parse_int(rest, 10)?;
    Ok(Mtime::new(sec as i64, nsec as u32))
}

/// 64 hex digits at the start of the (NUL-terminated) field; C ignores anything after them.
fn parse_digest(digest: &[u8]) -> Option<Digest> {
    /// Value of each hex digit, 0xff for anything else.
    const HEX: [u8; 256] = {
        let mut t = [0xffu8; 256];
        let mut i = 0;
        while i < 10 {
            t[b'0' as usize + i] = i as u8;
            i += 1;
        }
        let mut i = 0;
        while i < 6 {
            t[b'a' as usize + i] = 10 + i as u8;
            t[b'A' as usize + i] = 10 + i as u8;
            i += 1;
        }
        t
    };
    let hex = digest.get(..64)?;
    let mut raw = [0u8; 32];
    let mut bad = 0u8;
    for (r, pair) in raw.iter_mut().zip(hex.chunks_exact(2)) {
        let (h, l) = (HEX[pair[0] as usize], HEX[pair[1] as usize]);
        bad |= h | l;
        *r = h << 4 | l;
    }
    // Every valid digit is below 16; 0xff marks an invalid one.
    (bad < 16).then_some(Digest::Sha256(raw))
}

/// C's check for external files: at most 1024 chunks of at most 2^43 bytes, computed with
/// C's wrapping round-up (so sizes within 2^43 of 2^64 pass, as they do in C).
fn too_many_chunks(size: u64) -> bool {
    let bits = (64 - (size - 1).leading_zeros()).clamp(12, 12 + 31);
    let chunk = 1u64 << bits;
    size.wrapping_add(chunk - 1) / chunk > MAX_CHUNKS
}

impl Parser {
    fn new(opts: ParseOptions) -> Self {
        Parser {
            opts,
            lineno: 0,
            tree: None,
            fixups: Vec::new(),
            cache_names: Vec::new(),
            cache: Vec::new(),
            too_large: None,
            scratch: Scratch::default(),
            interner: XattrInterner::new(),
        }
    }

    /// A final line without `\n`: an error in strict mode, parsed normally otherwise.
    fn last_line(&mut self, line: &[u8]) -> Result<(), ParseError> {
        if self.opts.strict {
            return Err(ParseError::new(self.lineno + 1, Kind::MissingNewline));
        }
        self.line(line)
    }

    fn line(&mut self, line: &[u8]) -> Result<(), ParseError> {
        self.lineno += 1;
        self.parse_line(line)
            .map_err(|kind| ParseError::new(self.lineno, kind))
    }

    /// Looks a child up during parsing, telling pending hardlink entries apart.
    fn child(tree: &Tree, dir: InodeId, name: &[u8]) -> Option<Node> {
        let e = tree.lookup(dir, name)?;
        Some(if e.link {
            Node::Pending(e.inode.index())
        } else {
            Node::Real(e.inode)
        })
    }

    /// C's `lookup_parent_path`: runs of `/` separate components, every component but the last
    /// must name a directory. Returns the parent and the offset of the last component. Reuses
    /// the previous line's parent chain as far as it matches.
    fn resolve_parent(&mut self, path: &[u8]) -> Result<(InodeId, usize), Kind> {
        let tree = self.tree.as_ref().expect("root exists");
        let mut cur = Some(InodeId::ROOT);
        let mut depth = 0;
        let mut i = 0;
        loop {
            while i < path.len() && path[i] == b'/' {
                i += 1;
            }
            let start = i;
            i = find_byte(&path[i..], b'/').map_or(path.len(), |n| i + n);
            if i == path.len() {
                return match cur {
                    Some(dir) => Ok((dir, start)),
                    None => Err(Kind::ParentNotDirectory(path.into())),
                };
            }
            let comp = &path[start..i];
            let Some(dir) = cur else {
                // A non-directory has no children.
                return Err(Kind::ParentMissing(path.into()));
            };
            if depth < self.cache.len() {
                let from = if depth == 0 {
                    0
                } else {
                    self.cache[depth - 1].0
                };
                let (to, id) = self.cache[depth];
                if &self.cache_names[from..to] == comp {
                    cur = Some(id);
                    depth += 1;
                    continue;
                }
                self.cache.truncate(depth);
                self.cache_names.truncate(from);
            }
            cur = match Self::child(tree, dir, comp) {
                None => return Err(Kind::ParentMissing(path.into())),
                Some(Node::Real(id)) if tree.inode(id).is_dir() => {
                    self.cache_names.extend_from_slice(comp);
                    self.cache.push((self.cache_names.len(), id));
                    Some(id)
                }
                Some(_) => None,
            };
            depth += 1;
        }
    }

    fn parse_line(&mut self, line: &[u8]) -> Result<(), Kind> {
        if let Some(position) = find_byte(line, 0) {
            return Err(Kind::EmbeddedNul { position });
        }
        let mut rest = line;
        let mut fields: [&[u8]; 11] = [&[]; 11];
        for field in fields.iter_mut() {
            *field = split_at(&mut rest, b' ').0;
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        // Without a backslash no field can hold an escape (nor, after the check above, a NUL),
        // so every field is its own unescaped, NUL-free text.
        scratch.plain = find_byte(line, b'\\').is_none();
        let r = self.parse_fields(&mut scratch, fields, rest);
        self.scratch = scratch;
        r
    }

    fn parse_fields(
        &mut self,
        s: &mut Scratch,
        f: [&[u8]; 11],
        xattr_part: &[u8],
    ) -> Result<(), Kind> {
        let [path_f, size_f, mode_f, nlink_f, uid_f, gid_f, rdev_f, mtime_f, payload_f, content_f, digest_f] =
            f;
        let path = c_field(s.plain, path_f, &mut s.path)?;
        if path.is_empty() {
            return Err(Kind::EmptyPath);
        }
        let (hardlink, mode_f) = match mode_f.split_first() {
            Some((b'@', m)) => (true, m),
            _ => (false, mode_f),
        };
        let mode = parse_int(mode_f, 8)? as u32;
        let Some(ftype) = FileType::from_mode(mode) else {
            return Err(Kind::InvalidMode(mode));
        };
        let permissions = (mode & 0o7777) as u16;
        let is_dir = ftype == FileType::Directory;

        // Place the node (C's tree_add_node) before looking at any other field.
        let id = if path == b"/" {
            if !is_dir {
                return Err(Kind::RootNotDirectory);
            }
            if self.tree.is_some() {
                return Err(Kind::MultipleRoots);
            }
            self.tree = Some(Tree::new(Inode::directory(permissions)));
            InodeId::ROOT
        } else {
            if self.tree.is_none() {
                return Err(Kind::RootNotPresent);
            }
            let (parent, name_at) = self.resolve_parent(path)?;
            let name = &path[name_at..];
            if name == b"." || name == b".." {
                return Err(Kind::DotName(path.into()));
            }
            let tree = self.tree.as_mut().expect("root exists");
            if hardlink {
                // C adds the node, then refuses a directory mode.
                let index = self.fixups.len();
                tree.link(parent, name, InodeId(index as u32))
                    .map_err(|_| Kind::CantAddChild)?;
                if is_dir {
                    return Err(Kind::DirectoryHardlink);
                }
                let target = match payload_f {
                    b"-" => None,
                    p => Some(c_field(s.plain, p, &mut s.payload)?.into()),
                };
                self.fixups.push(Fixup {
                    parent,
                    name: name.into(),
                    target,
                    line: self.lineno,
                });
                return Ok(());
            }
            let kind = match ftype {
                FileType::Directory => InodeKind::Directory(Default::default()),
                _ => InodeKind::Fifo, // placeholder until the fields are known
            };
            tree.add(parent, name, Inode::new(kind, permissions))
                .map_err(|_| Kind::CantAddChild)?
        };
        if hardlink {
            // Only the root gets here: C rejects it as a directory hardlink.
            return Err(Kind::DirectoryHardlink);
        }

        let size = parse_int(size_f, 10)?;
        let nlink = parse_int(nlink_f, 10)?;
        let uid = parse_int(uid_f, 10)?;
        // C only looks at GID and RDEV errors when UID is 0; otherwise they read as 0.
        let gid = match parse_int(gid_f, 10) {
            Ok(v) => v,
            Err(e) if uid == 0 => return Err(e),
            Err(_) => 0,
        };
        let rdev = match parse_int(rdev_f, 10) {
            Ok(v) => v,
            Err(e) if uid == 0 => return Err(e),
            Err(_) => 0,
        };
        let mtime = parse_mtime(mtime_f)?;
        let payload = match payload_f {
            b"-" => None,
            p => Some(c_field(s.plain, p, &mut s.payload)?),
        };
        let content = match content_f {
            b"-" => None,
            c => Some(raw_field(s.plain, c, &mut s.content)?),
        };
        if let Some(c) = content {
            if c.len() as u64 != size {
                return Err(Kind::ContentSize {
                    actual: c.len() as u64,
                    expected: size,
                });
            }
        }
        let digest = match digest_f {
            b"-" => None,
            d => Some(c_field(s.plain, d, &mut s.digest)?),
        };

        let device = matches!(ftype, FileType::CharDevice | FileType::BlockDevice);
        if !device && self.opts.strict && rdev != 0 {
            return Err(Kind::NonZeroDevnum);
        }
        let mut kind = None;
        let mut size = size;
        if ftype == FileType::Symlink {
            let target = match payload {
                Some(t) if !t.is_empty() && t.len() <= PAYLOAD_MAX => t,
                _ => return Err(Kind::InvalidSymlink),
            };
            if self.opts.strict {
                if size != target.len() as u64 {
                    return Err(Kind::SymlinkSize {
                        actual: target.len() as u64,
                        expected: size,
                    });
                }
                if content.is_some_and(|c| !c.is_empty()) {
                    return Err(Kind::SymlinkContent);
                }
            }
            size = target.len() as u64;
            kind = Some(InodeKind::Symlink(target.into()));
        } else {
            if payload.is_some_and(|p| p.len() > PAYLOAD_MAX) {
                return Err(Kind::InvalidPayload);
            }
            if let Some(c) = content {
                if c.len() > INLINE_CONTENT_MAX {
                    return Err(Kind::InlineTooLarge(c.len() as u64));
                }
            }
        }
        if ftype == FileType::Regular {
            let data = match content {
                Some(c) => FileData::Inline(c.into()),
                None if size == 0 => FileData::Inline(Box::default()),
                None => {
                    let digest = match digest {
                        None => None,
                        Some(d) => {
                            Some(parse_digest(d).ok_or_else(|| Kind::InvalidDigest(d.into()))?)
                        }
                    };
                    if too_many_chunks(size) && self.too_large.is_none() {
                        self.too_large = Some(self.lineno);
                    }
                    FileData::External {
                        payload: payload.filter(|p| !p.is_empty()).map(Into::into),
                        digest,
                    }
                }
            };
            kind = Some(InodeKind::Regular(data));
        }
        let kind = kind.or(match ftype {
            FileType::CharDevice => Some(InodeKind::CharDevice(rdev as u32)),
            FileType::BlockDevice => Some(InodeKind::BlockDevice(rdev as u32)),
            FileType::Fifo => Some(InodeKind::Fifo),
            FileType::Socket => Some(InodeKind::Socket),
            _ => None,
        });

        if xattr_part.len() > XATTR_LINE_MAX {
            return Err(Kind::TooManyXattrs);
        }
        let tree = self.tree.as_mut().expect("root exists");
        let inode = tree.inode_mut(id);
        inode.uid = uid as u32;
        inode.gid = gid as u32;
        inode.nlink = nlink as u32;
        inode.mtime = mtime;
        inode.size = size;
        if let Some(kind) = kind {
            inode.kind = kind;
        }
        let mut rest = xattr_part;
        let mut budget = 0usize;
        while !rest.is_empty() {
            let (field, _) = split_at(&mut rest, b' ');
            let mut field_rest = field;
            let (key, found) = split_at(&mut field_rest, b'=');
            if !found {
                return Err(Kind::MissingXattrEquals);
            }
            let key = c_field(s.plain, key, &mut s.key)?;
            let value = raw_field(s.plain, field_rest, &mut s.value)?;
            set_xattr(
                &mut inode.xattrs,
                &mut budget,
                key,
                value,
                &mut self.interner,
            )?;
        }
        Ok(())
    }

    /// C's `lookup_path` from the root for a hardlink target: empty components are skipped,
    /// and nothing is found below a non-directory or a pending hardlink.
    fn lookup_target(tree: &Tree, path: &[u8]) -> Option<Node> {
        let mut cur = Node::Real(InodeId::ROOT);
        for comp in path.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
            match cur {
                Node::Real(id) if tree.inode(id).is_dir() => cur = Self::child(tree, id, comp)?,
                _ => return None,
            }
        }
        Some(cur)
    }

    fn finish(self) -> Result<Tree, ParseError> {
        let Some(mut tree) = self.tree else {
            return Err(ParseError::new(0, Kind::NoFiles));
        };
        let fixups = self.fixups;
        // C keeps its fixups in a list built by prepending, so the last line is checked first.
        let mut direct = vec![Node::Pending(usize::MAX); fixups.len()];
        for (i, f) in fixups.iter().enumerate().rev() {
            let err = |kind| Err(ParseError::new(f.line, kind));
            let Some(target) = &f.target else {
                return err(Kind::NoHardlinkTarget);
            };
            match Self::lookup_target(&tree, target) {
                None => return err(Kind::HardlinkTargetMissing(target.clone())),
                Some(Node::Pending(j)) if j == i => return err(Kind::SelfHardlink(target.clone())),
                Some(node) => direct[i] = node,
            }
        }
        // Follow chains to their final inode; C's writer fails on any cycle.
        const NEW: u8 = 0;
        const VISITING: u8 = 1;
        const DONE: u8 = 2;
        let mut state = vec![NEW; fixups.len()];
        let mut resolved = vec![InodeId::ROOT; fixups.len()];
        let mut chain = Vec::new();
        for start in 0..fixups.len() {
            let mut cur = start;
            let target = loop {
                match state[cur] {
                    DONE => break resolved[cur],
                    VISITING => {
                        return Err(ParseError::new(fixups[cur].line, Kind::HardlinkCycle));
                    }
                    _ => {
                        state[cur] = VISITING;
                        chain.push(cur);
                        match direct[cur] {
                            Node::Real(id) => break id,
                            Node::Pending(j) => cur = j,
                        }
                    }
                }
            };
            for i in chain.drain(..) {
                state[i] = DONE;
                resolved[i] = target;
            }
        }
        if let Some(line) = self.too_large {
            return Err(ParseError::new(line, Kind::FileTooLarge));
        }
        for (f, target) in fixups.iter().zip(resolved) {
            tree.replace(f.parent, &f.name, target, true)
                .expect("pending hardlink entry exists");
        }
        tree.shrink_to_fit();
        Ok(tree)
    }
}

/// C's `lcfs_node_set_xattr` for dumpfile input: name 1…255 bytes, value ≤ 65535 bytes, and a
/// per-inode budget where each xattr costs 7 + name + value bytes and the first also 12. A
/// repeated name drops the earlier value first (refunding its cost) and keeps the position.
fn set_xattr(
    xattrs: &mut Vec<Xattr>,
    budget: &mut usize,
    key: &[u8],
    value: &[u8],
    interner: &mut XattrInterner,
) -> Result<(), Kind> {
    if key.is_empty() || key.len() > NAME_MAX || value.len() > XATTR_LINE_MAX {
        return Err(Kind::CantSetXattr);
    }
    let existing = xattrs.iter().position(|x| &*x.name == key);
    let others = xattrs.len() - usize::from(existing.is_some());
    if let Some(i) = existing {
        *budget = if others == 0 {
            0
        } else {
            *budget - (7 + key.len() + xattrs[i].value.len())
        };
    }
    let cost = 7 + key.len() + value.len() + if others == 0 { 12 } else { 0 };
    if *budget + cost > XATTR_BUDGET {
        return Err(Kind::CantSetXattr);
    }
    *budget += cost;
    match existing {
        Some(i) => xattrs[i].value = interner.intern(value),
        None => {
            // Most inodes have one or two xattrs: grow exactly, not to 4 at the first push.
            xattrs.reserve_exact(1);
            xattrs.push(interner.xattr(key, value))
        }
    }
    Ok(())
}
