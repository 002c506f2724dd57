//! Splits a SQL script into statements, the way `wrangler d1 execute --local` does.
//!
//! D1 runs a script as a batch of single statements inside one transaction, so a script has to be
//! cut into statements before it reaches SQLite. [`split_statements`] does that cut:
//!
//! 1. A lexer walks the bytes once and yields whitespace, comments, quoted strings and identifiers,
//!    words, `;`, `.` and single punctuation bytes. Every special byte is ASCII, so every token
//!    boundary is a `char` boundary of the input.
//! 2. A small state machine decides which `;` ends a statement. Only one SQLite statement may hold
//!    a `;` outside quotes and comments: `CREATE [TEMP] TRIGGER … BEGIN … END`. Inside a trigger
//!    body the statement ends at the `END` that opens a body statement (right after `BEGIN` or a
//!    body `;`); a `CASE … END` always sits inside an expression, so it never closes the body.
//! 3. The one `BEGIN TRANSACTION` / `COMMIT` pair that `sqlite3 .dump` writes is removed, because
//!    D1 wraps the script in a transaction itself; any other one is refused.
//!
//! Every statement is cut from its first to its last token that is neither whitespace nor a
//! comment, so comments between its tokens stay and comments around it go. Joining the result with
//! `";\n"` and splitting again gives the same statements; the fuzz target `sql_split` checks this.
//! Unlike wrangler, `$tag$ … $tag$` dollar quotes are not recognised: SQLite has none.

/// Why a script could not be split.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    /// More than one BEGIN TRANSACTION/COMMIT pair (D1 runs a script in one transaction itself).
    #[error("the SQL contains several transactions; D1 runs your SQL in one transaction for you, so remove BEGIN TRANSACTION/COMMIT")]
    SeveralTransactions,
    /// An unterminated quoted string, identifier or block comment, with the byte offset where it starts.
    #[error("unterminated {what} starting at byte {offset}")]
    Unterminated {
        /// What is left open: `string`, `quoted identifier`, `backtick identifier`,
        /// `bracket identifier` or `block comment`.
        what: &'static str,
        /// Byte offset of the opening quote, bracket or `/*` in the input as given (before CRLF
        /// normalisation).
        offset: usize,
    },
}

/// Splits a script into statements the way `wrangler d1 execute` does before running them.
///
/// - CRLF line ends become LF in the returned statements (a run of CRs before an LF goes too).
/// - `;` ends a statement except inside `'strings'` (`''` escapes), `"identifiers"` (`""`
///   escapes), `` `identifiers` ``, `[identifiers]`, `-- line` and `/* block */` comments, and
///   the body of `CREATE [TEMP] TRIGGER … BEGIN … END`, which ends at the `;` after its `END`.
///   Keywords match case-insensitively and only as whole words (`begin_date` is an identifier).
/// - Each statement is trimmed of whitespace and of comments before its first and after its last
///   token; comments inside it are kept. It carries no trailing `;`. Statements that are empty or
///   only comments are dropped; a last statement without `;` is kept.
/// - One transaction-opening statement (`BEGIN [DEFERRED|IMMEDIATE|EXCLUSIVE] [TRANSACTION]`) and
///   one transaction-closing statement (`COMMIT`/`END [TRANSACTION]`) are removed, as written by
///   `sqlite3 .dump`. `ROLLBACK`, `SAVEPOINT` and `RELEASE` are kept for the executor to refuse.
///
/// # Errors
///
/// [`SplitError::SeveralTransactions`] if a `BEGIN`, `COMMIT` or `END` statement remains after
/// that removal; [`SplitError::Unterminated`] if a string, quoted identifier or block comment is
/// not closed.
///
/// Runs in time linear in the input and never panics.
pub fn split_statements(sql: &str) -> Result<Vec<String>, SplitError> {
    let mut lexer = Lexer::new(sql);
    let mut cutter = Cutter::default();
    let mut pieces: Vec<Piece> = Vec::new();
    while let Some(token) = lexer.next_token()? {
        if let Some(piece) = cutter.push(sql, token) {
            pieces.push(piece);
        }
    }
    if let Some(piece) = cutter.finish() {
        pieces.push(piece);
    }

    // Remove the first opening and the first closing transaction statement (the `.dump` pair).
    let first_begin = pieces.iter().position(|p| p.txn == Txn::Begin);
    let first_end = pieces.iter().position(|p| p.txn == Txn::End);
    let mut out = Vec::with_capacity(pieces.len());
    for (i, piece) in pieces.iter().enumerate() {
        if Some(i) == first_begin || Some(i) == first_end {
            continue;
        }
        if piece.txn != Txn::None {
            return Err(SplitError::SeveralTransactions);
        }
        let text = slice(sql, piece.start, piece.end);
        out.push(normalise_line_ends(text));
    }
    Ok(out)
}

