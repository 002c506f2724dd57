//! The keyword query language, and the tokenizer it shares with the FTS5 index.
//!
//! The index is built with FTS5's `ascii` tokenizer, and [`tokens`] re-implements it byte
//! for byte, so the engine can count term frequencies and document lengths itself (BM25 per
//! tenant, see [`super::bm25`]) and get the numbers FTS5 would:
//!
//! - a token is a maximal run of ASCII letters and digits and of any non-ASCII character;
//!   every other ASCII character separates tokens;
//! - ASCII letters are lower-cased; nothing else is folded (`É` stays `É`).
//!
//! A query is a list of *phrases*, any of which may match (OR):
//!
//! - a word is a phrase of its tokens: `launch` is one token, `e-mail` is the phrase
//!   `e mail`, and a word of punctuation only is skipped;
//! - `"double quotes"` make one phrase of everything between them;
//! - a `*` right after a word or a closing quote makes its last token a prefix:
//!   `launch*` matches `launches`, `"spring sal"*` matches `spring sale`;
//! - a phrase given twice counts once.
//!
//! The engine writes the FTS5 expression itself, every token quoted, so no input can reach
//! FTS5's own syntax (`NEAR`, `NOT`, column filters).

use crate::error::{Error, Result};

/// The longest keyword query accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 4096;
/// The most phrases one query may hold.
pub const MAX_PHRASES: usize = 32;
/// The longest token a query may hold, in bytes.
pub const MAX_TOKEN_BYTES: usize = 256;

fn is_token_byte(b: u8) -> bool {
    b >= 0x80 || b.is_ascii_alphanumeric()
}

/// The tokens of `text`, as FTS5's `ascii` tokenizer makes them (see the module docs).
pub fn tokens(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_ascii() && !is_token_byte(c as u8))
        .filter(|t| !t.is_empty())
        .map(str::to_ascii_lowercase)
        .collect()
}

/// A sequence of tokens that must appear in a row, in order and adjacent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phrase {
    /// The tokens, at least one.
    pub tokens: Vec<String>,
    /// Whether the last token matches any token it is a prefix of.
    pub prefix: bool,
}

impl Phrase {
    /// The phrase in FTS5's query syntax: `"tok tok"`, with ` *` for a prefix.
    pub fn to_fts5(&self) -> String {
        let quoted = self.tokens.join(" ").replace('"', "\"\"");
        if self.prefix {
            format!("\"{quoted}\" *")
        } else {
            format!("\"{quoted}\"")
        }
    }

    /// How many times the phrase occurs in `doc` (a row's tokens), counting every start
    /// position, overlapping ones too, as FTS5 does.
    pub fn count_in(&self, doc: &[String]) -> usize {
        let n = self.tokens.len();
        if n == 0 || doc.len() < n {
            return 0;
        }
        let last = n - 1;
        (0..=doc.len() - n)
            .filter(|&start| {
                self.tokens.iter().enumerate().all(|(j, t)| {
                    let d = &doc[start + j];
                    if j == last && self.prefix {
                        d.starts_with(t.as_str())
                    } else {
                        d == t
                    }
                })
            })
            .count()
    }
}

/// A parsed keyword query: phrases in the order first given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeywordQuery {
    phrases: Vec<Phrase>,
}

impl KeywordQuery {
    /// Parses `text` (see the module docs). Refuses, with [`Error::InvalidInput`], a query
    /// with no words, an unterminated quote, an empty phrase, a `*` that follows no word;
    /// and with [`Error::LimitExceeded`] one longer than [`MAX_QUERY_BYTES`], with more than
    /// [`MAX_PHRASES`] phrases or a token longer than [`MAX_TOKEN_BYTES`].
    pub fn parse(text: &str) -> Result<KeywordQuery> {
        if text.len() > MAX_QUERY_BYTES {
            return Err(Error::LimitExceeded {
                what: "keyword query length in bytes",
                limit: MAX_QUERY_BYTES,
                got: text.len(),
            });
        }
        let bad = |reason: String| Error::invalid("keyword query", reason);
        let mut phrases: Vec<Phrase> = Vec::new();
        let mut rest = text;
        loop {
            rest = rest.trim_start();
            if rest.is_empty() {
                break;
            }
            let offset = text.len() - rest.len();
            let (body, quoted, after) = if let Some(inner) = rest.strip_prefix('"') {
                let end = inner
                    .find('"')
                    .ok_or_else(|| bad(format!("the quote at byte {offset} is never closed")))?;
                (&inner[..end], true, &inner[end + 1..])
            } else {
                let end = rest
                    .find(|c: char| c.is_whitespace() || c == '"')
                    .unwrap_or(rest.len());
                (&rest[..end], false, &rest[end..])
            };
            let (body, prefix, after) = if quoted {
                match after.strip_prefix('*') {
                    Some(a) => (body, true, a),
                    None => (body, false, after),
                }
            } else {
                match body.strip_suffix('*') {
                    Some(b) => (b, true, after),
                    None => (body, false, after),
                }
            };
            rest = after;
            if prefix && (body.ends_with('*') || tokens(body).is_empty()) {
                return Err(bad(format!(
                    "the `*` at byte {offset} does not follow a word"
                )));
            }
            let toks = tokens(body);
            if toks.is_empty() {
                if quoted {
                    return Err(bad(format!(
                        "the phrase at byte {offset} has no words in it"
                    )));
                }
                continue; // punctuation between words
            }
            if let Some(long) = toks.iter().find(|t| t.len() > MAX_TOKEN_BYTES) {
                return Err(Error::LimitExceeded {
                    what: "keyword query token length in bytes",
                    limit: MAX_TOKEN_BYTES,
                    got: long.len(),
                });
            }
            let phrase = Phrase {
                tokens: toks,
                prefix,
            };
            if !phrases.contains(&phrase) {
                phrases.push(phrase);
            }
        }
        if phrases.is_empty() {
            return Err(bad("it has no words to search for".into()));
        }
        if phrases.len() > MAX_PHRASES {
            return Err(Error::LimitExceeded {
                what: "phrases in a keyword query",
                limit: MAX_PHRASES,
                got: phrases.len(),
            });
        }
        Ok(KeywordQuery { phrases })
    }

