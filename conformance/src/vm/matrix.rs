//! The kernel matrix: every vector image (all four builds of `fixtures/vectors`) and the C
//! corpus images, mounted by a kernel — EROFS alone, then composefs-style through overlayfs
//! with an object folder — and walked. The same program does it on the host (in a private
//! mount namespace) and in the guest; the guest gets the host's listing digests and sends back
//! the full listing only where it differs, so a whole matrix fits in one boot.
//!
//! Files of a matrix folder: `list` (`N ID…` per unique image, `img/N.cfs`), `objects/` (an
//! object for every payload the images name, content derived from its path), `expected`
//! (the host's outcomes, in the guest).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::os::fd::AsFd as _;
use std::path::Path;

use cfs_erofs::dumpfile::{parse_bytes, ParseOptions};
use cfs_erofs::mount::{self, MountOptions, OverlayMode, OverlayVia, Strategy};
use cfs_erofs::tree::{FileData, InodeKind};

use super::VmError;
use crate::vectors::{self, Build, Manifest};

/// One image of the matrix, with every (build, vector) it stands for.
#[derive(Debug)]
pub struct Image {
    pub ids: Vec<String>,
    pub bytes: Vec<u8>,
    /// The object paths its external files name.
    pub objects: Vec<String>,
}

/// Whether an object path can be created under the objects folder as is.
fn plain_object_path(p: &str) -> bool {
    !p.is_empty()
        && p.len() < 200
        && p.split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && c.len() < 200)
}

/// Corpus images larger than this are left out: walking their tens of thousands of inodes under
/// TCG would take minutes per image (the host's kernel tests read them).
pub const MAX_CORPUS_IMAGE: usize = 1 << 20;

/// Every image the matrix reads: each vector in each build that yields an image (`BUILD/NAME`)
/// and each C corpus asset up to [`MAX_CORPUS_IMAGE`] in the default V1 build
/// (`corpus/ASSET`), deduplicated.
pub fn images() -> Result<Vec<Image>, VmError> {
    let dir = vectors::vectors_dir();
    let manifest = Manifest::load(&dir).map_err(VmError::Results)?;
    let mut by_bytes: BTreeMap<Vec<u8>, Image> = BTreeMap::new();
    let mut add = |id: String, dump: &[u8], strict: bool, build: &Build, max: usize| {
        let Ok(bytes) = vectors::build_image(dump, strict, build) else {
            return;
        };
        if bytes.len() > max {
            return;
        }
        let objects = parse_bytes(dump, &ParseOptions { strict })
            .map(|tree| {
                tree.inodes()
                    .filter_map(|(_, i)| match &i.kind {
                        InodeKind::Regular(FileData::External { payload, digest }) => {
                            match (payload.as_deref().filter(|p| !p.is_empty()), digest) {
                                (Some(p), _) => Some(
                                    String::from_utf8_lossy(p)
                                        .trim_start_matches('/')
                                        .to_string(),
                                ),
                                (None, Some(d)) => Some(d.object_path()),
                                _ => None,
                            }
                        }
                        _ => None,
                    })
                    .filter(|p| plain_object_path(p))
                    .collect()
            })
            .unwrap_or_default();
        by_bytes
            .entry(bytes.clone())
            .or_insert_with(|| Image {
                ids: Vec::new(),
                bytes,
                objects,
            })
            .ids
            .push(id);
    };
    for v in &manifest.vectors {
        let dump = fs::read(dir.join(&v.input)).map_err(|e| VmError::io(&dir.join(&v.input), e))?;
        for build in &manifest.builds {
            add(
                format!("{}/{}", build.id, v.name),
                &dump,
                v.strict,
                build,
                usize::MAX,
            );
        }
    }
    let v1 = Build::standard().into_iter().next().expect("v1-default");
    for asset in crate::corpus::assets() {
        let mut build = v1.clone();
        if let Some(ver) = asset.version {
            build.args = vec![
                format!("--min-version={ver}"),
                format!("--max-version={ver}"),
            ];
        }
        add(
            format!("corpus/{}", asset.name),
            &asset.dump,
            asset.strict,
            &build,
            MAX_CORPUS_IMAGE,
        );
    }
    let mut out: Vec<Image> = by_bytes.into_values().collect();
    out.sort_by(|a, b| a.ids[0].cmp(&b.ids[0]));
    Ok(out)
}

/// The bytes of object `path`: derived from the path, so every image naming it reads the same.
fn object_content(path: &str) -> Vec<u8> {
    let seed = vectors::sha256_hex(path.as_bytes());
    seed.into_bytes()
}

