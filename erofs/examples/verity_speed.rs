//! Throughput of the fs-verity hasher on one core, for `scripts/bench`.
//!
//! Usage: `cargo run --release --example verity_speed [MiB] [runs]` (default 1024 MiB, 3 runs).
//! Prints `sha_ni yes|no`, then one `fsverity-<alg> <MB/s>` line per algorithm, the best of the
//! runs, with MB = 10^6 bytes so the figure compares directly with `openssl speed`.

use std::time::Instant;

use cfs_erofs::fsverity;
use cfs_erofs::HashAlgorithm;

fn main() {
    let mut args = std::env::args().skip(1);
    let mib: usize = args.next().map_or(1024, |a| a.parse().expect("MiB"));
    let runs: usize = args.next().map_or(3, |a| a.parse().expect("runs"));

    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    let sha_ni = std::is_x86_feature_detected!("sha");
    #[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
    let sha_ni = false;
    println!("sha_ni {}", if sha_ni { "yes" } else { "no" });

    // Pseudo-random content, so nothing can shortcut on zeros.
    let len = mib << 20;
    let mut data = Vec::with_capacity(len);
    let mut x: u64 = 0x0123_4567_89AB_CDEF;
    while data.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data.truncate(len);

    for alg in [HashAlgorithm::Sha256, HashAlgorithm::Sha512] {
        let mut best = f64::INFINITY;
        let mut last = None;
        for _ in 0..runs.max(1) {
            let t = Instant::now();
            let d = fsverity::digest(alg, &data);
            best = best.min(t.elapsed().as_secs_f64());
            last = Some(d);
        }
        eprintln!("{:?}", last.expect("one run"));
        println!("fsverity-{} {:.1}", alg.name(), len as f64 / best / 1e6);
    }
}
