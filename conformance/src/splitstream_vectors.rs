//! Language-neutral splitstream vectors (`fixtures/vectors/splitstream/`): each case is a
//! sequence of writer calls in `manifest.json` and the exact file a writer must produce for it
//! (`<name>.splitstream`). The expected bytes are our writer's; `tests/repo_splitstream.rs`
//! checks that composefs-rs 0.9.4's own writer produces the same bytes for every case.
//!
//! A case: `algorithm` (`sha256`|`sha512`), `content_type` (eight ASCII bytes, as a string),
//! `named_refs` (`[name, target digest hex]`, in call order), and `ops`, each one of
//! `{"inline": <data>}` or `{"external": <data>}` (an object holding the data, referred to by
//! its fs-verity digest). `<data>` is `{"hex": "…"}`, `{"repeat": [byte, count]}` or
//! `{"sequence": count}` (bytes `i % 251`).

use std::path::Path;

use cfs_erofs::repo::splitstream::SplitStreamWriter;
use cfs_erofs::tree::HashAlgorithm;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// Bytes in a vector.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Data {
    Hex(String),
    Repeat(u8, usize),
    Sequence(usize),
}

impl Data {
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Data::Hex(h) => hex::decode(h).expect("vector hex"),
            Data::Repeat(b, n) => vec![*b; *n],
            Data::Sequence(n) => (0..*n).map(|i| (i % 251) as u8).collect(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Inline(Data),
    External(Data),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Case {
    pub name: String,
    pub description: String,
    pub algorithm: String,
    pub content_type: String,
    pub named_refs: Vec<(String, String)>,
    pub ops: Vec<Op>,
    /// The expected file, its size and sha256.
    pub expected: String,
    pub size: usize,
    pub sha256: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub description: String,
    pub cases: Vec<Case>,
}

impl Case {
    pub fn algorithm(&self) -> HashAlgorithm {
        match self.algorithm.as_str() {
            "sha512" => HashAlgorithm::Sha512,
            _ => HashAlgorithm::Sha256,
        }
    }

    pub fn content_type(&self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.content_type.as_bytes()[..8]);
        u64::from_le_bytes(b)
    }

    /// The file our writer produces.
    pub fn write(&self) -> Vec<u8> {
        let alg = self.algorithm();
        let mut w = SplitStreamWriter::new(alg, self.content_type()).unwrap();
        for (n, t) in &self.named_refs {
            w.add_named_ref(
                n,
                &cfs_erofs::Digest::from_bytes(&hex::decode(t).unwrap()).unwrap(),
            );
        }
        for op in &self.ops {
            match op {
                Op::Inline(d) => w.write_inline(&d.bytes()),
                Op::External(d) => {
                    let bytes = d.bytes();
                    let id = cfs_erofs::fsverity::digest(alg, &bytes);
                    w.write_external(&id, bytes.len() as u64).unwrap();
                }
            }
        }
        w.finish().unwrap()
    }
}

fn digest_hex(alg: &str, seed: u8) -> String {
    let len = if alg == "sha512" { 64 } else { 32 };
    hex::encode(vec![seed; len])
}

fn case(
    name: &str,
    description: &str,
    alg: &str,
    ct: &str,
    refs: &[(&str, u8)],
    ops: Vec<Op>,
) -> Case {
    Case {
        name: name.into(),
        description: description.into(),
        algorithm: alg.into(),
        content_type: ct.into(),
        named_refs: refs
            .iter()
            .map(|(n, s)| (n.to_string(), digest_hex(alg, *s)))
            .collect(),
        ops,
        expected: format!("{name}.splitstream"),
        size: 0,
        sha256: String::new(),
    }
}

/// The cases.
pub fn cases() -> Vec<Case> {
    use Data::*;
    use Op::*;
    let hdr = || Inline(Repeat(0x61, 512));
    vec![
        case("empty", "no call at all: both frames are empty-input frames", "sha256", "ocilayer", &[], vec![]),
        case("inline-only", "one inline write", "sha256", "ocilayer", &[], vec![Inline(Hex("68656c6c6f".into()))]),
        case("inline-coalesced", "consecutive inline writes make one chunk", "sha256", "ocilayer", &[],
             vec![Inline(Hex("00".into())), Inline(Repeat(1, 100)), Inline(Sequence(700))]),
        case("external-only", "one object, no inline bytes (a config or manifest stream)", "sha256", "ociconfg",
             &[("sha256:0101", 7)], vec![External(Sequence(437))]),
        case("layer-like", "headers inline, a 65-byte and a 5000-byte file external, padding and end blocks inline",
             "sha256", "ocilayer", &[],
             vec![hdr(), External(Repeat(2, 65)), Inline(Repeat(0, 447)), hdr(), External(Sequence(5000)),
                  Inline(Repeat(0, 120)), Inline(Repeat(0, 10240))]),
        case("object-reused", "the same object twice reuses its index", "sha256", "ocilayer", &[],
             vec![External(Repeat(3, 100)), Inline(Hex("ff".into())), External(Repeat(4, 100)), External(Repeat(3, 100))]),
        case("named-refs-sorted", "named refs are written sorted by name; indices follow insertion order", "sha256",
             "ociconfg", &[("sha256:zz", 1), ("composefs.image", 2), ("composefs.image.v1", 3), ("sha256:aa", 1)],
             vec![External(Hex("7b7d".into()))]),
        case("named-ref-replaced", "a name given twice keeps the last target; the first target keeps its slot",
             "sha256", "ocimanif", &[("config:x", 1), ("config:x", 2)], vec![External(Hex("7b7d".into()))]),
        case("sha512", "sha512 digests in both ref arrays", "sha512", "ocilayer", &[("a", 9)],
             vec![hdr(), External(Sequence(3000)), Inline(Repeat(0, 1024))]),
        case("large-inline", "900 KiB of inline bytes: several zstd blocks", "sha256", "ocilayer", &[],
             vec![Inline(Sequence(600 * 1024)), Inline(Repeat(9, 300 * 1024)), External(Repeat(5, 70))]),
        case("many-objects", "300 objects between inline runs", "sha256", "ocilayer", &[],
             (0..300).flat_map(|i| [Inline(Repeat((i % 7) as u8, 512)), External(Repeat((i % 250) as u8, 65 + i))]).collect()),
    ]
}

/// Writes the vectors to `dir`.
pub fn make(dir: &Path) -> Result<Manifest, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut out = Vec::new();
    for mut c in cases() {
        let bytes = c.write();
        c.size = bytes.len();
        c.sha256 = hex::encode(Sha256::digest(&bytes));
        std::fs::write(dir.join(&c.expected), &bytes).map_err(|e| e.to_string())?;
        out.push(c);
    }
    let m = Manifest {
        format: "composefs-splitstream-vectors/1".into(),
        description: "composefs-rs splitstream writer vectors: writer calls and the exact file \
                      (generated by scripts/make-vectors; checked against composefs-rs 0.9.4)"
            .into(),
        cases: out,
    };
    // One line per case, so that the file stays small and diffs stay readable.
    let j = |v: &dyn erased_json::Json| v.json();
    let mut json = format!(
        "{{\n  \"format\": {},\n  \"description\": {},\n  \"cases\": [\n",
        j(&m.format)?,
        j(&m.description)?
    );
    for (i, c) in m.cases.iter().enumerate() {
        let sep = if i + 1 < m.cases.len() { "," } else { "" };
        json += &format!("    {}{sep}\n", j(c)?);
    }
    json += "  ]\n}\n";
    std::fs::write(dir.join("manifest.json"), json).map_err(|e| e.to_string())?;
    Ok(m)
}

/// Reads `dir/manifest.json`.
pub fn load(dir: &Path) -> Result<Manifest, String> {
    let p = dir.join("manifest.json");
    serde_json::from_slice(&std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?)
        .map_err(|e| format!("{}: {e}", p.display()))
}

mod erased_json {
    /// Compact JSON of any serializable value.
    pub trait Json {
        fn json(&self) -> Result<String, String>;
    }

    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> Result<String, String> {
            serde_json::to_string(self).map_err(|e| e.to_string())
        }
    }
}
