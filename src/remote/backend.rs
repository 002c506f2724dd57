//! [`VectorBackend`]: the Vectorize calls an application makes, over the embedded index or the
//! REST API alike.

use super::RemoteIndex;
use crate::error::Result;
use crate::vectorize::types::{
    IndexInfo, ListVectorsResponse, Matches, MutationResult, QueryOptions, Vector,
};
use crate::vectorize::VectorIndex;

/// The data-plane calls of a Vectorize index, implemented by the embedded
/// [`VectorIndex`] and by [`RemoteIndex`], so application code can take either:
///
/// ```no_run
/// # fn main() -> d1vec::Result<()> {
/// use d1vec::remote::VectorBackend;
/// use d1vec::vectorize::types::QueryOptions;
/// fn nearest(index: &dyn VectorBackend, q: &[f64]) -> d1vec::Result<Vec<String>> {
///     let hits = index.query(q, &QueryOptions::new().with_top_k(3))?;
///     Ok(hits.matches.into_iter().map(|m| m.id).collect())
/// }
/// let db = d1vec::Database::open_in_memory()?;
/// let local = db.vectorize("docs")?;
/// let cf = d1vec::remote::Cloudflare::new("account", "token");
/// let remote = cf.vectorize("docs");
/// nearest(&local, &[0.1, 0.2])?;
/// nearest(&remote, &[0.1, 0.2])?;
/// # Ok(()) }
/// ```
pub trait VectorBackend {
    /// Inserts vectors; an id already stored keeps its vector.
    fn insert(&self, vectors: &[Vector]) -> Result<MutationResult>;
    /// Inserts or replaces vectors in full.
    fn upsert(&self, vectors: &[Vector]) -> Result<MutationResult>;
    /// The nearest vectors to `vector`.
    fn query(&self, vector: &[f64], options: &QueryOptions) -> Result<Matches>;
    /// The nearest vectors to the stored vector `id`.
    fn query_by_id(&self, id: &str, options: &QueryOptions) -> Result<Matches>;
    /// The stored vectors with these ids.
    fn get_by_ids(&self, ids: &[String]) -> Result<Vec<Vector>>;
    /// Deletes vectors by id.
    fn delete_by_ids(&self, ids: &[String]) -> Result<MutationResult>;
    /// Dimensions, metric, vector count, last applied mutation.
    fn describe(&self) -> Result<IndexInfo>;
    /// A page of vector ids.
    fn list_vectors(
        &self,
        count: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<ListVectorsResponse>;
}

macro_rules! forward {
    ($t:ty) => {
        impl VectorBackend for $t {
            fn insert(&self, vectors: &[Vector]) -> Result<MutationResult> {
                <$t>::insert(self, vectors)
            }
            fn upsert(&self, vectors: &[Vector]) -> Result<MutationResult> {
                <$t>::upsert(self, vectors)
            }
            fn query(&self, vector: &[f64], options: &QueryOptions) -> Result<Matches> {
                <$t>::query(self, vector, options)
            }
            fn query_by_id(&self, id: &str, options: &QueryOptions) -> Result<Matches> {
                <$t>::query_by_id(self, id, options)
            }
            fn get_by_ids(&self, ids: &[String]) -> Result<Vec<Vector>> {
                <$t>::get_by_ids(self, ids)
            }
            fn delete_by_ids(&self, ids: &[String]) -> Result<MutationResult> {
                <$t>::delete_by_ids(self, ids)
            }
            fn describe(&self) -> Result<IndexInfo> {
                <$t>::describe(self)
            }
            fn list_vectors(
                &self,
                count: Option<usize>,
                cursor: Option<&str>,
            ) -> Result<ListVectorsResponse> {
                <$t>::list_vectors(self, count, cursor)
            }
        }
    };
}

forward!(VectorIndex);
forward!(RemoteIndex<'_>);
