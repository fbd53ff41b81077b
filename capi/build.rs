//! Gives the cdylib C's SONAME, libcomposefs.so.1. rustc already limits a cdylib's dynamic
//! symbols to its `#[no_mangle] pub extern "C"` functions (through its own anonymous version
//! script, so they stay unversioned like C's); `tests/symbols.rs` checks the list against
//! `symbols.txt`, C's 62.
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libcomposefs.so.1");
}
