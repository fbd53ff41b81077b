//! Judges an mkcomposefs-compatible executable against the vectors.
//!
//! For each vector and each build of the selected layout it runs
//! `MKCOMPOSEFS [build args] --from-file INPUT IMAGE` (with `CFS_PARSE_STRICT=1` when the
//! vector is strict), compares the image with the expected one byte for byte and, given a
//! `composefs-info`, compares `composefs-info dump IMAGE` with the expected text. The expected
//! image is rebuilt by our writer (the manifest stores only digests) and checked against the
//! manifest first, so a stale vector is reported as such rather than blamed on the executable.
//! A difference is located with [`RegionMap`].

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::regions::{Region, RegionMap};
use super::{build_image, sha256_hex, Build, Expected, Manifest, Vector};

/// What to run and against which vectors.
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub vectors_dir: PathBuf,
    pub mkcomposefs: PathBuf,
    pub composefs_info: Option<PathBuf>,
    /// 1: the V1 builds (`v1-*`); 2: the V2 builds (passing `--erofs-version=2`).
    pub erofs_version: u32,
    /// Only vectors whose name contains this.
    pub filter: Option<String>,
    /// Parallel jobs (0: the number of CPUs).
    pub jobs: usize,
}

/// The verdict on one build of one vector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    Pass,
    /// The image differs; `offset` is the first differing byte, `region` where it falls in
    /// the expected image.
    Differs {
        offset: u64,
        region: Region,
        expected_len: u64,
        actual_len: u64,
    },
    /// The image is right but `composefs-info dump` prints something else.
    DumpDiffers {
        line: usize,
        detail: String,
    },
    /// An image was expected; the executable failed (exit status and first stderr line).
    Refused(String),
    /// A failure was expected; the executable wrote an image.
    Accepted,
    /// Our own writer no longer produces the manifest's result: regenerate the vectors.
    Stale(String),
    /// The harness could not run the executable.
    Harness(String),
}

impl Status {
    pub fn is_pass(&self) -> bool {
        matches!(self, Status::Pass)
    }

    /// Summary column.
    pub fn class(&self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Differs { .. } | Status::DumpDiffers { .. } | Status::Accepted => "differ",
            Status::Refused(_) => "refused",
            Status::Stale(_) | Status::Harness(_) => "error",
        }
    }

    pub fn message(&self) -> String {
        match self {
            Status::Pass => "pass".into(),
            Status::Differs {
                offset,
                region,
                expected_len,
                actual_len,
            } => {
                let mut s = format!("differs at {offset} ({offset:#x}): {region}");
                if expected_len != actual_len {
                    write!(s, "; {actual_len} bytes, expected {expected_len}").unwrap();
                }
                s
            }
            Status::DumpDiffers { line, detail } => {
                format!("image equal, composefs-info dump differs at line {line}: {detail}")
            }
            Status::Refused(e) => format!("refused: {e}"),
            Status::Accepted => "wrote an image where a failure is expected".into(),
            Status::Stale(e) => format!("stale vector: {e}"),
            Status::Harness(e) => format!("harness: {e}"),
        }
    }
}

/// One verdict.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub vector: String,
    pub build: String,
    pub status: Status,
    pub time: Duration,
}

/// All verdicts of a run, in manifest order.
#[derive(Clone, Debug)]
pub struct Report {
    pub outcomes: Vec<Outcome>,
}

/// Runs the selected vectors.
pub fn run(cfg: &RunConfig) -> Result<Report, String> {
    let manifest = Manifest::load(&cfg.vectors_dir)?;
    let mut jobs: Vec<(&Vector, &Expected, &Build)> = Vec::new();
    for v in &manifest.vectors {
        if cfg
            .filter
            .as_ref()
            .is_some_and(|f| !v.name.contains(f.as_str()))
        {
            continue;
        }
        for r in &v.results {
            let b = manifest
                .build(&r.build)
                .ok_or_else(|| format!("{}: unknown build {}", v.name, r.build))?;
            if b.erofs_version == cfg.erofs_version {
                jobs.push((v, r, b));
            }
        }
    }
    let tmp = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Outcome>>> = Mutex::new(vec![None; jobs.len()]);
    let workers = match cfg.jobs {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    std::thread::scope(|s| {
        for _ in 0..workers.min(jobs.len().max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(v, r, b)) = jobs.get(i) else {
                    break;
                };
                let start = Instant::now();
                let out = tmp.path().join(format!("{i}.img"));
                let status = run_one(cfg, v, r, b, &out);
                let _ = std::fs::remove_file(&out);
                results.lock().unwrap()[i] = Some(Outcome {
                    vector: v.name.clone(),
                    build: b.id.clone(),
                    status,
                    time: start.elapsed(),
                });
            });
        }
    });
    let outcomes = results
        .into_inner()
        .unwrap()
        .into_iter()
        .map(|o| o.expect("every job ran"))
        .collect();
    Ok(Report { outcomes })
}

