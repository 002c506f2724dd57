//! Progress reporting for the harness's long steps, kept apart from any terminal library:
//! the command line plugs in progress bars, tests and library callers pass [`NoProgress`].

/// Receives the steps of a long computation. Called from worker threads, hence `Sync`.
pub trait Progress: Sync {
    /// A step named `step` starts, with `total` units of work (0 when unknown).
    fn begin(&self, step: &str, total: u64);
    /// `units` more units of the current step are done.
    fn advance(&self, units: u64);
    /// The current step is finished.
    fn end(&self);
    /// A line of information between steps (a measurement, a note).
    fn note(&self, _line: &str) {}
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn begin(&self, _step: &str, _total: u64) {}
    fn advance(&self, _units: u64) {}
    fn end(&self) {}
}
