//! `mkcfs-rs karg`: kernel command-line arguments naming composefs images.
//!
//! - `parse [CMDLINE]` lists every composefs argument of a command line (default
//!   `/proc/cmdline`), one per line: the argument, then `version=`, `form=` (`legacy` for
//!   `composefs=`, `versioned` for `composefs.digest=`), `algorithm=`, `digest=`, `insecure=`.
//! - `make DIGEST` writes the argument for an image digest.
//! - `resolve --store DIR|--repo REPO [CMDLINE]` picks the image the initramfs would boot from a
//!   composefs-rs repository (`REPO/images/<hex>`): the first argument whose image exists,
//!   after checking every argument parses; an image whose content does not measure to its
//!   name is an error, not a miss.
//! - `mount --store DIR|--repo REPO [--cmdline FILE] TARGET [--upperdir U --workdir W | --tmpfs]`: the
//!   initramfs boot mount — the image `resolve` picks is mounted at TARGET with `DIR/objects`
//!   as basedir, `verity=require` unless the argument is the insecure `?` form; prints the
//!   argument that won. Every failure after the pick stops with an error naming it.
//!
//! Thin over `cfs_erofs::karg` (its `FolderImages` is the repository's store) and
//! `cfs_erofs::mount::boot`.

use std::path::PathBuf;

use cfs_erofs::karg::{self, ImageVersion, Karg, KargForm};
use cfs_erofs::mount::boot;
use cfs_erofs::tree::{Digest, HashAlgorithm};

use crate::emit::Hash;

/// Kernel arguments naming composefs images
#[derive(Debug, clap::Parser)]
#[command(name = "mkcfs-rs karg")]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// List the composefs arguments of a command line
    Parse {
        /// The command line (default: the contents of /proc/cmdline)
        cmdline: Option<String>,
    },
    /// Write the argument that boots an image
    Make {
        /// Image layout: 1 (composefs.digest=v1-…) or 2 (composefs=…)
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
        erofs_version: u8,
        #[arg(long, value_enum, default_value_t = Hash::Sha256)]
        hash: Hash,
        /// fs-verity is optional when mounting
        #[arg(long)]
        insecure: bool,
        /// The image's fs-verity digest, in hex
        digest: String,
    },
    /// Mount the image the command line names (the initramfs boot mount)
    #[command(group(clap::ArgGroup::new("source").required(true).args(["store", "repo"])))]
    Mount {
        /// The store (holding `images/<hex>` and `objects/`)
        #[arg(long, value_name = "DIR")]
        store: Option<PathBuf>,
        /// A composefs-rs repository, with composefs-setup-root's rules (meta.json algorithm,
        /// secure unless `?`, images/<hex> then images/refs/<hex>)
        #[arg(long, value_name = "DIR")]
        repo: Option<PathBuf>,
        /// A file holding the command line (default: /proc/cmdline)
        #[arg(long, value_name = "FILE")]
        cmdline: Option<PathBuf>,
        /// Writable root: overlayfs upper directory (needs --workdir)
        #[arg(
            long,
            value_name = "DIR",
            requires = "workdir",
            conflicts_with = "tmpfs"
        )]
        upperdir: Option<PathBuf>,
        /// Writable root: overlayfs work directory (needs --upperdir)
        #[arg(long, value_name = "DIR", requires = "upperdir")]
        workdir: Option<PathBuf>,
        /// Writable root whose changes live in a fresh tmpfs (lost at unmount)
        #[arg(long)]
        tmpfs: bool,
        /// Where to mount
        target: PathBuf,
    },
    /// Pick the image to boot from a composefs-rs repository
    #[command(group(clap::ArgGroup::new("source").required(true).args(["store", "repo"])))]
    Resolve {
        /// A folder of images named by their digest (a repository's `images/` parent)
        #[arg(long, value_name = "DIR")]
        store: Option<PathBuf>,
        /// A composefs-rs repository, with composefs-setup-root's rules (meta.json algorithm,
        /// secure unless `?`, images/<hex> then images/refs/<hex>)
        #[arg(long, value_name = "DIR")]
        repo: Option<PathBuf>,
        /// The command line (default: the contents of /proc/cmdline)
        cmdline: Option<String>,
    },
}

