//! What `oci` and `tar` share once layers are read: the options, the digest store the layers
//! are written into, the bootable transform, and writing the image atomically while measuring
//! it. The image written is the one whose fs-verity digest composefs-rs calls the image id:
//! V1 with `composefs_version` 1, or V2 (see `cfs_erofs::oci::ids`), so `--print-digest`
//! prints that id and `--print-karg` the argument that boots it.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use cfs_erofs::atomic::AtomicFile;
use cfs_erofs::fsverity::FsVerityHasher;
use cfs_erofs::karg::Karg;
use cfs_erofs::oci::boot::{transform_for_boot, DigestStore};
use cfs_erofs::oci::ids::IdVersion;
use cfs_erofs::oci::TarOptions;
use cfs_erofs::tree::{HashAlgorithm, Tree};
use cfs_erofs::write::write_image;

use crate::tee::Tee;

/// `--hash`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Hash {
    Sha256,
    Sha512,
}

impl From<Hash> for HashAlgorithm {
    fn from(h: Hash) -> Self {
        match h {
            Hash::Sha256 => HashAlgorithm::Sha256,
            Hash::Sha512 => HashAlgorithm::Sha512,
        }
    }
}

/// Options of the commands that build an image from layers.
#[derive(Clone, Debug, clap::Args)]
pub struct ImageArgs {
    /// Image layout: 1 = V1 (composefs_version 1), 2 = composefs-rs V2
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
    pub erofs_version: u8,
    /// fs-verity hash naming objects and the image
    #[arg(long, value_enum, default_value_t = Hash::Sha256)]
    pub hash: Hash,
    /// Store file contents here as `XX/rest` objects
    #[arg(long, value_name = "DIR")]
    pub digest_store: Option<PathBuf>,
    /// Apply the bootable transform (empty /boot and /sysroot, SELinux relabel)
    #[arg(long)]
    pub bootable: bool,
    /// Print the image's fs-verity digest in hex
    #[arg(long)]
    pub print_digest: bool,
    /// Print the kernel argument that boots the image
    #[arg(long)]
    pub print_karg: bool,
}

/// Where layer contents go: the user's digest store, or, when only the bootable transform
/// needs to read them back, a temporary one.
pub struct Store {
    dir: Option<PathBuf>,
    _temp: Option<tempfile::TempDir>,
}

impl Store {
    pub fn new(args: &ImageArgs) -> Result<Store, String> {
        match (&args.digest_store, args.bootable) {
            (Some(d), _) => Ok(Store {
                dir: Some(d.clone()),
                _temp: None,
            }),
            (None, true) => {
                let t = tempfile::tempdir().map_err(|e| format!("temporary digest store: {e}"))?;
                Ok(Store {
                    dir: Some(t.path().to_owned()),
                    _temp: Some(t),
                })
            }
            (None, false) => Ok(Store {
                dir: None,
                _temp: None,
            }),
        }
    }

    /// A store in an existing folder (a repository's `objects/`).
    pub fn at(dir: PathBuf) -> Store {
        Store {
            dir: Some(dir),
            _temp: None,
        }
    }

    pub fn tar_options(&self, args: &ImageArgs) -> TarOptions {
        TarOptions {
            algorithm: args.hash.into(),
            digest_store: self.dir.clone(),
        }
    }
}

/// Applies the bootable transform if asked, writes the image to `image` (atomically) if given,
/// and prints the digest and kernel argument if asked.
pub fn finish(
    mut tree: Tree,
    args: &ImageArgs,
    store: &Store,
    image: Option<&Path>,
) -> Result<(), String> {
    if args.bootable {
        let dir = store.dir.clone().expect("a store exists when bootable");
        transform_for_boot(&mut tree, &DigestStore(dir))
            .map_err(|e| format!("bootable transform: {e}"))?;
    }
    let alg: HashAlgorithm = args.hash.into();
    let opts = match args.erofs_version {
        2 => IdVersion::V2,
        _ => IdVersion::V1,
    }
    .options();
    let measure = args.print_digest || args.print_karg;
    let hasher = measure.then(|| FsVerityHasher::new(alg));
    let digest = match image {
        Some(path) => {
            let shown = path.display();
            let mut file = AtomicFile::create(path, 0o666)
                .map_err(|e| format!("{shown}: {}", cfs_erofs::io_message(&e)))?;
            let mut tee = Tee {
                sink: BufWriter::with_capacity(1 << 20, &mut file),
                hasher,
            };
            write_image(&tree, &opts, &mut tee).map_err(|e| format!("{shown}: {e}"))?;
            tee.flush()
                .map_err(|e| format!("{shown}: {}", cfs_erofs::io_message(&e)))?;
            let digest = tee.hasher.take().map(FsVerityHasher::finish);
            drop(tee);
            file.commit()
                .map_err(|e| format!("{shown}: {}", cfs_erofs::io_message(&e)))?;
            digest
        }
        None => {
            let mut tee = Tee {
                sink: io::sink(),
                hasher,
            };
            write_image(&tree, &opts, &mut tee).map_err(|e| e.to_string())?;
            tee.hasher.map(FsVerityHasher::finish)
        }
    };
    if let Some(d) = digest {
        let mut out = io::stdout().lock();
        let mut lines = String::new();
        if args.print_digest {
            lines += &d.to_hex();
            lines.push('\n');
        }
        if args.print_karg {
            let karg = match args.erofs_version {
                2 => Karg::v2(d, false),
                _ => Karg::v1(d, false),
            };
            lines += &karg.to_string();
            lines.push('\n');
        }
        out.write_all(lines.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| format!("stdout: {}", cfs_erofs::io_message(&e)))?;
    }
    Ok(())
}
