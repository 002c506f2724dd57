//! D1's Sessions API on one node: `withSession(constraint | bookmark)`, `getBookmark()`.
//!
//! D1 routes a session's queries to read replicas and uses bookmarks so that a session
//! never reads older state than it has seen
//! (<https://developers.cloudflare.com/d1/best-practices/read-replication/>). d1vec has one
//! node, the primary, so every query already sees the latest commit; what carries over is
//! the contract: a bookmark names a commit (`sql::bookmark`), a session started from one
//! refuses to read anything older, every call moves the session's bookmark to the commit it
//! read or wrote, and a bookmark that is malformed, from another database or scope, or
//! newer than this database's latest commit is refused with [`crate::Error::Bookmark`].

use super::bookmark::{self, SessionState};
use super::conn::SqlConn;
use super::result::D1Result;
use super::statement::{self, Statement};
use crate::error::{Error, Result};

/// How a session starts, as the argument of D1's `withSession`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SessionConstraint {
    /// `"first-unconstrained"` (D1's default): the first query may go to any instance.
    #[default]
    FirstUnconstrained,
    /// `"first-primary"`: the first query goes to the primary, and sees its latest state.
    FirstPrimary,
    /// A bookmark from an earlier session: nothing older than it is read.
    Bookmark(String),
}

impl SessionConstraint {
    /// Reads D1's argument: the two constraint names, or else a bookmark.
    pub fn parse(text: &str) -> Self {
        match text {
            "first-unconstrained" => SessionConstraint::FirstUnconstrained,
            "first-primary" => SessionConstraint::FirstPrimary,
            other => SessionConstraint::Bookmark(other.to_owned()),
        }
    }
}

impl From<&str> for SessionConstraint {
    fn from(text: &str) -> Self {
        SessionConstraint::parse(text)
    }
}

/// A D1 session (`D1DatabaseSession`): statements prepared on it run on its database (or
/// tenant session) and keep its bookmark.
///
/// ```
/// use d1vec::sql::SessionConstraint;
/// let db = d1vec::Database::open_in_memory()?;
/// let writer = db.with_session(SessionConstraint::FirstPrimary)?;
/// writer.prepare("CREATE TABLE t (x)").run()?;
/// writer.prepare("INSERT INTO t VALUES (1)").run()?;
/// let bookmark = writer.get_bookmark().expect("a call ran");
/// let reader = db.with_session(SessionConstraint::Bookmark(bookmark))?;
/// assert_eq!(reader.prepare("SELECT count(*) AS n FROM t").first_column("n")?, Some(1.into()));
/// # Ok::<(), d1vec::Error>(())
/// ```
#[derive(Debug)]
pub struct D1Session<'s> {
    conn: &'s SqlConn,
    state: SessionState,
}

impl<'s> D1Session<'s> {
    pub(crate) fn start(conn: &'s SqlConn, constraint: SessionConstraint) -> Result<Self> {
        let scope = bookmark::scope_of(conn.tenant());
        let schema = conn.schema().to_owned();
        conn.internal_tx(|tx| bookmark::ensure(tx, &schema))?;
        let (tag, latest) = conn.internal_with(|c| {
            Ok((
                bookmark::tag(c, &schema, &scope)?,
                bookmark::current(c, &schema, &scope)?,
            ))
        })?;
        let seq = match &constraint {
            SessionConstraint::FirstUnconstrained | SessionConstraint::FirstPrimary => None,
            SessionConstraint::Bookmark(text) => {
                let (seq, given) = bookmark::parse(text)?;
                if given != tag {
                    return Err(Error::Bookmark {
                        bookmark: text.clone(),
                        reason: "it was issued by another database, or for another scope (a tenant session's bookmarks are its own)".into(),
                    });
                }
                if seq > latest {
                    return Err(Error::Bookmark {
                        bookmark: text.clone(),
                        reason: format!(
                            "it names commit {seq}, but this database's latest is {latest}"
                        ),
                    });
                }
                Some(seq)
            }
        };
        Ok(D1Session {
            conn,
            state: SessionState::new(scope, tag, seq),
        })
    }

    /// Prepares a statement in this session.
    pub fn prepare(&self, sql: &str) -> Statement<'_> {
        Statement::in_session(self.conn, sql, &self.state)
    }

    /// Runs statements atomically in this session, as D1's `session.batch([...])`.
    pub fn batch(&self, statements: &[Statement<'_>]) -> Result<Vec<D1Result>> {
        statement::batch_in(self.conn, statements, Some(&self.state))
    }

    /// The bookmark of the latest commit this session read or wrote, as D1's
    /// `getBookmark()`; `None` before its first call unless it started from a bookmark.
    pub fn get_bookmark(&self) -> Option<String> {
        self.state.bookmark()
    }
}
