//! How the demo's long steps report progress, without the library drawing anything itself:
//! the command line plugs progress bars in, tests plug in [`Quiet`].

/// Receives progress of the demo's build, one phase at a time.
pub trait Progress {
    /// A phase starts; `total` is its number of items (rows, vectors), 0 when unknown.
    fn begin(&self, phase: &str, total: u64);
    /// `n` more items of the current phase are done.
    fn advance(&self, n: u64);
    /// The current phase is over: it `succeeded`, or failed with an error the caller gets.
    fn end(&self, succeeded: bool);
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quiet;

impl Progress for Quiet {
    fn begin(&self, _phase: &str, _total: u64) {}
    fn advance(&self, _n: u64) {}
    fn end(&self, _succeeded: bool) {}
}
