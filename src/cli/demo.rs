//! `d1vec demo`: build the demo folder with progress bars on stderr, then print the tour as
//! readable tables (or, with `--json`, the [`Tour`] as JSON).

use std::cell::RefCell;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value as Json;

use super::args::DemoArgs;
use super::{output, Printed};
use crate::demo::{self, Progress, Step, Tour};
use crate::error::{Error, Result};

/// Characters of text a table cell shows before it is cut with `…`.
const CELL_CHARS: usize = 48;

/// Runs the demo; `tenant` is the global `--tenant`, which the demo refuses (it runs its own
/// tenants' sessions).
pub(super) fn run(args: &DemoArgs, json: bool, tenant: Option<&str>) -> Result<Printed> {
    if tenant.is_some() {
        return Err(Error::invalid(
            "arguments",
            "`demo` runs its own tenants' sessions; drop --tenant",
        ));
    }
    let bars = Bars::new(!json && std::io::stderr().is_terminal());
    let (_db, tour) = demo::run(&args.dir, args.scale.into(), &bars)?;
    Ok(if json {
        Printed::Json(serde_json::to_value(&tour)?)
    } else {
        Printed::Text(render(&tour))
    })
}

/// Progress bars on stderr, one per phase; drawn only when `visible`.
struct Bars {
    visible: bool,
    current: RefCell<Option<(ProgressBar, String, Instant)>>,
}

impl Bars {
    fn new(visible: bool) -> Self {
        Bars {
            visible,
            current: RefCell::new(None),
        }
    }
}

impl Progress for Bars {
    fn begin(&self, phase: &str, total: u64) {
        if !self.visible {
            return;
        }
        let bar = if total > 0 {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template(
                "{spinner} {msg:<32} [{bar:24}] {human_pos}/{human_len} {elapsed}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        } else {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} {elapsed}") {
                bar.set_style(style);
            }
            bar
        };
        bar.set_message(phase.to_owned());
        bar.enable_steady_tick(Duration::from_millis(100));
        *self.current.borrow_mut() = Some((bar, phase.to_owned(), Instant::now()));
    }

    fn advance(&self, n: u64) {
        if let Some((bar, _, _)) = self.current.borrow().as_ref() {
            bar.inc(n);
        }
    }

    fn end(&self, succeeded: bool) {
        if let Some((bar, phase, started)) = self.current.borrow_mut().take() {
            bar.finish_and_clear();
            let mark = if succeeded { "✓" } else { "✗" };
            eprintln!("{mark} {phase} ({:.1} s)", started.elapsed().as_secs_f64());
        }
    }
}

/// The tour as text: what was built, each step as a table, and the time taken.
pub fn render(tour: &Tour) -> String {
    let b = &tour.build;
    let mut out = Vec::new();
    let rows: usize = b.rows.iter().map(|(_, n)| n).sum();
    out.push(format!(
        "d1vec demo: seed {}, scale {}, activity {} to {}, in {}",
        b.seed,
        b.scale,
        b.days.0,
        b.days.1,
        b.dir.display()
    ));
    out.push(format!(
        "Loaded {rows} rows into {} tables; vectors: {}; rollups: {} rows.",
        b.rows.len(),
        b.vectors
            .iter()
            .map(|(i, n)| format!("{i} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        b.rollups.iter().map(|(_, n)| n).sum::<usize>()
    ));
    let phases: Vec<Vec<Json>> = b
        .phases
        .iter()
        .map(|p| {
            vec![
                Json::from(p.phase.clone()),
                Json::from(if p.items > 0 {
                    p.items.to_string()
                } else {
                    String::new()
                }),
                Json::from(format!("{:.2}", p.seconds)),
            ]
        })
        .collect();
    out.push(output::table(
        &["phase".into(), "items".into(), "seconds".into()],
        &phases,
    ));
    for (n, step) in tour.steps.iter().enumerate() {
        out.push(String::new());
        out.push(render_step(n + 1, step));
    }
    out.push(String::new());
    out.push(format!(
        "Total {:.1} s (tour {:.2} s). The folder is kept: try\n  d1vec --db {} --tenant {} d1 execute --command \"SELECT name, status FROM campaigns\"",
        tour.total_seconds,
        tour.tour_seconds,
        b.database.display(),
        tour.tenant_a
    ));
    out.join("\n")
}

fn render_step(n: usize, step: &Step) -> String {
    let mut out = vec![format!("{n}. {}", step.title)];
    out.push(format!(
        "   session: {}",
        step.tenant.as_deref().unwrap_or("admin")
    ));
    let call: Vec<&str> = step.call.lines().collect();
    for (i, line) in call.iter().enumerate() {
        let lead = if i == 0 {
            "   call:    "
        } else {
            "            "
        };
        out.push(format!("{lead}{}", line.trim_end()));
    }
    if !step.columns.is_empty() {
        if step.rows.is_empty() {
            out.push("   (no rows)".into());
        } else {
            let rows: Vec<Vec<Json>> = step
                .rows
                .iter()
                .map(|r| r.iter().map(|v| Json::from(cell(v))).collect())
                .collect();
            out.push(output::table(&step.columns, &rows));
        }
    }
    out.push(format!("   {}", step.note));
    out.join("\n")
}

/// One value as a table cell: floats rounded, text on one line and cut to [`CELL_CHARS`].
fn cell(v: &Json) -> String {
    let text = match v {
        Json::Null => "-".to_owned(),
        Json::String(s) => s.split_whitespace().collect::<Vec<_>>().join(" "),
        Json::Number(n) if n.is_f64() => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            if x.abs() < 10.0 {
                format!("{x:.4}")
            } else {
                format!("{x:.2}")
            }
        }
        other => other.to_string(),
    };
    if text.chars().count() > CELL_CHARS {
        let cut: String = text.chars().take(CELL_CHARS - 1).collect();
        format!("{cut}…")
    } else {
        text
    }
}
