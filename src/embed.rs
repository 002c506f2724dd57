//! Offline text embedders: the [`Embedder`] trait and a deterministic lexical stand-in.
//!
//! An application that stores text in a vector index needs a function from text to vector.
//! In production that is a semantic model (Workers AI, OpenAI, a local ONNX model); d1vec has
//! none and downloads none. Instead it ships [`HashingEmbedder`], which turns text into a
//! vector by *signed feature hashing* of its words and character 3-grams. It needs no model,
//! no network and no state, gives the same bits on every platform, and works at any size from
//! 1 to 1536 dimensions.
//!
//! **It is lexical, not semantic.** Two texts come out similar when they share words or
//! spellings ("running shoes" and "shoes for running", or "colour" and "colours"). Texts that
//! mean the same thing in different words ("car" and "automobile") do not. Use it for demos,
//! tests and offline development; plug a real model in through [`Embedder`] for anything a
//! person will judge by meaning.
//!
//! ```
//! # fn main() -> d1vec::Result<()> {
//! use d1vec::embed::{Embedder, HashingEmbedder};
//!
//! let embedder = HashingEmbedder::new(256)?;
//! let query = embedder.embed("spring sale on running shoes");
//! let near = embedder.embed("Running shoes: the spring collection");
//! let far = embedder.embed("quarterly tax filing deadline");
//! assert_eq!(query.len(), 256);
//!
//! // Unit length, so a dot product is the cosine similarity.
//! let cosine = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
//! assert!(cosine(&query, &near) > cosine(&query, &far));
//!
//! // Vectorize values are f64: widen without loss.
//! let values: Vec<f64> = query.iter().copied().map(f64::from).collect();
//! # assert_eq!(values.len(), 256);
//! # Ok(()) }
//! ```

use rayon::prelude::*;

use crate::error::{Error, Result};

/// The most dimensions [`HashingEmbedder`] accepts: Vectorize's limit.
pub const MAX_DIMENSIONS: usize = crate::vectorize::limits::MAX_DIMENSIONS;

/// The dimensions the command line uses when none are given (OpenAI's ada-002 size, the
/// bundled knowledge index's size).
pub const DEFAULT_DIMENSIONS: usize = 1536;

/// Turns text into a fixed-length vector. Implement it to plug a real model into an
/// application in place of [`HashingEmbedder`].
///
/// Implementations should be deterministic (the same text gives the same vector), so that a
/// stored vector can be recomputed and compared, and should return finite values that are not
/// all zero, since a cosine index refuses a zero vector.
///
/// ```
/// use d1vec::embed::Embedder;
///
/// /// A stand-in for a client of a remote model.
/// struct Remote;
///
/// impl Embedder for Remote {
///     fn dimensions(&self) -> usize {
///         2
///     }
///     fn embed(&self, text: &str) -> Vec<f32> {
///         vec![text.len() as f32, 1.0] // call the model here
///     }
/// }
///
/// let model: Box<dyn Embedder> = Box::new(Remote);
/// assert_eq!(model.embed_batch(&["a", "bc"]), vec![vec![1.0, 1.0], vec![2.0, 1.0]]);
/// ```
pub trait Embedder: Send + Sync {
    /// The length of every vector this embedder returns.
    fn dimensions(&self) -> usize;

    /// Embeds one text: a vector of exactly [`dimensions`](Embedder::dimensions) values.
    fn embed(&self, text: &str) -> Vec<f32>;

    /// Embeds many texts, one vector per text, in order. The default calls
    /// [`embed`](Embedder::embed) on each; a model with a batch endpoint should override it.
    fn embed_batch(&self, texts: &[&str]) -> Vec<Vec<f32>> {
        texts.iter().map(|t| self.embed(t)).collect()
    }
}

