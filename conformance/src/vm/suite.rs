//! The tests CI runs in every kernel, all in one boot (see the README's "Kernel truth in
//! virtual machines"):
//!
//! - **verity**: digest stores written in the guest by `mkcfs-rs` and C `mkcomposefs` on an
//!   ext4 with fs-verity (each object must get fs-verity), then the image mounted by each
//!   `mount.composefs` under test (C's is the control): with the image's `digest=`, a wrong
//!   digest, an image without fs-verity, an object swapped for another verity file, objects
//!   without fs-verity — with and without `verity`; the same for `mkcfs-rs oci
//!   --digest-store` images in sha256 and sha512.
//!
//! Every case's outcome is one line of text; the host checks that every tool gives the same
//! line and that it is the one the kernel's capabilities call for ([`expected`]).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cfs_erofs::fsverity;
use cfs_erofs::tree::HashAlgorithm;

use super::{boot, matrix, GuestRun, GuestSpec, VmError};

/// What to boot and with which binaries.
#[derive(Clone, Debug)]
pub struct Config {
    /// A short name for reports (`bookworm`, `sid`, or the package's).
    pub name: String,
    pub kernel_debs: Vec<PathBuf>,
    pub work: PathBuf,
    /// Our `mkcfs-rs`.
    pub mkcfs_rs: PathBuf,
    /// The `conformance` binary (its `vm-read` runs in the guest).
    pub conformance: PathBuf,
    /// The mount.composefs implementations to judge, by name; `c` (the control) is C's.
    pub mount_tools: Vec<MountTool>,
    pub deadline: Duration,
    /// Read only the first N matrix images (a quick look; the tests read all).
    pub matrix_limit: Option<usize>,
}

/// A `mount.composefs` under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MountTool {
    /// C composefs 1.0.8 (Debian), the control.
    C,
    /// `mkcfs-rs` reached through a symlink named `mount.composefs`.
    Ours,
}

impl MountTool {
    pub fn name(self) -> &'static str {
        match self {
            MountTool::C => "c",
            MountTool::Ours => "ours",
        }
    }
}

/// The files of the verity tree: (path, contents). `a.bin`'s object is the one swapped.
fn verity_tree() -> Vec<(&'static str, Vec<u8>)> {
    let pattern = |n: usize, mul: usize, add: usize, m: usize| -> Vec<u8> {
        (0..n).map(|i| ((i * mul + add) % m) as u8).collect()
    };
    vec![
        ("small.txt", b"hello composefs\n".to_vec()),
        ("a.bin", pattern(8192, 7, 1, 251)),
        ("b.bin", pattern(12288, 13, 5, 251)),
        ("sub/c.bin", pattern(70000, 31, 3, 253)),
        ("sub/d.txt", b"d\n".to_vec()),
    ]
}

fn write_file(path: &Path, data: &[u8]) -> Result<(), VmError> {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).map_err(|e| VmError::io(p, e))?;
    }
    fs::write(path, data).map_err(|e| VmError::io(path, e))
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), VmError> {
    fs::create_dir_all(to).map_err(|e| VmError::io(to, e))?;
    for e in fs::read_dir(from).map_err(|e| VmError::io(from, e))? {
        let e = e.map_err(|e| VmError::io(from, e))?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if src.is_dir() {
            copy_dir(&src, &dst)?;
        } else {
            fs::copy(&src, &dst).map_err(|e| VmError::io(&src, e))?;
        }
    }
    Ok(())
}

/// Writes the verity inputs under `data` and returns the script variables they need.
fn prepare_verity(data: &Path) -> Result<String, VmError> {
    let tree = data.join("tree");
    let files = verity_tree();
    for (p, c) in &files {
        write_file(&tree.join(p), c)?;
    }
    std::os::unix::fs::symlink("a.bin", tree.join("link")).map_err(|e| VmError::io(&tree, e))?;
    let payload = |name: &str| {
        let c = &files.iter().find(|(p, _)| *p == name).expect("file").1;
        fsverity::digest(HashAlgorithm::Sha256, c).object_path()
    };
    for layout in ["synthetic", "bootable"] {
        copy_dir(
            &crate::oracle::repo_root().join("fixtures/oci").join(layout),
            &data.join("oci").join(layout),
        )?;
    }
    Ok(format!(
        "VICTIM={}\nDONOR={}\n",
        payload("a.bin"),
        payload("b.bin")
    ))
}

