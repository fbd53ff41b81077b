//! `mkcfs-rs oci`, `tar` and `karg` as processes, on the fixtures of `fixtures/oci/`.
//!
//! The digests `oci` and `tar` print are the image ids composefs-rs 0.9.4 computes (pinned by
//! the `oci_layers` snapshots, which are read here, and recomputed through the library), for
//! sha256 and sha512, V1 and V2, plain and bootable; the image written measures to the printed
//! digest; the digest store holds every object the image names; `--print-karg` round-trips
//! through `karg parse`; `karg resolve` follows the initramfs order rules on a repository
//! folder; failures are one `mkcfs-rs: …` line, exit 1, and leave no image behind.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Command, Output};

use cfs_erofs::fsverity;
use cfs_erofs::karg::Karg;
use cfs_erofs::oci::boot::{transform_for_boot, DigestStore};
use cfs_erofs::oci::ids::{image_id, IdVersion};
use cfs_erofs::oci::layout::{tree_from_layout, OciLayout};
use cfs_erofs::oci::{TarOptions, XattrFilter};
use cfs_erofs::tree::{Digest, HashAlgorithm};
use conformance::oracle::{mkcfs_rs, repo_root};

const FIXTURES: [&str; 4] = ["synthetic", "debian", "crate", "bootable"];
const ALGS: [HashAlgorithm; 2] = [HashAlgorithm::Sha256, HashAlgorithm::Sha512];

fn fixture(name: &str) -> PathBuf {
    repo_root().join("fixtures/oci").join(name)
}

fn ours<S: AsRef<OsStr>>(args: &[S]) -> Output {
    Command::new(mkcfs_rs())
        .args(args)
        .output()
        .expect("run mkcfs-rs")
}

fn stdout_lines(o: &Output) -> Vec<String> {
    String::from_utf8(o.stdout.clone())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A failure of the newer commands: exit 1, one line on stderr naming the program.
fn assert_one_line_failure(o: &Output, what: &str) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{what}: exit code; stderr {err}");
    assert!(o.stdout.is_empty(), "{what}: stdout");
    assert_eq!(err.lines().count(), 1, "{what}: one line: {err}");
    assert!(err.starts_with("mkcfs-rs: "), "{what}: {err}");
    err
}

/// The ids of one fixture: V1, V2, and bootable V1, V2 if it is bootable.
#[derive(Debug, PartialEq, Eq)]
struct Ids {
    v1: String,
    v2: String,
    bootable: Option<(String, String)>,
}

impl Ids {
    fn get(&self, version: u8, bootable: bool) -> Option<&str> {
        match (version, bootable, &self.bootable) {
            (1, false, _) => Some(&self.v1),
            (_, false, _) => Some(&self.v2),
            (_, true, None) => None,
            (1, true, Some((b1, _))) => Some(b1),
            (_, true, Some((_, b2))) => Some(b2),
        }
    }
}

/// The ids composefs-rs computed, as pinned by `oci_layers`' snapshots.
fn pinned(name: &str, alg: HashAlgorithm) -> Ids {
    let path = repo_root().join(format!(
        "conformance/tests/snapshots/oci_layers__{name}_{}.snap",
        alg.name()
    ));
    let text = std::fs::read_to_string(&path).expect("oci_layers snapshot");
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(": ").map(str::to_owned))
    };
    Ids {
        v1: field("expected_v1_id").expect("v1 id"),
        v2: field("expected_v2_id").expect("v2 id"),
        bootable: field("expected_v1_bootable_id").zip(field("expected_v2_bootable_id")),
    }
}

/// The same ids computed through the library.
fn library(name: &str, alg: HashAlgorithm) -> Ids {
    let store = tempfile::tempdir().unwrap();
    let opts = TarOptions {
        algorithm: alg,
        digest_store: Some(store.path().to_owned()),
    };
    let tree = tree_from_layout(fixture(name), None, &opts, XattrFilter::AllowlistOnly).unwrap();
    let id = |t, v| image_id(t, v, alg).unwrap().to_hex();
    let mut boot = tree.clone();
    let bootable = transform_for_boot(&mut boot, &DigestStore(store.path().to_owned()))
        .ok()
        .map(|_| (id(&boot, IdVersion::V1), id(&boot, IdVersion::V2)));
    Ids {
        v1: id(&tree, IdVersion::V1),
        v2: id(&tree, IdVersion::V2),
        bootable,
    }
}

