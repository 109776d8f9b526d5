//! `hashgrad check` end to end: the real binary on real files — verdict lines, exit codes
//! (0 holds, 1 violated, 3 unknown, 2 bad input), `--json`, `--html` and the causal mode.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn hashgrad(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hashgrad"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn data(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/porcupine/test_data")
        .join(path)
        .display()
        .to_string()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("writable");
    path
}

#[test]
fn verdicts_and_exit_codes() {
    let ok = hashgrad(&[
        "check",
        &data("jepsen/etcd_002.log"),
        &data("kv/c10-ok.txt"),
    ]);
    assert_eq!(ok.status.code(), Some(0), "{}", stdout(&ok));
    let text = stdout(&ok);
    assert!(text.contains("etcd_002.log: linearizable ("), "{text}");
    assert!(
        text.contains("c10-ok.txt: linearizable (337 operations, 10 partitions"),
        "{text}"
    );

    let bad = hashgrad(&["check", &data("jepsen/etcd_000.log")]);
    assert_eq!(bad.status.code(), Some(1));
    let text = stdout(&bad);
    assert!(text.contains("etcd_000.log: not linearizable"), "{text}");
    assert!(text.contains("longest linearizable prefix has"), "{text}");
    assert!(text.contains("none of these can come next"), "{text}");
}

#[test]
fn unknown_when_the_time_budget_runs_out() {
    // 22 writes that never complete, then a read no subset of them explains: refuting it means
    // trying every subset, far beyond a 0.05 s budget.
    let dir = tempfile::tempdir().expect("temp dir");
    let mut text = String::new();
    for c in 0..22 {
        text += &format!("{{\"client\":{c},\"type\":\"invoke\",\"f\":\"write\",\"value\":{c}}}\n");
    }
    text += "{\"client\":99,\"type\":\"invoke\",\"f\":\"read\"}\n{\"client\":99,\"type\":\"ok\",\"f\":\"read\",\"value\":1000}\n";
    let path = write(dir.path(), "hard.jsonl", &text);
    let out = hashgrad(&["check", "--timeout", "0.05", path.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));
    assert!(stdout(&out).contains("unknown"), "{}", stdout(&out));
}

#[test]
fn bad_input_names_file_and_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write(
        dir.path(),
        "broken.jsonl",
        "{\"client\":1,\"type\":\"invoke\",\"f\":\"read\"}\n{\"client\":1,\"type\":\"done\",\"f\":\"read\"}\n",
    );
    let out = hashgrad(&["check", path.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken.jsonl:2:"), "{err}");
    assert!(
        err.contains("expected `type` invoke, ok, fail or info"),
        "{err}"
    );

    let missing = hashgrad(&["check", "/nonexistent/history.log"]);
    assert_eq!(missing.status.code(), Some(2));
    // Bad input wins over a violation in another file.
    let both = hashgrad(&[
        "check",
        &data("jepsen/etcd_000.log"),
        path.to_str().expect("utf-8"),
    ]);
    assert_eq!(both.status.code(), Some(2));
}

#[test]
fn json_document() {
    let out = hashgrad(&[
        "check",
        "--json",
        &data("kv/c01-bad.txt"),
        &data("jepsen/etcd_005.log"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(doc["verdict"], "violated");
    let files = doc["files"].as_array().expect("files");
    assert_eq!(files.len(), 2);
    assert_eq!(files[0]["verdict"], "not linearizable");
    assert_eq!(files[0]["model"], "kv");
    assert_eq!(files[1]["verdict"], "linearizable");
    assert_eq!(files[1]["model"], "cas-register");
    let failing = files[0]["by_partition"]
        .as_array()
        .expect("partitions")
        .iter()
        .find(|p| p["verdict"] == "not linearizable")
        .expect("a failing key");
    assert!(
        !failing["explanation"]["cannot_come_next"]
            .as_array()
            .expect("list")
            .is_empty()
    );
}

#[test]
fn html_view_is_self_contained() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out_path = dir.path().join("view.html");
    let out = hashgrad(&[
        "check",
        &data("jepsen/etcd_000.log"),
        "--html",
        out_path.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let page = std::fs::read_to_string(&out_path).expect("page written");
    assert!(
        page.contains("<svg") && page.contains("<script>"),
        "inline SVG and script"
    );
    assert!(page.contains("class=\"op\""), "operations drawn");
    assert!(
        page.contains("#e06666"),
        "operations that cannot be placed are marked"
    );
    for external in ["src=\"http", "href=\"http", "@import", "<link"] {
        assert!(!page.contains(external), "no network resource: {external}");
    }
}

#[test]
fn causal_mode_names_the_bad_pattern() {
    let dir = tempfile::tempdir().expect("temp dir");
    let text = [
        r#"{"client":1,"type":"invoke","f":"write","key":"x","value":1}"#,
        r#"{"client":1,"type":"ok","f":"write","key":"x","value":1}"#,
        r#"{"client":1,"type":"invoke","f":"read","key":"x"}"#,
        r#"{"client":1,"type":"ok","f":"read","key":"x","value":null}"#,
    ]
    .join("\n");
    let path = write(dir.path(), "own-write.jsonl", &text);
    let out = hashgrad(&[
        "check",
        "--consistency",
        "causal",
        path.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("not causally consistent"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("WriteCOInitRead"), "{}", stdout(&out));
}
