//! Kernel command-line arguments naming composefs images.
//!
//! A booted system finds its root image through the kernel command line. Two spellings exist:
//! the legacy `composefs=[?]<hex>` (a V2 image; the hex length picks sha256 or sha512) and
//! `composefs.digest=[?]v<N>-<hash>-12:<hex>` (`v1` for V1 images, `v2` accepted for V2). A `?`
//! right after `=` marks insecure mode, where fs-verity is optional.
//!
//! [`Karg`] writes and parses one argument; [`collect`] tokenises a whole command line the way
//! the kernel and composefs-rs do (whitespace outside double quotes, quotes kept) and returns
//! every composefs argument in order; [`resolve`] tries them against an [`ImageStore`] as the
//! initramfs does: the first image that exists wins, a missing one moves on, anything else is an
//! error that names the argument at fault. [`FolderImages`] is the store of a folder of images
//! named by their digest, as a composefs-rs repository's `images/` is.

#![forbid(unsafe_code)]

use std::fmt;
use std::fs::File;
use std::io;
use std::path::PathBuf;

use crate::fsverity;
use crate::tree::{Digest, HashAlgorithm};

/// The key of the legacy V2 argument.
pub const KEY_V2: &str = "composefs";
/// The key of the versioned argument.
pub const KEY_DIGEST: &str = "composefs.digest";

/// Which image layout an argument names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ImageVersion {
    V1,
    V2,
}

/// Which of the two spellings an argument used; kept so that writing a parsed argument gives
/// back the same text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KargForm {
    /// `composefs=<hex>` (always V2).
    Legacy,
    /// `composefs.digest=v<N>-<hash>-12:<hex>`.
    Versioned,
}

/// One composefs kernel argument.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Karg {
    pub version: ImageVersion,
    pub digest: Digest,
    pub insecure: bool,
    pub form: KargForm,
}

/// Why an argument could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KargParseError {
    #[error("`{0}` is not a composefs argument")]
    NotComposefs(String),
    #[error("`{arg}`: expected `<version>-<hash>-<lg blocksize>:<hex>`")]
    MissingSeparator { arg: String },
    #[error("`{arg}`: unsupported format version `{version}` (expected v1 or v2)")]
    UnsupportedVersion { arg: String, version: String },
    #[error("`{arg}`: unsupported hash `{hash}` (expected sha256 or sha512)")]
    UnsupportedHash { arg: String, hash: String },
    #[error("`{arg}`: unsupported block size `{lg}` (only 12, 4096-byte blocks)")]
    UnsupportedBlockSize { arg: String, lg: String },
    #[error("`{arg}`: invalid hex digest")]
    BadHex { arg: String },
    #[error("`{arg}`: {got} hex digits, {algorithm} needs {expected}")]
    WrongLength {
        arg: String,
        got: usize,
        expected: usize,
        algorithm: &'static str,
    },
}

impl Karg {
    /// The argument a V1 image is booted with: `composefs.digest=v1-<hash>-12:<hex>`.
    pub fn v1(digest: Digest, insecure: bool) -> Self {
        Karg {
            version: ImageVersion::V1,
            digest,
            insecure,
            form: KargForm::Versioned,
        }
    }

    /// The argument a V2 image is booted with: `composefs=<hex>`.
    pub fn v2(digest: Digest, insecure: bool) -> Self {
        Karg {
            version: ImageVersion::V2,
            digest,
            insecure,
            form: KargForm::Legacy,
        }
    }

    pub fn algorithm(&self) -> HashAlgorithm {
        self.digest.algorithm()
    }

