//! Property tests of the checker: histories recorded from a real linearizable store under a
//! random schedule are linearizable (and causally consistent); with one read changed to a
//! value nobody wrote they are neither. The parsers never panic, whatever the input.

use hashgrad::check::causal::{self, BadPattern};
use hashgrad::check::format::{self, Format};
use hashgrad::check::linearize::{self, Verdict};
use hashgrad::check::model::{CasRegister, Kv, Register};
use hashgrad::check::simulate::{Shape, Workload, corrupt_read, generate};
use hashgrad::check::{CheckOptions, History};
use proptest::prelude::*;

fn verdict(history: &History, workload: Workload) -> Verdict {
    let options = CheckOptions::default();
    let report = match workload {
        Workload::Register => linearize::check(history, &Register, &options),
        Workload::Kv => linearize::check(history, &Kv, &options),
    };
    report.expect("checkable").verdict
}

fn shape() -> impl Strategy<Value = Shape> {
    (
        prop_oneof![Just(Workload::Register), Just(Workload::Kv)],
        1usize..7,
        1usize..4,
        1usize..80,
        any::<u64>(),
    )
        .prop_map(|(workload, clients, keys, operations, seed)| Shape {
            workload,
            clients,
            keys,
            operations,
            seed,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn recorded_histories_are_linearizable(shape in shape()) {
        let history = generate(shape);
        prop_assert_eq!(history.operations.len(), shape.operations);
        prop_assert_eq!(verdict(&history, shape.workload), Verdict::Linearizable);
        if shape.workload == Workload::Register {
            prop_assert!(causal::check(&history).expect("differentiated").violation.is_none());
            // A register history is also a CAS-register history.
            let report = linearize::check(&history, &CasRegister, &CheckOptions::default()).expect("checkable");
            prop_assert_eq!(report.verdict, Verdict::Linearizable);
        }
    }

    #[test]
    fn a_read_of_a_value_never_written_is_caught(shape in shape(), nth in any::<usize>()) {
        let mut history = generate(shape);
        prop_assume!(corrupt_read(&mut history, nth));
        prop_assert_eq!(verdict(&history, shape.workload), Verdict::NotLinearizable);
        if shape.workload == Workload::Register {
            let violation = causal::check(&history).expect("differentiated").violation;
            prop_assert_eq!(violation.map(|v| v.pattern), Some(BadPattern::ThinAirRead));
        }
    }

    #[test]
    fn parsers_never_panic_on_arbitrary_text(text in "[ -~\t\n]{0,300}") {
        for f in [None, Some(Format::Etcd), Some(Format::JepsenKv), Some(Format::Jsonl)] {
            let _ = format::parse(&text, f);
        }
    }

    #[test]
    fn parsers_never_panic_on_mangled_lines(
        cut in 0usize..120,
        insert in "[\\[\\]{}:\", 0-9a-z\\\\-]{0,6}",
        pick in 0usize..6,
    ) {
        let lines = [
            "INFO  jepsen.util - 3\t:invoke\t:cas\t[1 4]",
            "INFO  jepsen.util - 3\t:fail\t:read\t:timed-out",
            r#"{:process 9, :type :ok, :f :get, :key "0", :value "x 9 0 y"}"#,
            r#"{:process 9, :type :invoke, :f :cas, :key 3, :value [1 2]}"#,
            r#"{"client":1,"type":"invoke","f":"cas","key":"x","value":[1,2],"time":5}"#,
            r#"{"client":1,"type":"ok","f":"read","key":"x","value":"s","index":9}"#,
        ];
        let base = lines[pick];
        let mut at = cut.min(base.len());
        while !base.is_char_boundary(at) {
            at -= 1;
        }
        let mangled = format!("{}{}{}", &base[..at], insert, &base[at..]);
        let text = format!("{base}\n{mangled}\n{}\n", &base[..at]);
        for f in [None, Some(Format::Etcd), Some(Format::JepsenKv), Some(Format::Jsonl)] {
            let _ = format::parse(&text, f);
        }
    }
}
