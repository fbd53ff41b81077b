//! `composefs-info dump` through the library (`cfs_erofs::info::dump`), for timing and memory
//! measurements against C composefs-info until the `mkcfs-rs info` command is there.
//!
//! Usage: `info_dump IMAGE > DUMPFILE`

use std::io::Write;

fn main() {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: info_dump IMAGE");
        std::process::exit(2);
    };
    let image = std::fs::read(&path).unwrap_or_else(|e| {
        eprintln!("info_dump: {}: {e}", path.to_string_lossy());
        std::process::exit(1)
    });
    let stdout = std::io::stdout().lock();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout);
    if let Err(e) = cfs_erofs::info::dump(&image, None, &mut out).and_then(|()| Ok(out.flush()?)) {
        eprintln!("info_dump: {e}");
        std::process::exit(1);
    }
}
