//! The boot mount: mount the image the kernel command line names, as an initramfs does
//! (composefs-setup-root).
//!
//! Every composefs argument of the command line is tried in order ([`crate::karg::resolve`]):
//! an image missing from the store is skipped, and the first one present wins, after its
//! content was measured against its name. From then on every problem stops the boot with an
//! error naming the argument, never a fallback to the next one: an image whose layout
//! contradicts the argument (a V2 image named by `composefs.digest=v1-…`, or the reverse), an
//! image without the kernel fs-verity digest its secure argument promises, a failed mount. A
//! secure argument mounts with `verity=require` (every object must carry the digest the image
//! records); the insecure `?` form mounts without.
//!
//! Where images and objects live is a [`BootStore`]: a pair of folders, so that a store laid
//! out differently (a full composefs-rs repository) only has to say where they are.

#![forbid(unsafe_code)]

use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use rustix::mount::{unmount, UnmountFlags};

use super::{mount_fd, read_header, MountError, MountOptions, Mounted, Verity, TMPDIR_PREFIX};
use crate::fsverity;
use crate::karg::{self, FolderImages, ImageVersion, Karg, KargError};

/// Where the images a command line names (`IMAGES/<hex digest>`) and their objects live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootStore {
    pub images: PathBuf,
    /// The object folders, mounted as basedirs in this order.
    pub objects: Vec<PathBuf>,
}

impl BootStore {
    /// The layout composefs-rs repositories use: `DIR/images/<hex>` and `DIR/objects/XX/…`.
    pub fn folder(dir: &Path) -> BootStore {
        BootStore {
            images: dir.join("images"),
            objects: vec![dir.join("objects")],
        }
    }

    /// `IMAGES/<hex>`, or `IMAGES/refs/<hex>` when only that exists (composefs-rs's fallback).
    pub fn image_path(&self, k: &Karg) -> PathBuf {
        let direct = self.images.join(k.digest.to_hex());
        let fallback = self.images.join("refs").join(k.digest.to_hex());
        if !direct.exists() && fallback.exists() {
            return fallback;
        }
        direct
    }
}

/// The writable layer of the mounted root.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Upper {
    /// None: the root is read-only.
    #[default]
    ReadOnly,
    /// These upper and work directories (on the same filesystem).
    Dirs { upper: PathBuf, work: PathBuf },
    /// A fresh tmpfs that holds upper and work: changes vanish at unmount (a "transient root").
    Tmpfs,
}

/// The outcome of a boot mount.
#[derive(Debug)]
pub struct Booted {
    /// The argument that won.
    pub karg: Karg,
    /// Its position among the command line's composefs arguments.
    pub index: usize,
    pub image: PathBuf,
    pub mounted: Mounted,
}

/// Why the boot mount failed; every variant after `Resolve` names the winning argument.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error(transparent)]
    Resolve(#[from] KargError),
    #[error("composefs argument `{arg}`: {}: {source}", .image.display())]
    Open {
        arg: String,
        image: PathBuf,
        source: std::io::Error,
    },
    #[error("composefs argument `{arg}`: {} is a {found} image, the argument names a {expected} image", .image.display())]
    WrongLayout {
        arg: String,
        image: PathBuf,
        found: &'static str,
        expected: &'static str,
    },
    #[error("composefs argument `{arg}`: {} has no fs-verity digest (a secure argument needs one; `?` makes it optional)", .image.display())]
    NoVerity { arg: String, image: PathBuf },
    #[error("composefs argument `{arg}`: {} has the fs-verity digest {actual}", .image.display())]
    WrongVerity {
        arg: String,
        image: PathBuf,
        actual: String,
    },
    #[error("composefs argument `{arg}`: mounting {} on {}: {source}", .image.display(), .target.display())]
    Mount {
        arg: String,
        image: PathBuf,
        target: PathBuf,
        source: MountError,
    },
    #[error("tmpfs for the upper layer: {0}")]
    Tmpfs(String),
}

fn layout_name(v: ImageVersion) -> &'static str {
    match v {
        ImageVersion::V1 => "V1 (composefs_version 0/1)",
        ImageVersion::V2 => "V2 (composefs_version 2)",
    }
}

/// Mounts at `target` the image `cmdline` names, from `store`.
pub fn mount_from_cmdline(
    cmdline: &str,
    store: &BootStore,
    target: &Path,
    upper: &Upper,
) -> Result<Booted, BootError> {
    mount_from_cmdline_with(
        cmdline,
        &FolderImages::new(&store.images),
        store,
        target,
        upper,
    )
}

