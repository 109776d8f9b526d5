//! The page itself: the data every section draws, encoded as JSON in the page, and the HTML
//! shell around the inline stylesheet (`page.css`) and script (`page.js`). Pure.

use serde::Serialize;
use serde_json::Value;

use super::collect::{Collected, Collector};
use super::faults::{Fault, parse_faults};
use super::{CheckedHistory, Consistency, Context, ReportError};
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
    histories: Vec<HistoryData>,
}

#[derive(Serialize)]
struct HistoryData {
    file: String,
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

/// An object's fields as (key, value) text: scalars as they are, an object's own fields as
/// `key.field` rows, anything deeper as compact JSON.
fn fields(object: &serde_json::Map<String, Value>) -> Vec<(String, String)> {
    let text = |value: &Value| match value {
        Value::String(s) => clip(s, MAX_VALUE),
        Value::Null => "-".to_owned(),
        other => clip(&other.to_string(), MAX_VALUE),
    };
    let mut rows = Vec::new();
    for (key, value) in object {
        match value {
            Value::Object(inner) if !inner.is_empty() => {
                for (field, value) in inner {
                    rows.push((clip(&format!("{key}.{field}"), 100), text(value)));
                }
            }
            value => rows.push((clip(key, 100), text(value))),
        }
    }
    rows.truncate(MAX_FIELDS);
    rows
}

fn object(text: &str) -> Result<serde_json::Map<String, Value>, String> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err("expected an object".into()),
        Err(e) => Err(e.to_string()),
    }
}

fn check_data(file: &str, checked: &CheckedHistory<'_>) -> CheckData {
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
    let page = html::render(file, checked.history, checked.report);
    CheckData {
        verdict: checked.report.verdict.name(),
        model: clip(checked.model, 40),
        operations: ops.len(),
        clients: checked.history.clients(),
        keys,
        page: (page.len() <= MAX_CHECK_PAGE).then_some(page),
    }
}

