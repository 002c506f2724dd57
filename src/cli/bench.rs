//! `d1vec bench …`: the benchmark harness's commands (see `docs/bench.md` and
//! [`crate::bench`]), with progress bars on stderr.

use std::path::PathBuf;
use std::sync::Mutex;

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Value};

use crate::bench::gen::{self, GenOptions};
use crate::bench::measure::{self, MeasureOptions};
use crate::bench::progress::Progress;
use crate::bench::report;
use crate::bench::run::{self, RunOptions};
use crate::error::{Error, Result};
use crate::vectorize::Memory;

/// `d1vec bench …`
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Write a synthetic dataset folder: base.fvecs, query.fvecs, meta.ndjson, cases.json
    /// and exact ground truth (groundtruth.ivecs, gt_*.ivecs).
    Gen(GenArgs),
    /// Ingest a dataset folder through d1vec's write path, seal, compact, and measure
    /// searches in a fresh process; writes DIR/results/d1vec.jsonl and prints a table.
    Run(RunArgs),
    /// Merge every DIR/results/*.jsonl (d1vec's and the peers') into one markdown table,
    /// and optionally one plot.
    Report(ReportArgs),
    /// The search half of `bench run`, in the process it spawns (prints JSON lines).
    #[command(hide = true)]
    Measure(MeasureArgs),
}

/// `bench gen`
#[derive(Debug, Args)]
pub struct GenArgs {
    /// Dimensions.
    #[arg(long, default_value_t = 1536)]
    pub dims: usize,
    /// Base vectors.
    #[arg(long, default_value_t = 100_000)]
    pub n: usize,
    /// Query vectors.
    #[arg(long, default_value_t = 1_000)]
    pub queries: usize,
    /// Tenants (shares from 0.1 % to about 20 % of the rows).
    #[arg(long, default_value_t = 24)]
    pub tenants: usize,
    /// The seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Difficulty: dimensions of the latent space the data lives in.
    #[arg(long, default_value_t = 64)]
    pub latent_dims: usize,
    /// Difficulty: within-topic spread relative to the distance between topics.
    #[arg(long, default_value_t = 1.5)]
    pub spread: f64,
    /// The folder to write.
    #[arg(long)]
    pub out: PathBuf,
}

/// Flags shared by `bench run` and `bench measure`.
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Thread counts serving the queries.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    pub threads: Vec<usize>,
    /// The graph's ef values.
    #[arg(long, value_delimiter = ',', default_value = "16,32,64,128,256")]
    pub ef: Vec<usize>,
    /// Use only the first N queries.
    #[arg(long)]
    pub queries: Option<usize>,
    /// Queries for the forced exact scan on cases passing over 5 % of the rows.
    #[arg(long, default_value_t = 200)]
    pub exact_queries: usize,
    /// Fresh index handles per filtered case for the first-sight (cold) figure: in each,
    /// the first query with the case's filter is cold, 10 more with it are warm. 0 skips
    /// it. A case with a filter per query is measured over all its queries instead.
    #[arg(long, default_value_t = 5)]
    pub cold_runs: usize,
    /// Where sealed segments' search data lives: `mapped` (the file's pages) or `resident`
    /// (copied into the process at open).
    #[arg(long, default_value = "mapped", value_parser = ["mapped", "resident"])]
    pub memory: String,
}

impl SweepArgs {
    fn options(&self) -> Result<MeasureOptions> {
        if self.threads.is_empty() || self.threads.contains(&0) {
            return Err(Error::invalid(
                "--threads",
                "give thread counts of at least 1",
            ));
        }
        if self.ef.is_empty() || self.ef.contains(&0) {
            return Err(Error::invalid("--ef", "give ef values of at least 1"));
        }
        Ok(MeasureOptions {
            threads: self.threads.clone(),
            efs: self.ef.clone(),
            queries: self.queries,
            exact_queries: self.exact_queries,
            cold_runs: self.cold_runs,
            first_only: false,
            memory: if self.memory == "resident" {
                Memory::Resident
            } else {
                Memory::Mapped
            },
        })
    }
}

/// `bench run`
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The dataset folder.
    pub dir: PathBuf,
    /// What to sweep.
    #[command(flatten)]
    pub sweep: SweepArgs,
    /// Vectors per write call.
    #[arg(long, default_value_t = 1_000)]
    pub batch: usize,
    /// Measure searches in this process instead of a fresh one.
    #[arg(long)]
    pub in_process: bool,
    /// Reuse the database and build figures of the previous run; measure searches only.
    #[arg(long)]
    pub skip_ingest: bool,
}