/// Writes the matrix folder: images, list, objects.
pub fn write_folder(images: &[Image], dir: &Path) -> Result<(), VmError> {
    let img = dir.join("img");
    let objs = dir.join("objects");
    fs::create_dir_all(&img).map_err(|e| VmError::io(&img, e))?;
    fs::create_dir_all(&objs).map_err(|e| VmError::io(&objs, e))?;
    let mut list = String::new();
    for (n, image) in images.iter().enumerate() {
        let p = img.join(format!("{n}.cfs"));
        fs::write(&p, &image.bytes).map_err(|e| VmError::io(&p, e))?;
        let _ = writeln!(list, "{n} {}", image.ids.join(" "));
        for o in &image.objects {
            let p = objs.join(o);
            if p.exists() {
                continue;
            }
            if let Some(parent) = p.parent() {
                // a name used as a folder by one payload and a file by another: left out
                if fs::create_dir_all(parent).is_err() {
                    continue;
                }
            }
            let _ = fs::write(&p, object_content(o));
        }
    }
    let p = dir.join("list");
    fs::write(&p, list).map_err(|e| VmError::io(&p, e))?;
    fixed_times(&objs)
}

/// Sets every time under `dir` to a whole second: the guest's copy (`mkfs.ext4 -d`) keeps
/// seconds only, and a plain lower layer shows the object folder's entries in the root.
fn fixed_times(dir: &Path) -> Result<(), VmError> {
    use rustix::fs::{utimensat, AtFlags, Timespec, Timestamps, CWD};
    let t = Timespec {
        tv_sec: 1_700_000_000,
        tv_nsec: 0,
    };
    for e in fs::read_dir(dir).map_err(|e| VmError::io(dir, e))? {
        let p = e.map_err(|e| VmError::io(dir, e))?.path();
        if p.is_dir() {
            fixed_times(&p)?;
        }
        utimensat(
            CWD,
            &p,
            &Timestamps {
                last_access: t,
                last_modification: t,
            },
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| VmError::io(&p, e.into()))?;
    }
    let times = Timestamps {
        last_access: t,
        last_modification: t,
    };
    utimensat(CWD, dir, &times, AtFlags::empty()).map_err(|e| VmError::io(dir, e.into()))
}

/// What reading one image through one layer gave: the listing's sha256, or the refusal.
fn outcome_of(listing: &Result<String, String>) -> String {
    match listing {
        Ok(text) => vectors::sha256_hex(text.as_bytes()),
        Err(e) => format!("refused: {e}"),
    }
}

fn listing(dir: &Path, with_content: bool) -> Result<String, String> {
    let no = |_: &crate::walk::Entry| false;
    let entries = crate::walk::walk(dir, &no).map_err(|e| format!("walk: {e}"))?;
    let mut text = crate::walk::format(&entries);
    if with_content {
        let contents = super::guest::read_tree(dir).map_err(|e| format!("read: {e}"))?;
        text.push_str("-- contents\n");
        text.push_str(&super::guest::format(&contents));
    }
    Ok(text)
}

fn read_erofs(image: &Path, at: &Path) -> Result<String, String> {
    let file = fs::File::open(image).map_err(|e| e.to_string())?;
    let mut header = [0u8; 32];
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut header, 0).map_err(|e| e.to_string())?;
    let has_acl = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes")) & 1 != 0;
    let opts = MountOptions {
        image_mountdir: Some(at.to_path_buf()),
        readonly: true,
        ..MountOptions::default()
    };
    let mounted =
        mount::erofs::mount_private(file.as_fd(), has_acl, &opts).map_err(|e| e.c_message())?;
    let out = listing(mounted.dir(), false);
    drop(mounted);
    out
}

/// The name of the overlay layer by the way it was mounted: overlayfs semantics differ
/// between them (a plain lower layer merges the object folder into the root), so each is
/// compared with the host's reading through the same way.
fn overlay_layer(via: OverlayVia) -> &'static str {
    match via {
        OverlayVia::NewApi => "overlay-newapi",
        OverlayVia::LegacyDataOnly => "overlay-dataonly",
        OverlayVia::LegacyPlainLower => "overlay-plainlower",
    }
}

/// The overlay modes the host reads every image through (a guest uses whichever its kernel
/// takes).
const HOST_MODES: [OverlayMode; 3] = [
    OverlayMode::Auto,
    OverlayMode::Legacy,
    OverlayMode::LegacyPlainLower,
];