/// The guest's part for verity: shell functions and the cases, per mount tool.
fn verity_script(vars: &str, tools: &[MountTool]) -> String {
    let tools: Vec<&str> = tools.iter().map(|t| t.name()).collect();
    format!(
        "{vars}TOOLS=\"{tools}\"\n{body}",
        tools = tools.join(" "),
        body = VERITY_SCRIPT
    )
}

const VERITY_SCRIPT: &str = r#"
V=/data/v
mkdir -p "$V" /mnt/t
rec() { k=$1; shift; echo "$k $*" >> /results/verity; }
# count_verity DIR: "N/M" objects of DIR that have fs-verity (of which algorithm)
count_verity() {
  n=0; m=0; algs=
  for o in $(cd "$1" && find . -type f ! -name '.*' | sort); do
    m=$((m+1))
    if a=$(fsverity measure "$1/$o" 2>/dev/null); then n=$((n+1)); algs="${a%%:*}"; fi
  done
  echo "$n/$m $algs"
}
# copy_store FROM TO [verity-alg]: copies objects (a copy has no fs-verity), enabling it
# on each when asked
copy_store() {
  cp -r "$1" "$2" || fail "copy store $1"
  if [ -n "$3" ]; then
    for o in $(cd "$2" && find . -type f); do fsverity enable --hash-alg="$3" "$2/$o" || fail "fsverity enable $2/$o"; done
  fi
}
# swap STORE VICTIM DONOR ALG: the victim object gets the donor's content, with fs-verity
swap() {
  rm -f "$1/$2" && cp "$1/$3" "$1/$2" && fsverity enable --hash-alg="$4" "$1/$2" || fail "swap $2 in $1"
}
# case LABEL IMAGE OPTIONS REFERENCE: mounts IMAGE with every tool, reads every file, records
# "mounted <comparison with REFERENCE>" or "refused <first error line>"
case_() {
  for t in $TOOLS; do
    if /usr/local/bin/$t/mount.composefs "$2" /mnt/t -o "$3" 2>/tmp/err; then
      r="mounted $(conformance vm-read --against "$4" /mnt/t 2>&1)"
      umount /mnt/t || fail "umount after $1 ($t)"
    else
      r="refused $(grep -v '^$' /tmp/err | head -n1)"
    fi
    rec "$t/$1" "$r"
  done
}
digest_of() { fsverity measure "$1" | cut -d' ' -f1 | cut -d: -f2; }
# a digest that differs from $1 in every hex digit
wrong() { echo "$1" | tr 0-9a-f 1-9a-f0; }

step verity-stores
conformance vm-read /data/tree > "$V/tree.list" || fail "read the source tree"
mkcfs-rs --digest-store="$V/objs" /data/tree "$V/img.cfs" || fail "mkcfs-rs --digest-store"
/usr/local/bin/c/mkcomposefs --digest-store="$V/objs-c" /data/tree "$V/img-c.cfs" || fail "C mkcomposefs --digest-store"
rec store/images-identical "$(cmp -s "$V/img.cfs" "$V/img-c.cfs" && echo yes || echo no)"
rec store/ours-objects-with-verity "$(count_verity "$V/objs")"
rec store/c-objects-with-verity "$(count_verity "$V/objs-c")"
cp "$V/img.cfs" "$V/img-plain.cfs"
fsverity enable "$V/img.cfs" || fail "fsverity enable the image"
D=$(digest_of "$V/img.cfs")
rec measure/ours-equals-kernel "$([ "$(mkcfs-rs info measure-file "$V/img.cfs")" = "$D" ] && echo yes || echo no)"
copy_store "$V/objs" "$V/objs-swap" sha256
swap "$V/objs-swap" "$VICTIM" "$DONOR" sha256
copy_store "$V/objs" "$V/objs-plain"

step verity-mounts
case_ digest "$V/img.cfs" "basedir=$V/objs,digest=$D" "$V/tree.list"
case_ verity "$V/img.cfs" "basedir=$V/objs,verity" "$V/tree.list"
case_ wrong-digest "$V/img.cfs" "basedir=$V/objs,digest=$(wrong "$D")" "$V/tree.list"
case_ image-without-verity "$V/img-plain.cfs" "basedir=$V/objs,digest=$D" "$V/tree.list"
case_ swapped-object-verity "$V/img.cfs" "basedir=$V/objs-swap,verity" "$V/tree.list"
case_ object-without-verity "$V/img.cfs" "basedir=$V/objs-plain,verity" "$V/tree.list"
case_ swapped-object-no-verity "$V/img.cfs" "basedir=$V/objs-swap" "$V/tree.list"
case_ object-without-verity-no-verity "$V/img.cfs" "basedir=$V/objs-plain" "$V/tree.list"