fn karg_for(version: u8, hex: &str) -> String {
    let d = Digest::from_bytes(&hex::decode(hex).unwrap()).unwrap();
    match version {
        1 => Karg::v1(d, false),
        _ => Karg::v2(d, false),
    }
    .to_string()
}

/// Runs one build (`oci` or `tar`) with `--print-digest --print-karg` for every hash, version
/// and bootable setting, and checks the output against the pinned ids.
fn check_builds(what: &str, name: &str, inputs: &[PathBuf]) -> usize {
    let tmp = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for alg in ALGS {
        let expect = pinned(name, alg);
        assert_eq!(library(name, alg), expect, "{name} {}", alg.name());
        for version in [1u8, 2] {
            for bootable in [false, true] {
                let img = tmp.path().join(format!("{name}-{version}-{bootable}.img"));
                let mut args: Vec<&OsStr> = vec![what.as_ref()];
                args.extend(inputs.iter().map(|p| p.as_os_str()));
                let (h, v) = (alg.name(), version.to_string());
                args.extend(["--hash", h, "--erofs-version", &v].map(OsStr::new));
                args.extend(["--print-digest", "--print-karg"].map(OsStr::new));
                if bootable {
                    args.push("--bootable".as_ref());
                }
                args.push(img.as_os_str());
                let o = ours(&args);
                let case = format!("{what} {name} {h} v{version} bootable={bootable}");
                match expect.get(version, bootable) {
                    None => {
                        assert_one_line_failure(&o, &case);
                        assert!(!img.exists(), "{case}: no image on failure");
                    }
                    Some(id) => {
                        assert!(
                            o.status.success(),
                            "{case}: {}",
                            String::from_utf8_lossy(&o.stderr)
                        );
                        assert_eq!(
                            stdout_lines(&o),
                            [id.to_owned(), karg_for(version, id)],
                            "{case}"
                        );
                        let written = fsverity::digest_file(alg, &img).unwrap().to_hex();
                        assert_eq!(written, id, "{case}: the image written measures to its id");
                        checked += 1;
                    }
                }
            }
        }
    }
    checked
}

#[test]
fn oci_prints_the_ids_composefs_rs_computes() {
    let mut checked = 0;
    for name in FIXTURES {
        checked += check_builds("oci", name, &[fixture(name)]);
    }
    // Four fixtures × two hashes × two versions, and the bootable one also bootable.
    assert_eq!(checked, 4 * 2 * 2 + 2 * 2);
}

/// The layer blobs of a fixture, lowest first.
fn layer_blobs(name: &str) -> Vec<PathBuf> {
    let layout = OciLayout::open(fixture(name)).unwrap();
    let image = layout.image(None).unwrap();
    image
        .manifest
        .layers
        .iter()
        .map(|d| layout.blob_path(&d.digest).unwrap())
        .collect()
}

#[test]
fn tar_of_the_layer_blobs_gives_the_same_ids() {
    let mut checked = 0;
    for name in FIXTURES {
        let blobs = layer_blobs(name);
        assert!(!blobs.is_empty());
        checked += check_builds("tar", name, &blobs);
    }
    assert_eq!(checked, 4 * 2 * 2 + 2 * 2);
}

#[test]
fn tar_reads_a_layer_from_stdin() {
    let blobs = layer_blobs("synthetic");
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("img");
    let mut args: Vec<&OsStr> = vec!["tar".as_ref()];
    args.extend(blobs[..blobs.len() - 1].iter().map(|p| p.as_os_str()));
    args.extend(["-", "--print-digest"].map(OsStr::new));
    args.push(img.as_os_str());
    let o = Command::new(mkcfs_rs())
        .args(&args)
        .stdin(std::fs::File::open(blobs.last().unwrap()).unwrap())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        stdout_lines(&o),
        [pinned("synthetic", HashAlgorithm::Sha256).v1]
    );
}

