//! The `--html` view: one self-contained page (inline SVG, a little JavaScript, no network)
//! drawing each client's operations as intervals on a time axis, the linearization found (or
//! the longest partial one, with the operations that cannot come next in red), and the
//! operation and model state under the pointer — as Porcupine's visualization does. Builds a
//! string; writing it is the caller's job.

use std::fmt::Write as _;

use super::history::History;
use super::linearize::{LinearizabilityReport, Verdict};

const ROW: usize = 28;
const STEP: usize = 14;
const LEFT: usize = 90;

/// `text` made safe inside HTML text and quoted attributes (the report uses it too).
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Renders one history's result as an HTML page titled `title`.
pub fn render(title: &str, history: &History, report: &LinearizabilityReport) -> String {
    let ops = &history.operations;
    // Time axis: ranks of distinct times, so wall-clock gaps do not stretch the page.
    let mut times: Vec<u64> = ops
        .iter()
        .flat_map(|op| [op.invoked, op.completed])
        .filter(|&t| t != u64::MAX)
        .collect();
    times.sort_unstable();
    times.dedup();
    let rank = |t: u64| {
        if t == u64::MAX {
            times.len() + 1
        } else {
            times.partition_point(|&x| x < t)
        }
    };
    let x = |r: usize| LEFT + r * STEP;
    let mut clients: Vec<u64> = ops.iter().map(|op| op.client).collect();
    clients.sort_unstable();
    clients.dedup();
    let row = |client: u64| clients.partition_point(|&c| c < client);

    // Per operation: partition, position in the linearization, state after, stuck or not.
    let mut order = vec![None; ops.len()];
    let mut state = vec![String::new(); ops.len()];
    let mut stuck = vec![false; ops.len()];
    let mut part = vec![0usize; ops.len()];
    for (p, partition) in report.partitions.iter().enumerate() {
        for &i in &partition.operations {
            part[i] = p;
        }
        for (k, (&i, s)) in partition
            .linearization
            .iter()
            .zip(&partition.states)
            .enumerate()
        {
            order[i] = Some(k);
            state[i] = s.clone();
        }
        if let Some(explanation) = &partition.explanation {
            for s in &explanation.stuck {
                stuck[s.operation] = true;
            }
        }
    }
    let width = x(times.len() + 3);
    let height = (clients.len() + 2) * ROW;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="monospace" font-size="11">"#
    );
    for (r, client) in clients.iter().enumerate() {
        let _ = write!(
            svg,
            r#"<text x="4" y="{}">client {client}</text>"#,
            (r + 1) * ROW + 4
        );
    }
    for (i, op) in ops.iter().enumerate() {
        let (x0, x1) = (
            x(rank(op.invoked)),
            x(rank(op.completed)).max(x(rank(op.invoked)) + 6),
        );
        let y = (row(op.client) + 1) * ROW - 9;
        let verdict = report
            .partitions
            .get(part[i])
            .map_or(Verdict::Unknown, |p| p.verdict);
        let fill = if stuck[i] {
            "#e06666"
        } else if order[i].is_some() {
            if verdict == Verdict::Linearizable {
                "#93c47d"
            } else {
                "#ffd966"
            }
        } else {
            "#cccccc"
        };
        let dash = if op.is_open() {
            r#" stroke-dasharray="4 2""#
        } else {
            ""
        };
        let _ = write!(
            svg,
            r##"<rect class="op" data-i="{i}" x="{x0}" y="{y}" width="{}" height="18" rx="3" fill="{fill}" stroke="#555"{dash}/>"##,
            x1 - x0
        );
    }
    // Linearization points: in order, each as early as its interval and the previous allow.
    for partition in &report.partitions {
        let mut points = Vec::new();
        let mut at = 0f64;
        for &i in &partition.linearization {
            let op = &ops[i];
            let lo = x(rank(op.invoked)) as f64;
            let hi = x(rank(op.completed)) as f64;
            at = (at + 1.5).max(lo + 3.0).min(hi.max(lo + 3.0));
            points.push((at, ((row(op.client) + 1) * ROW) as f64));
        }
        if points.len() > 1 {
            let path: Vec<String> = points
                .iter()
                .map(|(px, py)| format!("{px:.1},{py:.1}"))
                .collect();
            let _ = write!(
                svg,
                r##"<polyline points="{}" fill="none" stroke="#3d85c6" stroke-width="1" opacity="0.6"/>"##,
                path.join(" ")
            );
        }
        for (px, py) in points {
            let _ = write!(
                svg,
                r##"<circle cx="{px:.1}" cy="{py:.1}" r="2.5" fill="#0b5394"/>"##
            );
        }
    }
    svg.push_str("</svg>");

    let mut data = String::from("[");
    for (i, op) in ops.iter().enumerate() {
        let key = report
            .partitions
            .get(part[i])
            .and_then(|p| p.key.clone())
            .unwrap_or_default();
        let position = order[i].map_or("not placed".to_string(), |k| {
            format!("#{} in its key's order", k + 1)
        });
        let _ = write!(
            data,
            "{}[{},{},{},{},{}]",
            if i == 0 { "" } else { "," },
            json_string(&op.describe()),
            json_string(&format!(
                "client {}, line {}, key {key:?}",
                op.client, op.line
            )),
            json_string(&position),
            json_string(&state[i]),
            stuck[i]
        );
    }
    data.push(']');

    let mut summary = String::new();
    for p in &report.partitions {
        let key = p.key.as_deref().unwrap_or("(single object)");
        let _ = write!(
            summary,
            "<li>key {}: {} ({} operations)",
            escape(key),
            p.verdict.name(),
            p.operations.len()
        );
        if let Some(e) = &p.explanation {
            let _ = write!(
                summary,
                " — longest linearizable prefix: {} operations, state {}; cannot come next: {}",
                e.prefix,
                escape(&e.state),
                escape(
                    &e.stuck
                        .iter()
                        .map(|s| ops[s.operation].describe())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            );
        }
        summary.push_str("</li>");
    }
    format!(
        r#"<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:1em}}#detail{{position:sticky;top:0;background:#f4f4f4;padding:6px;min-height:3em;font-family:monospace;white-space:pre}}
.op:hover{{stroke:#000;stroke-width:2}}#chart{{overflow-x:auto}}</style></head>
<body><h2>{title}: {verdict}</h2>
<p>Each bar is one operation from invocation to completion (dashed: never completed). Green: placed in a linearization; yellow: placed in the longest partial linearization of a failing key; red: could come next but cannot be placed; grey: not placed. Dots joined by a line: the linearization order. Hover a bar for details.</p>
<ul>{summary}</ul>
<div id="detail">hover an operation</div>
<div id="chart">{svg}</div>
<script>
const ops = {data};
const detail = document.getElementById('detail');
document.querySelectorAll('.op').forEach(el => el.addEventListener('mouseenter', () => {{
  const o = ops[+el.dataset.i];
  detail.textContent = o[0] + '\n' + o[1] + '\n' + o[2] + (o[3] ? ', state after: ' + o[3] : '') + (o[4] ? '\ncannot be placed after the longest prefix' : '');
}}));
</script></body></html>
"#,
        title = escape(title),
        verdict = report.verdict.name(),
    )
}

fn json_string(text: &str) -> String {
    // serde_json escapes quotes and control characters; `</` is split so the script stays closed.
    serde_json::to_string(text)
        .unwrap_or_else(|_| "\"\"".to_string())
        .replace("</", "<\\/")
}