for h in sha256 sha512; do
  step "verity-oci-$h"
  O="$V/oci-$h"
  mkdir -p "$O"
  mkcfs-rs oci /data/oci/synthetic --hash "$h" --digest-store "$O/objs" "$O/img.cfs" || fail "mkcfs-rs oci --hash $h --digest-store"
  rec "oci-$h/objects-with-verity" "$(count_verity "$O/objs")"
  # the reference: what the image reads through its objects, unchecked
  refmount "$O/img.cfs" "$O/objs" "$O/ref.list"
  fsverity enable --hash-alg="$h" "$O/img.cfs" || fail "fsverity enable the $h image"
  OD=$(digest_of "$O/img.cfs")
  copy_store "$O/objs" "$O/objs-swap" "$h"
  first=$(cd "$O/objs" && find . -type f | sort | head -n1)
  second=$(cd "$O/objs" && find . -type f | sort | sed -n 2p)
  swap "$O/objs-swap" "$first" "$second" "$h"
  case_ "oci-$h/digest" "$O/img.cfs" "basedir=$O/objs,digest=$OD" "$O/ref.list"
  case_ "oci-$h/verity" "$O/img.cfs" "basedir=$O/objs,verity" "$O/ref.list"
  case_ "oci-$h/swapped-object-verity" "$O/img.cfs" "basedir=$O/objs-swap,verity" "$O/ref.list"
done
"#;

/// Mounts like composefs without verity, with the kernel's own tools (for reference
/// listings), in shell: erofs from a loop device, overlay with the objects as a data-only or,
/// on kernels before 6.5, a plain lower layer.
const REFERENCE_MOUNT: &str = r#"
refmount() {
  mkdir -p /mnt/ref-e /mnt/ref-o
  mount -t erofs -o ro,loop "$1" /mnt/ref-e || fail "reference erofs mount of $1"
  mount -t overlay overlay -o ro,metacopy=on,redirect_dir=on,lowerdir="/mnt/ref-e::$2" /mnt/ref-o 2>/dev/null \
    || mount -t overlay overlay -o ro,metacopy=on,redirect_dir=on,lowerdir="/mnt/ref-e:$2" /mnt/ref-o \
    || fail "reference overlay mount of $1"
  conformance vm-read /mnt/ref-o > "$3" || fail "reference read of $1"
  umount /mnt/ref-o; umount /mnt/ref-e
}
"#;

/// What each verity case must give on a kernel with (`true`) or without overlayfs `verity=`
/// (added in 6.6). `None`: only the agreement between tools is checked.
pub fn expected(case: &str, overlay_verity: bool) -> Option<&'static str> {
    let refused_by_kernel = "refused mount.composefs: Failed to mount composefs";
    Some(match case {
        "digest" | "verity" | "oci-sha256/digest" | "oci-sha256/verity" | "oci-sha512/verity" => {
            if overlay_verity {
                "mounted same"
            } else {
                refused_by_kernel
            }
        }
        "wrong-digest" => "refused mount.composefs: Failed to mount composefs /data/v/img.cfs: Image has wrong fs-verity",
        "image-without-verity" => "refused mount.composefs: Failed to mount composefs /data/v/img-plain.cfs: Image has no fs-verity",
        // C compares only 32-byte (sha256) digests: a sha512 image is "wrong".
        "oci-sha512/digest" => "refused mount.composefs: Failed to mount composefs /data/v/oci-sha512/img.cfs: Image has wrong fs-verity",
        "swapped-object-verity" => {
            if overlay_verity {
                "mounted a.bin:EIO"
            } else {
                refused_by_kernel
            }
        }
        "object-without-verity" => {
            if overlay_verity {
                "mounted a.bin:EIO b.bin:EIO sub/c.bin:EIO"
            } else {
                refused_by_kernel
            }
        }
        "swapped-object-no-verity" => "mounted a.bin:differs",
        "object-without-verity-no-verity" => "mounted same",
        "oci-sha256/swapped-object-verity" | "oci-sha512/swapped-object-verity" => {
            if overlay_verity {
                "mounted "
            } else {
                refused_by_kernel
            }
        }
        _ => return None,
    })
}

/// One kernel's results.
#[derive(Debug)]
pub struct Report {
    pub name: String,
    pub run: GuestRun,
    /// Whether the kernel's overlayfs takes `verity=` (probed in the guest).
    pub overlay_verity: bool,
    /// Case → tool → outcome.
    pub verity: BTreeMap<String, BTreeMap<String, String>>,
    /// Store and measurement checks (`store/…`, `measure/…`, `oci-*/objects-with-verity`).
    pub facts: BTreeMap<String, String>,
    /// The boot cases (`mkcfs-rs karg mount`): case → outcome.
    pub boot: BTreeMap<String, String>,
    /// The kernel matrix ([`matrix::table`]): counts per build, then every image that does
    /// not read as on the host.
    pub matrix_table: String,
    /// Every check that failed, in words.
    pub failures: Vec<String>,
}