/// Like [`mount_from_cmdline`], with the image chosen by `images` (a composefs-rs repository
/// applies composefs-setup-root's rules there) and then read from `store`.
pub fn mount_from_cmdline_with(
    cmdline: &str,
    images: &dyn karg::ImageStore,
    store: &BootStore,
    target: &Path,
    upper: &Upper,
) -> Result<Booted, BootError> {
    let chosen = karg::resolve(cmdline, images)?;
    let k = chosen.karg;
    let arg = k.to_string();
    let image = store.image_path(&k);
    let file = File::open(&image).map_err(|source| BootError::Open {
        arg: arg.clone(),
        image: image.clone(),
        source,
    })?;
    let mount_err = |source: MountError| BootError::Mount {
        arg: arg.clone(),
        image: image.clone(),
        target: target.to_owned(),
        source,
    };
    let header = read_header(file.as_fd()).map_err(mount_err)?;
    let found = if header.composefs_version.get() >= 2 {
        ImageVersion::V2
    } else {
        ImageVersion::V1
    };
    if found != k.version {
        return Err(BootError::WrongLayout {
            arg,
            image,
            found: layout_name(found),
            expected: layout_name(k.version),
        });
    }
    if !k.insecure {
        match fsverity::kernel::measure(file.as_fd()) {
            Ok(Some(d)) if d == k.digest => {}
            Ok(Some(d)) => {
                return Err(BootError::WrongVerity {
                    arg,
                    image,
                    actual: d.to_hex(),
                })
            }
            Ok(None) => return Err(BootError::NoVerity { arg, image }),
            Err(e) => return Err(mount_err(MountError::os("FS_IOC_MEASURE_VERITY", e))),
        }
    }
    let tmpfs = match upper {
        Upper::Tmpfs => Some(UpperTmpfs::create()?),
        _ => None,
    };
    let (upperdir, workdir) = match (upper, &tmpfs) {
        (Upper::Dirs { upper, work }, _) => (Some(upper.clone()), Some(work.clone())),
        (Upper::Tmpfs, Some(t)) => (Some(t.dir.join("upper")), Some(t.dir.join("work"))),
        _ => (None, None),
    };
    let opts = MountOptions {
        objdirs: store.objects.clone(),
        readonly: upperdir.is_none(),
        upperdir,
        workdir,
        verity: if k.insecure {
            Verity::Off
        } else {
            Verity::Require
        },
        ..Default::default()
    };
    let mounted = mount_fd(file.as_fd(), target, &opts).map_err(mount_err)?;
    Ok(Booted {
        karg: k,
        index: chosen.index,
        image,
        mounted,
    })
    // `tmpfs` drops here: detached and its directory removed; the overlay keeps it alive.
}

/// A tmpfs holding `upper/` and `work/`, mounted on a private directory that is detached and
/// removed when this is dropped (the overlay on top keeps the tmpfs alive).
struct UpperTmpfs {
    dir: PathBuf,
    mounted: bool,
}

impl UpperTmpfs {
    fn create() -> Result<UpperTmpfs, BootError> {
        let fail = |what: &str, e: &dyn std::fmt::Display| BootError::Tmpfs(format!("{what}: {e}"));
        let (parent, prefix) = TMPDIR_PREFIX.rsplit_once('/').expect("prefix has a folder");
        let dir = tempfile::Builder::new()
            .prefix(&format!("{prefix}upper."))
            .rand_bytes(6)
            .tempdir_in(parent)
            .map_err(|e| fail("mkdtemp", &e))?
            .keep();
        let mut t = UpperTmpfs {
            dir,
            mounted: false,
        };
        rustix::mount::mount(
            "tmpfs",
            &t.dir,
            "tmpfs",
            rustix::mount::MountFlags::empty(),
            c"mode=0755",
        )
        .map_err(|e| fail("mount tmpfs", &e))?;
        t.mounted = true;
        for sub in ["upper", "work"] {
            std::fs::create_dir(t.dir.join(sub)).map_err(|e| fail(sub, &e))?;
        }
        Ok(t)
    }
}

impl Drop for UpperTmpfs {
    fn drop(&mut self) {
        if self.mounted {
            let _ = unmount(&self.dir, UnmountFlags::DETACH);
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}
