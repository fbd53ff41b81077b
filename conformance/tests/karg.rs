//! Kernel arguments against composefs-boot 0.9.4: the text we write is the text composefs-boot
//! writes for the same image, and what we parse from one argument is what it parses.

use cfs_erofs::karg::{collect, ImageVersion, Karg};
use cfs_erofs::tree::Digest;
use composefs::erofs::format::FormatVersion;
use composefs::fsverity::{Algorithm, FsVerityHashValue, Sha256HashValue, Sha512HashValue};
use composefs_boot::cmdline::{make_cmdline_composefs, ComposefsCmdline};
use proptest::prelude::*;

fn check<H: FsVerityHashValue>(bytes: &[u8], insecure: bool, alg: Algorithm) {
    let ours = Digest::from_bytes(bytes).unwrap();
    let theirs = H::from_hex(hex::encode(bytes)).unwrap();
    let hex = ours.to_hex();

    let v1 = Karg::v1(ours.clone(), insecure).to_string();
    let v2 = Karg::v2(ours.clone(), insecure).to_string();
    assert_eq!(
        v1,
        ComposefsCmdline::new_v1(theirs.clone(), insecure).to_cmdline_arg()
    );
    assert_eq!(
        v2,
        ComposefsCmdline::new_v2(theirs.clone(), insecure).to_cmdline_arg()
    );
    assert_eq!(
        v1,
        make_cmdline_composefs(&hex, insecure, FormatVersion::V1, alg)
    );
    assert_eq!(
        v2,
        make_cmdline_composefs(&hex, insecure, FormatVersion::V2, alg)
    );

    // Parsing, including the explicit v2 form that is accepted but never generated.
    let explicit = v1.replacen("=v1-", "=v2-", 1).replacen("=?v1-", "=?v2-", 1);
    for text in [&v1, &v2, &explicit] {
        let line = format!("quiet {text} rw");
        let mine = collect(&line).unwrap();
        assert_eq!(mine.len(), 1);
        let theirs = ComposefsCmdline::<H>::from_cmdline(&line).unwrap().unwrap();
        let their_version = match theirs {
            ComposefsCmdline::V1 { .. } => ImageVersion::V1,
            ComposefsCmdline::V2 { .. } => ImageVersion::V2,
        };
        assert_eq!(mine[0].version, their_version, "{text}");
        assert_eq!(mine[0].insecure, theirs.is_insecure(), "{text}");
        assert_eq!(mine[0].digest.to_hex(), theirs.digest().to_hex(), "{text}");
        assert_eq!(&mine[0].to_string(), text);
    }
}

proptest! {
    #[test]
    fn sha256_forms_agree(bytes in proptest::collection::vec(any::<u8>(), 32), insecure: bool) {
        check::<Sha256HashValue>(&bytes, insecure, Algorithm::SHA256);
    }

    #[test]
    fn sha512_forms_agree(bytes in proptest::collection::vec(any::<u8>(), 64), insecure: bool) {
        check::<Sha512HashValue>(&bytes, insecure, Algorithm::SHA512);
    }
}

#[test]
fn malformed_values_are_errors_on_both_sides() {
    let h = "ab".repeat(32);
    for arg in [
        format!("composefs.digest=v1-sha256-12{h}"),
        format!("composefs.digest=v3-sha256-12:{h}"),
        format!("composefs.digest=v1-md5-12:{h}"),
        format!("composefs.digest=v1-sha256-13:{h}"),
        format!("composefs.digest=v1-sha256-12:{}", &h[1..]),
        format!("composefs.digest=v1-sha256-12:{}zz", &h[2..]),
        format!("composefs={}", &h[1..]),
    ] {
        assert!(collect(&arg).is_err(), "{arg}");
        assert!(
            ComposefsCmdline::<Sha256HashValue>::from_cmdline(&arg).is_err(),
            "{arg}"
        );
    }
}