/// A deterministic, model-free [`Embedder`]: signed feature hashing of words and character
/// 3-grams, L2-normalised.
///
/// **This is a lexical stand-in for a semantic model, not one.** Texts that share words or
/// spellings score a high cosine similarity; texts that share only meaning do not.
///
/// How a text becomes a vector:
/// 1. The text is lowercased (Unicode's full lowercase mapping, `str::to_lowercase`).
/// 2. It is split into tokens. A *word* is a run of letters, digits and combining marks, in
///    any script. Whitespace, control characters and punctuation (ASCII, Latin-1, general,
///    supplemental, CJK and full-width punctuation, variation selectors) separate words.
///    Each pictograph or symbol (emoji, arrows, dingbats, currency signs, …) is a
///    *symbol* token of its own.
/// 3. Features: each word (weight 1.0); each character 3-gram of the word wrapped in `<` and
///    `>`, so `shoe` gives `<sh`, `sho`, `hoe`, `oe>` (weight 0.5 each); each symbol (weight
///    1.0). A feature repeated `n` times in the text counts `weight × √n` (sublinear term
///    frequency), so a repeated word does not drown the rest.
/// 4. Each feature is hashed with FNV-1a (64-bit) over a one-byte kind tag and the feature's
///    UTF-8 bytes, then mixed with the SplitMix64 finaliser. The high 32 bits pick the
///    dimension (`(high × dims) >> 32`), the lowest bit picks the sign.
/// 5. Signed weights are summed per dimension in `f64`, in the order of the sorted feature
///    hashes; the sum is divided by its Euclidean norm and rounded to `f32`.
///
/// A text with no features (empty, whitespace or punctuation only) or whose features cancel
/// exactly (possible at very few dimensions) gets a fixed fallback vector instead of zeros:
/// every component is `±1/√dims`, the signs taken from a SplitMix64 stream seeded with the
/// FNV-1a hash of the empty string. All such texts share it; it is a unit vector, so a cosine
/// index accepts it, and it is nearly orthogonal to every real text's vector.
///
/// The result depends on nothing but the text and `dims`: no `HashMap` order, no `usize`
/// width, no byte order, and only correctly rounded IEEE 754 operations (`+`, `×`, `÷`, `√`).
/// It can change only if the crate changes the scheme above (tests pin sample outputs) or if
/// a newer Rust's Unicode tables reclassify or re-case a character.
///
/// Cost: linear in the text's length, with one `(hash, kind)` pair held per feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashingEmbedder {
    dims: usize,
}

impl HashingEmbedder {
    /// An embedder of `dims` dimensions: 1 to [`MAX_DIMENSIONS`] (1536), as a Vectorize index
    /// allows. Other values are refused with [`Error::InvalidInput`].
    pub fn new(dims: usize) -> Result<Self> {
        if (1..=MAX_DIMENSIONS).contains(&dims) {
            Ok(HashingEmbedder { dims })
        } else {
            Err(Error::invalid(
                "dimensions",
                format!("must be between 1 and {MAX_DIMENSIONS}, got {dims}"),
            ))
        }
    }
}

impl Embedder for HashingEmbedder {
    fn dimensions(&self) -> usize {
        self.dims
    }

    fn embed(&self, text: &str) -> Vec<f32> {
        let mut features = features(text);
        // Sorting makes the summation order a function of the feature set alone.
        features.sort_unstable();
        let mut sums = vec![0.0f64; self.dims];
        let mut rest = features.as_slice();
        while let Some(&first) = rest.first() {
            let run = rest.iter().take_while(|&&f| f == first).count();
            rest = &rest[run..];
            let (hash, kind) = first;
            let weight = kind.weight() * (run as f64).sqrt();
            let (slot, negative) = slot(hash, self.dims);
            sums[slot] += if negative { -weight } else { weight };
        }
        let norm = sums.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm > 0.0 && norm.is_finite() {
            sums.iter().map(|x| (x / norm) as f32).collect()
        } else {
            fallback(self.dims)
        }
    }

    /// Embeds the texts in parallel (rayon); the result equals mapping
    /// [`embed`](Embedder::embed) in order.
    fn embed_batch(&self, texts: &[&str]) -> Vec<Vec<f32>> {
        texts.par_iter().map(|t| self.embed(t)).collect()
    }
}