fn cmdline(given: &Option<String>) -> Result<String, String> {
    match given {
        Some(c) => Ok(c.clone()),
        None => std::fs::read_to_string("/proc/cmdline")
            .map_err(|e| format!("/proc/cmdline: {}", cfs_erofs::io_message(&e))),
    }
}

/// One `parse` line.
fn describe(k: &Karg) -> String {
    let version = match k.version {
        ImageVersion::V1 => "v1",
        ImageVersion::V2 => "v2",
    };
    let form = match k.form {
        KargForm::Legacy => "legacy",
        KargForm::Versioned => "versioned",
    };
    format!(
        "{k}\tversion={version} form={form} algorithm={} digest={} insecure={}",
        k.algorithm().name(),
        k.digest.to_hex(),
        k.insecure
    )
}

pub fn run(args: &Args) -> Result<(), String> {
    match &args.command {
        Command::Parse { cmdline: c } => {
            let kargs = karg::collect(&cmdline(c)?).map_err(|e| e.to_string())?;
            if kargs.is_empty() {
                return Err("no composefs argument on the command line".into());
            }
            for k in &kargs {
                println!("{}", describe(k));
            }
            Ok(())
        }
        Command::Make {
            erofs_version,
            hash,
            insecure,
            digest,
        } => {
            let digest = parse_digest(digest, (*hash).into())?;
            let k = match erofs_version {
                2 => Karg::v2(digest, *insecure),
                _ => Karg::v1(digest, *insecure),
            };
            println!("{k}");
            Ok(())
        }
        Command::Mount {
            store,
            repo,
            cmdline: file,
            upperdir,
            workdir,
            tmpfs,
            target,
        } => {
            let path = file
                .clone()
                .unwrap_or_else(|| PathBuf::from("/proc/cmdline"));
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("{}: {}", path.display(), cfs_erofs::io_message(&e)))?;
            let upper = match (upperdir, workdir, tmpfs) {
                (Some(u), Some(w), _) => boot::Upper::Dirs {
                    upper: u.clone(),
                    work: w.clone(),
                },
                (_, _, true) => boot::Upper::Tmpfs,
                _ => boot::Upper::ReadOnly,
            };
            let b = match (store, repo) {
                (_, Some(repo)) => boot::mount_from_cmdline_with(
                    &text,
                    &cfs_erofs::repo::boot::RepoImages::new(repo),
                    &boot::BootStore::folder(repo),
                    target,
                    &upper,
                ),
                (Some(store), None) => {
                    boot::mount_from_cmdline(&text, &boot::BootStore::folder(store), target, &upper)
                }
                (None, None) => unreachable!("clap requires one"),
            }
            .map_err(|e| e.to_string())?;
            println!("{}", b.karg);
            Ok(())
        }
        Command::Resolve {
            store,
            repo,
            cmdline: c,
        } => {
            let images: Box<dyn karg::ImageStore> = match (store, repo) {
                (_, Some(repo)) => Box::new(cfs_erofs::repo::boot::RepoImages::new(repo)),
                (Some(store), None) => Box::new(karg::FolderImages::new(store.join("images"))),
                (None, None) => unreachable!("clap requires one"),
            };
            let r = karg::resolve(&cmdline(c)?, images.as_ref()).map_err(|e| e.to_string())?;
            println!("{}", r.karg);
            Ok(())
        }
    }
}

fn parse_digest(hex: &str, alg: HashAlgorithm) -> Result<Digest, String> {
    let want = alg.digest_len() * 2;
    if hex.len() != want {
        return Err(format!(
            "digest `{hex}`: {} hex digits, {} needs {want}",
            hex.len(),
            alg.name()
        ));
    }
    let bytes = ::hex::decode(hex).map_err(|_| format!("digest `{hex}`: not hex"))?;
    Ok(Digest::from_bytes(&bytes).expect("length checked"))
}