const CAPS_SCRIPT: &str = r#"
step capabilities
mkdir -p /mnt/cap-l /mnt/cap-d /mnt/cap-o
if mount -t overlay overlay -o ro,verity=require,metacopy=on,redirect_dir=on,lowerdir=/mnt/cap-l::/mnt/cap-d /mnt/cap-o 2>/dev/null \
  || mount -t overlay overlay -o ro,verity=require,metacopy=on,redirect_dir=on,lowerdir=/mnt/cap-l:/mnt/cap-d /mnt/cap-o 2>/dev/null; then
  echo overlay-verity yes >> /results/caps; umount /mnt/cap-o
else
  echo overlay-verity no >> /results/caps
fi
if mount -t overlay overlay -o ro,lowerdir=/mnt/cap-l::/mnt/cap-d /mnt/cap-o 2>/dev/null; then
  echo overlay-data-only yes >> /results/caps; umount /mnt/cap-o
else
  echo overlay-data-only no >> /results/caps
fi
"#;

/// Boots the kernel once and runs every part of the suite.
pub fn run(cfg: &Config) -> Result<Report, VmError> {
    let _ = fs::remove_dir_all(&cfg.work);
    let data = cfg.work.join("data");
    fs::create_dir_all(&data).map_err(|e| VmError::io(&data, e))?;
    let vars = prepare_verity(&data)?;
    let boot_inputs = prepare_boot(&cfg.mkcfs_rs, &cfg.work)?;
    let matrix_dir = data.join("matrix");
    let host_matrix = cfg.work.join("matrix-host");
    prepare_matrix(
        &cfg.conformance,
        &matrix_dir,
        &host_matrix,
        cfg.matrix_limit,
    )?;
    let script = [
        CAPS_SCRIPT.to_string(),
        REFERENCE_MOUNT.to_string(),
        verity_script(&vars, &cfg.mount_tools),
        boot_inputs.vars.clone(),
        BOOT_SCRIPT.to_string(),
        FUSE_SCRIPT.to_string(),
        MATRIX_SCRIPT.to_string(),
    ]
    .concat();
    let prefix = crate::oracle::oracles_dir().join("prefix");
    let files = Vec::new();
    let mut host_programs = vec![
        (cfg.mkcfs_rs.clone(), "usr/bin/mkcfs-rs".to_string()),
        (cfg.conformance.clone(), "usr/bin/conformance".to_string()),
    ];
    host_programs.dedup();
    let mut symlinks = Vec::new();
    if cfg.mount_tools.contains(&MountTool::Ours) {
        // mkcfs-rs acts as the tool its name says
        symlinks.push((
            "usr/local/bin/ours/mount.composefs".to_string(),
            "/usr/bin/mkcfs-rs".to_string(),
        ));
    }
    let spec = GuestSpec {
        kernel_debs: cfg.kernel_debs.clone(),
        work: cfg.work.clone(),
        host_programs,
        oracle_prefix: prefix.clone(),
        oracle_programs: vec![
            (
                prefix.join("usr/sbin/mount.composefs"),
                "usr/local/bin/c/mount.composefs".into(),
            ),
            (
                prefix.join("usr/bin/mkcomposefs"),
                "usr/local/bin/c/mkcomposefs".into(),
            ),
            (
                prefix.join("usr/bin/fsverity"),
                "usr/local/bin/fsverity".into(),
            ),
        ],
        files,
        symlinks,
        data,
        script,
        cmdline: boot_inputs.cmdline.clone(),
        memory_mib: 1024,
        deadline: cfg.deadline,
    };
    let run = boot(&spec)?;
    let overlay_verity = run.text("caps").contains("overlay-verity yes");
    let mut verity: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut facts = BTreeMap::new();
    for line in run.text("verity").lines() {
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        let tool = cfg
            .mount_tools
            .iter()
            .find(|t| key.starts_with(&format!("{}/", t.name())));
        match tool {
            Some(t) => {
                verity
                    .entry(key[t.name().len() + 1..].to_string())
                    .or_default()
                    .insert(t.name().to_string(), value.to_string());
            }
            None => {
                facts.insert(key.to_string(), value.to_string());
            }
        }
    }
    let list =
        fs::read_to_string(matrix_dir.join("list")).map_err(|e| VmError::io(&matrix_dir, e))?;
    let host_outcomes = matrix::parse_outcomes(
        &fs::read_to_string(host_matrix.join("outcomes"))
            .map_err(|e| VmError::io(&host_matrix, e))?,
    );
    let guest_outcomes = matrix::parse_outcomes(&run.text("matrix/outcomes"));
    let verdicts = matrix::compare(
        &list,
        &host_outcomes,
        &host_matrix,
        &guest_outcomes,
        &run.results,
    );
    let modes: Vec<String> = matrix::modes_used(&guest_outcomes)
        .into_iter()
        .map(|(m, n)| format!("{m} {n}"))
        .collect();
    let matrix_table = format!(
        "composefs mounts by overlay mode: {}\n{}",
        modes.join(", "),
        matrix::table(&verdicts)
    );
    let mut failures = Vec::new();
    if guest_outcomes.is_empty() {
        failures.push("the guest read no matrix image".into());
    }
    check_kernel_version(&run.kernel_version, overlay_verity, &mut failures);
    let boot_facts: BTreeMap<String, String> = facts
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("boot/")?.to_string(), v.clone())))
        .collect();
    facts.retain(|k, _| !k.starts_with("boot/"));
    let data_only = run.text("caps").contains("overlay-data-only yes");
    check_boot(
        &boot_facts,
        &boot_inputs.ids,
        overlay_verity,
        data_only,
        &mut failures,
    );
    check_verity(
        &verity,
        &facts,
        overlay_verity,
        &cfg.mount_tools,
        &mut failures,
    );
    Ok(Report {
        name: cfg.name.clone(),
        run,
        overlay_verity,
        verity,
        facts,
        boot: boot_facts,
        matrix_table,
        failures,
    })
}