    /// The phrases, in the order first given.
    pub fn phrases(&self) -> &[Phrase] {
        &self.phrases
    }

    /// The query as an FTS5 expression: the phrases joined with `OR`. Running it with
    /// SQLite's `bm25()` on an `ascii`-tokenized FTS5 table that holds only one tenant's rows
    /// gives the negated scores of [`super::bm25`] (the tests' oracle).
    pub fn to_fts5(&self) -> String {
        self.phrases
            .iter()
            .map(Phrase::to_fts5)
            .collect::<Vec<_>>()
            .join(" OR ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phrase(tokens: &[&str], prefix: bool) -> Phrase {
        Phrase {
            tokens: tokens.iter().map(|t| (*t).to_owned()).collect(),
            prefix,
        }
    }

    #[test]
    fn tokenizer_splits_on_ascii_punctuation_and_folds_ascii_only() {
        assert_eq!(
            tokens("Hello, World! e-mail_x ÉCOLE Straße 42"),
            ["hello", "world", "e", "mail", "x", "École", "straße", "42"]
        );
        assert!(tokens(" ,.-!? ").is_empty());
    }

    #[test]
    fn words_quotes_and_prefixes() {
        let q = KeywordQuery::parse(r#"Launch  e-mail "spring sale"* promo* launch"#).unwrap();
        assert_eq!(
            q.phrases(),
            [
                phrase(&["launch"], false),
                phrase(&["e", "mail"], false),
                phrase(&["spring", "sale"], true),
                phrase(&["promo"], true),
            ]
        );
        assert_eq!(
            q.to_fts5(),
            r#""launch" OR "e mail" OR "spring sale" * OR "promo" *"#
        );
    }

    #[test]
    fn bad_queries_name_the_problem() {
        for (q, needle) in [
            ("", "no words"),
            ("  ,;  ", "no words"),
            ("\"open", "never closed"),
            ("\"\"", "no words in it"),
            ("\" , \"", "no words in it"),
            ("*", "does not follow a word"),
            ("a **", "does not follow a word"),
            ("x -*", "does not follow a word"),
        ] {
            let err = KeywordQuery::parse(q).unwrap_err().to_string();
            assert!(err.contains(needle), "{q:?}: {err}");
        }
        let many: String = (0..=MAX_PHRASES).map(|i| format!("w{i} ")).collect();
        assert!(matches!(
            KeywordQuery::parse(&many),
            Err(Error::LimitExceeded { .. })
        ));
        assert!(matches!(
            KeywordQuery::parse(&"x".repeat(MAX_QUERY_BYTES + 1)),
            Err(Error::LimitExceeded { .. })
        ));
    }

    #[test]
    fn phrase_counts_overlap_and_prefix_the_last_token() {
        let doc = tokens("a a a b spring sales spring sale");
        assert_eq!(phrase(&["a", "a"], false).count_in(&doc), 2);
        assert_eq!(phrase(&["spring", "sale"], false).count_in(&doc), 1);
        assert_eq!(phrase(&["spring", "sale"], true).count_in(&doc), 2);
        assert_eq!(phrase(&["sp"], true).count_in(&doc), 2);
        assert_eq!(phrase(&["sp"], false).count_in(&doc), 0);
        assert_eq!(
            phrase(&["b", "spring", "sales", "x"], false).count_in(&doc),
            0
        );
    }
}