/// `bench measure`
#[derive(Debug, Args)]
pub struct MeasureArgs {
    /// The dataset folder (with the database `bench run` built).
    pub dir: PathBuf,
    /// What to sweep.
    #[command(flatten)]
    pub sweep: SweepArgs,
    /// Open, answer one query, print the `open` line and stop (the first-answer probe).
    #[arg(long)]
    pub first_only: bool,
}

/// `bench report`
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The dataset folder.
    pub dir: PathBuf,
    /// Draw recall@10 against QPS (one panel per case, one curve per system) to this PNG.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Also write the markdown to this file.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// Progress bars on stderr (hidden when stderr is not a terminal); notes go above them.
struct Bars {
    bar: Mutex<Option<ProgressBar>>,
    quiet: bool,
}

impl Bars {
    fn new(quiet: bool) -> Bars {
        Bars {
            bar: Mutex::new(None),
            quiet,
        }
    }
}

impl Progress for Bars {
    fn begin(&self, step: &str, total: u64) {
        let bar = if total == 0 {
            ProgressBar::new_spinner()
        } else {
            ProgressBar::new(total)
        };
        bar.set_draw_target(ProgressDrawTarget::stderr());
        let template = if total == 0 {
            "{spinner} {msg} {elapsed}"
        } else {
            "{msg:28} [{bar:32}] {pos}/{len} {elapsed} (eta {eta})"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(step.to_owned());
        if total == 0 {
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
        }
        *self.bar.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar);
    }

    fn advance(&self, units: u64) {
        if let Some(bar) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            bar.inc(units);
        }
    }

    fn end(&self) {
        if let Some(bar) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).take() {
            bar.finish_and_clear();
            if !self.quiet {
                eprintln!(
                    "done: {} ({:.1} s)",
                    bar.message(),
                    bar.elapsed().as_secs_f64()
                );
            }
        }
    }

    fn note(&self, line: &str) {
        if self.quiet {
            return;
        }
        match self.bar.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }
}

/// Runs a `bench` command; returns its JSON (for `--json`) and its text.
pub fn run(command: BenchCommand, json_out: bool) -> Result<(Value, String)> {
    let bars = Bars::new(json_out);
    match command {
        BenchCommand::Gen(a) => {
            let options = GenOptions {
                dims: a.dims,
                n: a.n,
                queries: a.queries,
                tenants: a.tenants,
                seed: a.seed,
                latent_dims: a.latent_dims,
                spread: a.spread,
                ..GenOptions::default()
            };
            let done = gen::generate(&options, &a.out, &bars)?;
            let files: Vec<String> = done.files.iter().map(|f| f.display().to_string()).collect();
            let text = format!("wrote {} files to {}", files.len(), a.out.display());
            Ok((
                json!({ "dir": a.out.display().to_string(), "files": files }),
                text,
            ))
        }
        BenchCommand::Run(a) => {
            let binary = if a.in_process {
                None
            } else {
                Some(std::env::current_exe().map_err(Error::io("the d1vec executable"))?)
            };
            let options = RunOptions {
                measure: a.sweep.options()?,
                batch: a.batch,
                binary,
                skip_ingest: a.skip_ingest,
            };
            let lines = run::run(&a.dir, &options, &bars)?;
            let text = report::markdown(&lines);
            Ok((Value::Array(lines), text))
        }
        BenchCommand::Measure(a) => {
            let options = MeasureOptions {
                first_only: a.first_only,
                ..a.sweep.options()?
            };
            let stdout = std::io::stdout();
            let mut failure = None;
            measure::measure(&a.dir, &options, &Bars::new(true), &mut |v| {
                use std::io::Write as _;
                let mut out = stdout.lock();
                if let Err(e) = writeln!(out, "{v}").and_then(|_| out.flush()) {
                    failure.get_or_insert(e);
                }
            })?;
            if let Some(e) = failure {
                return Err(Error::io("standard output")(e));
            }
            Ok((Value::Null, String::new()))
        }
        BenchCommand::Report(a) => {
            let lines = report::read_results(&a.dir)?;
            let text = report::markdown(&lines);
            if let Some(path) = &a.output {
                std::fs::write(path, &text).map_err(Error::io(path))?;
            }
            if let Some(path) = &a.plot {
                report::plot(&lines, path)?;
            }
            Ok((json!({ "lines": lines.len() }), text))
        }
    }
}
