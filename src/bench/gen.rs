//! `bench gen`: a synthetic, text-embedding-like dataset written in the standard layout
//! (see `docs/bench.md`): `base.fvecs`, `query.fvecs`, `meta.ndjson`, `cases.json`, and exact
//! ground truth for every case.
//!
//! The model, chosen to behave like sentence embeddings rather than like uniform noise:
//! - **Low intrinsic dimension.** Every vector is a point `z` in a `latent_dims`-dimensional
//!   space mapped into `dims` dimensions by one fixed random linear map, plus a little
//!   isotropic noise, plus a shared offset (real embeddings are anisotropic: they share a
//!   mean direction), then scaled to unit length.
//! - **Topics.** `z` is a topic centre plus Gaussian spread. There are 256 topics; each
//!   tenant draws half of its rows from three home topics and half from all of them, so a
//!   tenant's rows cluster the way one customer's documents do.
//! - **Difficulty.** `spread` is the within-topic deviation relative to the distance between
//!   topics. Near 0 every query sits inside one tight cluster (easy); at 1 and above the
//!   topics overlap and the neighbourhoods are those of a `latent_dims`-dimensional
//!   Gaussian (hard). `latent_dims` sets how much room the graph has to get lost in.
//! - **Queries** are fresh draws from the same model, not noisy copies of base rows (which
//!   would make the nearest neighbour trivially easy to find).
//!
//! Tenants' shares of the rows run from 0.1 % to about 20 %: three anchor tenants hold
//! 0.1 %, 1 % and 10 %, and the rest follow a geometric series that fills the remainder.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde_json::json;

use super::cases;
use super::progress::Progress;
use super::vecs::{write_fvecs, FvecsWriter};
use crate::error::{Error, Result};
use crate::index::Metric;
use crate::rng::Rng;

/// Base rows drawn, written and offered to the ground truth at a time.
const GEN_BLOCK_ROWS: usize = 2048;
/// Topics (cluster centres) in the latent space.
const TOPICS: usize = 256;
/// Home topics per tenant.
const HOME_TOPICS: usize = 3;
/// Share of a tenant's rows drawn from its home topics.
const HOME_SHARE: f64 = 0.5;
/// Categories and their shares of the rows.
const CATEGORIES: &[(&str, f64)] = &[
    ("docs", 0.30),
    ("blog", 0.20),
    ("faq", 0.15),
    ("news", 0.11),
    ("social", 0.10),
    ("email", 0.07),
    ("ad", 0.04),
    ("transcript", 0.03),
];
/// The first timestamp (2024-01-01T00:00:00Z) and the span of timestamps (one year).
const TS_START: i64 = 1_704_067_200;
const TS_SPAN: i64 = 365 * 86_400;

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenOptions {
    /// Dimensions of every vector.
    pub dims: usize,
    /// Base rows.
    pub n: usize,
    /// Query vectors.
    pub queries: usize,
    /// Tenants (at least 1; 3 or more gives the 0.1 %, 1 % and 10 % anchors).
    pub tenants: usize,
    /// The seed: the same options give byte-identical files.
    pub seed: u64,
    /// Dimensions of the latent space the data lives in (default 64).
    pub latent_dims: usize,
    /// Within-topic spread relative to the distance between topics (default 1.5: at
    /// 20,000 x 1536, hnswlib (M 16, efConstruction 128) reaches recall@10 0.81 at ef 32
    /// and 0.975 at ef 128; at 1.0 it was 0.995 at ef 32, too easy to tell engines apart).
    pub spread: f64,
    /// Ground-truth depth per query (default 100).
    pub truth_k: usize,
}

impl Default for GenOptions {
    fn default() -> Self {
        GenOptions {
            dims: 1536,
            n: 100_000,
            queries: 1_000,
            tenants: 24,
            seed: 42,
            latent_dims: 64,
            spread: 1.5,
            truth_k: 100,
        }
    }
}

