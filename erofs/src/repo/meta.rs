//! `meta.json`: a composefs-rs repository's version, fs-verity algorithm, feature flags and
//! EROFS formats, read and written exactly as composefs-rs 0.9.4 does (serde_json's pretty
//! printer, two-space indent, a trailing newline; `extra` left out when empty).

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::tree::HashAlgorithm;

/// The highest repository version this code understands.
pub const VERSION: u32 = 1;
/// The read-only-compatible feature recording that V1 is the default EROFS format.
pub const FEATURE_V1_EROFS: &str = "v1_erofs";
/// Incompatible features this code understands (none: any is a refusal).
const KNOWN_INCOMPATIBLE: &[&str] = &[];

/// An EROFS image format a repository commits images in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErofsFormat {
    /// The V1 layout with `composefs_version` 0 (composefs-rs `FormatVersion::V0`).
    V0,
    /// C mkcomposefs's layout, `composefs_version` 1.
    V1,
    /// composefs-rs's own layout.
    V2,
}

impl ErofsFormat {
    pub fn number(self) -> u8 {
        match self {
            ErofsFormat::V0 => 0,
            ErofsFormat::V1 => 1,
            ErofsFormat::V2 => 2,
        }
    }

    pub fn from_number(n: u8) -> Option<Self> {
        match n {
            0 => Some(ErofsFormat::V0),
            1 => Some(ErofsFormat::V1),
            2 => Some(ErofsFormat::V2),
            _ => None,
        }
    }
}

/// The default format and the extra ones images are also committed in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Formats {
    pub default: ErofsFormat,
    pub extra: BTreeSet<ErofsFormat>,
}

impl Formats {
    pub fn single(default: ErofsFormat) -> Self {
        Formats {
            default,
            extra: BTreeSet::new(),
        }
    }

    /// Every configured format, default first, then the extras in order.
    pub fn all(&self) -> Vec<ErofsFormat> {
        let mut v = vec![self.default];
        v.extend(self.extra.iter().filter(|f| **f != self.default));
        v
    }
}

/// What a repository's `meta.json` says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepoMeta {
    pub version: u32,
    pub algorithm: HashAlgorithm,
    pub compatible: Vec<String>,
    pub read_only_compatible: Vec<String>,
    pub incompatible: Vec<String>,
    pub formats: Formats,
}

/// Why a `meta.json` was refused.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("repository version {0} is newer than this tool understands ({VERSION})")]
    Version(u32),
    #[error("unsupported algorithm `{0}` (expected fsverity-sha256-12 or fsverity-sha512-12)")]
    Algorithm(String),
    #[error("unknown incompatible features: {}", .0.join(", "))]
    Incompatible(Vec<String>),
    #[error("unknown EROFS format version {0}")]
    Format(u64),
}

#[derive(Serialize, Deserialize, Default)]
struct FeaturesJson {
    #[serde(default)]
    compatible: Vec<String>,
    #[serde(default, rename = "read-only-compatible")]
    read_only_compatible: Vec<String>,
    #[serde(default)]
    incompatible: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct FormatsJson {
    default: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    extra: Vec<u64>,
}

#[derive(Serialize, Deserialize)]
struct MetaJson {
    version: u32,
    algorithm: String,
    #[serde(default)]
    features: FeaturesJson,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    erofs_formats: Option<FormatsJson>,
}

/// `fsverity-<hash>-12`.
pub fn algorithm_name(alg: HashAlgorithm) -> String {
    format!("fsverity-{}-12", alg.name())
}

fn parse_algorithm(s: &str) -> Option<HashAlgorithm> {
    let rest = s.strip_prefix("fsverity-")?;
    let (hash, lg) = rest.rsplit_once('-')?;
    if lg.parse::<u8>().ok()? != 12 {
        return None;
    }
    match hash {
        "sha256" => Some(HashAlgorithm::Sha256),
        "sha512" => Some(HashAlgorithm::Sha512),
        _ => None,
    }
}

fn format_of(n: u64) -> Result<ErofsFormat, MetaError> {
    u8::try_from(n)
        .ok()
        .and_then(ErofsFormat::from_number)
        .ok_or(MetaError::Format(n))
}

impl RepoMeta {
    /// The metadata composefs-rs writes for a new repository.
    pub fn new(algorithm: HashAlgorithm, formats: Formats) -> Self {
        let read_only_compatible = if formats.default == ErofsFormat::V1 {
            vec![FEATURE_V1_EROFS.to_owned()]
        } else {
            Vec::new()
        };
        RepoMeta {
            version: VERSION,
            algorithm,
            compatible: Vec::new(),
            read_only_compatible,
            incompatible: Vec::new(),
            formats,
        }
    }

