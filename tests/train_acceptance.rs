//! Acceptance of the training engine on the embedded digits set (seeds fixed): 4 honest
//! workers with the mean reach ≥ 95% test accuracy; with 1 Byzantine worker of 5 (sign flip
//! ×−10, or large noise) the mean degrades while median and trimmed mean still reach ≥ 93%.
//! Then the `hashgrad train` binary itself: JSON summary, and CSV errors as exit code 2.

use std::process::Command;

use hashgrad::train::TrainConfig;
use hashgrad::train::attack::Attack;
use hashgrad::train::simulation::run;
use hashgrad::train::{Dataset, Reducer, Rule};

const ROUNDS: u64 = 300;

fn accuracy(config: &TrainConfig) -> f32 {
    let data = Dataset::digits().expect("digits");
    let (_, evaluation) = run(config, &data, Reducer::Cpu, ROUNDS).expect("training runs");
    evaluation.accuracy
}

#[test]
fn four_honest_workers_with_the_mean_reach_95_percent() {
    let acc = accuracy(&TrainConfig::default());
    assert!(acc >= 0.95, "test accuracy {acc}");
}

#[test]
fn robust_rules_survive_one_byzantine_worker_of_five_and_the_mean_does_not() {
    for attack in [Attack::SignFlip, Attack::Noise] {
        let config = |rule| TrainConfig {
            workers: 5,
            byzantine: 1,
            attack,
            rule,
            ..TrainConfig::default()
        };
        let mean = accuracy(&config(Rule::Mean));
        let median = accuracy(&config(Rule::Median));
        let trimmed = accuracy(&config(Rule::TrimmedMean { trim: 1 }));
        eprintln!("{attack:?}: mean {mean}, median {median}, trimmed mean {trimmed}");
        assert!(median >= 0.93, "{attack:?}: median reached {median}");
        assert!(
            trimmed >= 0.93,
            "{attack:?}: trimmed mean reached {trimmed}"
        );
        // "Degrades visibly": at least 20 points below the worse robust rule.
        assert!(
            mean + 0.2 < median.min(trimmed),
            "{attack:?}: mean {mean} vs median {median}, trimmed {trimmed}"
        );
    }
}

fn hashgrad() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hashgrad"));
    command.env("XDG_RUNTIME_DIR", std::env::temp_dir());
    command
}

#[test]
fn train_command_prints_a_json_summary() {
    let output = hashgrad()
        .args([
            "train",
            "--rounds",
            "20",
            "--rule",
            "trimmed-mean",
            "--workers",
            "3",
            "--backend",
            "cpu",
            "--json",
        ])
        .output()
        .expect("run hashgrad");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    assert_eq!(summary["rounds"], 20);
    assert_eq!(summary["rule"], "trimmed-mean");
    assert_eq!(summary["params"], 64 * 64 + 64 + 64 * 10 + 10);
    assert_eq!(summary["params_hash"].as_str().map(str::len), Some(64));
    let accuracy = summary["accuracy"].as_f64().expect("accuracy");
    assert!(
        (0.5..=1.0).contains(&accuracy),
        "20 rounds should already learn: {accuracy}"
    );
    assert!(
        summary["seconds_per_round"]
            .as_f64()
            .is_some_and(|s| s > 0.0)
    );
}

#[test]
fn train_command_reports_csv_mistakes_with_exit_code_2() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ragged = dir.path().join("ragged.csv");
    std::fs::write(&ragged, "1,2,0\n3,4,1\n5,1\n").expect("write");
    let output = hashgrad()
        .args(["train", "--backend", "cpu", "--data"])
        .arg(&ragged)
        .output()
        .expect("run hashgrad");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("line 3") && stderr.contains("2 fields"),
        "{stderr}"
    );

    let good = dir.path().join("good.csv");
    let rows: String = (0..60)
        .map(|i| format!("{},{},{}\n", i % 3, (i * 7) % 5, i % 3))
        .collect();
    std::fs::write(&good, format!("label,a,b\n{rows}")).expect("write");
    let output = hashgrad()
        .args([
            "train",
            "--backend",
            "cpu",
            "--rounds",
            "5",
            "--label-column",
            "1",
            "--json",
            "--data",
        ])
        .arg(&good)
        .output()
        .expect("run hashgrad");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = hashgrad()
        .args(["train", "--backend", "cpu", "--label-column", "7", "--data"])
        .arg(&good)
        .output()
        .expect("run hashgrad");
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("--label-column: ")
            && String::from_utf8_lossy(&output.stderr).contains("label column 7 is past")
    );
}