    /// Parses one argument token (`key=value`), the value taken verbatim.
    pub fn parse(arg: &str) -> Result<Karg, KargParseError> {
        if let Some(value) = arg.strip_prefix("composefs.digest=") {
            let (insecure, value) = strip_insecure(value);
            let (descriptor, hex) =
                value
                    .split_once(':')
                    .ok_or_else(|| KargParseError::MissingSeparator {
                        arg: arg.to_owned(),
                    })?;
            let (version, hash_lg) =
                descriptor
                    .split_once('-')
                    .ok_or_else(|| KargParseError::MissingSeparator {
                        arg: arg.to_owned(),
                    })?;
            let version = match version {
                "v1" => ImageVersion::V1,
                "v2" => ImageVersion::V2,
                other => {
                    return Err(KargParseError::UnsupportedVersion {
                        arg: arg.to_owned(),
                        version: other.to_owned(),
                    })
                }
            };
            let (hash, lg) =
                hash_lg
                    .rsplit_once('-')
                    .ok_or_else(|| KargParseError::MissingSeparator {
                        arg: arg.to_owned(),
                    })?;
            // composefs-rs reads the block size as a number, so `012` is 12 too.
            if lg.parse::<u8>() != Ok(12) {
                return Err(KargParseError::UnsupportedBlockSize {
                    arg: arg.to_owned(),
                    lg: lg.to_owned(),
                });
            }
            let algorithm = match hash {
                "sha256" => HashAlgorithm::Sha256,
                "sha512" => HashAlgorithm::Sha512,
                other => {
                    return Err(KargParseError::UnsupportedHash {
                        arg: arg.to_owned(),
                        hash: other.to_owned(),
                    })
                }
            };
            let digest = parse_hex(arg, hex, algorithm)?;
            Ok(Karg {
                version,
                digest,
                insecure,
                form: KargForm::Versioned,
            })
        } else if let Some(value) = arg.strip_prefix("composefs=") {
            let (insecure, hex) = strip_insecure(value);
            let algorithm = match hex.len() {
                128 => HashAlgorithm::Sha512,
                64 => HashAlgorithm::Sha256,
                got => {
                    return Err(KargParseError::WrongLength {
                        arg: arg.to_owned(),
                        got,
                        expected: 64,
                        algorithm: "sha256 (or 128 for sha512)",
                    })
                }
            };
            Ok(Karg {
                version: ImageVersion::V2,
                digest: parse_hex(arg, hex, algorithm)?,
                insecure,
                form: KargForm::Legacy,
            })
        } else {
            Err(KargParseError::NotComposefs(arg.to_owned()))
        }
    }
}

fn strip_insecure(value: &str) -> (bool, &str) {
    match value.strip_prefix('?') {
        Some(rest) => (true, rest),
        None => (false, value),
    }
}

fn parse_hex(arg: &str, hex: &str, algorithm: HashAlgorithm) -> Result<Digest, KargParseError> {
    let expected = algorithm.digest_len() * 2;
    if hex.len() != expected {
        return Err(KargParseError::WrongLength {
            arg: arg.to_owned(),
            got: hex.len(),
            expected,
            algorithm: algorithm.name(),
        });
    }
    let bytes = hex::decode(hex).map_err(|_| KargParseError::BadHex {
        arg: arg.to_owned(),
    })?;
    Ok(Digest::from_bytes(&bytes).expect("length checked above"))
}

impl fmt::Display for Karg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let q = if self.insecure { "?" } else { "" };
        match self.form {
            KargForm::Legacy => write!(f, "{KEY_V2}={q}{}", self.digest.to_hex()),
            KargForm::Versioned => {
                let v = match self.version {
                    ImageVersion::V1 => "v1",
                    ImageVersion::V2 => "v2",
                };
                write!(
                    f,
                    "{KEY_DIGEST}={q}{v}-{}-12:{}",
                    self.algorithm().name(),
                    self.digest.to_hex()
                )
            }
        }
    }
}

/// Splits a command line into tokens: ASCII whitespace separates them except inside double
/// quotes; a `"` toggles quoting and stays in the token. Empty tokens are dropped.
pub fn tokenize(cmdline: &str) -> impl Iterator<Item = &str> {
    let mut quoted = false;
    cmdline
        .split(move |c: char| {
            if c == '"' {
                quoted = !quoted;
            }
            !quoted && c.is_ascii_whitespace()
        })
        .filter(|t| !t.is_empty())
}

/// Whether a token is a composefs argument (by key prefix, as the initramfs matches them).
fn is_composefs_token(token: &str) -> bool {
    token.starts_with("composefs.digest=") || token.starts_with("composefs=")
}

/// Every composefs argument of a command line, parsed, in command-line order (the two keys
/// interleaved). The first malformed one is an error naming it.
pub fn collect(cmdline: &str) -> Result<Vec<Karg>, KargParseError> {
    tokenize(cmdline)
        .filter(|t| is_composefs_token(t))
        .map(Karg::parse)
        .collect()
}