#[test]
fn digest_store_holds_every_object_the_image_names() {
    let tmp = tempfile::tempdir().unwrap();
    for name in FIXTURES {
        for alg in ALGS {
            let store = tmp.path().join(format!("store-{name}-{}", alg.name()));
            let img = tmp.path().join(format!("{name}-{}.img", alg.name()));
            let o = ours(&[
                OsStr::new("oci"),
                fixture(name).as_os_str(),
                "--hash".as_ref(),
                alg.name().as_ref(),
                "--digest-store".as_ref(),
                store.as_os_str(),
                img.as_os_str(),
            ]);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            assert!(o.stdout.is_empty(), "nothing printed unless asked");
            // The image's objects, listed by our composefs-info.
            let objects = ours(&[OsStr::new("info"), "objects".as_ref(), img.as_os_str()]);
            assert!(objects.status.success());
            let objects = stdout_lines(&objects);
            assert!(!objects.is_empty(), "{name}: the image names objects");
            for obj in objects {
                let path = store.join(&obj);
                let digest = fsverity::digest_file(alg, &path)
                    .unwrap_or_else(|e| panic!("{name}: object {obj}: {e}"));
                assert_eq!(
                    digest.object_path(),
                    obj,
                    "{name}: object named by its digest"
                );
            }
        }
    }
}