impl GenOptions {
    fn check(&self) -> Result<()> {
        let bad = |what: &'static str, why: String| Err(Error::invalid(what, why));
        if self.dims == 0 || self.dims > super::MAX_DIMS {
            return bad(
                "dims",
                format!("{} is outside 1..={}", self.dims, super::MAX_DIMS),
            );
        }
        if self.n == 0 || self.n > i32::MAX as usize {
            return bad("n", format!("{} is outside 1..={}", self.n, i32::MAX));
        }
        if self.queries == 0 {
            return bad("queries", "0: at least one query is needed".into());
        }
        if self.tenants == 0 || self.tenants > self.n {
            return bad(
                "tenants",
                format!("{} is outside 1..={} (n)", self.tenants, self.n),
            );
        }
        if self.latent_dims == 0 {
            return bad("latent_dims", "0: at least one latent dimension".into());
        }
        if !(self.spread.is_finite() && self.spread >= 0.0) {
            return bad(
                "spread",
                format!("{} is not a finite value >= 0", self.spread),
            );
        }
        if self.truth_k == 0 {
            return bad("truth_k", "0: ground truth needs k >= 1".into());
        }
        Ok(())
    }
}

/// Tenants' shares of the rows, largest last: 0.1 %, 1 % and 10 % anchors, the rest a
/// geometric series from 0.2 % to 20 % scaled to fill what the anchors leave. Sums to 1.
pub fn tenant_shares(tenants: usize) -> Vec<f64> {
    let anchors = [0.001, 0.01, 0.1];
    if tenants <= anchors.len() {
        let mut shares: Vec<f64> = anchors[..tenants].to_vec();
        let rest = 1.0 - shares[..tenants - 1].iter().sum::<f64>();
        shares[tenants - 1] = rest;
        return shares;
    }
    let others = tenants - anchors.len();
    let (lo, hi) = (0.002_f64, 0.2_f64);
    let series: Vec<f64> = (0..others)
        .map(|j| {
            let t = if others == 1 {
                1.0
            } else {
                j as f64 / (others - 1) as f64
            };
            lo * (hi / lo).powf(t)
        })
        .collect();
    let room = 1.0 - anchors.iter().sum::<f64>();
    let scale = room / series.iter().sum::<f64>();
    anchors
        .iter()
        .copied()
        .chain(series.into_iter().map(|s| s * scale))
        .collect()
}

/// Row counts per tenant for `n` rows (`shares.len() <= n`): shares rounded, every tenant
/// at least one row, the rounding difference settled on the largest tenants.
fn tenant_counts(shares: &[f64], n: usize) -> Vec<usize> {
    let mut counts: Vec<usize> = shares
        .iter()
        .map(|s| ((s * n as f64).round() as usize).max(1))
        .collect();
    let mut by_size: Vec<usize> = (0..counts.len()).collect();
    by_size.sort_by(|&a, &b| counts[b].cmp(&counts[a]).then(a.cmp(&b)));
    let mut total: usize = counts.iter().sum();
    if total < n {
        counts[by_size[0]] += n - total;
        return counts;
    }
    for &i in &by_size {
        if total == n {
            break;
        }
        let cut = (total - n).min(counts[i] - 1);
        counts[i] -= cut;
        total -= cut;
    }
    counts
}

/// The tenant's name: `t00`, `t01`, …
pub fn tenant_name(index: usize) -> String {
    format!("t{index:02}")
}

/// The fixed parts of the generative model.
struct Model {
    dims: usize,
    latent: usize,
    spread: f64,
    /// `dims x latent`, row-major, entries N(0, 1/latent).
    map: Vec<f32>,
    /// The shared offset every vector carries before normalisation.
    offset: Vec<f32>,
    centres: Vec<Vec<f64>>,
}