fn consistency(consistency: &Consistency<'_>) -> Result<ConsistencyData, ReportError> {
    let Consistency::Recorded {
        verdict_json,
        histories,
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
    for recorded in histories.iter() {
        let (checked, error) = match &recorded.checked {
            Err(reason) => (None, Some(clip(reason, 2_000))),
            Ok(checked) => (Some(check_data(recorded.file, checked)), None),
        };
        data.histories.push(HistoryData {
            file: clip(recorded.file, 200),
            checked,
            error,
        });
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
    let title = crate::check::html::escape(&title);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{CheckOptions, Format, check_linearizable};
    use crate::events::EventKind;
    use crate::report::collect::tests::event;
    use crate::report::{CheckedHistory, Limits, RecordedHistory};

    fn context<'a>(summary: Option<&'a str>, events: Option<&'a str>) -> Context<'a> {
        Context {
            title: "t",
            summary_json: summary,
            testnet_events: events,
            consistency: Consistency::NotRecorded,
        }
    }

    /// The JSON in the page's data element.
    fn data(page: &str) -> Value {
        let open = "<script type=\"application/json\" id=\"report-data\">";
        let start = page.find(open).unwrap() + open.len();
        let end = start + page[start..].find("</script>").unwrap();
        serde_json::from_str(&page[start..end]).unwrap()
    }

    #[test]
    fn every_section_is_in_the_page_with_its_data() {
        let mut events = Collector::new(Limits::default());
        let lane = events.node("n0");
        events.add(lane, &event("n0", 5_000, EventKind::NodeStarted));
        let page = render(
            events,
            &context(
                Some(r#"{"nodes":1,"events_epoch_ms":6000}"#),
                Some("   1.500s kill -9 n0 (pid 1, leader)\n"),
            ),
        )
        .unwrap();
        for id in SECTIONS {
            assert_eq!(
                page.matches(&format!("<section id=\"{id}\">")).count(),
                1,
                "{id}"
            );
        }
        assert!(!page.contains("src=\"http") && !page.contains("href=\"http"));
        let data = data(&page);
        // The axis starts at the first event (5 s); the testnet's time 0 is 1 s later and
        // the kill 1.5 s after that.
        assert_eq!(data["testnet_zero_ms"], 1_000);
        assert_eq!(data["epoch_known"], true);
        assert_eq!(data["faults"][0]["at_ms"], 2_500);
        assert_eq!(data["consistency"]["recorded"], false);
    }

    #[test]
    fn strings_from_logs_cannot_become_markup() {
        let hostile = "</script><script>alert(1)</script><!--";
        let mut events = Collector::new(Limits::default());
        let lane = events.node("<b>n0</b>");
        events.add(
            lane,
            &event(
                hostile,
                1,
                EventKind::RoundAbandoned {
                    round: 1,
                    reason: hostile.into(),
                },
            ),
        );
        let summary = format!(
            r#"{{"reason":{}}}"#,
            serde_json::to_string(hostile).unwrap()
        );
        let events_log = format!("   1.000s kill -9 n0 {hostile}\n");
        let mut ctx = context(Some(&summary), Some(&events_log));
        ctx.title = hostile;
        let page = render(events, &ctx).unwrap();
        assert!(!page.contains("alert(1)</script>"));
        assert!(!page.contains("<b>n0"));
        assert!(!page.contains("<!--"));
        assert_eq!(
            page.matches("<script").count(),
            2,
            "only the page's own scripts"
        );
        assert_eq!(page.matches("</script>").count(), 2);
        // The strings survive intact as data.
        let data = data(&page);
        assert_eq!(data["events"]["lanes"][0]["name"], hostile);
        assert_eq!(data["events"]["rounds"]["abandoned"][0]["reason"], hostile);
        assert_eq!(data["title"], hostile);
    }

    #[test]
    fn a_big_log_gives_a_bounded_page() {
        let limits = Limits {
            messages: 400,
            ..Limits::default()
        };
        let mut events = Collector::new(limits);
        let (a, b) = (events.node("n0"), events.node("n1"));
        for i in 0..100_000u64 {
            let id = format!("n0:{i}");
            let sent = event(
                "n0",
                i,
                EventKind::Sent {
                    to: "n1".into(),
                    msg: "raft_append".into(),
                    bytes: 1,
                    id: id.clone(),
                },
            );
            events.add(a, &sent);
            let received = event(
                "n1",
                i + 1,
                EventKind::Received {
                    from: "n0".into(),
                    msg: "raft_append".into(),
                    bytes: 1,
                    id,
                },
            );
            events.add(b, &received);
        }
        let page = render(events, &context(None, None)).unwrap();
        assert!(page.len() < 200_000, "{} bytes", page.len());
        let data = data(&page);
        let drawn = data["events"]["messages"]["list"].as_array().unwrap().len();
        assert!(
            (1..=100).contains(&drawn),
            "{drawn} drawn of a 100-per-class budget"
        );
        assert_eq!(data["events"]["messages"]["counts"][0]["sent"], 100_000);
    }

    #[test]
    fn the_consistency_section_carries_the_verdict_and_the_checkers_view() {
        let history = "{\"client\":1,\"type\":\"invoke\",\"f\":\"write\",\"key\":\"x\",\"value\":1}\n\
                       {\"client\":1,\"type\":\"ok\",\"f\":\"write\",\"key\":\"x\",\"value\":1}\n\
                       {\"client\":2,\"type\":\"invoke\",\"f\":\"read\",\"key\":\"x\"}\n\
                       {\"client\":2,\"type\":\"ok\",\"f\":\"read\",\"key\":\"x\",\"value\":null}\n";
        let (history, model, report) =
            check_linearizable(history, Some(Format::Jsonl), None, &CheckOptions::default())
                .unwrap();
        let mut events = Collector::new(Limits::default());
        let lane = events.node("n0");
        events.add(lane, &event("n0", 1, EventKind::NodeStarted));
        let mut ctx = context(None, None);
        let histories = [
            RecordedHistory {
                file: "jepsen/history.jsonl",
                checked: Ok(CheckedHistory {
                    history: &history,
                    report: &report,
                    model: model.name(),
                }),
            },
            RecordedHistory {
                file: "jepsen/local-history.jsonl",
                checked: Err("line 1: expected a JSON object"),
            },
        ];
        ctx.consistency = Consistency::Recorded {
            verdict_json: Some(r#"{"verdict":"not linearizable"}"#),
            histories: &histories,
        };
        let data = data(&render(events, &ctx).unwrap());
        let c = &data["consistency"];
        assert_eq!(c["recorded"], true);
        assert_eq!(c["verdict"][0][1], "not linearizable");
        let checked = &c["histories"][0]["checked"];
        assert_eq!(checked["verdict"], "not linearizable");
        let explanation = checked["keys"][0]["explanation"].as_str().unwrap();
        assert!(
            explanation.contains("none of these can come next"),
            "{explanation}"
        );
        assert!(checked["page"].as_str().unwrap().contains("<svg"));
        assert_eq!(c["histories"][1]["file"], "jepsen/local-history.jsonl");
        assert_eq!(c["histories"][1]["error"], "line 1: expected a JSON object");
        let mut bad = context(None, None);
        bad.consistency = Consistency::Recorded {
            verdict_json: Some("[1]"),
            histories: &[],
        };
        let mut events = Collector::new(Limits::default());
        let lane = events.node("n0");
        events.add(lane, &event("n0", 1, EventKind::NodeStarted));
        assert!(matches!(
            render(events, &bad),
            Err(ReportError::Verdict { .. })
        ));
    }

    #[test]
    fn nothing_to_report_and_bad_inputs_are_named() {
        assert!(matches!(
            render(Collector::new(Limits::default()), &context(None, None)),
            Err(ReportError::Empty)
        ));
        assert!(matches!(
            render(
                Collector::new(Limits::default()),
                &context(Some("[]"), None)
            ),
            Err(ReportError::Summary { .. })
        ));
        assert!(matches!(
            render(
                Collector::new(Limits::default()),
                &context(Some("{}"), Some("nonsense\n"))
            ),
            Err(ReportError::FaultLine { line: 1, .. })
        ));
    }
}