/// Returns the first keyword of a statement in upper case, after skipping whitespace and
/// comments; `None` when the statement is empty, only comments, or starts with anything other
/// than a bare word (a quote, a number, a parenthesis, …).
///
/// The executor uses it to refuse `BEGIN`, `COMMIT`, `SAVEPOINT`, `ATTACH` and friends. It never
/// fails: an unterminated quote or comment simply yields whatever came before it.
pub fn leading_keyword(stmt: &str) -> Option<String> {
    let mut lexer = Lexer::new(stmt);
    while let Ok(Some(token)) = lexer.next_token() {
        match token.kind {
            Kind::Space | Kind::Comment => continue,
            Kind::Word => return Some(slice(stmt, token.start, token.end).to_ascii_uppercase()),
            _ => return None,
        }
    }
    None
}

/// Turns every line end made of carriage returns and a line feed (`\r\n`, also `\r\r\n`) into
/// `\n`. Collapsing the whole run keeps the result free of `\r\n`, so splitting twice changes
/// nothing more (a plain `\r\n` replacement would turn `\r\r\n` into a new `\r\n`).
fn normalise_line_ends(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '\n' {
            while out.ends_with('\r') {
                out.pop();
            }
        }
        out.push(c);
    }
    out
}

/// Returns `s[start..end]`, or `""` if the range is not on `char` boundaries (a bug, caught by the
/// debug assertion in tests and fuzzing; release builds stay panic-free).
fn slice(s: &str, start: usize, end: usize) -> &str {
    let piece = s.get(start..end);
    debug_assert!(
        piece.is_some(),
        "token range {start}..{end} is not a char range"
    );
    piece.unwrap_or_default()
}

/// What a token is, as far as splitting cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// ASCII whitespace (space, tab, LF, CR, form feed).
    Space,
    /// A `-- line` or `/* block */` comment.
    Comment,
    /// `;`.
    Semi,
    /// `.` (the word after it is a name, never a keyword).
    Dot,
    /// A bare word that may be a keyword: starts with a letter, `_` or a non-ASCII byte.
    Word,
    /// Anything else: quoted text, numbers, parameters, punctuation.
    Other,
}

/// A token: its kind and byte range in the input.
#[derive(Debug, Clone, Copy)]
struct Token {
    kind: Kind,
    start: usize,
    end: usize,
}

/// A one-pass byte lexer. Bytes `>= 0x80` only ever occur inside words, quotes and comments, so
/// token boundaries always fall on `char` boundaries.
struct Lexer<'a> {
    bytes: &'a [u8],
    pos: usize,
}

/// Bytes that may continue a word: SQLite's identifier characters.
fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// Bytes that may start a word (digits start numbers, `$` starts a parameter).
fn is_word_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

/// SQLite's whitespace.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0c')
}

impl<'a> Lexer<'a> {
    fn new(sql: &'a str) -> Self {
        Self {
            bytes: sql.as_bytes(),
            pos: 0,
        }
    }

    fn peek(&self, at: usize) -> Option<u8> {
        self.bytes.get(at).copied()
    }

    /// Advances past bytes matching `pred` starting at `from`; returns the first index after them.
    fn skip_while(&self, from: usize, pred: impl Fn(u8) -> bool) -> usize {
        let mut i = from;
        while self.peek(i).is_some_and(&pred) {
            i += 1;
        }
        i
    }

    /// Finds the end of a quoted run opened at `start` and closed by `close`; a doubled `close`
    /// is an escape when `doubling` is set. Returns the index after the closing byte.
    fn quoted(
        &self,
        start: usize,
        close: u8,
        doubling: bool,
        what: &'static str,
    ) -> Result<usize, SplitError> {
        let mut i = start + 1;
        loop {
            match self.peek(i) {
                None => {
                    return Err(SplitError::Unterminated {
                        what,
                        offset: start,
                    })
                }
                Some(b) if b == close => {
                    if doubling && self.peek(i + 1) == Some(close) {
                        i += 2;
                    } else {
                        return Ok(i + 1);
                    }
                }
                Some(_) => i += 1,
            }
        }
    }