impl Model {
    fn new(options: &GenOptions, rng: &mut Rng) -> Model {
        let (dims, latent) = (options.dims, options.latent_dims);
        let scale = 1.0 / (latent as f64).sqrt();
        let map = (0..dims * latent)
            .map(|_| (rng.gauss() * scale) as f32)
            .collect();
        let offset = (0..dims).map(|_| (rng.gauss() * 0.35) as f32).collect();
        let centres = (0..TOPICS)
            .map(|_| (0..latent).map(|_| rng.gauss()).collect())
            .collect();
        Model {
            dims,
            latent,
            spread: options.spread,
            map,
            offset,
            centres,
        }
    }

    /// One unit vector from `topic`, drawn with its own seed.
    fn draw(&self, topic: usize, seed: u64, out: &mut [f32]) {
        let mut rng = Rng(seed);
        let centre = &self.centres[topic];
        let z: Vec<f32> = centre
            .iter()
            .map(|c| (c + self.spread * rng.gauss()) as f32)
            .collect();
        for (d, slot) in out.iter_mut().enumerate() {
            let row = &self.map[d * self.latent..(d + 1) * self.latent];
            let dot: f32 = row.iter().zip(&z).map(|(a, b)| a * b).sum();
            *slot = dot + self.offset[d] + 0.05 * rng.gauss() as f32;
        }
        crate::index::distance::normalize_in_place(out);
        debug_assert_eq!(out.len(), self.dims);
    }
}

/// Which tenant and topic each base row has.
struct RowPlan {
    tenant: Vec<u16>,
    topic: Vec<u16>,
    category: Vec<u8>,
    ts: Vec<i64>,
}

fn plan_rows(options: &GenOptions, rng: &mut Rng) -> RowPlan {
    let counts = tenant_counts(&tenant_shares(options.tenants), options.n);
    let mut tenant: Vec<u16> = counts
        .iter()
        .enumerate()
        .flat_map(|(t, &c)| std::iter::repeat_n(t as u16, c))
        .collect();
    // Fisher–Yates: tenants spread over the row order, as in a shared index.
    for i in (1..tenant.len()).rev() {
        tenant.swap(i, rng.below(i + 1));
    }
    let homes: Vec<[usize; HOME_TOPICS]> = (0..options.tenants)
        .map(|_| std::array::from_fn(|_| rng.below(TOPICS)))
        .collect();
    let topic = tenant
        .iter()
        .map(|&t| {
            if rng.chance(HOME_SHARE) {
                homes[t as usize][rng.below(HOME_TOPICS)] as u16
            } else {
                rng.below(TOPICS) as u16
            }
        })
        .collect();
    let category = (0..options.n)
        .map(|_| {
            let mut u = rng.unit();
            for (i, (_, share)) in CATEGORIES.iter().enumerate() {
                if u < *share {
                    return i as u8;
                }
                u -= share;
            }
            (CATEGORIES.len() - 1) as u8
        })
        .collect();
    let ts = (0..options.n)
        .map(|_| rng.range(TS_START, TS_START + TS_SPAN - 1))
        .collect();
    RowPlan {
        tenant,
        topic,
        category,
        ts,
    }
}

/// What [`generate`] wrote.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The dataset folder.
    pub dir: PathBuf,
    /// Every file written, in order.
    pub files: Vec<PathBuf>,
}