/// What an image store says about a fault other than "not found".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreFault {
    #[error("digest mismatch: the image measures {actual}")]
    DigestMismatch { actual: String },
    #[error("{0}")]
    Other(String),
}

/// Where images live (a repository's `images/` folder, a test double, …).
pub trait ImageStore {
    /// `Ok(true)` if the image the argument names exists and may be used, `Ok(false)` if it does
    /// not exist; any other problem is a fault that stops the search.
    fn probe(&self, karg: &Karg) -> Result<bool, StoreFault>;
}

/// A folder of images named by the hex of their fs-verity digest (a composefs-rs repository's
/// `images/`, where each is usually a symlink to its object). An image that exists is measured
/// before it is chosen: a file whose digest is not its name is a fault, never a boot.
#[derive(Clone, Debug)]
pub struct FolderImages {
    dir: PathBuf,
}

impl FolderImages {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FolderImages { dir: dir.into() }
    }
}

impl ImageStore for FolderImages {
    fn probe(&self, k: &Karg) -> Result<bool, StoreFault> {
        let path = self.dir.join(k.digest.to_hex());
        let fault = |e: io::Error| {
            StoreFault::Other(format!("{}: {}", path.display(), crate::io_message(&e)))
        };
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(fault(e)),
        };
        let actual = fsverity::digest_reader(k.algorithm(), file).map_err(fault)?;
        if actual != k.digest {
            return Err(StoreFault::DigestMismatch {
                actual: actual.to_hex(),
            });
        }
        Ok(true)
    }
}

/// The argument that was chosen and its position among the composefs arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub karg: Karg,
    pub index: usize,
}

/// Why no image could be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KargError {
    #[error("invalid composefs argument: {0}")]
    Parse(#[from] KargParseError),
    #[error("composefs argument `{arg}`: {fault}")]
    Store { arg: String, fault: StoreFault },
    #[error("no composefs argument on the command line")]
    NoArgument,
    #[error("no composefs image found (tried: {})", tried.join(", "))]
    NotFound { tried: Vec<String> },
}

