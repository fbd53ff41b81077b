//! For investigating crashers with the C tools: `show_tree INPUT` prints the tree a
//! `roundtrip` input builds, as a dumpfile, and writes its V1 and V2 images beside the input
//! (`.v1.img`, `.v2.img`); `show_tree --read IMAGE` prints what the reader says of an image.

fn main() {
    let path = std::env::args()
        .nth(1)
        .expect("usage: show_tree INPUT | --read IMAGE");
    if path == "--read" {
        let img = std::env::args()
            .nth(2)
            .expect("usage: show_tree --read IMAGE");
        let bytes = std::fs::read(img).expect("read image");
        match cfs_erofs::read::read_image(&bytes) {
            Ok(i) => print!(
                "{}",
                String::from_utf8_lossy(&cfs_erofs::dumpfile::write_to_vec(&i.tree))
            ),
            Err(e) => println!("refused: {e}"),
        }
        return;
    }
    let data = std::fs::read(&path).expect("read input");
    let Ok(tree) = cfs_erofs_fuzz::arb_tree(&mut cfs_erofs_fuzz::Input::new(&data));
    std::io::Write::write_all(
        &mut std::io::stdout(),
        &cfs_erofs::dumpfile::write_to_vec(&tree),
    )
    .expect("write dumpfile");
    for (opts, ext) in [
        (cfs_erofs::write::WriteOptions::v1(), "v1.img"),
        (cfs_erofs::write::WriteOptions::v2(), "v2.img"),
    ] {
        match cfs_erofs::write::image_bytes(&tree, &opts) {
            Ok(b) => std::fs::write(format!("{path}.{ext}"), b).expect("write image"),
            Err(e) => eprintln!("{ext}: {e}"),
        }
    }
}
