//! Progress of `oci` and `tar` while they read layers: a bar of input bytes with the layer being
//! read, drawn on stderr only when stderr is a terminal and the input is large enough for
//! progress to matter. Otherwise nothing is drawn and updates cost a counter increment.

use std::io::{self, IsTerminal, Read};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Inputs smaller than this finish too fast for a bar to help.
const MIN_BYTES: u64 = 8 << 20;

/// A progress bar over `total` input bytes (hidden when not useful).
#[derive(Clone)]
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    pub fn new(total: u64) -> Progress {
        let bar = if total >= MIN_BYTES && io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{msg:>12} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
            )
            .expect("static template")
            .progress_chars("=> ");
            bar.set_style(style);
            bar
        } else {
            ProgressBar::hidden()
        };
        Progress { bar }
    }

    /// Names the layer being read (`layer 2/5`).
    pub fn layer(&self, n: usize, of: usize) {
        self.bar.set_message(format!("layer {}/{of}", n + 1));
    }

    pub fn advance(&self, bytes: u64) {
        self.bar.inc(bytes);
    }

    /// Removes the bar before the command prints its results.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    /// A reader that advances this bar by what it reads, naming layer `n` of `of` when it
    /// starts.
    pub fn reader<R: Read>(&self, inner: R, n: usize, of: usize) -> Counting<R> {
        Counting {
            inner,
            progress: self.clone(),
            layer: Some((n, of)),
        }
    }
}

/// See [`Progress::reader`].
pub struct Counting<R> {
    inner: R,
    progress: Progress,
    layer: Option<(usize, usize)>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some((n, of)) = self.layer.take() {
            self.progress.layer(n, of);
        }
        let got = self.inner.read(buf)?;
        self.progress.advance(got as u64);
        Ok(got)
    }
}