/// Picks the image to boot. Every composefs argument is validated first (one malformed argument
/// aborts, as the initramfs does), then they are tried in command-line order.
pub fn resolve(cmdline: &str, store: &dyn ImageStore) -> Result<Resolved, KargError> {
    let kargs = collect(cmdline)?;
    if kargs.is_empty() {
        return Err(KargError::NoArgument);
    }
    let mut tried = Vec::with_capacity(kargs.len());
    for (index, karg) in kargs.into_iter().enumerate() {
        match store.probe(&karg) {
            Ok(true) => return Ok(Resolved { karg, index }),
            Ok(false) => tried.push(karg.to_string()),
            Err(fault) => {
                return Err(KargError::Store {
                    arg: karg.to_string(),
                    fault,
                })
            }
        }
    }
    Err(KargError::NotFound { tried })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    const H256: &str = "8b7df143d91c716ecfa5fc1730022f6b421b05cedee8fd52b1fc65a96030ad52";

    fn h512() -> String {
        format!("{H256}{}", "ab".repeat(32))
    }

    fn d(hex: &str) -> Digest {
        Digest::from_bytes(&hex::decode(hex).unwrap()).unwrap()
    }

    #[test]
    fn writes_every_form() {
        assert_eq!(
            Karg::v2(d(H256), false).to_string(),
            format!("composefs={H256}")
        );
        assert_eq!(
            Karg::v2(d(H256), true).to_string(),
            format!("composefs=?{H256}")
        );
        assert_eq!(
            Karg::v1(d(H256), false).to_string(),
            format!("composefs.digest=v1-sha256-12:{H256}")
        );
        assert_eq!(
            Karg::v1(d(&h512()), true).to_string(),
            format!("composefs.digest=?v1-sha512-12:{}", h512())
        );
        let explicit = Karg {
            form: KargForm::Versioned,
            ..Karg::v2(d(H256), false)
        };
        assert_eq!(
            explicit.to_string(),
            format!("composefs.digest=v2-sha256-12:{H256}")
        );
    }

    #[test]
    fn parses_every_form() {
        let k = Karg::parse(&format!("composefs={}", h512())).unwrap();
        assert_eq!(k, Karg::v2(d(&h512()), false));
        let k = Karg::parse(&format!("composefs=?{H256}")).unwrap();
        assert_eq!(k, Karg::v2(d(H256), true));
        let k = Karg::parse(&format!("composefs.digest=?v1-sha256-12:{H256}")).unwrap();
        assert_eq!(k, Karg::v1(d(H256), true));
        let k = Karg::parse(&format!("composefs.digest=v2-sha512-12:{}", h512())).unwrap();
        assert_eq!(k.version, ImageVersion::V2);
        assert_eq!(k.form, KargForm::Versioned);
        assert_eq!(k.algorithm(), HashAlgorithm::Sha512);
        // Upper-case hex is accepted, and written back lower-case.
        let k = Karg::parse(&format!("composefs={}", H256.to_uppercase())).unwrap();
        assert_eq!(k.to_string(), format!("composefs={H256}"));
    }

    #[test]
    fn rejects_malformed_values() {
        let bad = [
            format!("composefs.digest=v1-sha256-12{H256}"),
            format!("composefs.digest=v3-sha256-12:{H256}"),
            format!("composefs.digest=v1-md5-12:{H256}"),
            format!("composefs.digest=v1-sha256-13:{H256}"),
            format!("composefs.digest=v1sha256:{H256}"),
            format!("composefs.digest=v1-sha512-12:{H256}"),
            format!("composefs.digest=v1-sha256-12:{}", h512()),
            format!("composefs={}", &H256[1..]),
            format!("composefs={}g", &H256[1..]),
            "composefs=".to_owned(),
            "root=/dev/sda".to_owned(),
        ];
        for arg in &bad {
            let err = Karg::parse(arg).unwrap_err();
            assert!(err.to_string().contains(arg.as_str()), "{err}");
        }
        assert!(matches!(
            Karg::parse(&format!("composefs={}g", &H256[1..])),
            Err(KargParseError::BadHex { .. })
        ));
        assert!(matches!(
            Karg::parse(&format!("composefs.digest=v1-sha512-12:{H256}")),
            Err(KargParseError::WrongLength { expected: 128, .. })
        ));
    }

    #[test]
    fn tokenises_with_quotes() {
        let line = "  root=UUID=1 \"quoted arg=a b\" composefs=x\tquiet ";
        let tokens: Vec<&str> = tokenize(line).collect();
        assert_eq!(
            tokens,
            ["root=UUID=1", "\"quoted arg=a b\"", "composefs=x", "quiet"]
        );
        // A quoted composefs value keeps its quotes and is therefore malformed.
        assert!(collect(&format!("composefs=\"{H256}\"")).is_err());
        // Inside quotes, a composefs-looking text is not a separate token.
        assert!(collect(&format!("x=\"a composefs={H256}\""))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn collects_all_in_order() {
        let line = format!(
            "quiet composefs={H256} composefs.digest=v1-sha512-12:{} ro composefs.digest=?v2-sha256-12:{H256}",
            h512()
        );
        let kargs = collect(&line).unwrap();
        assert_eq!(kargs.len(), 3);
        assert_eq!(kargs[0], Karg::v2(d(H256), false));
        assert_eq!(kargs[1], Karg::v1(d(&h512()), false));
        assert!(kargs[2].insecure && kargs[2].version == ImageVersion::V2);
    }

    /// A store with a fixed answer per digest hex; unknown digests are missing.
    struct Store(HashMap<String, Result<bool, StoreFault>>);

    impl ImageStore for Store {
        fn probe(&self, karg: &Karg) -> Result<bool, StoreFault> {
            self.0
                .get(&karg.digest.to_hex())
                .cloned()
                .unwrap_or(Ok(false))
        }
    }

    #[test]
    fn folder_images_measure_what_they_find() {
        let dir = tempfile::tempdir().unwrap();
        let good = b"an image".repeat(1000);
        let dg = crate::fsverity::digest(HashAlgorithm::Sha256, &good);
        std::fs::write(dir.path().join(dg.to_hex()), &good).unwrap();
        let lying = Karg::v1(d(&"ab".repeat(32)), false);
        std::fs::write(dir.path().join(lying.digest.to_hex()), b"other").unwrap();
        let store = FolderImages::new(dir.path());
        assert_eq!(store.probe(&Karg::v1(dg.clone(), false)), Ok(true));
        assert_eq!(
            store.probe(&Karg::v2(d(&"cd".repeat(32)), false)),
            Ok(false)
        );
        assert!(matches!(
            store.probe(&lying),
            Err(StoreFault::DigestMismatch { .. })
        ));
        let line = format!(
            "composefs={} composefs.digest=v1-sha256-12:{}",
            "cd".repeat(32),
            dg.to_hex()
        );
        assert_eq!(resolve(&line, &store).unwrap().index, 1);
    }

    #[test]
    fn resolver_takes_first_existing_image() {
        let a = "aa".repeat(32);
        let b = "bb".repeat(64);
        let c = "cc".repeat(32);
        let line = format!("composefs.digest=v1-sha256-12:{a} composefs={b} composefs=?{c}");
        let store = Store(HashMap::from([
            (b.clone(), Ok(true)),
            (c.clone(), Ok(true)),
        ]));
        let r = resolve(&line, &store).unwrap();
        assert_eq!(r.index, 1);
        assert_eq!(r.karg, Karg::v2(d(&b), false));
    }

    #[test]
    fn resolver_stops_at_a_fault() {
        let a = "aa".repeat(32);
        let b = "bb".repeat(32);
        let line = format!("composefs={a} composefs.digest=v1-sha256-12:{b}");
        let store = Store(HashMap::from([
            (
                a.clone(),
                Err(StoreFault::DigestMismatch {
                    actual: "00".into(),
                }),
            ),
            (b.clone(), Ok(true)),
        ]));
        match resolve(&line, &store) {
            Err(KargError::Store { arg, fault }) => {
                assert_eq!(arg, format!("composefs={a}"));
                assert!(matches!(fault, StoreFault::DigestMismatch { .. }));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn resolver_validates_every_argument_first() {
        let a = "aa".repeat(32);
        // The first argument exists, but a later one is malformed: the boot aborts.
        let line = format!("composefs={a} composefs.digest=v1-sha256-12:zz");
        let store = Store(HashMap::from([(a.clone(), Ok(true))]));
        match resolve(&line, &store) {
            Err(KargError::Parse(e)) => {
                assert!(e.to_string().contains("composefs.digest=v1-sha256-12:zz"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn resolver_lists_what_it_tried() {
        let a = "aa".repeat(32);
        let b = "bb".repeat(64);
        let line = format!("composefs.digest=?v1-sha512-12:{b} init=/x composefs={a}");
        let err = resolve(&line, &Store(HashMap::new())).unwrap_err();
        assert_eq!(
            err,
            KargError::NotFound {
                tried: vec![
                    format!("composefs.digest=?v1-sha512-12:{b}"),
                    format!("composefs={a}")
                ]
            }
        );
        assert!(err.to_string().contains(&a));
        assert_eq!(
            resolve("quiet ro", &Store(HashMap::new())),
            Err(KargError::NoArgument)
        );
    }

    fn arb_karg() -> impl Strategy<Value = Karg> {
        (
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 32),
                proptest::collection::vec(any::<u8>(), 64)
            ],
            any::<bool>(),
            0..3u8,
        )
            .prop_map(|(bytes, insecure, kind)| {
                let digest = Digest::from_bytes(&bytes).unwrap();
                match kind {
                    0 => Karg::v1(digest, insecure),
                    1 => Karg::v2(digest, insecure),
                    _ => Karg {
                        form: KargForm::Versioned,
                        ..Karg::v2(digest, insecure)
                    },
                }
            })
    }

    proptest! {
        #[test]
        fn every_form_round_trips(k in arb_karg()) {
            prop_assert_eq!(Karg::parse(&k.to_string()).unwrap(), k);
        }

        #[test]
        fn command_lines_round_trip(ks in proptest::collection::vec(arb_karg(), 0..6)) {
            let line = ks
                .iter()
                .map(|k| format!("{k} other=1"))
                .collect::<Vec<_>>()
                .join(" ");
            prop_assert_eq!(collect(&line).unwrap(), ks);
        }
    }
}