    /// Parses and checks a `meta.json`: a newer version, an unknown algorithm or an unknown
    /// incompatible feature is refused. Unknown fields are ignored; a missing `erofs_formats`
    /// means V1 if `v1_erofs` is set, else V2 (composefs-rs's rule for older repositories).
    pub fn parse(bytes: &[u8]) -> Result<RepoMeta, MetaError> {
        let j: MetaJson = serde_json::from_slice(bytes)?;
        if j.version > VERSION {
            return Err(MetaError::Version(j.version));
        }
        let algorithm = parse_algorithm(&j.algorithm)
            .ok_or_else(|| MetaError::Algorithm(j.algorithm.clone()))?;
        let unknown: Vec<String> = j
            .features
            .incompatible
            .iter()
            .filter(|f| !KNOWN_INCOMPATIBLE.contains(&f.as_str()))
            .cloned()
            .collect();
        if !unknown.is_empty() {
            return Err(MetaError::Incompatible(unknown));
        }
        let formats = match &j.erofs_formats {
            Some(f) => Formats {
                default: format_of(f.default)?,
                extra: f
                    .extra
                    .iter()
                    .map(|&n| format_of(n))
                    .collect::<Result<_, _>>()?,
            },
            None if j
                .features
                .read_only_compatible
                .iter()
                .any(|f| f == FEATURE_V1_EROFS) =>
            {
                Formats::single(ErofsFormat::V1)
            }
            None => Formats::single(ErofsFormat::V2),
        };
        Ok(RepoMeta {
            version: j.version,
            algorithm,
            compatible: j.features.compatible,
            read_only_compatible: j.features.read_only_compatible,
            incompatible: j.features.incompatible,
            formats,
        })
    }

    /// The file's bytes, as composefs-rs writes them.
    pub fn to_json(&self) -> Vec<u8> {
        let j = MetaJson {
            version: self.version,
            algorithm: algorithm_name(self.algorithm),
            features: FeaturesJson {
                compatible: self.compatible.clone(),
                read_only_compatible: self.read_only_compatible.clone(),
                incompatible: self.incompatible.clone(),
            },
            erofs_formats: Some(FormatsJson {
                default: self.formats.default.number().into(),
                extra: self
                    .formats
                    .extra
                    .iter()
                    .map(|f| f.number().into())
                    .collect(),
            }),
        };
        let mut out = serde_json::to_vec_pretty(&j).expect("plain data serializes");
        out.push(b'\n');
        out
    }
}

impl fmt::Display for ErofsFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "V{}", self.number())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_default_with_v2_extra_is_composefs_rs_bytes() {
        let m = RepoMeta::new(
            HashAlgorithm::Sha256,
            Formats {
                default: ErofsFormat::V1,
                extra: [ErofsFormat::V2].into(),
            },
        );
        let text = m.to_json();
        let want = "{\n  \"version\": 1,\n  \"algorithm\": \"fsverity-sha256-12\",\n  \"features\": {\n    \"compatible\": [],\n    \"read-only-compatible\": [\n      \"v1_erofs\"\n    ],\n    \"incompatible\": []\n  },\n  \"erofs_formats\": {\n    \"default\": 1,\n    \"extra\": [\n      2\n    ]\n  }\n}\n";
        assert_eq!(String::from_utf8(text.clone()).unwrap(), want);
        assert_eq!(text.len(), 249);
        assert_eq!(RepoMeta::parse(&text).unwrap(), m);
    }

    #[test]
    fn refusals_and_legacy_defaults() {
        let bad = |s: &str| RepoMeta::parse(s.as_bytes()).unwrap_err();
        assert!(matches!(
            bad(r#"{"version":2,"algorithm":"fsverity-sha256-12"}"#),
            MetaError::Version(2)
        ));
        assert!(matches!(
            bad(r#"{"version":1,"algorithm":"fsverity-sha256-16"}"#),
            MetaError::Algorithm(_)
        ));
        assert!(matches!(
            bad(r#"{"version":1,"algorithm":"fsverity-md5-12"}"#),
            MetaError::Algorithm(_)
        ));
        assert!(matches!(
            bad(r#"{"version":1,"algorithm":"fsverity-sha256-12","features":{"incompatible":["x"]}}"#),
            MetaError::Incompatible(v) if v == ["x"]
        ));
        let m = RepoMeta::parse(br#"{"version":1,"algorithm":"fsverity-sha512-12","unknown":3}"#)
            .unwrap();
        assert_eq!(m.formats, Formats::single(ErofsFormat::V2));
        let m = RepoMeta::parse(
            br#"{"version":1,"algorithm":"fsverity-sha256-12","features":{"read-only-compatible":["v1_erofs"]}}"#,
        )
        .unwrap();
        assert_eq!(m.formats, Formats::single(ErofsFormat::V1));
    }
}