/// What a feature is; the discriminant is also the tag byte hashed before the feature's text,
/// so a word and a 3-gram with the same characters land in different places.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
enum Kind {
    Word = b'w',
    Gram = b'g',
    Symbol = b's',
}

impl Kind {
    fn weight(self) -> f64 {
        match self {
            Kind::Word | Kind::Symbol => 1.0,
            Kind::Gram => 0.5,
        }
    }

    fn tag(self) -> u8 {
        self as u8
    }
}

/// Every feature occurrence of `text`, as (hash, kind), in text order.
fn features(text: &str) -> Vec<(u64, Kind)> {
    let lower = text.to_lowercase();
    let mut out = Vec::new();
    let mut word: Vec<char> = Vec::new();
    for c in lower.chars() {
        match class(c) {
            Class::Word => word.push(c),
            Class::Separator => push_word(&mut word, &mut out),
            Class::Symbol => {
                push_word(&mut word, &mut out);
                let mut h = Fnv1a::new(Kind::Symbol);
                h.write_char(c);
                out.push((h.finish(), Kind::Symbol));
            }
        }
    }
    push_word(&mut word, &mut out);
    out
}

/// Adds the word's features (itself and its bounded 3-grams) and empties it.
fn push_word(word: &mut Vec<char>, out: &mut Vec<(u64, Kind)>) {
    if word.is_empty() {
        return;
    }
    let mut h = Fnv1a::new(Kind::Word);
    for &c in word.iter() {
        h.write_char(c);
    }
    out.push((h.finish(), Kind::Word));
    // The word with boundary markers: `<`, the characters, `>`. Neither marker can occur
    // inside a word (both are punctuation), so a gram that touches one is unambiguous.
    let at = |i: usize| match i {
        0 => '<',
        i if i == word.len() + 1 => '>',
        i => word[i - 1],
    };
    for start in 0..word.len() {
        let mut h = Fnv1a::new(Kind::Gram);
        for i in start..start + 3 {
            h.write_char(at(i));
        }
        out.push((h.finish(), Kind::Gram));
    }
    word.clear();
}

/// The dimension and sign (true: negative) a feature hash maps to.
fn slot(hash: u64, dims: usize) -> (usize, bool) {
    let mixed = splitmix_finish(hash);
    // `dims` ≤ 1536, so the product fits in 43 bits and the result is below `dims`.
    let slot = ((mixed >> 32) * dims as u64) >> 32;
    (slot as usize, mixed & 1 == 1)
}

/// The vector of texts without features: `±1/√dims` everywhere, signs from a SplitMix64
/// stream seeded with FNV-1a of the empty string.
fn fallback(dims: usize) -> Vec<f32> {
    let magnitude = 1.0 / (dims as f64).sqrt();
    let mut state = FNV_OFFSET;
    (0..dims)
        .map(|_| {
            state = state.wrapping_add(SPLITMIX_GAMMA);
            let bits = splitmix_finish(state);
            (if bits >> 63 == 1 {
                -magnitude
            } else {
                magnitude
            }) as f32
        })
        .collect()
}

/// How the tokeniser treats a (lowercased) character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Part of a word: letters, digits, and the marks that attach to them.
    Word,
    /// Ends a word and is dropped.
    Separator,
    /// Ends a word and is a token of its own.
    Symbol,
}

