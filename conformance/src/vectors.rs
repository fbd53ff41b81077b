//! Language-neutral test vectors: a dumpfile per vector, the builds to make of it, and what
//! each build must produce (image sha256, fs-verity digests, `composefs-info dump` text).
//!
//! `fixtures/vectors/manifest.json` lists the vectors; inputs and expected dump texts are plain
//! files beside it, so any implementation can check itself without Rust. The expected results
//! come from our own implementation ([`cfs_erofs`]); the conformance tests make sure C
//! mkcomposefs 1.0.8 agrees on every V1 build. [`generate`] makes the inputs, [`make`] computes
//! the results and writes the directory, [`runner`] judges another executable against it, with
//! [`regions`] naming where in the image a difference falls.

pub mod generate;
pub mod regions;
pub mod runner;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cfs_erofs::dumpfile::{parse_bytes, ParseOptions};
use cfs_erofs::write::{image_bytes, WriteOptions};
use cfs_erofs::HashAlgorithm;
use serde::{Deserialize, Serialize};

/// Identifies the manifest format.
pub const MANIFEST_FORMAT: &str = "mkcfs-rs-vectors/1";

/// Where the checked-in vectors live.
pub fn vectors_dir() -> PathBuf {
    crate::oracle::repo_root().join("fixtures/vectors")
}

/// The whole set: how to build, and what each vector must give.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub description: String,
    pub builds: Vec<Build>,
    pub vectors: Vec<Vector>,
}

/// One way of building an image from a dumpfile, as mkcomposefs command-line options.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Build {
    /// `v1-default`, `v1-min1`, `v1-max0`, `v2`.
    pub id: String,
    /// 1 (C layout, composefs_version 0/1) or 2 (composefs-rs legacy layout).
    pub erofs_version: u32,
    /// Options placed before `--from-file INPUT IMAGE`.
    pub args: Vec<String>,
    pub description: String,
}

impl Build {
    /// The four builds every vector gets.
    pub fn standard() -> Vec<Build> {
        let b = |id: &str, v: u32, args: &[&str], d: &str| Build {
            id: id.into(),
            erofs_version: v,
            args: args.iter().map(|s| s.to_string()).collect(),
            description: d.into(),
        };
        vec![
            b(
                "v1-default",
                1,
                &[],
                "C defaults: min 0, max 1; composefs_version 1 only when the input has whiteouts (§6.1)",
            ),
            b(
                "v1-min1",
                1,
                &["--min-version=1"],
                "composefs_version 1 (max defaults to 0, then raised to the minimum; §6.1)",
            ),
            b(
                "v1-max0",
                1,
                &["--max-version=0"],
                "composefs_version 0, never upgraded (§6.1)",
            ),
            b(
                "v2",
                2,
                &["--erofs-version=2"],
                "composefs-rs 0.9.4 FormatVersion::V2 layout (§6.3)",
            ),
        ]
    }

    /// Our writer's options for this build: C's version defaulting applied to `args` (§6.1).
    pub fn write_options(&self) -> WriteOptions {
        if self.erofs_version == 2 {
            return WriteOptions::v2();
        }
        let value = |key: &str| {
            self.args
                .iter()
                .find_map(|a| a.strip_prefix(key).and_then(|v| v.parse::<u32>().ok()))
        };
        match (value("--min-version="), value("--max-version=")) {
            (None, None) => WriteOptions::v1(),
            (min, max) => {
                let min = min.unwrap_or(0);
                let mut o = WriteOptions::v1_exact(min);
                o.max_version = max.unwrap_or(0).max(min);
                o
            }
        }
    }
}

/// One input and what every build of it must produce.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vector {
    /// `family/rule-it-exercises`; also the path of its files without extension.
    pub name: String,
    /// Sections of the format note (`/work/shared/docs/composefs-format.md`, `docs/FORMAT.md`)
    /// whose rules decide this vector's bytes.
    pub rules: Vec<String>,
    pub description: String,
    /// The dumpfile, relative to the manifest.
    pub input: String,
    /// Build with `CFS_PARSE_STRICT=1` (C's test script does, except for three corpus files).
    pub strict: bool,
    pub results: Vec<Expected>,
}

/// What one build of a vector must give: an image, or a failure (any non-zero exit).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expected {
    pub build: String,
    /// Present when the build must fail; our writer's reason, for information.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageResult>,
}

/// The identity of an expected image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageResult {
    pub size: u64,
    pub sha256: String,
    pub composefs_version: u32,
    /// fs-verity digest of the whole image (4096-byte blocks, no salt), sha256 and sha512.
    pub verity_sha256: String,
    pub verity_sha512: String,
    /// `composefs-info dump IMAGE` output, relative to the manifest (the input itself when
    /// they are equal; builds with equal text share one file). Absent when our reader refuses
    /// the image (see `unreadable`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dump: Option<String>,
    /// Why our reader refuses this image (a known V2 writer quirk, not a conformance failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
}

impl Manifest {
    /// Reads `DIR/manifest.json`.
    pub fn load(dir: &Path) -> Result<Manifest, String> {
        let p = dir.join("manifest.json");
        let text = std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        let m: Manifest =
            serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", p.display()))?;
        if m.format != MANIFEST_FORMAT {
            return Err(format!(
                "{}: format {:?}, expected {MANIFEST_FORMAT:?}",
                p.display(),
                m.format
            ));
        }
        Ok(m)
    }

    pub fn build(&self, id: &str) -> Option<&Build> {
        self.builds.iter().find(|b| b.id == id)
    }
}

/// Our image for one build of a dumpfile, or why we refuse it.
pub fn build_image(dump: &[u8], strict: bool, build: &Build) -> Result<Vec<u8>, String> {
    let tree = parse_bytes(dump, &ParseOptions { strict }).map_err(|e| e.message())?;
    image_bytes(&tree, &build.write_options()).map_err(|e| e.to_string())
}

