//! `mkcfs-rs oci LAYOUT [IMAGE]`: an OCI image layout folder into a composefs image, the way
//! composefs-oci builds it (every blob and diff_id verified, layers applied in order, the OCI
//! post-processing), optionally made bootable. With `--repo`, the image is imported into a
//! composefs-rs repository as composefs-oci's `pull` does (`cfs_erofs::repo::import`). Thin
//! over `cfs_erofs::oci::layout`.

use std::path::PathBuf;

use cfs_erofs::oci::layout::OciLayout;
use cfs_erofs::oci::merge::{transform_for_oci, LayerMerger, XattrFilter};

use crate::emit::{self, ImageArgs, Store};
use crate::progress::Progress;
use crate::repo::{print_imported, RepoArgs};

/// Build a composefs image from an OCI image layout
#[derive(Debug, clap::Parser)]
#[command(name = "mkcfs-rs oci")]
pub struct Args {
    /// The OCI image layout folder (with `oci-layout` and `index.json`)
    pub layout: PathBuf,
    /// The image to write (atomically); without it, only print what is asked
    pub image: Option<PathBuf>,
    /// Which manifest of index.json (its org.opencontainers.image.ref.name); needed when there
    /// are several
    #[arg(long = "ref", value_name = "NAME")]
    pub reference: Option<String>,
    #[command(flatten)]
    pub common: ImageArgs,
    #[command(flatten)]
    pub repo: RepoArgs,
}

pub fn run(args: &Args) -> Result<(), String> {
    let layout = OciLayout::open(&args.layout).map_err(|e| e.to_string())?;
    let image = layout
        .image(args.reference.as_deref())
        .map_err(|e| e.to_string())?;
    let layers = &image.manifest.layers;
    let progress = Progress::new(layers.iter().map(|d| d.size).sum());
    if let Some(repo) = args.repo.open(&args.common)? {
        let opts = cfs_erofs::repo::import::ImportOptions {
            tag: args.repo.tag.clone(),
            bootable: args.common.bootable,
        };
        let imported =
            cfs_erofs::repo::import::import_oci(&repo, &layout, &image, &opts, &mut |n| {
                progress.layer(n, layers.len());
                progress.advance(layers[n].size);
            })
            .map_err(|e| e.to_string())?;
        progress.finish();
        return match &args.image {
            Some(path) => {
                let store = Store::at(repo.root().join("objects"));
                emit::finish(imported.tree, &args.common, &store, Some(path))
            }
            None => print_imported(&imported, &args.common, &repo),
        };
    }
    let store = Store::new(&args.common)?;
    let opts = store.tar_options(&args.common);
    let mut merger = LayerMerger::new();
    for (n, desc) in layers.iter().enumerate() {
        progress.layer(n, layers.len());
        layout
            .apply_layer(&image, n, &mut merger, &opts)
            .map_err(|e| e.to_string())?;
        progress.advance(desc.size);
    }
    progress.finish();
    let mut tree = merger.into_tree();
    transform_for_oci(&mut tree, XattrFilter::AllowlistOnly).map_err(|e| e.to_string())?;
    emit::finish(tree, &args.common, &store, args.image.as_deref())
}
