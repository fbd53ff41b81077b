//! `mkcfs-rs tar LAYER… IMAGE`: bare tar layers (plain, gzip or zstd; `-` reads stdin),
//! applied in order with overlay whiteouts, into a composefs image — the tree composefs-oci
//! builds from the same layers. Thin over `cfs_erofs::oci::tree_from_layers`.

use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;

use cfs_erofs::oci::{tree_from_layers, LayerError, XattrFilter};

use crate::emit::{self, ImageArgs, Store};
use crate::progress::Progress;

/// Build a composefs image from tar layers
#[derive(Debug, clap::Parser)]
#[command(name = "mkcfs-rs tar")]
pub struct Args {
    /// The layers, lowest first, then the image to write
    #[arg(value_name = "LAYER… IMAGE", required = true)]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub common: ImageArgs,
}

pub fn run(args: &Args) -> Result<(), String> {
    let (image, layers) = match args.paths.split_last() {
        Some((image, layers)) if !layers.is_empty() => (image, layers),
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
    let store = Store::new(&args.common)?;
    let opts = store.tar_options(&args.common);
    let progress = Progress::new(total);
    let of = readers.len();
    let counted = readers
        .into_iter()
        .enumerate()
        .map(|(n, r)| progress.reader(r, n, of));
    let tree = tree_from_layers(counted, &opts, XattrFilter::AllowlistOnly).map_err(|e| {
        let at = |layer: usize| layers[layer].display().to_string();
        match e {
            LayerError::Tar { layer, source } => format!("{}: {source}", at(layer)),
            LayerError::Merge { layer, source } => format!("{}: {source}", at(layer)),
            LayerError::Transform(source) => source.to_string(),
        }
    })?;
    progress.finish();
    emit::finish(tree, &args.common, &store, Some(image))
}
