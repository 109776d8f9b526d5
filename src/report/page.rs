//! The page itself: the data every section draws, encoded as JSON in the page, and the HTML
//! shell around the inline stylesheet (`page.css`) and script (`page.js`). Pure.

use serde::Serialize;
use serde_json::Value;

use super::collect::{Collected, Collector};
use super::faults::{Fault, parse_faults};
use super::{Consistency, Context, ReportError};
use crate::check::html;

/// The sections' ids, in page order; the script lists those it drew in `data-drawn`.
pub const SECTIONS: [&str; 8] = [
    "summary",
    "messages",
    "raft",
    "chain",
    "training",
    "hash-rate",
    "latency",
    "consistency",
];

const CSS: &str = include_str!("page.css");
const SCRIPT: &str = include_str!("page.js");

/// Fields of a JSON object shown as a table; longer values are cut.
const MAX_FIELDS: usize = 80;
const MAX_VALUE: usize = 400;
/// Largest checker page embedded (bigger histories are summarised only).
const MAX_CHECK_PAGE: usize = 8 << 20;
/// Largest raw verdict shown.
const MAX_RAW: usize = 20_000;

/// The summary's field holding the Unix time in ms of `events.log`'s time 0.
pub const EPOCH_FIELD: &str = "events_epoch_ms";

#[derive(Serialize)]
struct Data<'a> {
    title: &'a str,
    /// Whether fault times were aligned from the summary's epoch (else estimated).
    epoch_known: bool,
    /// Where the testnet's time 0 lies on the report's axis.
    testnet_zero_ms: u64,
    events: Collected,
    faults: Vec<Fault>,
    summary: Option<Vec<(String, String)>>,
    consistency: ConsistencyData,
}

#[derive(Serialize, Default)]
struct ConsistencyData {
    recorded: bool,
    verdict: Option<Vec<(String, String)>>,
    verdict_raw: Option<String>,
    checked: Option<CheckData>,
    error: Option<String>,
}

#[derive(Serialize)]
struct CheckData {
    verdict: &'static str,
    model: String,
    operations: usize,
    clients: usize,
    keys: Vec<KeyData>,
    /// The checker's own HTML view, shown in a sandboxed frame.
    page: Option<String>,
}

#[derive(Serialize)]
struct KeyData {
    key: String,
    verdict: &'static str,
    operations: usize,
    explanation: Option<String>,
}

fn clip(text: &str, most: usize) -> String {
    if text.chars().count() <= most {
        text.to_owned()
    } else {
        text.chars().take(most).collect::<String>() + "…"
    }
}

/// An object's fields as (key, value) text: scalars as they are, others as compact JSON.
fn fields(object: &serde_json::Map<String, Value>) -> Vec<(String, String)> {
    object
        .iter()
        .take(MAX_FIELDS)
        .map(|(key, value)| {
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Null => "-".to_owned(),
                other => other.to_string(),
            };
            (clip(key, 100), clip(&text, MAX_VALUE))
        })
        .collect()
}

fn object(text: &str) -> Result<serde_json::Map<String, Value>, String> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err("expected an object".into()),
        Err(e) => Err(e.to_string()),
    }
}