/// Writes a dataset folder (created if missing; files of the layout are overwritten).
/// Ground truth (`groundtruth.ivecs` and one `gt_*.ivecs` per filtered case) is exact, by
/// cosine, computed by [`super::truth`].
pub fn generate(options: &GenOptions, dir: &Path, progress: &dyn Progress) -> Result<Generated> {
    options.check()?;
    std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
    let mut rng = Rng(options.seed);
    let model = Model::new(options, &mut rng);
    let plan = plan_rows(options, &mut rng);
    let row_seed = rng.next_u64();
    let query_seed = rng.next_u64();
    let dims = options.dims;

    let mut query_topics = Rng(query_seed);
    let topics: Vec<usize> = (0..options.queries)
        .map(|_| query_topics.below(TOPICS))
        .collect();
    let mut queries = vec![0f32; options.queries * dims];
    queries
        .par_chunks_mut(dims)
        .enumerate()
        .for_each(|(i, out)| {
            let seed = query_seed ^ (i as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03);
            model.draw(topics[i], seed, out);
        });

    let base_path = dir.join("base.fvecs");
    let query_path = dir.join("query.fvecs");
    write_fvecs(&query_path, dims, &queries)?;
    let meta_path = dir.join("meta.ndjson");
    let meta = write_meta(&meta_path, &plan, options.tenants)?;
    let set = cases::derive(&meta, Metric::Cosine, 10, options.queries);
    let cases_path = dir.join(cases::CASES_FILE);
    set.save(&cases_path)?;

    // The base rows are drawn, written and offered to the ground truth one block at a
    // time: memory is one block, not n x dims (6 GB at 1,000,000 x 1536).
    let all: Vec<&cases::Case> = set.cases.iter().collect();
    let mut truth = cases::truth_job(Metric::Cosine, dims, &queries, options.truth_k, &all, &meta)?;
    drop(meta);
    progress.begin("base vectors and ground truth", options.n as u64);
    let mut writer = FvecsWriter::create(&base_path)?;
    let mut block = Vec::new();
    let mut start = 0;
    while start < options.n {
        let end = (start + GEN_BLOCK_ROWS).min(options.n);
        block.clear();
        block.resize((end - start) * dims, 0f32);
        block.par_chunks_mut(dims).enumerate().for_each(|(j, out)| {
            let i = start + j;
            let seed = row_seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            model.draw(plan.topic[i] as usize, seed, out);
        });
        writer.write_matrix(dims, &block)?;
        truth.add_block(&block);
        progress.advance((end - start) as u64);
        start = end;
    }
    writer.finish()?;
    progress.end();
    let truth_files = cases::write_truths(dir, &all, truth.finish())?;

    let mut files = vec![base_path, query_path, meta_path, cases_path];
    files.extend(truth_files);
    Ok(Generated {
        dir: dir.to_path_buf(),
        files,
    })
}

/// Writes `meta.ndjson` and returns the same rows as JSON values.
fn write_meta(path: &Path, plan: &RowPlan, tenants: usize) -> Result<Vec<serde_json::Value>> {
    let names: Vec<String> = (0..tenants).map(tenant_name).collect();
    let file = std::fs::File::create(path).map_err(Error::io(path))?;
    let mut out = std::io::BufWriter::new(file);
    let mut rows = Vec::with_capacity(plan.tenant.len());
    for i in 0..plan.tenant.len() {
        let row = json!({
            "id": format!("v{i}"),
            "tenant": names[plan.tenant[i] as usize],
            "category": CATEGORIES[plan.category[i] as usize].0,
            "ts": plan.ts[i],
        });
        serde_json::to_writer(&mut out, &row)
            .map_err(|e| Error::invalid("meta.ndjson", e.to_string()))?;
        out.write_all(b"\n").map_err(Error::io(path))?;
        rows.push(row);
    }
    out.flush().map_err(Error::io(path))?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_sum_to_one_and_span_the_documented_range() {
        for t in [1, 2, 3, 4, 8, 24, 40] {
            let s = tenant_shares(t);
            assert_eq!(s.len(), t);
            assert!((s.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{t}: {s:?}");
        }
        let s = tenant_shares(24);
        assert_eq!(&s[..3], &[0.001, 0.01, 0.1]);
        let max = s.iter().cloned().fold(0.0, f64::max);
        assert!(max > 0.15 && max <= 0.2, "{max}");
    }

    #[test]
    fn counts_add_up_and_never_starve_a_tenant() {
        for n in [10, 11, 30, 999, 5_000, 100_000] {
            let c = tenant_counts(&tenant_shares(24.min(n)), n);
            assert_eq!(c.iter().sum::<usize>(), n);
            assert!(c.iter().all(|&x| x >= 1));
        }
    }
}
