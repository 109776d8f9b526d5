//! Table-driven tests over `tests/data/`: real Bitcoin headers (hash, nonce, bits, and every
//! backend finding the nonce near its known value) and compact `bits` cases.

use hashgrad::hash::cpu::{CpuBackend, CpuPath};
use hashgrad::hash::{
    Backend, Job, NonceRange, StopFlag, display_hash, parse_header_hex, reference,
};
use hashgrad::pow::{CompactBits, CompactError, Target};

fn rows(file: &str) -> Vec<Vec<String>> {
    let path = format!("{}/tests/data/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| line.split('\t').map(str::to_string).collect())
        .collect()
}

struct HeaderCase {
    name: String,
    header: [u8; 80],
    block_hash: String,
    nonce: u32,
    bits: u32,
}

fn header_cases() -> Vec<HeaderCase> {
    let cases: Vec<HeaderCase> = rows("headers.tsv")
        .into_iter()
        .map(|row| {
            assert_eq!(row.len(), 5, "headers.tsv row {row:?}");
            HeaderCase {
                name: row[0].clone(),
                header: parse_header_hex(&row[1]).expect("header hex"),
                block_hash: row[2].clone(),
                nonce: row[3].parse().expect("nonce"),
                bits: u32::from_str_radix(&row[4], 16).expect("bits"),
            }
        })
        .collect();
    assert!(cases.len() >= 3);
    cases
}

#[test]
fn real_headers_hash_to_their_block_hash_and_meet_their_bits() {
    for case in header_cases() {
        let hash = reference::sha256d(&case.header);
        assert_eq!(display_hash(&hash), case.block_hash, "{}", case.name);
        assert_eq!(
            u32::from_le_bytes(case.header[76..80].try_into().expect("4 bytes")),
            case.nonce,
            "{}",
            case.name
        );
        assert_eq!(
            u32::from_le_bytes(case.header[72..76].try_into().expect("4 bytes")),
            case.bits,
            "{}",
            case.name
        );
        let target = Target::from_compact(CompactBits(case.bits)).expect("valid bits");
        assert!(target.is_met_by(&hash), "{}", case.name);
    }
}

#[test]
fn every_cpu_path_finds_the_real_nonce_and_nothing_else_around_it() {
    for case in header_cases() {
        let job = Job {
            header: case.header,
            target: Target::from_compact(CompactBits(case.bits)).expect("valid bits"),
        };
        let range = NonceRange::new(case.nonce.wrapping_sub(1500), 3001);
        for path in CpuPath::available() {
            let mut backend = CpuBackend::with_path(path, 2).expect("available path");
            let outcome = backend
                .search(&job, range, &StopFlag::new())
                .expect("search");
            assert_eq!(outcome.hashes, 3001);
            let nonces: Vec<u32> = outcome.found.iter().map(|f| f.nonce).collect();
            assert_eq!(nonces, vec![case.nonce], "{} on {path}", case.name);
            assert_eq!(display_hash(&outcome.found[0].hash), case.block_hash);
        }
    }
}

#[test]
fn compact_bits_cases_decode_and_normalise() {
    let cases = rows("compact.tsv");
    assert!(cases.len() >= 20);
    for row in cases {
        assert_eq!(row.len(), 3, "compact.tsv row {row:?}");
        let bits = u32::from_str_radix(&row[0], 16).expect("bits hex");
        let decoded = Target::from_compact(CompactBits(bits));
        match row[1].as_str() {
            "zero" => assert_eq!(decoded, Err(CompactError::Zero(bits)), "{bits:08x}"),
            "negative" => assert_eq!(decoded, Err(CompactError::Negative(bits)), "{bits:08x}"),
            "overflow" => assert_eq!(decoded, Err(CompactError::Overflow(bits)), "{bits:08x}"),
            "rejected" => assert!(decoded.is_err(), "{bits:08x} must be rejected"),
            target_hex => {
                let target = decoded.unwrap_or_else(|e| panic!("{bits:08x}: {e}"));
                assert_eq!(target.to_string(), target_hex, "{bits:08x}");
                let normal = u32::from_str_radix(&row[2], 16).expect("normalised bits hex");
                assert_eq!(target.to_compact(), CompactBits(normal), "{bits:08x}");
            }
        }
    }
}
