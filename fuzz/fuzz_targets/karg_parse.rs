//! Any text as a kernel command line and as one argument: parsing returns (never panics),
//! and every parsed argument writes back to text that parses to the same argument.
#![no_main]

use cfs_erofs::karg::{collect, tokenize, Karg};
use libfuzzer_sys::fuzz_target;

fn round_trip(k: &Karg) {
    let text = k.to_string();
    let again = Karg::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
    assert_eq!(&again, k, "{text}");
    assert_eq!(again.to_string(), text);
}

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    if let Ok(k) = Karg::parse(&s) {
        round_trip(&k);
    }
    let tokens: Vec<&str> = tokenize(&s).collect();
    for t in &tokens {
        assert!(!t.is_empty());
        if let Ok(k) = Karg::parse(t) {
            round_trip(&k);
        }
    }
    if let Ok(all) = collect(&s) {
        for k in &all {
            round_trip(k);
        }
        // Written back as one command line, the arguments collect to the same list.
        let line = all.iter().map(|k| k.to_string()).collect::<Vec<_>>().join(" ");
        assert_eq!(collect(&line).expect("written arguments collect"), all);
    }
});