    fn next_token(&mut self) -> Result<Option<Token>, SplitError> {
        let start = self.pos;
        let Some(b) = self.peek(start) else {
            return Ok(None);
        };
        let next = self.peek(start + 1);
        let (kind, end) = match b {
            _ if is_space(b) => (Kind::Space, self.skip_while(start, is_space)),
            b'-' if next == Some(b'-') => (Kind::Comment, self.skip_while(start, |c| c != b'\n')),
            b'/' if next == Some(b'*') => {
                let mut i = start + 2;
                loop {
                    match self.peek(i) {
                        None => {
                            return Err(SplitError::Unterminated {
                                what: "block comment",
                                offset: start,
                            })
                        }
                        Some(b'*') if self.peek(i + 1) == Some(b'/') => break,
                        Some(_) => i += 1,
                    }
                }
                (Kind::Comment, i + 2)
            }
            b'\'' => (Kind::Other, self.quoted(start, b'\'', true, "string")?),
            b'"' => (
                Kind::Other,
                self.quoted(start, b'"', true, "quoted identifier")?,
            ),
            b'`' => (
                Kind::Other,
                self.quoted(start, b'`', true, "backtick identifier")?,
            ),
            b'[' => (
                Kind::Other,
                self.quoted(start, b']', false, "bracket identifier")?,
            ),
            b';' => (Kind::Semi, start + 1),
            b'.' => (Kind::Dot, start + 1),
            // Numbers (and SQLite's illegal `1abc` tokens) and parameters `?1 :a @a $a #a`:
            // whatever word bytes follow belong to them, so `:end` or `1end` is never a keyword.
            b'0'..=b'9' | b'?' | b':' | b'@' | b'$' | b'#' => {
                (Kind::Other, self.skip_while(start + 1, is_word_byte))
            }
            _ if is_word_start(b) => (Kind::Word, self.skip_while(start + 1, is_word_byte)),
            _ => (Kind::Other, start + 1),
        };
        self.pos = end;
        Ok(Some(Token { kind, start, end }))
    }
}

/// Whether a statement opens or closes a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Txn {
    None,
    /// `BEGIN …`
    Begin,
    /// `COMMIT …` or `END …`
    End,
}

/// One statement found by the [`Cutter`]: byte range (first to last significant token) and
/// whether it is a transaction statement.
#[derive(Debug, Clone, Copy)]
struct Piece {
    start: usize,
    end: usize,
    txn: Txn,
}

/// Where the [`Cutter`] is inside the current statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Phase {
    /// Before the first significant token, or among leading `EXPLAIN [QUERY PLAN]`.
    #[default]
    Start,
    /// After `CREATE` (and possibly `TEMP`/`TEMPORARY`).
    Create,
    /// An ordinary statement: the next `;` ends it.
    Plain,
    /// In `CREATE TRIGGER …` before the body's `BEGIN`; `case_depth` counts open `CASE`s of a
    /// `WHEN` clause so a `begin` inside one is not taken for the body.
    TriggerHead { case_depth: u32 },
    /// Inside the trigger body; `at_statement_start` is true right after `BEGIN` or a `;`, the
    /// only places where the body's closing `END` can stand.
    TriggerBody { at_statement_start: bool },
    /// After the body's `END`: the next `;` ends the statement.
    TriggerDone,
}

/// The statement-cutting state machine; fed one token at a time.
#[derive(Debug, Default)]
struct Cutter {
    phase: Phase,
    /// Start of the first significant token of the current statement.
    first: Option<usize>,
    /// End of the last significant token other than `;`.
    last_end: usize,
    /// Transaction class, from the first significant token.
    txn: Option<Txn>,
    /// Whether the previous significant token was `.`.
    after_dot: bool,
}

