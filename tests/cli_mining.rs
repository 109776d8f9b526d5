//! The real `hashgrad` binary: `mine-header` finds real mainnet nonces, `bench --json` prints
//! one JSON document, and bad input exits with code 2 and a message, never a panic.

use std::process::{Command, Output};

const GENESIS: &str = "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c";
const BLOCK_125552: &str = "0100000081cd02ab7e569e8bcd9317e2fe99f2de44d49ab2b8851ba4a308000000000000e320b6c2fffc8d750423db8b1eb942ae710e951ed797f7affc8892b0f1fc122bc7f5d74df2b9441a42a14695";

fn hashgrad(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hashgrad"))
        .args(args)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .output()
        .expect("run hashgrad")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn mine_header_finds_the_mainnet_nonces() {
    for (header, nonce, hash) in [
        (
            GENESIS,
            2083236893u32,
            "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f",
        ),
        (
            BLOCK_125552,
            2504433986,
            "00000000000000001e8d6829a8a21adc5d38d0a473b144b6765798e61f98bd1d",
        ),
    ] {
        let start = (nonce - 20_000).to_string();
        let output = hashgrad(&[
            "mine-header",
            header,
            "--start",
            &start,
            "--count",
            "40000",
            "--backend",
            "cpu",
        ]);
        assert!(output.status.success(), "{}", stderr(&output));
        let text = stdout(&output);
        assert!(text.contains(&format!("nonce {nonce} ")), "{text}");
        assert!(text.contains(hash), "{text}");
        assert!(text.contains("found 1 in 40000 hashes"), "{text}");
        assert!(text.contains("MH/s"), "{text}");
    }
}

#[test]
fn mine_header_with_threads_and_auto_backend_agrees() {
    let output = hashgrad(&[
        "mine-header",
        GENESIS,
        "--start",
        "2083236000",
        "--count",
        "2000",
        "--threads",
        "3",
        "--backend",
        "auto",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("nonce 2083236893 "));
}

#[test]
fn bench_json_is_one_document_with_rates_and_the_sha2_baseline() {
    let output = hashgrad(&[
        "bench",
        "--backend",
        "cpu",
        "--seconds",
        "0.2",
        "--threads",
        "1",
        "--json",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: serde_json::Value =
        serde_json::from_str(&stdout(&output)).expect("one JSON document");
    let results = report["results"].as_array().expect("results");
    assert!(!results.is_empty());
    for row in results {
        assert_eq!(row["kind"], "cpu");
        assert_eq!(row["threads"], 1);
        assert!(row["mhs"].as_f64().expect("mhs") > 0.0, "{row}");
        assert!(row["sha2_mhs"].as_f64().expect("sha2") > 0.0, "{row}");
        assert!(!row["path"].as_str().expect("path").is_empty());
    }
    assert!(results.iter().any(|r| r["path"] == "portable"));
}

#[test]
fn bad_input_exits_2_with_a_clear_message() {
    let cases: [(&[&str], &str); 7] = [
        (&["mine-header", "zz"], "not valid hex"),
        (&["mine-header", "00ff"], "80 bytes"),
        (
            &["mine-header", GENESIS, "--backend", "tpu"],
            "unknown backend",
        ),
        (&["mine-header", GENESIS, "--count", "0"], "--count"),
        (&["bench", "--backend", "fpga"], "unknown backend"),
        (&["bench", "--seconds", "0"], "--seconds"),
        (&["hash", "1234"], "80 bytes"),
    ];
    for (args, message) in cases {
        let output = hashgrad(args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains(message),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(!stderr(&output).contains("panicked"), "{args:?}");
    }
}

#[test]
fn forcing_a_missing_gpu_exits_2() {
    let output = hashgrad(&[
        "mine-header",
        GENESIS,
        "--count",
        "10",
        "--backend",
        "gpu",
        "--adapter",
        "no-such-adapter-xyz",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("--backend cpu"),
        "{}",
        stderr(&output)
    );
}
