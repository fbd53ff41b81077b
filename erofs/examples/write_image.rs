//! Builds an image from a dumpfile with the library's writer, for timing and memory
//! measurements against C mkcomposefs (`/usr/bin/time`); prints parse and write times.
//!
//! Usage: `write_image [--v2 | --min-version=N --max-version=N] DUMPFILE|- IMAGE`

use std::io::{BufReader, Read};
use std::time::Instant;

use cfs_erofs::dumpfile::{parse, ParseOptions};
use cfs_erofs::write::{write_image, WriteOptions};

fn main() {
    let mut opts = WriteOptions::v1();
    let mut paths = Vec::new();
    for a in std::env::args().skip(1) {
        if a == "--v2" {
            opts = WriteOptions::v2();
        } else if let Some(v) = a.strip_prefix("--min-version=") {
            opts.min_version = v.parse().expect("min version");
        } else if let Some(v) = a.strip_prefix("--max-version=") {
            opts.max_version = v.parse().expect("max version");
        } else {
            paths.push(a);
        }
    }
    let [input, output] = &paths[..] else {
        eprintln!("usage: write_image [--v2 | --min-version=N --max-version=N] DUMPFILE|- IMAGE");
        std::process::exit(2);
    };
    let t0 = Instant::now();
    let reader: Box<dyn Read> = if input == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(input).expect("open dumpfile"))
    };
    let tree = parse(BufReader::with_capacity(1 << 16, reader), &ParseOptions::from_env())
        .unwrap_or_else(|e| {
            eprintln!("parse: {e}");
            std::process::exit(1)
        });
    let t1 = Instant::now();
    let out = std::fs::File::create(output).expect("create image");
    let summary = write_image(&tree, &opts, out).unwrap_or_else(|e| {
        eprintln!("write: {e}");
        std::process::exit(1)
    });
    let t2 = Instant::now();
    eprintln!(
        "{} inodes, {} bytes; parse {:.3} s, write {:.3} s",
        summary.inodes,
        summary.size,
        (t1 - t0).as_secs_f64(),
        (t2 - t1).as_secs_f64()
    );
}