/// Mounts composefs-style with `mode` and walks; the layer name says how it was mounted.
fn read_overlay(
    image: &Path,
    objects: &Path,
    at: &Path,
    mode: OverlayMode,
) -> (String, Result<String, String>) {
    let opts = MountOptions {
        objdirs: vec![objects.to_path_buf()],
        readonly: true,
        strategy: Strategy {
            overlay: mode,
            ..Strategy::default()
        },
        ..MountOptions::default()
    };
    let fallback = match mode {
        OverlayMode::Auto => "overlay",
        OverlayMode::Legacy => "overlay-dataonly",
        OverlayMode::LegacyPlainLower => "overlay-plainlower",
    };
    let mounted = match mount::mount_image(image, at, &opts) {
        Ok(m) => m,
        Err(e) => return (fallback.to_string(), Err(e.c_message())),
    };
    let out = listing(at, true);
    let out = match rustix::mount::unmount(at, rustix::mount::UnmountFlags::DETACH) {
        Ok(()) => out,
        Err(e) => Err(format!("umount: {e}")),
    };
    (overlay_layer(mounted.overlay).to_string(), out)
}

/// Reads every image of the matrix folder `dir` as EROFS and composefs-style (with `all_modes`,
/// through every overlay mode, as the host does). Writes `OUT/outcomes` (`N LAYER OUTCOME` per
/// line) and, for every outcome that is a listing, `OUT/N.LAYER` with the listing — only where
/// it differs from `dir/expected` when that exists.
pub fn read_folder(dir: &Path, out: &Path, all_modes: bool) -> Result<(), VmError> {
    fs::create_dir_all(out).map_err(|e| VmError::io(out, e))?;
    let list =
        fs::read_to_string(dir.join("list")).map_err(|e| VmError::io(&dir.join("list"), e))?;
    let expected = fs::read_to_string(dir.join("expected"))
        .ok()
        .map(|t| parse_outcomes(&t));
    let scratch = tempfile::Builder::new()
        .prefix("cfs-matrix-")
        .tempdir()
        .map_err(|e| VmError::io(Path::new("/tmp"), e))?;
    let (e_at, o_at) = (scratch.path().join("e"), scratch.path().join("o"));
    for d in [&e_at, &o_at] {
        fs::create_dir_all(d).map_err(|e| VmError::io(d, e))?;
    }
    let mut outcomes = String::new();
    let total = list.lines().count();
    let start = std::time::Instant::now();
    for (i, line) in list.lines().enumerate() {
        if i % 100 == 0 {
            // progress on the console, so that a slow kernel shows where it is
            eprintln!(
                "@@progress matrix {i}/{total} after {:.1} s",
                start.elapsed().as_secs_f64()
            );
        }
        let Some(n) = line.split(' ').next() else {
            continue;
        };
        let image = dir.join("img").join(format!("{n}.cfs"));
        let modes: &[OverlayMode] = if all_modes {
            &HOST_MODES
        } else {
            &HOST_MODES[..1]
        };
        let mut reads = vec![("erofs".to_string(), read_erofs(&image, &e_at))];
        for mode in modes {
            reads.push(read_overlay(&image, &dir.join("objects"), &o_at, *mode));
        }
        let scratch_name = scratch.path().display().to_string();
        for (layer, l) in reads {
            let layer = layer.as_str();
            // the scratch folder's random name must not make two readings differ
            let l = l.map_err(|e| e.replace(&scratch_name, "<mnt>"));
            let o = outcome_of(&l).replace('\n', " ");
            let key = (n.to_string(), layer.to_string());
            if let Ok(text) = &l {
                if expected.as_ref().is_none_or(|e| e.get(&key) != Some(&o)) {
                    let p = out.join(format!("{n}.{layer}"));
                    fs::write(&p, text).map_err(|e| VmError::io(&p, e))?;
                }
            }
            let _ = writeln!(outcomes, "{n} {layer} {o}");
        }
    }
    let p = out.join("outcomes");
    fs::write(&p, outcomes).map_err(|e| VmError::io(&p, e))
}

/// `N LAYER OUTCOME` lines → map.
pub fn parse_outcomes(text: &str) -> BTreeMap<(String, String), String> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ' ');
            Some((
                (it.next()?.to_string(), it.next()?.to_string()),
                it.next()?.to_string(),
            ))
        })
        .collect()
}

