//! How the command line prints results and errors.

use serde_json::Value as Json;

use crate::error::Error;

/// Renders rows as an aligned text table.
pub fn table(columns: &[String], rows: &[Vec<Json>]) -> String {
    let cell = |v: &Json| match v {
        Json::String(s) => s.clone(),
        Json::Null => "null".to_owned(),
        other => other.to_string(),
    };
    let cells: Vec<Vec<String>> = rows.iter().map(|r| r.iter().map(cell).collect()).collect();
    let mut widths: Vec<usize> = columns.iter().map(|c| c.chars().count()).collect();
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count().min(60));
        }
    }
    let line = |items: &mut dyn Iterator<Item = &String>| {
        let parts: Vec<String> = items
            .zip(&widths)
            .map(|(s, w)| {
                let s: String = s.chars().take(60).collect();
                format!("{s:<w$}")
            })
            .collect();
        format!("│ {} │", parts.join(" │ "))
    };
    let rule = |l: &str, m: &str, r: &str| {
        let parts: Vec<String> = widths.iter().map(|w| "─".repeat(w + 2)).collect();
        format!("{l}{}{r}", parts.join(m))
    };
    let mut out = vec![
        rule("┌", "┬", "┐"),
        line(&mut columns.iter()),
        rule("├", "┼", "┤"),
    ];
    for row in &cells {
        out.push(line(&mut row.iter()));
    }
    out.push(rule("└", "┴", "┘"));
    out.join("\n")
}

/// The JSON form of an error, as the CLI prints it on stderr.
pub fn error_json(e: &Error) -> Json {
    serde_json::json!({"code": e.json_code(), "error": e.to_string()})
}
