//! The testnet's own record of what it did to the network (`events.log`: lines like
//! `"   12.345s kill -9 n2 (pid 123, leader)"`), read into faults the timelines mark. Pure.

use serde::Serialize;

use super::ReportError;

/// What the testnet did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// The testnet killed a node's process (`kill ...`).
    Kill,
    /// The testnet restarted a killed node (`restart ...`).
    Restart,
    /// The testnet cut the network into groups (`partition ...`).
    Partition,
    /// The testnet ended a partition (`partition healed`).
    Heal,
    /// Any other line (nodes up, …): shown as a note.
    Note,
}

/// One line of `events.log`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fault {
    /// Milliseconds since the testnet's time 0 (every node up).
    pub at_ms: u64,
    /// What kind of fault the line records, from its first words.
    pub kind: FaultKind,
    /// The node dir labels the line names (`n2`), for kills and restarts.
    pub nodes: Vec<String>,
    /// The line after its time, at most 300 characters.
    pub text: String,
}

/// Longest fault text kept (the rest is cut).
const MAX_TEXT: usize = 300;

/// Parses the whole of `events.log`; blank lines are skipped, a line without its leading
/// `<seconds>s` is an error naming the line.
pub fn parse_faults(text: &str) -> Result<Vec<Fault>, ReportError> {
    let mut faults = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() {
            continue;
        }
        let bad = || ReportError::FaultLine {
            line: index + 1,
            found: trimmed.chars().take(80).collect(),
        };
        let (time, rest) = trimmed.split_once("s ").ok_or_else(bad)?;
        let secs: f64 = time.parse().map_err(|_| bad())?;
        if !(secs.is_finite() && (0.0..1e9).contains(&secs)) {
            return Err(bad());
        }
        let rest = rest.trim();
        let kind = if rest.starts_with("kill") {
            FaultKind::Kill
        } else if rest.starts_with("restart") {
            FaultKind::Restart
        } else if rest.starts_with("partition healed") {
            FaultKind::Heal
        } else if rest.starts_with("partition") {
            FaultKind::Partition
        } else {
            FaultKind::Note
        };
        let nodes = match kind {
            FaultKind::Kill | FaultKind::Restart => rest
                .split_whitespace()
                .filter(|w| is_node_label(w))
                .take(1)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        faults.push(Fault {
            at_ms: (secs * 1e3).round() as u64,
            kind,
            nodes,
            text: rest.chars().take(MAX_TEXT).collect(),
        });
    }
    Ok(faults)
}

/// `n` followed by digits: a testnet node's dir name.
fn is_node_label(word: &str) -> bool {
    word.strip_prefix('n')
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn testnet_lines_become_faults() {
        let text = "   0.000s nodes up: n0 pid 1, n1 pid 2\n\
                    \x20  4.250s kill -9 n1 (pid 2, leader)\n\
                    \x20  6.300s restart n1 from its data dir (pid 9)\n\
                    \n\
                    \x20 10.000s partition: groups [[0, 1], [2]] (heights [3, 3, 3])\n\
                    \x20 15.000s partition healed (before healing: heights [5, 5, 3], rounds [0, 0, 0])\n";
        let faults = parse_faults(text).unwrap();
        let kinds: Vec<FaultKind> = faults.iter().map(|f| f.kind).collect();
        assert_eq!(
            kinds,
            [
                FaultKind::Note,
                FaultKind::Kill,
                FaultKind::Restart,
                FaultKind::Partition,
                FaultKind::Heal
            ]
        );
        assert_eq!(faults[1].at_ms, 4_250);
        assert_eq!(faults[1].nodes, ["n1"]);
        assert_eq!(faults[2].nodes, ["n1"]);
        assert!(faults[3].text.contains("[[0, 1], [2]]"));
    }

    #[test]
    fn a_line_without_its_time_is_named() {
        let err = parse_faults("   1.000s kill -9 n0\ngarbage here\n").unwrap_err();
        assert!(
            matches!(err, ReportError::FaultLine { line: 2, .. }),
            "{err}"
        );
        assert!(parse_faults("   -1s kill\n").is_err());
        assert!(parse_faults("   NaNs kill\n").is_err());
    }
}