/// How one image read in a kernel compared with the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Identical,
    /// The kernel refused to mount what the host reads (the message).
    Refused(String),
    /// Both read it, differently (layer and first differing line), or the kernel reads what
    /// the host refuses.
    Differs(String),
}

/// Compares the guest's outcomes with the host's, per image id (`BUILD/NAME`).
pub fn compare(
    list: &str,
    host: &BTreeMap<(String, String), String>,
    host_texts: &Path,
    guest: &BTreeMap<(String, String), String>,
    guest_texts: &BTreeMap<String, Vec<u8>>,
) -> BTreeMap<String, Verdict> {
    let mut out = BTreeMap::new();
    for line in list.lines() {
        let mut parts = line.split(' ');
        let Some(n) = parts.next() else { continue };
        let mut layers: Vec<&str> = guest
            .keys()
            .filter(|(m, _)| m == n)
            .map(|(_, l)| l.as_str())
            .collect();
        // a guest that refused the overlay outright names no mode: compare with the host's
        // default mount
        layers.sort_by_key(|l| *l != "erofs");
        let mut verdict = if layers.is_empty() {
            Verdict::Differs("no outcome from the guest".into())
        } else {
            Verdict::Identical
        };
        for layer in layers {
            let key = (n.to_string(), layer.to_string());
            let host_key = if host.contains_key(&key) {
                key.clone()
            } else {
                (n.to_string(), "overlay-newapi".to_string())
            };
            let (h, g) = (host.get(&host_key), guest.get(&key));
            if h == g {
                continue;
            }
            let v = match (h, g) {
                (_, None) => Verdict::Differs(format!("{layer}: no outcome from the guest")),
                (Some(h), Some(g)) if g.starts_with("refused") && !h.starts_with("refused") => {
                    Verdict::Refused(format!("{layer}: {}", g.trim_start_matches("refused: ")))
                }
                (Some(h), Some(g)) if h.starts_with("refused") => Verdict::Differs(format!(
                    "{layer}: the host refuses ({h}), the guest reads it ({g})"
                )),
                (None, Some(g)) => {
                    Verdict::Differs(format!("{layer}: no host reading to compare ({g})"))
                }
                _ => {
                    let host_text =
                        fs::read_to_string(host_texts.join(format!("{n}.{}", host_key.1)))
                            .unwrap_or_default();
                    let guest_text = guest_texts
                        .get(&format!("matrix/{n}.{layer}"))
                        .map(|b| String::from_utf8_lossy(b).into_owned())
                        .unwrap_or_default();
                    Verdict::Differs(format!(
                        "{layer}: {}",
                        first_difference(&host_text, &guest_text)
                    ))
                }
            };
            verdict = v;
            break;
        }
        for id in parts {
            out.insert(id.to_string(), verdict.clone());
        }
    }
    out
}

/// The overlay modes a guest's outcomes used, with their counts (for the table's header).
pub fn modes_used(guest: &BTreeMap<(String, String), String>) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for (_, layer) in guest.keys().filter(|(_, l)| l != "erofs") {
        *m.entry(layer.clone()).or_insert(0) += 1;
    }
    m
}

fn first_difference(host: &str, guest: &str) -> String {
    let (h, g): (Vec<&str>, Vec<&str>) = (host.lines().collect(), guest.lines().collect());
    for i in 0..h.len().max(g.len()) {
        let (a, b) = (
            h.get(i).copied().unwrap_or("<end>"),
            g.get(i).copied().unwrap_or("<end>"),
        );
        if a != b {
            return format!("line {}: host `{a}`, kernel `{b}`", i + 1);
        }
    }
    "listings differ only in their digests".into()
}

/// The pinned table of one kernel: counts per build, then every image that is not identical.
pub fn table(verdicts: &BTreeMap<String, Verdict>) -> String {
    let mut counts: BTreeMap<&str, [usize; 3]> = BTreeMap::new();
    let mut details = String::new();
    for (id, v) in verdicts {
        let build = id.split('/').next().unwrap_or(id);
        let c = counts.entry(build).or_default();
        match v {
            Verdict::Identical => c[0] += 1,
            Verdict::Refused(why) => {
                c[1] += 1;
                let _ = writeln!(details, "refused {id}: {why}");
            }
            Verdict::Differs(why) => {
                c[2] += 1;
                let _ = writeln!(details, "differs {id}: {why}");
            }
        }
    }
    let mut s = String::new();
    for (build, [i, r, d]) in &counts {
        let _ = writeln!(s, "{build}: identical {i}, refused {r}, differs {d}");
    }
    s + &details
}
