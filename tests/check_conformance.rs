//! Porcupine's conformance set (tests/data/porcupine, MIT, see its LICENSE-porcupine): every
//! history is checked and its verdict compared with `expected.tsv`, read here at test time.
//! Linearizable verdicts are re-validated independently: the linearization found must contain
//! every operation once, respect real-time order and be accepted by the model step by step.
//! A watchdog stops the checker after a generous 120 s (the whole set takes well under a
//! second in release builds and a few seconds in the test profile); a stopped check fails.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hashgrad::check::linearize::{self, LinearizabilityReport, Verdict};
use hashgrad::check::model::{CasRegister, Kv, Model};
use hashgrad::check::{CheckOptions, History, ModelKind, check_linearizable};

fn validate<M: Model>(model: &M, history: &History, report: &LinearizabilityReport) {
    for p in &report.partitions {
        let mut order = p.linearization.clone();
        assert_eq!(
            order.len(),
            p.operations.len(),
            "a linearization places every operation"
        );
        order.sort_unstable();
        let mut expected = p.operations.clone();
        expected.sort_unstable();
        assert_eq!(order, expected, "each operation exactly once");
        let mut state = model.init();
        for (k, &i) in p.linearization.iter().enumerate() {
            let op = &history.operations[i];
            for &later in &p.linearization[k + 1..] {
                let other = &history.operations[later];
                assert!(
                    other.completed >= op.invoked,
                    "line {} is placed before line {}, which completed before it was invoked",
                    op.line,
                    other.line
                );
            }
            state = model
                .step(&state, op)
                .unwrap_or_else(|| panic!("the model refuses line {}", op.line));
        }
    }
}

#[test]
fn porcupine_conformance_set_matches_expected_verdicts() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/porcupine");
    let table =
        std::fs::read_to_string(root.join("expected.tsv")).expect("expected.tsv is readable");
    let stop = AtomicBool::new(false);
    let done = AtomicBool::new(false);
    let mut checked = 0;
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for _ in 0..1200 {
                if done.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            stop.store(true, Ordering::Relaxed);
        });
        let options = CheckOptions {
            stop: Some(&stop),
            ..CheckOptions::default()
        };
        for row in table
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        {
            let fields: Vec<&str> = row.split('\t').collect();
            let [file, _format, expected, ..] = fields[..] else {
                panic!("bad row {row:?}")
            };
            let text = std::fs::read_to_string(root.join(file)).expect("history is readable");
            let (history, model, report) = check_linearizable(&text, None, None, &options)
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            let got = match report.verdict {
                Verdict::Linearizable => "linearizable",
                Verdict::NotLinearizable => "not_linearizable",
                Verdict::Unknown => panic!("{file}: the check was stopped by the watchdog"),
            };
            if expected != "unknown" {
                assert_eq!(got, expected, "{file}");
                checked += 1;
            }
            match report.verdict {
                Verdict::Linearizable => match model {
                    ModelKind::Kv => validate(&Kv, &history, &report),
                    _ => validate(&CasRegister, &history, &report),
                },
                _ => {
                    let failing = report
                        .partitions
                        .iter()
                        .find(|p| p.verdict == Verdict::NotLinearizable);
                    let explanation = failing
                        .and_then(|p| p.explanation.as_ref())
                        .expect("a violation is explained");
                    assert!(
                        !explanation.stuck.is_empty(),
                        "{file}: some operation cannot come next"
                    );
                }
            }
        }
        done.store(true, Ordering::Relaxed);
    });
    assert_eq!(checked, 108, "every file with a verdict was checked");
}

#[test]
fn kv_histories_give_the_same_verdicts_on_one_thread() {
    // Partitions interleaved on one worker thread give the same verdicts as on all cores.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/porcupine/test_data/kv");
    for (name, expected) in [
        ("c01-ok.txt", Verdict::Linearizable),
        ("c10-bad.txt", Verdict::NotLinearizable),
    ] {
        let text = std::fs::read_to_string(root.join(name)).expect("readable");
        let (_, history) = hashgrad::check::format::parse(&text, None).expect("parses");
        let report = linearize::check(
            &history,
            &Kv,
            &CheckOptions {
                threads: 1,
                stop: None,
            },
        )
        .expect("checks");
        assert_eq!(report.verdict, expected, "{name}");
    }
}