/// The boot images: name, OCI layout, `mkcfs-rs oci` options, fs-verity algorithm.
const BOOT_IMAGES: [(&str, &str, &[&str], &str); 4] = [
    ("v1-sha256", "synthetic", &[], "sha256"),
    (
        "v1-sha512-bootable",
        "bootable",
        &["--bootable", "--hash", "sha512"],
        "sha512",
    ),
    (
        "v2-sha256",
        "synthetic",
        &["--erofs-version", "2"],
        "sha256",
    ),
    (
        "v2-sha512-bootable",
        "bootable",
        &["--bootable", "--hash", "sha512", "--erofs-version", "2"],
        "sha512",
    ),
];

/// The boot part's inputs: each image's id and kernel argument, computed on the host (the
/// guest rebuilds the same images into its store and checks the ids), and the boot command
/// line: a missing image first, then the V1 sha256 one.
struct BootInputs {
    vars: String,
    cmdline: String,
    /// name → (hex id, kernel argument)
    ids: BTreeMap<String, (String, String)>,
}

fn prepare_boot(mkcfs_rs: &Path, work: &Path) -> Result<BootInputs, VmError> {
    let mut ids = BTreeMap::new();
    let mut vars = String::new();
    for (name, layout, opts, _) in BOOT_IMAGES {
        let img = work.join(format!("boot-{name}.cfs"));
        let out = std::process::Command::new(mkcfs_rs)
            .arg("oci")
            .arg(crate::oracle::repo_root().join("fixtures/oci").join(layout))
            .args(opts)
            .args(["--print-digest", "--print-karg"])
            .arg(&img)
            .output()
            .map_err(|e| VmError::Tool("mkcfs-rs oci".into(), e.to_string()))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut lines = text.lines();
        let (Some(hex), Some(karg), true) = (lines.next(), lines.next(), out.status.success())
        else {
            return Err(VmError::Tool(
                "mkcfs-rs oci".into(),
                format!("{name}: {}", String::from_utf8_lossy(&out.stderr)),
            ));
        };
        vars += &format!("ID_{}={hex}\n", name.replace('-', "_"));
        ids.insert(name.to_string(), (hex.to_string(), karg.to_string()));
    }
    let missing = "0".repeat(63) + "1";
    let cmdline = format!(
        "composefs.digest=v1-sha256-12:{missing} {}",
        ids["v1-sha256"].1
    );
    Ok(BootInputs { vars, cmdline, ids })
}

