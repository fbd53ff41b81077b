//! `mkcfs-rs`: mkcomposefs and composefs-info drop-in, plus OCI, tar and karg commands.

fn main() {
    eprintln!("mkcfs-rs: not built yet");
    std::process::exit(1);
}
