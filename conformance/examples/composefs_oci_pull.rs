//! `composefs_oci_pull LAYOUT REF REPO`: composefs-oci 0.9.4's `pull("oci:LAYOUT:REF")` into a
//! fresh insecure sha256 repository (V1 default, V2 extra), for `scripts/bench`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [layout, reference, repo] = args.as_slice() else {
        eprintln!("usage: composefs_oci_pull LAYOUT REF REPO");
        std::process::exit(2);
    };
    if let Err(e) = conformance::composefs_repo::pull(
        std::path::Path::new(layout),
        reference,
        std::path::Path::new(repo),
        "bench",
        false,
    ) {
        eprintln!("composefs_oci_pull: {e}");
        std::process::exit(1);
    }
}
