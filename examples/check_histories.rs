//! Writes linearizable partitioned kv histories (10 keys; 1k, 10k, 100k operations; 5 and 20
//! clients) for the check-time curve: `OUT/kv/cC-nN.txt` in Jepsen EDN (which Porcupine's
//! bench reads too) and `OUT/jsonl/cC-nN.jsonl`. Used by scripts/check-vs-porcupine.sh.
//! Usage: cargo run --example check_histories -- OUT

use hashgrad::check::format::{edn, jsonl};
use hashgrad::check::simulate::{Shape, Workload, generate};

fn main() -> std::io::Result<()> {
    let out = std::path::PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "check-histories".into()),
    );
    std::fs::create_dir_all(out.join("kv"))?;
    std::fs::create_dir_all(out.join("jsonl"))?;
    for operations in [1_000, 10_000, 100_000] {
        for clients in [5, 20] {
            let history = generate(Shape {
                workload: Workload::Kv,
                clients,
                keys: 10,
                operations,
                seed: 7,
            });
            let name = format!("c{clients:02}-n{operations:06}");
            std::fs::write(
                out.join("kv").join(format!("{name}.txt")),
                edn::write(&history),
            )?;
            std::fs::write(
                out.join("jsonl").join(format!("{name}.jsonl")),
                jsonl::write(&history),
            )?;
        }
    }
    Ok(())
}