/// sha256 of bytes, lower-case hex.
pub fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(b))
}

/// `composefs-info dump` text of an image, as our reader prints it.
pub fn dump_text(image: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    cfs_erofs::info::dump(image, None, &mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// The result record of an image.
fn image_result(image: &[u8], dump: Option<String>, unreadable: Option<String>) -> ImageResult {
    // The header's composefs_version field (offset 12, §1.2).
    let composefs_version = u32::from_le_bytes(image[12..16].try_into().expect("4 bytes"));
    ImageResult {
        size: image.len() as u64,
        sha256: sha256_hex(image),
        composefs_version,
        verity_sha256: cfs_erofs::fsverity::digest(HashAlgorithm::Sha256, image).to_hex(),
        verity_sha512: cfs_erofs::fsverity::digest(HashAlgorithm::Sha512, image).to_hex(),
        dump,
        unreadable,
    }
}

/// Generates every vector, computes its results and writes the set to `out` (which must be
/// empty or absent): `manifest.json`, `<name>.dump`, and `<name>.<build>.info` where the dump
/// text differs from the input.
pub fn make(out: &Path) -> Result<Manifest, String> {
    let inputs = generate::all()?;
    let builds = Build::standard();
    let mut vectors = Vec::with_capacity(inputs.len());
    let mut seen = std::collections::HashSet::new();
    for input in inputs {
        if !seen.insert(input.name.clone()) {
            return Err(format!("duplicate vector name {}", input.name));
        }
        let rel_input = format!("{}.dump", input.name);
        write_file(&out.join(&rel_input), &input.dump)?;
        // Dump texts by content, so builds that print the same text share a file.
        let mut texts: BTreeMap<Vec<u8>, String> = BTreeMap::new();
        texts.insert(input.dump.clone(), rel_input.clone());
        let mut results = Vec::with_capacity(builds.len());
        for b in &builds {
            match build_image(&input.dump, input.strict, b) {
                Err(e) => results.push(Expected {
                    build: b.id.clone(),
                    error: Some(e),
                    image: None,
                }),
                Ok(image) => {
                    // An image our own reader refuses has no dump text; the reason is kept.
                    let (rel, unreadable) = match dump_text(&image) {
                        Err(e) => (None, Some(e)),
                        Ok(text) => (
                            Some(match texts.get(&text) {
                                Some(r) => r.clone(),
                                None => {
                                    let r = format!("{}.{}.info", input.name, b.id);
                                    write_file(&out.join(&r), &text)?;
                                    texts.insert(text, r.clone());
                                    r
                                }
                            }),
                            None,
                        ),
                    };
                    results.push(Expected {
                        build: b.id.clone(),
                        error: None,
                        image: Some(image_result(&image, rel, unreadable)),
                    });
                }
            }
        }
        vectors.push(Vector {
            name: input.name,
            rules: input.rules.iter().map(|s| s.to_string()).collect(),
            description: input.description,
            input: rel_input,
            strict: input.strict,
            results,
        });
    }
    let manifest = Manifest {
        format: MANIFEST_FORMAT.into(),
        description: "composefs image test vectors generated by scripts/make-vectors \
                      (conformance::vectors::generate); expected results from mkcfs-rs, \
                      checked against C mkcomposefs 1.0.8 for every V1 build"
            .into(),
        builds,
        vectors,
    };
    write_file(
        &out.join("manifest.json"),
        manifest_json(&manifest)?.as_bytes(),
    )?;
    crate::splitstream_vectors::make(&out.join("splitstream"))?;
    Ok(manifest)
}

/// The manifest as JSON with one line per build and per result, so that it stays small and
/// diffs stay readable.
fn manifest_json(m: &Manifest) -> Result<String, String> {
    let j = |v: &dyn erased::Json| v.json();
    let mut s = String::from("{\n");
    s += &format!("  \"format\": {},\n", j(&m.format)?);
    s += &format!("  \"description\": {},\n", j(&m.description)?);
    s += "  \"builds\": [\n";
    for (i, b) in m.builds.iter().enumerate() {
        let sep = if i + 1 < m.builds.len() { "," } else { "" };
        s += &format!("    {}{sep}\n", j(b)?);
    }
    s += "  ],\n  \"vectors\": [\n";
    for (i, v) in m.vectors.iter().enumerate() {
        s += "    {\n";
        s += &format!("      \"name\": {},\n", j(&v.name)?);
        s += &format!("      \"rules\": {},\n", j(&v.rules)?);
        s += &format!("      \"description\": {},\n", j(&v.description)?);
        s += &format!("      \"input\": {},\n", j(&v.input)?);
        s += &format!("      \"strict\": {},\n", j(&v.strict)?);
        s += "      \"results\": [\n";
        for (k, r) in v.results.iter().enumerate() {
            let sep = if k + 1 < v.results.len() { "," } else { "" };
            s += &format!("        {}{sep}\n", j(r)?);
        }
        let sep = if i + 1 < m.vectors.len() { "," } else { "" };
        s += &format!("      ]\n    }}{sep}\n");
    }
    s += "  ]\n}\n";
    Ok(s)
}

/// Compact JSON of any serialisable value, usable through a trait object.
mod erased {
    pub trait Json {
        fn json(&self) -> Result<String, String>;
    }
    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> Result<String, String> {
            serde_json::to_string(self).map_err(|e| e.to_string())
        }
    }
}

fn write_file(p: &Path, bytes: &[u8]) -> Result<(), String> {
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    std::fs::write(p, bytes).map_err(|e| format!("{}: {e}", p.display()))
}
