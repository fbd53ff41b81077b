//! Writing an image and measuring it in the same pass: every byte written to the sink also
//! goes into an fs-verity hasher, so `--print-digest` never reads the image back.

use std::io::{self, Write};

use cfs_erofs::fsverity::FsVerityHasher;

/// A writer that copies everything into `hasher` (when present) as it writes it to `sink`.
pub struct Tee<W: Write> {
    pub sink: W,
    pub hasher: Option<FsVerityHasher>,
}

impl<W: Write> Write for Tee<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        if let Some(h) = &mut self.hasher {
            h.update(buf);
        }
        self.sink.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.sink.flush()
    }
}