impl Cutter {
    /// Feeds one token; returns the statement it completes, if any.
    fn push(&mut self, sql: &str, token: Token) -> Option<Piece> {
        let word = |kw: &str| {
            token.kind == Kind::Word && slice(sql, token.start, token.end).eq_ignore_ascii_case(kw)
        };
        match token.kind {
            Kind::Space | Kind::Comment => return None,
            Kind::Semi => {
                if let Phase::TriggerBody { .. } = self.phase {
                    self.phase = Phase::TriggerBody {
                        at_statement_start: true,
                    };
                    self.after_dot = false;
                    return None;
                }
                return self.finish();
            }
            _ => {}
        }

        if self.first.is_none() {
            self.first = Some(token.start);
            self.txn = Some(if word("BEGIN") {
                Txn::Begin
            } else if word("COMMIT") || word("END") {
                Txn::End
            } else {
                Txn::None
            });
        }
        self.last_end = token.end;
        // A word right after `.` is a column or table name, never a keyword.
        let keyword = |kw: &str| !self.after_dot && word(kw);

        self.phase = match self.phase {
            Phase::Start if keyword("EXPLAIN") || keyword("QUERY") || keyword("PLAN") => {
                Phase::Start
            }
            Phase::Start if keyword("CREATE") => Phase::Create,
            Phase::Create if keyword("TEMP") || keyword("TEMPORARY") => Phase::Create,
            Phase::Create if keyword("TRIGGER") => Phase::TriggerHead { case_depth: 0 },
            Phase::Start | Phase::Create | Phase::Plain => Phase::Plain,
            Phase::TriggerHead { case_depth } => {
                if keyword("CASE") {
                    Phase::TriggerHead {
                        case_depth: case_depth.saturating_add(1),
                    }
                } else if keyword("END") {
                    Phase::TriggerHead {
                        case_depth: case_depth.saturating_sub(1),
                    }
                } else if case_depth == 0 && keyword("BEGIN") {
                    Phase::TriggerBody {
                        at_statement_start: true,
                    }
                } else {
                    Phase::TriggerHead { case_depth }
                }
            }
            Phase::TriggerBody { at_statement_start } => {
                if at_statement_start && keyword("END") {
                    Phase::TriggerDone
                } else {
                    Phase::TriggerBody {
                        at_statement_start: false,
                    }
                }
            }
            Phase::TriggerDone => Phase::TriggerDone,
        };
        self.after_dot = token.kind == Kind::Dot;
        None
    }