const BOOT_SCRIPT: &str = r#"
step boot-store
S=/data/store
mkdir -p "$S/images" "$S/objects" /sysroot
# build NAME LAYOUT ALG OPTIONS…: the image into the store under its id, with fs-verity
build() {
  n=$1; l=$2; a=$3; shift 3
  mkcfs-rs oci "/data/oci/$l" "$@" --digest-store "$S/objects" --print-digest "$S/images/.new" > /tmp/id || fail "build boot image $n"
  id=$(cat /tmp/id)
  want=$(eval echo "\$ID_$(echo "$n" | tr - _)")
  [ "$id" = "$want" ] || fail "boot image $n: the guest's id $id is not the host's $want"
  mv "$S/images/.new" "$S/images/$id"
  fsverity enable --hash-alg="$a" "$S/images/$id" || fail "fsverity enable boot image $n"
  refwalk "$S/images/$id" "$S/objects" "/data/v/boot-$n.walk"
}
# refwalk IMAGE OBJECTS OUT: the tree the image shows, mounted by the kernel's own tools
refwalk() {
  mkdir -p /mnt/ref-e /mnt/ref-o
  mount -t erofs -o ro,loop "$1" /mnt/ref-e || fail "reference erofs mount of $1"
  mount -t overlay overlay -o ro,metacopy=on,redirect_dir=on,lowerdir="/mnt/ref-e::$2" /mnt/ref-o 2>/dev/null \
    || mount -t overlay overlay -o ro,metacopy=on,redirect_dir=on,lowerdir="/mnt/ref-e:$2" /mnt/ref-o \
    || fail "reference overlay mount of $1"
  conformance walk --content /mnt/ref-o > "$3" || fail "reference walk of $1"
  umount /mnt/ref-o; umount /mnt/ref-e
}
build v1-sha256 synthetic sha256
build v1-sha512-bootable bootable sha512 --bootable --hash sha512
build v2-sha256 synthetic sha256 --erofs-version 2
build v2-sha512-bootable bootable sha512 --bootable --hash sha512 --erofs-version 2
# an image stored under a name that is not its digest
LIE=$(echo "$ID_v1_sha256" | tr 0-9a-f 1-9a-f0)
cp "$S/images/$ID_v1_sha256" "$S/images/$LIE" && fsverity enable "$S/images/$LIE" || fail "lying image"
# a store copied without any fs-verity
cp -r "$S" /data/store-plain || fail "copy the store"

