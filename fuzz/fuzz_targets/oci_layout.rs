//! An OCI image layout built from fuzzer bytes: `index.json`, then blobs, separated by
//! `--blob--` lines, with `@N`/`#N`/`%N` placeholders in the JSON records replaced by blob N's digest, size and
//! diff_id so that mutated manifests and configs still pass the digest checks and reach the
//! JSON, reference and layer code. Opening and reading the layout must return, never panic.
#![no_main]

use std::io::Read;

use cfs_erofs::oci::layout::OciLayout;
use cfs_erofs::oci::merge::XattrFilter;
use cfs_erofs::oci::tar::TarOptions;
use cfs_erofs_fuzz::{layout_records, substitute};
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

fn sha(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

fuzz_target!(|data: &[u8]| {
    let records = layout_records(data);
    if records.len() > 32 {
        return;
    }
    let dir = tempfile::tempdir().expect("temporary folder");
    let blobs = dir.path().join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    // Resolve from the last record back, so that each may name the ones after it.
    let mut resolved: Vec<Option<(String, u64, String)>> = vec![None; records.len()];
    let mut contents: Vec<Vec<u8>> = vec![Vec::new(); records.len()];
    for i in (0..records.len()).rev() {
        // Only JSON records carry placeholders; layers stay byte for byte.
        let content = if records[i].trim_ascii_start().starts_with(b"{") {
            substitute(records[i], &resolved)
        } else {
            records[i].to_vec()
        };
        if i > 0 {
            let digest = sha(&content);
            let mut plain = Vec::new();
            let diff = match flate2::read::GzDecoder::new(&content[..])
                .take(1 << 20)
                .read_to_end(&mut plain)
            {
                Ok(_) => sha(&plain),
                Err(_) => digest.clone(),
            };
            std::fs::write(blobs.join(&digest[7..]), &content).unwrap();
            resolved[i] = Some((digest, content.len() as u64, diff));
        }
        contents[i] = content;
    }
    std::fs::write(
        dir.path().join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("index.json"), &contents[0]).unwrap();
    let Ok(layout) = OciLayout::open(dir.path()) else {
        return;
    };
    let refs: Vec<Option<String>> = layout
        .refs()
        .into_iter()
        .map(|r| r.map(str::to_owned))
        .collect();
    let mut choices: Vec<Option<&str>> = vec![None];
    choices.extend(refs.iter().flatten().map(|r| Some(r.as_str())).take(2));
    for reference in choices {
        let Ok(image) = layout.image(reference) else {
            continue;
        };
        let _ = layout.tree(&image, &TarOptions::default(), XattrFilter::KeepUserXattrs);
    }
});