    /// Ends the current statement (at a splitting `;` or the end of input) and resets.
    fn finish(&mut self) -> Option<Piece> {
        let done = std::mem::take(self);
        let start = done.first?;
        Some(Piece {
            start,
            end: done.last_end,
            txn: done.txn.unwrap_or(Txn::None),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(sql: &str, expected: &[&str]) {
        let got = split_statements(sql).unwrap();
        assert_eq!(got, expected, "script: {sql:?}");
        // Re-joining must split back to the same statements.
        assert_eq!(
            split_statements(&got.join(";\n")).unwrap(),
            got,
            "rejoined: {sql:?}"
        );
    }

    #[test]
    fn plain_statements_are_trimmed_and_lose_their_semicolon() {
        check(
            "  CREATE TABLE t(a);\n\tINSERT INTO t VALUES (1) ;SELECT 1",
            &["CREATE TABLE t(a)", "INSERT INTO t VALUES (1)", "SELECT 1"],
        );
        check("", &[]);
        check(";;; \n ;", &[]);
    }

    #[test]
    fn semicolons_inside_quotes_do_not_split() {
        check(
            "INSERT INTO t VALUES ('a;b', 'it''s;'); SELECT \"c;\"\"d\", `e;f`, [g;h] FROM t",
            &[
                "INSERT INTO t VALUES ('a;b', 'it''s;')",
                "SELECT \"c;\"\"d\", `e;f`, [g;h] FROM t",
            ],
        );
        // Comment openers inside strings are plain text.
        check(
            "SELECT '--;'; SELECT '/*;'; SELECT '*/'",
            &["SELECT '--;'", "SELECT '/*;'", "SELECT '*/'"],
        );
        // A bracket identifier has no escape: the first `]` closes it.
        check("SELECT [a]]; SELECT 2", &["SELECT [a]]", "SELECT 2"]);
    }

    #[test]
    fn comments_hide_semicolons_and_stay_inside_statements() {
        check(
            "SELECT 1 -- not; a split\n + 2; SELECT /* ; */ 3",
            &["SELECT 1 -- not; a split\n + 2", "SELECT /* ; */ 3"],
        );
        // Comments before and after a statement are not part of it.
        check(
            "-- header\n/* note; */ SELECT 1 /* tail */ -- more\n; -- trailing",
            &["SELECT 1"],
        );
    }

    #[test]
    fn comment_only_statements_are_dropped() {
        check("-- only a comment;\n/* and; another */ ;  ; -- end", &[]);
        check(
            "SELECT 1; /* gap */; -- x\n; SELECT 2",
            &["SELECT 1", "SELECT 2"],
        );
    }

    #[test]
    fn unterminated_tokens_report_their_start() {
        let cases = [
            ("SELECT 'abc", "string", 7),
            ("SELECT 1; SELECT \"abc", "quoted identifier", 17),
            ("SELECT `a", "backtick identifier", 7),
            ("SELECT [a", "bracket identifier", 7),
            ("SELECT 1 /* a ; b", "block comment", 9),
            ("SELECT 'it''s", "string", 7),
        ];
        for (sql, what, offset) in cases {
            assert_eq!(
                split_statements(sql),
                Err(SplitError::Unterminated { what, offset }),
                "{sql}"
            );
        }
        // A line comment may run to the end of input.
        check("SELECT 1 -- no newline", &["SELECT 1"]);
    }

    #[test]
    fn offsets_refer_to_the_input_before_crlf_normalisation() {
        let sql = "SELECT 1;\r\nSELECT 2;\r\nSELECT 'x";
        assert_eq!(
            split_statements(sql),
            Err(SplitError::Unterminated {
                what: "string",
                offset: sql.find('\'').unwrap(),
            })
        );
    }

    #[test]
    fn crlf_becomes_lf() {
        check(
            "SELECT 1 -- c\r\n + 'a\r\nb';\r\nSELECT 2\r\n",
            &["SELECT 1 -- c\n + 'a\nb'", "SELECT 2"],
        );
        // A run of CRs before LF collapses too, so a second split changes nothing.
        check("SELECT 'a\r\r\nb\rc'", &["SELECT 'a\nb\rc'"]);
    }

    #[test]
    fn trigger_bodies_keep_their_semicolons() {
        let trigger = "CREATE TRIGGER tr AFTER INSERT ON t BEGIN\n  INSERT INTO u VALUES (new.a);\n  DELETE FROM v WHERE a = new.a;\nEND";
        check(
            &format!("CREATE TABLE t(a); {trigger}; INSERT INTO t VALUES (1);"),
            &["CREATE TABLE t(a)", trigger, "INSERT INTO t VALUES (1)"],
        );
        let temp = "create temp trigger tr before delete on t for each row begin select 1; end";
        check(&format!("{temp};select 2"), &[temp, "select 2"]);
        let temporary =
            "CREATE TEMPORARY TRIGGER IF NOT EXISTS tr AFTER UPDATE OF a ON t BEGIN SELECT 1; END";
        check(&format!("{temporary};SELECT 2"), &[temporary, "SELECT 2"]);
    }

    #[test]
    fn case_end_inside_a_trigger_does_not_close_it() {
        let trigger = "CREATE TRIGGER tr AFTER INSERT ON t\nWHEN CASE WHEN new.a > 0 THEN 1 ELSE 0 END\nBEGIN\n  UPDATE u SET b = CASE new.a WHEN 1 THEN 'one;' ELSE CASE WHEN 1 THEN 'x' END END;\n  INSERT INTO u VALUES (CASE WHEN new.a THEN 1 END);\nEND";
        check(&format!("{trigger};\nSELECT 1"), &[trigger, "SELECT 1"]);
    }

    #[test]
    fn end_used_as_a_name_inside_a_trigger_does_not_close_it() {
        let trigger = "CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE u SET x = new.end WHERE end = 1; SELECT end FROM u; END";
        check(&format!("{trigger}; SELECT 2"), &[trigger, "SELECT 2"]);
    }

    #[test]
    fn begin_and_end_used_as_names_in_a_trigger_header() {
        // After a dot, `end` and `begin` are column names: they neither close the WHEN's CASE
        // nor open the body.
        let dotted = "CREATE TRIGGER tr AFTER INSERT ON t WHEN CASE new.end WHEN 1 THEN 0 ELSE new.begin END BEGIN SELECT 1; SELECT 2; END";
        check(&format!("{dotted}; SELECT 3"), &[dotted, "SELECT 3"]);
        // A bare `begin` inside a CASE of the header is a name too.
        let bare = "CREATE TRIGGER tr AFTER INSERT ON t WHEN (SELECT CASE WHEN 1 THEN begin END FROM u) BEGIN SELECT 1; SELECT 2; END";
        check(&format!("{bare}; SELECT 3"), &[bare, "SELECT 3"]);
    }

    #[test]
    fn keywords_match_only_whole_words() {
        // `begin_date`, `legend`, and `end_at` contain keywords but are identifiers.
        check(
            "CREATE TABLE t(begin_date, legend, end_at); INSERT INTO t VALUES (1, 2, 3); SELECT begin_date FROM t",
            &[
                "CREATE TABLE t(begin_date, legend, end_at)",
                "INSERT INTO t VALUES (1, 2, 3)",
                "SELECT begin_date FROM t",
            ],
        );
        // `triggers` is not TRIGGER, so this is a plain statement.
        check(
            "CREATE TABLE triggers(a); SELECT 1",
            &["CREATE TABLE triggers(a)", "SELECT 1"],
        );
        // Parameters and numbers that contain keywords are not keywords either.
        check(
            "CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT :end; SELECT $end, 1end; END; SELECT 2",
            &[
                "CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT :end; SELECT $end, 1end; END",
                "SELECT 2",
            ],
        );
    }

    #[test]
    fn keywords_are_case_insensitive() {
        let trigger = "cReAtE tRiGgEr tr aFtEr InSeRt On t bEgIn SeLeCt 1; eNd";
        check(&format!("{trigger};SELECT 2"), &[trigger, "SELECT 2"]);
    }

    #[test]
    fn dump_transaction_pair_is_stripped() {
        let dump = "PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\nCREATE TABLE t(a);\nINSERT INTO t VALUES(1);\nCOMMIT;\n";
        check(
            dump,
            &[
                "PRAGMA foreign_keys=OFF",
                "CREATE TABLE t(a)",
                "INSERT INTO t VALUES(1)",
            ],
        );
        for (open, close) in [
            ("begin;", "commit;"),
            ("BEGIN\n\tTRANSACTION ;", "END;"),
            ("Begin Immediate Transaction;", "end transaction;"),
            ("BEGIN;", "COMMIT TRANSACTION"),
        ] {
            check(&format!("{open} SELECT 1; {close}"), &["SELECT 1"]);
        }
        // Only one side present: still stripped.
        check("BEGIN TRANSACTION; SELECT 1;", &["SELECT 1"]);
    }

    #[test]
    fn a_dumped_trigger_keeps_its_begin_and_end() {
        let trigger = "CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END";
        check(
            &format!("BEGIN TRANSACTION;\nCREATE TABLE t(a);\n{trigger};\nCOMMIT;"),
            &["CREATE TABLE t(a)", trigger],
        );
    }

    #[test]
    fn several_transactions_are_refused() {
        for sql in [
            "BEGIN; SELECT 1; COMMIT; BEGIN; SELECT 2; COMMIT;",
            "BEGIN TRANSACTION; BEGIN TRANSACTION; SELECT 1; COMMIT;",
            "BEGIN; SELECT 1; COMMIT; END;",
            "SELECT 1; COMMIT; COMMIT",
        ] {
            assert_eq!(
                split_statements(sql),
                Err(SplitError::SeveralTransactions),
                "{sql}"
            );
        }
        // Other transaction statements are left to the executor.
        check(
            "SAVEPOINT a; SELECT 1; RELEASE a; ROLLBACK",
            &["SAVEPOINT a", "SELECT 1", "RELEASE a", "ROLLBACK"],
        );
    }

    #[test]
    fn unclosed_trigger_at_end_of_input_is_one_statement() {
        check(
            "SELECT 1; CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; SELECT 2; ;",
            &[
                "SELECT 1",
                "CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; SELECT 2",
            ],
        );
        // A trigger header cut off by `;` before any BEGIN ends there.
        check(
            "CREATE TRIGGER tr; SELECT 1",
            &["CREATE TRIGGER tr", "SELECT 1"],
        );
    }

    #[test]
    fn non_ascii_text_is_kept_whole() {
        check(
            "INSERT INTO t VALUES ('héllo; wörld', \"ñ;\"); SELECT ünïcode_begin FROM t -- ☃;\n",
            &[
                "INSERT INTO t VALUES ('héllo; wörld', \"ñ;\")",
                "SELECT ünïcode_begin FROM t",
            ],
        );
    }

    #[test]
    fn leading_keyword_skips_comments_and_uppercases() {
        assert_eq!(
            leading_keyword("  -- c\n /* d */ begin immediate"),
            Some("BEGIN".into())
        );
        assert_eq!(leading_keyword("savepoint a"), Some("SAVEPOINT".into()));
        assert_eq!(leading_keyword("Attach 'x' AS y"), Some("ATTACH".into()));
        assert_eq!(leading_keyword("begin_date"), Some("BEGIN_DATE".into()));
        assert_eq!(leading_keyword("(SELECT 1)"), None);
        assert_eq!(leading_keyword("\"BEGIN\""), None);
        assert_eq!(leading_keyword("-- only"), None);
        assert_eq!(leading_keyword("/* open"), None);
        assert_eq!(leading_keyword(""), None);
    }
}
