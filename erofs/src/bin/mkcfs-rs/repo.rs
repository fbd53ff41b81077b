//! `mkcfs-rs repo fsck|ls|gc|images DIR`: any composefs-rs repository (ours or composefs-rs's),
//! and the `--repo` options `oci` and `tar` share. Thin over `cfs_erofs::repo`.

use std::path::PathBuf;

use cfs_erofs::repo::check::{self, Problem};
use cfs_erofs::repo::import::Imported;
use cfs_erofs::repo::{ErofsFormat, Formats, RepoConfig, Repository};

use crate::emit::ImageArgs;

/// Options of `oci` and `tar` for importing into a repository.
#[derive(Clone, Debug, clap::Args)]
pub struct RepoArgs {
    /// Import into this composefs-rs repository (created if it has no meta.json)
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,
    /// With --repo: tag the image (oci: streams/refs/oci/TAG; tar: images/refs/TAG)
    #[arg(long, requires = "repo")]
    pub tag: Option<String>,
    /// With --repo, a new repository: without fs-verity (composefs-rs's `set_insecure`)
    #[arg(long, requires = "repo")]
    pub insecure: bool,
    /// With --repo, a new repository: also commit images in this format (repeatable)
    #[arg(long, requires = "repo", value_name = "N",
          value_parser = clap::value_parser!(u8).range(1..=2))]
    pub erofs_extra: Vec<u8>,
}

fn format_of(n: u8) -> ErofsFormat {
    match n {
        2 => ErofsFormat::V2,
        _ => ErofsFormat::V1,
    }
}

impl RepoArgs {
    /// Opens the repository, or creates it from the image options.
    pub fn open(&self, image: &ImageArgs) -> Result<Option<Repository>, String> {
        let Some(dir) = &self.repo else {
            return Ok(None);
        };
        let config = RepoConfig {
            algorithm: image.hash.into(),
            formats: Formats {
                default: format_of(image.erofs_version),
                extra: self.erofs_extra.iter().map(|&n| format_of(n)).collect(),
            },
            secure: !self.insecure,
        };
        Repository::open_or_create(dir, &config)
            .map(Some)
            .map_err(|e| e.to_string())
    }
}

/// What `--print-digest` / `--print-karg` print after an import without an IMAGE to write; the
/// argument is the insecure `?` form for an insecure repository.
pub fn print_imported(
    imported: &Imported,
    image: &ImageArgs,
    repo: &Repository,
) -> Result<(), String> {
    let insecure = !repo.is_secure();
    use cfs_erofs::karg::Karg;
    let d = imported.default_image().clone();
    let default = imported
        .boot_images
        .first()
        .or(imported.images.first())
        .map(|(f, _)| *f);
    if image.print_digest {
        println!("{}", d.to_hex());
    }
    if image.print_karg {
        let k = match default {
            Some(ErofsFormat::V2) => Karg::v2(d, insecure),
            _ => Karg::v1(d, insecure),
        };
        println!("{k}");
    }
    Ok(())
}

/// Check, list and collect composefs-rs repositories
#[derive(Debug, clap::Parser)]
#[command(name = "mkcfs-rs repo")]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Verify objects, streams, images and refs; exit 1 on any problem
    Fsck { dir: PathBuf },
    /// List images, streams and refs
    Ls { dir: PathBuf },
    /// Remove objects no ref reaches, then dangling symlinks
    Gc {
        /// Only report what would be removed
        #[arg(long)]
        dry_run: bool,
        dir: PathBuf,
    },
    /// List committed images with their size, layout and the refs naming them
    Images { dir: PathBuf },
}

pub fn run(args: &Args) -> Result<(), String> {
    let open = |dir: &PathBuf| Repository::open(dir).map_err(|e| e.to_string());
    match &args.command {
        Command::Fsck { dir } => {
            let repo = open(dir)?;
            let problems: Vec<Problem> = check::fsck(&repo).map_err(|e| e.to_string())?;
            for p in &problems {
                println!("{p}");
            }
            if problems.is_empty() {
                Ok(())
            } else {
                Err(format!("{}: {} problems", dir.display(), problems.len()))
            }
        }
        Command::Ls { dir } => {
            let repo = open(dir)?;
            let l = check::list(&repo).map_err(|e| e.to_string())?;
            let m = repo.meta();
            println!(
                "algorithm {} formats {} secure {} objects {}",
                cfs_erofs::repo::meta::algorithm_name(m.algorithm),
                m.formats
                    .all()
                    .iter()
                    .map(|f| f.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
                repo.is_secure(),
                l.objects
            );
            for link in l
                .images
                .iter()
                .chain(&l.image_refs)
                .chain(&l.streams)
                .chain(&l.stream_refs)
            {
                println!("{} -> {}", link.name, link.target);
            }
            Ok(())
        }
        Command::Gc { dry_run, dir } => {
            let repo = open(dir)?;
            let r = check::gc(&repo, *dry_run).map_err(|e| e.to_string())?;
            let verb = if *dry_run { "would remove" } else { "removed" };
            for (p, _) in &r.objects {
                println!("{verb} {}", p.display());
            }
            for p in &r.links {
                println!("{verb} {}", p.display());
            }
            println!(
                "{verb} {} objects ({} bytes), {} symlinks",
                r.objects.len(),
                r.bytes(),
                r.links.len()
            );
            Ok(())
        }
        Command::Images { dir } => {
            let repo = open(dir)?;
            for i in check::images(&repo).map_err(|e| e.to_string())? {
                let v = i
                    .composefs_version
                    .map_or("invalid".to_owned(), |v| format!("composefs_version={v}"));
                println!("{} {} {v} {}", i.id, i.size, i.named_by.join(" "));
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap checks its definitions (groups, `requires`) only in debug builds: check the
    /// commands `--repo` touches in every build.
    #[test]
    fn clap_definitions_are_consistent() {
        super::Args::command().debug_assert();
        crate::oci::Args::command().debug_assert();
        crate::tar::Args::command().debug_assert();
        crate::karg::Args::command().debug_assert();
    }
}
