//! HTML building blocks of the console: escaping, the page frame with the role's navigation,
//! tables, money in yuan. Pages are plain server-rendered HTML with a small stylesheet; they
//! work on a phone and without JavaScript.

use super::users::{Role, SessionInfo};

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Fen as yuan with two decimals (`113960` → `1139.60`, `-5` → `-0.05`).
pub fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let abs = fen.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

const STYLE: &str = "body{font-family:'Noto Sans CJK SC',sans-serif;margin:0;color:#1b1b1b}\
header{background:#0b4f8a;color:#fff;padding:.6em 1em;display:flex;flex-wrap:wrap;gap:1em;\
align-items:center}header a{color:#fff}main{padding:1em;max-width:1100px}\
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.9em}\
td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left}td.n{text-align:right}\
section{margin-bottom:1.5em}.bar{fill:#0b4f8a}.error{color:#a00}.ok{color:#070}\
form.inline{display:inline}input,select,button{font-size:1em;margin:.2em}\
@media (max-width:600px){table{font-size:.8em}svg.chart{width:100%;height:auto}}";

/// The page frame: title, navigation for the session's role, the body.
pub fn page(title: &str, session: Option<&SessionInfo>, body: &str) -> String {
    let nav = match session {
        None => String::new(),
        Some(s) => {
            let mut links = vec![("/console/", "Dashboard")];
            if s.role >= Role::Operator {
                links.push(("/console/operations", "Reversals &amp; reconciliation"));
                links.push(("/console/holders", "Holders"));
                links.push(("/console/partners", "Partners"));
            }
            if s.role >= Role::Admin {
                links.push(("/console/admin", "Accounts"));
            }
            let links: String = links
                .iter()
                .map(|(href, text)| format!("<a href=\"{href}\">{text}</a>"))
                .collect::<Vec<_>>()
                .join(" ");
            format!(
                "<nav>{links}</nav><span class=\"who\">{} ({})</span>\
                 <form class=\"inline\" method=\"post\" action=\"/console/logout\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
                 <button type=\"submit\">Log out</button></form>",
                escape(&s.username),
                s.role.code(),
                escape(&s.csrf)
            )
        }
    };
    format!(
        "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · 社保卡平台运营台</title><style>{STYLE}</style></head><body>\
         <header><strong>社保卡平台 · operators' console</strong>{nav}</header>\
         <main><h1>{}</h1>{body}</main></body></html>",
        escape(title),
        escape(title)
    )
}

/// A table with a header row; every cell is escaped; cells starting with `=` are numbers
/// (right-aligned, the `=` dropped).
pub fn table(id: &str, headers: &[&str], rows: &[Vec<String>]) -> String {
    let head: String = headers
        .iter()
        .map(|h| format!("<th>{}</th>", escape(h)))
        .collect();
    let body: String = rows
        .iter()
        .map(|row| {
            let cells: String = row
                .iter()
                .map(|cell| match cell.strip_prefix('=') {
                    Some(number) => format!("<td class=\"n\">{}</td>", escape(number)),
                    None => format!("<td>{}</td>", escape(cell)),
                })
                .collect();
            format!("<tr>{cells}</tr>")
        })
        .collect();
    if rows.is_empty() {
        return format!("<p id=\"{}\">none</p>", escape(id));
    }
    format!(
        "<table id=\"{}\"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>",
        escape(id)
    )
}

/// Unix ms as `yyyy-MM-dd HH:mm:ss` Beijing time.
pub fn beijing(ms: i64) -> String {
    let (y, mo, d, h, mi, s) = crate::medical::ids::beijing_time(ms);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_formats() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(yuan(113_960), "1139.60");
        assert_eq!(yuan(-5), "-0.05");
        assert_eq!(yuan(0), "0.00");
        let t = table("t", &["a"], &[vec!["=12".into()], vec!["<b>".into()]]);
        assert!(t.contains("<td class=\"n\">12</td>") && t.contains("&lt;b&gt;"));
        // 2026-11-30T00:00:00Z is 08:00 in Beijing (UTC+8, no daylight saving).
        assert_eq!(beijing(1_795_996_800_000), "2026-11-30 08:00:00");
    }
}
