//! Any bytes as a dumpfile: strict and lax parsing return (never panic); the streaming and the
//! in-memory parsers agree; a parsed tree written as a dumpfile parses back to the same text.
#![no_main]

use cfs_erofs::dumpfile::{parse, parse_bytes, write_to_vec, ParseOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for strict in [false, true] {
        let opts = ParseOptions { strict };
        let mem = parse_bytes(data, &opts);
        let streamed = parse(std::io::BufReader::with_capacity(64, data), &opts);
        match (&mem, &streamed) {
            (Ok(a), Ok(b)) => assert_eq!(write_to_vec(a), write_to_vec(b)),
            (Err(a), Err(b)) => {
                assert_eq!(a.message_bytes(), b.message_bytes());
                assert_eq!(a.line(), b.line());
            }
            _ => panic!(
                "strict={strict}: parse_bytes {:?} but parse {:?}",
                mem.as_ref().err(),
                streamed.as_ref().err()
            ),
        }
        if strict {
            // Strict refuses more than lax, never less.
            if mem.is_ok() {
                assert!(parse_bytes(data, &ParseOptions { strict: false }).is_ok());
            }
        }
        let Ok(tree) = mem else { continue };
        let text = write_to_vec(&tree);
        let again = parse_bytes(&text, &ParseOptions { strict: true }).unwrap_or_else(|e| {
            panic!(
                "written dumpfile does not parse: {} (line {:?})\n{}",
                e.message(),
                e.line(),
                String::from_utf8_lossy(&text)
            )
        });
        assert_eq!(
            String::from_utf8_lossy(&write_to_vec(&again)),
            String::from_utf8_lossy(&text)
        );
    }
});