#[test]
fn oci_without_an_image_still_prints_and_ref_selects() {
    let id = pinned("synthetic", HashAlgorithm::Sha256).v1;
    let o = ours(&[
        OsStr::new("oci"),
        "--print-digest".as_ref(),
        "--ref".as_ref(),
        "synthetic".as_ref(),
        fixture("synthetic").as_os_str(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(stdout_lines(&o), [id]);
    let o = ours(&[
        OsStr::new("oci"),
        fixture("synthetic").as_os_str(),
        "--ref=absent".as_ref(),
        "--print-digest".as_ref(),
    ]);
    let err = assert_one_line_failure(&o, "absent ref");
    assert!(err.contains("absent"), "{err}");
}

#[test]
fn print_karg_round_trips_through_karg_parse_and_make() {
    for alg in ALGS {
        for version in [1u8, 2] {
            let v = version.to_string();
            let o = ours(&[
                OsStr::new("oci"),
                fixture("debian").as_os_str(),
                "--hash".as_ref(),
                alg.name().as_ref(),
                "--erofs-version".as_ref(),
                v.as_ref(),
                "--print-digest".as_ref(),
                "--print-karg".as_ref(),
            ]);
            assert!(o.status.success());
            let [digest, karg] = <[String; 2]>::try_from(stdout_lines(&o)).unwrap();
            let cmdline = format!("root=UUID=x ro {karg} quiet");
            let parsed = ours(&["karg", "parse", &cmdline]);
            assert!(parsed.status.success());
            let (form, vname) = if version == 1 {
                ("versioned", "v1")
            } else {
                ("legacy", "v2")
            };
            assert_eq!(
                stdout_lines(&parsed),
                [format!(
                    "{karg}\tversion={vname} form={form} algorithm={} digest={digest} insecure=false",
                    alg.name()
                )]
            );
            let made = ours(&[
                "karg",
                "make",
                "--erofs-version",
                &v,
                "--hash",
                alg.name(),
                &digest,
            ]);
            assert!(made.status.success());
            assert_eq!(stdout_lines(&made), std::slice::from_ref(&karg));
            let insecure = ours(&[
                "karg",
                "make",
                "--erofs-version",
                &v,
                "--hash",
                alg.name(),
                "--insecure",
                &digest,
            ]);
            assert_eq!(
                stdout_lines(&insecure),
                [karg.replacen('=', "=?", 1)],
                "insecure marks the value"
            );
        }
    }
    // A digest of the wrong length for its hash is refused.
    let o = ours(&["karg", "make", "--hash", "sha512", &"ab".repeat(32)]);
    assert_one_line_failure(&o, "short sha512 digest");
    let o = ours(&["karg", "parse", "root=/dev/sda quiet"]);
    assert_one_line_failure(&o, "no composefs argument");
    let o = ours(&["karg", "parse", "composefs=xyz"]);
    assert_one_line_failure(&o, "malformed argument");
}

/// A composefs-rs-style repository with `images/<hex>` for each given image.
fn repo_with(images: &[(&str, &[u8])]) -> tempfile::TempDir {
    let repo = tempfile::tempdir().unwrap();
    std::fs::create_dir(repo.path().join("images")).unwrap();
    for (name, data) in images {
        std::fs::write(repo.path().join("images").join(name), data).unwrap();
    }
    repo
}

#[test]
fn karg_resolve_picks_the_first_image_present() {
    let alg = HashAlgorithm::Sha256;
    let (a, b, c): (&[u8], &[u8], &[u8]) = (b"image a", b"image b", b"image c");
    let hex = |d: &[u8]| fsverity::digest(alg, d).to_hex();
    let (ha, hb, hc) = (hex(a), hex(b), hex(c));
    let repo = repo_with(&[(&ha, a), (&hb, b)]);
    let store = repo.path().to_str().unwrap();
    let v1 = |h: &str| format!("composefs.digest=v1-sha256-12:{h}");
    let resolve = |cmdline: &str| ours(&["karg", "resolve", "--store", store, cmdline]);

    // Missing images are skipped; the first present wins, whatever its spelling.
    let o = resolve(&format!("quiet {} composefs={hb} {} ro", v1(&hc), v1(&ha)));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(stdout_lines(&o), [format!("composefs={hb}")]);
    let o = resolve(&format!("{} composefs={hb}", v1(&ha)));
    assert_eq!(stdout_lines(&o), [v1(&ha)]);
    // Insecure arguments resolve the same way and keep their mark.
    let o = resolve(&format!("composefs=?{hc} composefs=?{ha}"));
    assert_eq!(stdout_lines(&o), [format!("composefs=?{ha}")]);
    // Quoted values stay one token.
    let o = resolve(&format!("foo=\"a b\" {}", v1(&hb)));
    assert_eq!(stdout_lines(&o), [v1(&hb)]);

    // Nothing present: an error listing what was tried.
    let err = assert_one_line_failure(&resolve(&v1(&hc)), "none present");
    assert!(err.contains(&hc), "{err}");
    // A malformed argument anywhere aborts, even after one that would resolve.
    assert_one_line_failure(
        &resolve(&format!("{} composefs.digest=v9-sha256-12:{ha}", v1(&ha))),
        "malformed later",
    );
    // No composefs argument at all.
    assert_one_line_failure(&resolve("quiet ro"), "no argument");
    // An image whose content does not measure to its name is an error, not a miss.
    let bad = repo_with(&[(&ha, b"not image a"), (&hb, b)]);
    let o = ours(&[
        "karg",
        "resolve",
        "--store",
        bad.path().to_str().unwrap(),
        &format!("{} composefs={hb}", v1(&ha)),
    ]);
    let err = assert_one_line_failure(&o, "mismatched image");
    assert!(err.contains("mismatch"), "{err}");
}

#[test]
fn failures_are_one_line_and_leave_no_image() {
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("img");
    let img_s = img.to_str().unwrap();
    let missing = tmp.path().join("missing");
    let missing_s = missing.to_str().unwrap();
    let synthetic = fixture("synthetic");
    let syn = synthetic.to_str().unwrap();
    let cases: Vec<Vec<&str>> = vec![
        vec!["oci", missing_s, img_s],
        vec!["oci", syn, "--hash", "md5", img_s],
        vec!["oci", syn, "--erofs-version", "3", img_s],
        vec!["oci", syn, "--bogus", img_s],
        vec!["oci", syn, "--bootable", img_s],
        vec!["oci"],
        vec!["tar", img_s],
        vec!["tar", missing_s, img_s],
        vec!["tar", "/etc/hostname", img_s],
        vec!["karg"],
        vec!["karg", "make"],
        vec!["karg", "resolve", "composefs=ab"],
    ];
    for args in &cases {
        let o = ours(args);
        assert_one_line_failure(&o, &format!("{args:?}"));
        assert!(!img.exists(), "{args:?} left an image");
    }
    // An existing image is left untouched by a failing build.
    std::fs::write(&img, b"keep me").unwrap();
    let o = ours(&["oci", syn, "--bootable", img_s]);
    assert_one_line_failure(&o, "bootable synthetic");
    assert_eq!(std::fs::read(&img).unwrap(), b"keep me");
    let leftovers = std::fs::read_dir(tmp.path()).unwrap().count();
    assert_eq!(leftovers, 1, "no temporary file left behind");
    // Help is not an error.
    for cmd in ["oci", "tar", "karg"] {
        let o = ours(&[cmd, "--help"]);
        assert!(o.status.success(), "{cmd} --help");
        assert!(String::from_utf8_lossy(&o.stdout).contains("Usage: mkcfs-rs"));
    }
}