fn run_one(cfg: &RunConfig, v: &Vector, r: &Expected, b: &Build, out: &Path) -> Status {
    let input = cfg.vectors_dir.join(&v.input);
    let dump = match std::fs::read(&input) {
        Ok(d) => d,
        Err(e) => return Status::Harness(format!("{}: {e}", input.display())),
    };
    // The expected image, from our writer, checked against the manifest.
    let expected = match (build_image(&dump, v.strict, b), &r.image) {
        (Ok(img), Some(want)) if sha256_hex(&img) == want.sha256 => Some(img),
        (Err(_), None) => None,
        (Ok(_), Some(_)) => return Status::Stale("our image has another sha256".into()),
        (Ok(_), None) => return Status::Stale("we now write an image".into()),
        (Err(e), Some(_)) => return Status::Stale(format!("we now refuse it: {e}")),
    };
    let mut cmd = Command::new(&cfg.mkcomposefs);
    cmd.args(&b.args)
        .arg("--from-file")
        .arg(&input)
        .arg(out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if v.strict {
        cmd.env("CFS_PARSE_STRICT", "1");
    } else {
        cmd.env_remove("CFS_PARSE_STRICT");
    }
    let o = match cmd.output() {
        Ok(o) => o,
        Err(e) => return Status::Harness(format!("{}: {e}", cfg.mkcomposefs.display())),
    };
    let Some(expected) = expected else {
        return if o.status.success() {
            Status::Accepted
        } else {
            Status::Pass
        };
    };
    if !o.status.success() {
        let err = String::from_utf8_lossy(&o.stderr);
        let line = err.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        return Status::Refused(format!("{}: {}", o.status, line.trim()));
    }
    let actual = match std::fs::read(out) {
        Ok(a) => a,
        Err(e) => return Status::Refused(format!("no image written: {e}")),
    };
    if actual != expected {
        let offset = actual
            .iter()
            .zip(&expected)
            .position(|(a, e)| a != e)
            .unwrap_or(actual.len().min(expected.len())) as u64;
        let region = match RegionMap::new(&expected) {
            Ok(map) => map.region_at(offset),
            Err(e) => return Status::Harness(format!("mapping the expected image: {e}")),
        };
        return Status::Differs {
            offset,
            region,
            expected_len: expected.len() as u64,
            actual_len: actual.len() as u64,
        };
    }
    let (Some(info), Some(want)) = (
        &cfg.composefs_info,
        r.image.as_ref().and_then(|i| i.dump.as_ref()),
    ) else {
        return Status::Pass;
    };
    let want_path = cfg.vectors_dir.join(want);
    let want_text = match std::fs::read(&want_path) {
        Ok(t) => t,
        Err(e) => return Status::Harness(format!("{}: {e}", want_path.display())),
    };
    let o = match Command::new(info)
        .arg("dump")
        .arg(out)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output()
    {
        Ok(o) => o,
        Err(e) => return Status::Harness(format!("{}: {e}", info.display())),
    };
    if !o.status.success() {
        let err = String::from_utf8_lossy(&o.stderr);
        return Status::DumpDiffers {
            line: 0,
            detail: format!("composefs-info failed ({}): {}", o.status, err.trim()),
        };
    }
    match first_line_difference(&want_text, &o.stdout) {
        None => Status::Pass,
        Some((line, detail)) => Status::DumpDiffers { line, detail },
    }
}

/// 1-based number and a short description of the first differing line.
fn first_line_difference(want: &[u8], got: &[u8]) -> Option<(usize, String)> {
    if want == got {
        return None;
    }
    let mut w = want.split_inclusive(|&b| b == b'\n');
    let mut g = got.split_inclusive(|&b| b == b'\n');
    let short = |l: Option<&[u8]>| match l {
        None => "<end>".to_string(),
        Some(l) => {
            let s = String::from_utf8_lossy(l);
            let s = s.trim_end();
            if s.chars().count() > 120 {
                format!("{}…", s.chars().take(120).collect::<String>())
            } else {
                s.to_string()
            }
        }
    };
    for n in 1.. {
        let (a, b) = (w.next(), g.next());
        if a != b {
            return Some((n, format!("expected {:?}, got {:?}", short(a), short(b))));
        }
        if a.is_none() {
            break;
        }
    }
    None
}

impl Report {
    pub fn failures(&self) -> impl Iterator<Item = &Outcome> {
        self.outcomes.iter().filter(|o| !o.status.is_pass())
    }

    pub fn all_passed(&self) -> bool {
        self.failures().next().is_none()
    }

    /// Failures (every outcome when `verbose`), then a per-build summary.
    pub fn table(&self, verbose: bool) -> String {
        let mut s = String::new();
        let width = self
            .outcomes
            .iter()
            .map(|o| o.vector.len())
            .max()
            .unwrap_or(6)
            .max(6);
        let shown: Vec<&Outcome> = self
            .outcomes
            .iter()
            .filter(|o| verbose || !o.status.is_pass())
            .collect();
        if !shown.is_empty() {
            writeln!(
                s,
                "{:<7} {:<10} {:<width$}  detail",
                "result", "build", "vector"
            )
            .unwrap();
            for o in shown {
                let r = if o.status.is_pass() { "PASS" } else { "FAIL" };
                writeln!(
                    s,
                    "{r:<7} {:<10} {:<width$}  {}",
                    o.build,
                    o.vector,
                    o.status.message()
                )
                .unwrap();
            }
            s.push('\n');
        }
        writeln!(
            s,
            "{:<10} {:>6} {:>6} {:>8} {:>6} {:>6}",
            "build", "pass", "differ", "refused", "error", "total"
        )
        .unwrap();
        let mut builds: Vec<&str> = Vec::new();
        for o in &self.outcomes {
            if !builds.contains(&o.build.as_str()) {
                builds.push(&o.build);
            }
        }
        for b in builds {
            let of = |class: &str| {
                self.outcomes
                    .iter()
                    .filter(|o| o.build == b && o.status.class() == class)
                    .count()
            };
            let total = self.outcomes.iter().filter(|o| o.build == b).count();
            writeln!(
                s,
                "{b:<10} {:>6} {:>6} {:>8} {:>6} {:>6}",
                of("pass"),
                of("differ"),
                of("refused"),
                of("error"),
                total
            )
            .unwrap();
        }
        s
    }

    /// A JUnit XML report: one test suite per build, one test case per vector.
    pub fn junit(&self) -> String {
        let mut s = String::from(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"composefs-vectors\">\n",
        );
        let mut builds: Vec<&str> = Vec::new();
        for o in &self.outcomes {
            if !builds.contains(&o.build.as_str()) {
                builds.push(&o.build);
            }
        }
        for b in builds {
            let cases: Vec<&Outcome> = self.outcomes.iter().filter(|o| o.build == b).collect();
            let failures = cases
                .iter()
                .filter(|o| matches!(o.status.class(), "differ" | "refused"))
                .count();
            let errors = cases.iter().filter(|o| o.status.class() == "error").count();
            let time: f64 = cases.iter().map(|o| o.time.as_secs_f64()).sum();
            writeln!(
                s,
                "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{time:.3}\">",
                xml(b),
                cases.len()
            )
            .unwrap();
            for o in cases {
                write!(
                    s,
                    "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
                    xml(b),
                    xml(&o.vector),
                    o.time.as_secs_f64()
                )
                .unwrap();
                match o.status.class() {
                    "pass" => s.push_str("/>\n"),
                    class => {
                        let tag = if class == "error" { "error" } else { "failure" };
                        let msg = xml(&o.status.message());
                        writeln!(
                            s,
                            ">\n      <{tag} type=\"{class}\" message=\"{msg}\">{msg}</{tag}>\n    </testcase>"
                        )
                        .unwrap();
                    }
                }
            }
            s.push_str("  </testsuite>\n");
        }
        s.push_str("</testsuites>\n");
        s
    }
}

/// Escapes text for XML attributes and content; control characters XML 1.0 cannot carry
/// become `\xHH`.
fn xml(t: &str) -> String {
    let mut s = String::with_capacity(t.len());
    for c in t.chars() {
        match c {
            '&' => s.push_str("&amp;"),
            '<' => s.push_str("&lt;"),
            '>' => s.push_str("&gt;"),
            '"' => s.push_str("&quot;"),
            '\'' => s.push_str("&apos;"),
            '\t' | '\n' | '\r' => s.push(c),
            c if (c as u32) < 0x20 => write!(s, "\\x{:02x}", c as u32).unwrap(),
            c => s.push(c),
        }
    }
    s
}
