//! The ShiViz export: merged events as the text ShiViz's "log parsing" reads. Pure.
//!
//! The output starts with two header lines, then the events:
//! 1. the parsing regex, [`SHIVIZ_REGEX`] — ShiViz's default: each event is two lines, the
//!    event text, then `host {json clock}`;
//! 2. the multiple-executions delimiter: an empty line (one execution).
//!
//! Events are written node by node in log order (ShiViz orders them by their clocks, not by
//! position). A host's name is the node name (no whitespace) and the clock is the JSON object.

use super::check::EventAt;

/// ShiViz's default log-parsing regex, which this export matches.
pub const SHIVIZ_REGEX: &str = r"(?<event>.*)\n(?<host>\S*) (?<clock>{.*})";

/// Renders the logs of all nodes as a ShiViz log.
pub fn shiviz_log(nodes: &[Vec<EventAt>]) -> String {
    let mut out = String::new();
    out.push_str(SHIVIZ_REGEX);
    out.push_str("\n\n");
    for at in nodes.iter().flatten() {
        let clock = serde_json::to_string(&at.event.clock).unwrap_or_else(|_| "{}".into());
        out.push_str(&at.event.kind.describe());
        out.push('\n');
        out.push_str(&at.event.node);
        out.push(' ');
        out.push_str(&clock);
        out.push('\n');
    }
    out
}