fn consistency(consistency: &Consistency<'_>) -> Result<ConsistencyData, ReportError> {
    let Consistency::Recorded {
        verdict_json,
        checked,
    } = consistency
    else {
        return Ok(ConsistencyData::default());
    };
    let mut data = ConsistencyData {
        recorded: true,
        ..ConsistencyData::default()
    };
    if let Some(text) = verdict_json {
        let map = object(text).map_err(|reason| ReportError::Verdict { reason })?;
        data.verdict = Some(fields(&map));
        data.verdict_raw = Some(clip(
            &serde_json::to_string_pretty(&map).unwrap_or_default(),
            MAX_RAW,
        ));
    }
    match checked {
        Err(reason) => data.error = Some(clip(reason, 2_000)),
        Ok(checked) => {
            let ops = &checked.history.operations;
            let keys = checked
                .report
                .partitions
                .iter()
                .map(|p| KeyData {
                    key: clip(p.key.as_deref().unwrap_or("(single object)"), 200),
                    verdict: p.verdict.name(),
                    operations: p.operations.len(),
                    explanation: p.explanation.as_ref().map(|e| {
                        let stuck: Vec<String> = e
                            .stuck
                            .iter()
                            .take(20)
                            .filter_map(|s| ops.get(s.operation).map(|op| op.describe()))
                            .collect();
                        clip(
                            &format!(
                                "the longest linearizable prefix has {} operations and ends in state {}; none of these can come next: {}",
                                e.prefix,
                                e.state,
                                stuck.join(", ")
                            ),
                            4_000,
                        )
                    }),
                })
                .collect();
            let page = html::render("client history", checked.history, checked.report);
            data.checked = Some(CheckData {
                verdict: checked.report.verdict.name(),
                model: clip(checked.model, 40),
                operations: ops.len(),
                clients: checked.history.clients(),
                keys,
                page: (page.len() <= MAX_CHECK_PAGE).then_some(page),
            });
        }
    }
    Ok(data)
}

/// `<`, `>` and `&` as JSON escapes: the data can then never close its script element or
/// open a comment, whatever a log said.
fn script_json(data: &impl Serialize) -> Result<String, ReportError> {
    let json = serde_json::to_string(data)?;
    Ok(json
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026"))
}

pub(super) fn escape_html(text: &str) -> String {
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

pub(super) fn render(events: Collector, context: &Context<'_>) -> Result<String, ReportError> {
    let summary = context
        .summary_json
        .map(object)
        .transpose()
        .map_err(|reason| ReportError::Summary { reason })?;
    if events.is_empty() && summary.is_none() {
        return Err(ReportError::Empty);
    }
    let faults = context
        .testnet_events
        .map(parse_faults)
        .transpose()?
        .unwrap_or_default();
    // The axis starts at the first event (or the testnet's time 0 if earlier); fault times
    // count from the testnet's time 0, which the summary records (else: when every node had
    // logged, which is close to when the testnet saw every node up).
    let epoch = summary
        .as_ref()
        .and_then(|s| s.get(EPOCH_FIELD))
        .and_then(Value::as_u64);
    let zero = epoch.or_else(|| events.all_started_ms()).unwrap_or(0);
    let origin = events.first_ms().map_or(zero, |first| first.min(zero));
    let testnet_zero_ms = zero - origin;
    let title = clip(context.title, 200);
    let data = Data {
        title: &title,
        epoch_known: epoch.is_some(),
        testnet_zero_ms,
        events: events.finish(origin),
        faults: faults
            .into_iter()
            .map(|f| Fault {
                at_ms: f.at_ms.saturating_add(testnet_zero_ms),
                ..f
            })
            .collect(),
        summary: summary.as_ref().map(fields),
        consistency: consistency(&context.consistency)?,
    };
    let json = script_json(&data)?;
    let title = escape_html(&title);
    let mut sections = String::new();
    for (id, heading) in SECTIONS.iter().zip([
        "Summary",
        "Messages between nodes",
        "Raft: role and term per node",
        "The chain: blocks, forks and reorgs",
        "Training: loss and accuracy per round",
        "Hash rate per node",
        "Round latency: gradient wait, reduce, commit",
        "Consistency of the client history",
    ]) {
        sections.push_str(&format!(
            "<section id=\"{id}\"><h2>{heading}</h2><p class=\"note\"></p><div class=\"body\"></div></section>\n"
        ));
    }
    Ok(format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>{title}</title>\n<style>{CSS}</style></head>\n<body>\n\
         <header><h1>{title}</h1><nav></nav></header>\n{sections}\
         <script type=\"application/json\" id=\"report-data\">{json}</script>\n\
         <script>{SCRIPT}</script>\n</body></html>\n"
    ))
}
