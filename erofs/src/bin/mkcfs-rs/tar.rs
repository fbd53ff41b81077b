//! `mkcfs-rs tar LAYER… IMAGE`: bare tar layers (plain, gzip or zstd; `-` reads stdin),
//! applied in order with overlay whiteouts, into a composefs image — the tree composefs-oci
//! builds from the same layers. With `--repo`, the layers are imported into a composefs-rs
//! repository instead (layer streams and images; IMAGE is then optional). Thin over
//! `cfs_erofs::oci::tree_from_layers` and `cfs_erofs::repo::import`.

use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;

use cfs_erofs::oci::{tree_from_layers, LayerError, XattrFilter};
use cfs_erofs::repo::import::ImportError;

use crate::emit::{self, ImageArgs, Store};
use crate::progress::Progress;
use crate::repo::{print_imported, RepoArgs};

/// Build a composefs image from tar layers
#[derive(Debug, clap::Parser)]
#[command(name = "mkcfs-rs tar")]
pub struct Args {
    /// The layers, lowest first, then the image to write (with --repo: only the layers)
    #[arg(value_name = "LAYER… IMAGE", required = true)]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub common: ImageArgs,
    #[command(flatten)]
    pub repo: RepoArgs,
}

pub fn run(args: &Args) -> Result<(), String> {
    // With --repo every path is a layer: the images go into the repository.
    let (image, layers) = match (args.paths.split_last(), &args.repo.repo) {
        (Some(_), Some(_)) => (None, &args.paths[..]),
        (Some((image, layers)), None) if !layers.is_empty() => (Some(image), layers),
        _ => return Err("give at least one LAYER, then the IMAGE to write".into()),
    };
    if layers.iter().filter(|p| p.as_os_str() == "-").count() > 1 {
        return Err("stdin (`-`) can be only one layer".into());
    }
    // Open every layer first, so that a missing one fails before any work.
    let mut total = 0;
    let mut readers: Vec<Box<dyn Read>> = Vec::with_capacity(layers.len());
    for p in layers {
        if p.as_os_str() == "-" {
            readers.push(Box::new(io::stdin().lock()));
            continue;
        }
        let f =
            File::open(p).map_err(|e| format!("{}: {}", p.display(), cfs_erofs::io_message(&e)))?;
        total += f.metadata().map(|m| m.len()).unwrap_or(0);
        readers.push(Box::new(f));
    }
    let progress = Progress::new(total);
    let of = readers.len();
    if let Some(repo) = args.repo.open(&args.common)? {
        let opts = cfs_erofs::repo::import::ImportOptions {
            tag: None,
            bootable: args.common.bootable,
        };
        let counted = readers
            .into_iter()
            .enumerate()
            .map(|(n, r)| progress.reader(r, n, of));
        let imported = cfs_erofs::repo::import::import_tar_layers(
            &repo,
            counted,
            args.repo.tag.as_deref(),
            &opts,
        )
        .map_err(|e| match e {
            ImportError::Layer(e) => layer_message(e, &layers),
            other => other.to_string(),
        })?;
        progress.finish();
        return print_imported(&imported, &args.common, &repo);
    }
    let image = image.expect("an image without --repo");
    let store = Store::new(&args.common)?;
    let opts = store.tar_options(&args.common);
    let counted = readers
        .into_iter()
        .enumerate()
        .map(|(n, r)| progress.reader(r, n, of));
    let tree = tree_from_layers(counted, &opts, XattrFilter::AllowlistOnly)
        .map_err(|e| layer_message(e, &layers))?;
    progress.finish();
    emit::finish(tree, &args.common, &store, Some(image))
}

/// A layer's fault named by the layer's file rather than its number.
fn layer_message(e: LayerError, layers: &[PathBuf]) -> String {
    match e {
        LayerError::Tar { layer, source } => format!("{}: {source}", layers[layer].display()),
        LayerError::Merge { layer, source } => format!("{}: {source}", layers[layer].display()),
        LayerError::Transform(source) => source.to_string(),
    }
}