fn class(c: char) -> Class {
    if c.is_alphanumeric() {
        return Class::Word;
    }
    if c.is_whitespace() || c.is_control() {
        return Class::Separator;
    }
    let u = u32::from(c);
    let punctuation = u < 0x80 // ASCII punctuation (letters and digits were taken above)
        || (0x80..=0xBF).contains(&u) // Latin-1 punctuation and signs
        || u == 0xD7 // ×
        || u == 0xF7 // ÷
        || matches!(u, 0x37E | 0x387 | 0x55A..=0x55F | 0x589 | 0x5BE | 0x5C0 | 0x5C3 | 0x5C6)
        || matches!(u, 0x5F3 | 0x5F4 | 0x60C | 0x60D | 0x61B | 0x61F | 0x66A..=0x66D | 0x6D4)
        || matches!(u, 0x964 | 0x965 | 0x970 | 0xE4F | 0xE5A | 0xE5B | 0x104A..=0x104F)
        || (0x2000..=0x206F).contains(&u) // general punctuation, incl. zero-width joiners
        || (0x2E00..=0x2E7F).contains(&u) // supplemental punctuation
        || (0x3000..=0x303F).contains(&u) // CJK symbols and punctuation
        || (0xFE00..=0xFE1F).contains(&u) // variation selectors, vertical forms
        || (0xFE30..=0xFE6F).contains(&u) // CJK compatibility and small forms
        || (0xFF00..=0xFF0F).contains(&u) // full-width punctuation …
        || (0xFF1A..=0xFF20).contains(&u)
        || (0xFF3B..=0xFF40).contains(&u)
        || (0xFF5B..=0xFF65).contains(&u)
        || u == 0xFEFF // byte order mark
        || (0xE0000..=0xE007F).contains(&u) // tags
        || (0xE0100..=0xE01EF).contains(&u); // variation selectors supplement
    if punctuation {
        return Class::Separator;
    }
    let symbol = (0x20A0..=0x20CF).contains(&u) // currency signs
        || (0x2100..=0x2BFF).contains(&u) // letterlike … arrows, math, technical, dingbats
        || (0x1F000..=0x1FBFF).contains(&u); // emoji, pictographs, game symbols
    if symbol {
        Class::Symbol
    } else {
        // Everything else (combining marks, viramas, unassigned code points) continues a word.
        Class::Word
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
const SPLITMIX_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// FNV-1a, 64-bit, fed a kind tag and then UTF-8 bytes.
struct Fnv1a(u64);

impl Fnv1a {
    fn new(kind: Kind) -> Self {
        let mut h = Fnv1a(FNV_OFFSET);
        h.write(&[kind.tag()]);
        h
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(FNV_PRIME);
        }
    }

    fn write_char(&mut self, c: char) {
        let mut buf = [0u8; 4];
        self.write(c.encode_utf8(&mut buf).as_bytes());
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// SplitMix64's output function: spreads FNV's weak low bits over the whole word.
fn splitmix_finish(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_published_vectors() {
        // From the FNV reference test suite (64-bit FNV-1a).
        let raw = |bytes: &[u8]| {
            let mut h = Fnv1a(FNV_OFFSET);
            h.write(bytes);
            h.finish()
        };
        assert_eq!(raw(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(raw(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(raw(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn tokens_split_on_punctuation_and_keep_symbols() {
        let words = |s: &str| {
            let f = features(s);
            (
                f.iter().filter(|(_, k)| *k == Kind::Word).count(),
                f.iter().filter(|(_, k)| *k == Kind::Symbol).count(),
            )
        };
        assert_eq!(words("Hello, world!"), (2, 0));
        assert_eq!(words("don't—stop…now"), (4, 0));
        assert_eq!(words("launch 🚀🚀 now"), (2, 2));
        assert_eq!(words("नमस्ते दुनिया"), (2, 0)); // the virama stays inside its word
        assert_eq!(words("e\u{301}te\u{301}"), (1, 0)); // decomposed accents too
        assert_eq!(words(" \t\n.,;"), (0, 0));
    }

    #[test]
    fn grams_have_boundaries() {
        let mut word = vec!['a'];
        let mut out = Vec::new();
        push_word(&mut word, &mut out);
        assert_eq!(out.len(), 2); // `a` and `<a>`
        let mut h = Fnv1a::new(Kind::Gram);
        h.write(b"<a>");
        assert_eq!(out[1], (h.finish(), Kind::Gram));
    }
}