# kcase LABEL STORE REF [CMDLINE]: karg mount (the real /proc/cmdline without CMDLINE)
kcase() {
  if [ $# -ge 4 ]; then echo "$4" > /tmp/cmdline; set -- "$1" "$2" "$3" --cmdline /tmp/cmdline; else set -- "$1" "$2" "$3"; fi
  l=$1; st=$2; ref=$3; shift 3
  if mkcfs-rs karg mount --store "$st" "$@" /sysroot > /tmp/kout 2> /tmp/kerr; then
    conformance walk --content /sysroot > /tmp/got.walk 2>&1
    if [ -n "$ref" ] && cmp -s /tmp/got.walk "$ref"; then tree=same; else tree=differs; fi
    if grep ' /sysroot ' /proc/mounts | grep -q 'verity=require'; then v=verity; else v=no-verity; fi
    r="mounted tree=$tree $v won=$(grep -o '[0-9a-f]\{64,\}' /tmp/kout | head -n1)"
    umount /sysroot || fail "umount /sysroot after $l"
  else
    r="refused $(grep -v '^$' /tmp/kerr | head -n1)"
  fi
  rec "boot/$l" "$r"
}
step boot-proc-cmdline
rec boot/proc-cmdline-has-args "$(grep -o 'composefs.digest=' /proc/cmdline | wc -l)"
kcase proc-cmdline "$S" /data/v/boot-v1-sha256.walk
step boot-variants
M256=$(printf '%064d' 2); M512=$(printf '%0128d' 3)
kcase v1-sha512-bootable "$S" /data/v/boot-v1-sha512-bootable.walk "composefs.digest=v1-sha512-12:$M512 composefs.digest=v1-sha512-12:$ID_v1_sha512_bootable"
kcase v2-sha256-legacy "$S" /data/v/boot-v2-sha256.walk "quiet composefs=$ID_v2_sha256 rw"
kcase v2-sha512-bootable-legacy "$S" /data/v/boot-v2-sha512-bootable.walk "composefs=$M512 composefs=$ID_v2_sha512_bootable"
kcase several-first-missing "$S" /data/v/boot-v1-sha512-bootable.walk "composefs.digest=v1-sha256-12:$M256 composefs=$M512 composefs.digest=v1-sha512-12:$ID_v1_sha512_bootable composefs.digest=v1-sha256-12:$ID_v1_sha256"
kcase lying-image "$S" "" "composefs.digest=v1-sha256-12:$LIE"
kcase wrong-format "$S" "" "composefs.digest=v1-sha256-12:$ID_v2_sha256"
kcase none-present "$S" "" "composefs.digest=v1-sha256-12:$M256 composefs=$M512"
kcase insecure-without-verity /data/store-plain /data/v/boot-v1-sha256.walk "composefs.digest=?v1-sha256-12:$ID_v1_sha256"
kcase secure-without-verity /data/store-plain "" "composefs.digest=v1-sha256-12:$ID_v1_sha256"
kcase insecure-legacy-without-verity /data/store-plain /data/v/boot-v2-sha256.walk "composefs=?$ID_v2_sha256"
"#;

/// What each boot case must give; `won` is checked against the image the case names.
fn expected_boot(
    case: &str,
    overlay_verity: bool,
    data_only: bool,
) -> Option<(&'static str, Option<&'static str>)> {
    let verified = |img| {
        if overlay_verity {
            ("mounted tree=same verity", Some(img))
        } else {
            ("refused ", None)
        }
    };
    Some(match case {
        "proc-cmdline" => verified("v1-sha256"),
        "v1-sha512-bootable" => verified("v1-sha512-bootable"),
        "v2-sha256-legacy" => verified("v2-sha256"),
        "v2-sha512-bootable-legacy" => verified("v2-sha512-bootable"),
        "several-first-missing" => verified("v1-sha512-bootable"),
        "lying-image" | "wrong-format" | "none-present" | "secure-without-verity" => {
            ("refused ", None)
        }
        "insecure-without-verity" => ("mounted tree=same no-verity", Some("v1-sha256")),
        // Without data-only lower layers (before 6.5) the objects folder is a plain lower
        // layer: V1 images hide its fan-out folders behind their 256 whiteout stubs, V2 images
        // have none, so `00`…`ff` show in the root.
        "insecure-legacy-without-verity" if !data_only => {
            ("mounted tree=differs no-verity", Some("v2-sha256"))
        }
        "insecure-legacy-without-verity" => ("mounted tree=same no-verity", Some("v2-sha256")),
        "proc-cmdline-has-args" => ("2", None),
        _ => return None,
    })
}

const FUSE_SCRIPT: &str = r#"
# fcase LABEL OBJECTS: our composefs-fuse serves the verity image with OBJECTS
fcase() {
  mkdir -p /mnt/f
  if mkcfs-rs fuse -o "source=$V/img.cfs,basedir=$2" /mnt/f 2>/tmp/ferr; then
    i=0; while [ $i -lt 50 ] && ! grep -q ' /mnt/f fuse' /proc/mounts; do sleep 0.1; i=$((i+1)); done
    r="mounted $(conformance vm-read --against "$V/tree.list" /mnt/f 2>&1)"
    umount /mnt/f || fail "umount the FUSE mount after $1"
  else
    r="refused $(grep -v '^$' /tmp/ferr | head -n1)"
  fi
  rec "fuse/$1" "$r"
}
step fuse
fcase objects "$V/objs"
fcase swapped-object "$V/objs-swap"
fcase object-without-verity "$V/objs-plain"
"#;

const MATRIX_SCRIPT: &str = r#"
step matrix
conformance vm-matrix /data/matrix /results/matrix || fail "the matrix run stopped"
"#;

/// Writes the matrix folder and reads it on the host, in a private mount namespace; the
/// host's outcomes become the guest's `expected`.
fn prepare_matrix(
    conformance: &Path,
    dir: &Path,
    host_out: &Path,
    limit: Option<usize>,
) -> Result<(), VmError> {
    let mut images = matrix::images()?;
    images.truncate(limit.unwrap_or(usize::MAX));
    matrix::write_folder(&images, dir)?;
    let out = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private"])
        .arg(conformance)
        .arg("vm-matrix")
        .arg(dir)
        .arg(host_out)
        .arg("--all-overlay-modes")
        .output()
        .map_err(|e| VmError::Tool("unshare".into(), e.to_string()))?;
    if !out.status.success() {
        return Err(VmError::Tool(
            "host matrix read".into(),
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    let expected = dir.join("expected");
    fs::copy(host_out.join("outcomes"), &expected).map_err(|e| VmError::io(&expected, e))?;
    Ok(())
}

/// overlayfs has `verity=` from 6.6: a newer kernel without it is a failure of the setup.
fn check_kernel_version(version: &str, overlay_verity: bool, failures: &mut Vec<String>) {
    let mut nums = version
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse::<u32>().ok());
    let (major, minor) = (nums.next().unwrap_or(0), nums.next().unwrap_or(0));
    if (major, minor) >= (6, 6) && !overlay_verity {
        failures.push(format!(
            "kernel {version} (≥ 6.6) refused overlayfs verity=require"
        ));
    }
}

fn check_boot(
    boot: &BTreeMap<String, String>,
    ids: &BTreeMap<String, (String, String)>,
    overlay_verity: bool,
    data_only: bool,
    failures: &mut Vec<String>,
) {
    if boot.is_empty() {
        failures.push("no boot case ran".into());
    }
    for (case, got) in boot {
        match expected_boot(case, overlay_verity, data_only) {
            Some((want, img)) => {
                if !got.starts_with(want) {
                    failures.push(format!("boot {case}: want `{want}…`, got `{got}`"));
                } else if let Some(img) = img {
                    let hex = &ids[img].0;
                    if !got.ends_with(&format!("won={hex}")) {
                        failures.push(format!(
                            "boot {case}: want {img} ({hex}) mounted, got `{got}`"
                        ));
                    }
                }
            }
            None => failures.push(format!("boot {case}: no expectation")),
        }
    }
}

fn check_verity(
    verity: &BTreeMap<String, BTreeMap<String, String>>,
    facts: &BTreeMap<String, String>,
    overlay_verity: bool,
    tools: &[MountTool],
    failures: &mut Vec<String>,
) {
    let want_facts = [
        // composefs-fuse checks each object's digest itself (computed on open), so an object
        // without kernel fs-verity but with the right bytes reads.
        ("fuse/objects", "mounted same"),
        ("fuse/swapped-object", "mounted a.bin:EIO"),
        ("fuse/object-without-verity", "mounted same"),
        ("store/images-identical", "yes"),
        ("store/ours-objects-with-verity", "3/3 sha256"),
        ("store/c-objects-with-verity", "3/3 sha256"),
        ("measure/ours-equals-kernel", "yes"),
    ];
    for (k, want) in want_facts {
        match facts.get(k) {
            Some(v) if v == want => {}
            other => failures.push(format!("{k}: want `{want}`, got {other:?}")),
        }
    }
    for h in ["sha256", "sha512"] {
        let k = format!("oci-{h}/objects-with-verity");
        match facts.get(&k) {
            Some(v) if v.ends_with(h) && v.split('/').next() == v.split(['/', ' ']).nth(1) => {}
            other => failures.push(format!(
                "{k}: every object should have {h} fs-verity, got {other:?}"
            )),
        }
    }
    if verity.is_empty() {
        failures.push("no verity case ran".into());
    }
    for (case, by_tool) in verity {
        for t in tools {
            if !by_tool.contains_key(t.name()) {
                failures.push(format!("{case}: no outcome for {}", t.name()));
            }
        }
        let mut outcomes = by_tool.values();
        if let Some(first) = outcomes.next() {
            if outcomes.any(|o| o != first) {
                failures.push(format!("{case}: the tools disagree: {by_tool:?}"));
            }
        }
        let Some(control) = by_tool.get("c") else {
            continue;
        };
        match expected(case, overlay_verity) {
            Some(want) if control.starts_with(want) => {
                // a swapped object must fail its own files and only with EIO
                if want == "mounted " && (!control.contains(":EIO") || control.contains(":differs"))
                {
                    failures.push(format!(
                        "{case}: want EIO on the swapped object's files, got `{control}`"
                    ));
                }
            }
            Some(want) => failures.push(format!("{case}: want `{want}…`, got `{control}`")),
            None => failures.push(format!("{case}: no expectation")),
        }
    }
}

impl Report {
    /// A human-readable summary: timings, capabilities, every case by tool.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "kernel {} ({}): {} — booted in {:.2} s (guest uptime), whole run {:.1} s; overlay verity=: {}\n",
            self.name,
            self.run.kernel_version,
            self.run.accel.name(),
            self.run.boot_secs,
            self.run.elapsed.as_secs_f64(),
            if self.overlay_verity { "yes" } else { "no" }
        );
        for (k, v) in &self.facts {
            s += &format!("  {k}: {v}\n");
        }
        for (case, by_tool) in &self.verity {
            for (t, o) in by_tool {
                s += &format!("  {case} [{t}]: {o}\n");
            }
        }
        for (case, o) in &self.boot {
            s += &format!("  boot {case}: {o}\n");
        }
        s +=
            "  matrix (build: images read as on the host / refused at mount / read differently):\n";
        for l in self.matrix_table.lines() {
            s += &format!("    {l}\n");
        }
        for f in &self.failures {
            s += &format!("  FAILED: {f}\n");
        }
        s
    }
}
