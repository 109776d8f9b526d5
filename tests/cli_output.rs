//! What a person reads from the real `hashgrad` binary: logs in a pipe are plain text, the
//! Vulkan driver's `XDG_RUNTIME_DIR` noise stays off stderr, errors say their reason once, and
//! exit codes follow README (2: the command must change, including a node that cannot start).

use std::process::{Command, Output};

fn hashgrad() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hashgrad"));
    command.env_remove("NO_COLOR").env_remove("RUST_LOG");
    command
}

fn run(command: &mut Command) -> Output {
    command.output().expect("run hashgrad")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn logs_written_to_a_pipe_carry_no_colour_codes() {
    // -v: debug lines, so there is something to look at; stderr is a pipe here.
    // (`train --backend auto` logs which reducer it chose, or why there is no GPU.)
    let output = run(hashgrad().args([
        "-v",
        "train",
        "--rounds",
        "1",
        "--backend",
        "auto",
        "--json",
    ]));
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(
        text.contains("DEBUG") || text.contains("INFO"),
        "expected log lines: {text}"
    );
    assert!(
        !text.contains('\u{1b}'),
        "ANSI escape in piped logs: {text:?}"
    );
}

#[test]
fn probing_adapters_without_a_runtime_dir_prints_no_driver_noise() {
    for args in [
        &["adapters"][..],
        &["train", "--rounds", "1", "--backend", "auto", "--json"][..],
    ] {
        let output = run(hashgrad().args(args).env_remove("XDG_RUNTIME_DIR"));
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
        let text = stderr(&output);
        assert!(
            !text.contains("XDG_RUNTIME_DIR"),
            "{args:?}: driver noise reached stderr: {text}"
        );
    }
}

#[test]
fn train_refuses_zero_rounds_as_bad_input() {
    let output = run(hashgrad().args(["train", "--rounds", "0", "--json"]));
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(output.stdout.is_empty(), "no JSON for a refused run");
    let text = stderr(&output);
    assert!(text.contains("--rounds"), "{text}");
}

#[test]
fn a_taken_port_says_why_once_and_exits_2() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let output = run(hashgrad()
        .args([
            "node",
            "--network",
            "regtest",
            "--no-mine",
            "--listen",
            &addr,
        ])
        .arg("--data-dir")
        .arg(dir.path()));
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let text = stderr(&output);
    let error = text
        .lines()
        .find(|line| line.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line: {text}"));
    assert!(error.contains(&addr), "{error}");
    // The operating system's own words for it, e.g. "Address already in use (os error 98)".
    let reason = std::net::UdpSocket::bind(&addr)
        .expect_err("the port is taken")
        .to_string();
    let reason = reason.as_str();
    assert_eq!(
        error.matches(reason).count(),
        1,
        "the reason `{reason}` once: {error}"
    );
}
