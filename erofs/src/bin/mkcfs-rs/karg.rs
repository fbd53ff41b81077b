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
//!
//! Thin over `cfs_erofs::karg` (its `FolderImages` is the repository's store).

use std::path::PathBuf;

use cfs_erofs::karg::{self, ImageVersion, Karg, KargForm};
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
