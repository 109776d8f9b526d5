//! Measures the GPU sha256d search against the plain `sha2` reference (one thread) in the same
//! run, for one or more values of the kernel's nonces-per-invocation.
//!
//! ```sh
//! cargo run --release --example gpu_hashrate -- [--seconds S] [--adapter NAME|INDEX] \
//!     [--npi 64,128] [--maj select,shared-xor] [--job-loads locals,inline]
//! ```
//! Prints one line per measurement and a final JSON line (`scripts/gpu-check.sh` reads it).

use std::time::{Duration, Instant};

use hashgrad::gpu::{AdapterChoice, GpuContext};
use hashgrad::hash::gpu::{GpuBackend, GpuSearchConfig, JobLoads, KernelVariant, MajForm};
use hashgrad::hash::{Backend, Job, NonceRange, StopFlag, reference};
use hashgrad::pow::{CompactBits, Target};

struct Options {
    seconds: f64,
    adapter: AdapterChoice,
    npi: Vec<u32>,
    maj: Vec<MajForm>,
    job_loads: Vec<JobLoads>,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        seconds: 3.0,
        adapter: AdapterChoice::Auto,
        npi: vec![64],
        maj: vec![MajForm::default()],
        job_loads: vec![JobLoads::default()],
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--seconds" => {
                options.seconds = value
                    .parse()
                    .map_err(|e| format!("--seconds {value}: {e}"))?;
            }
            "--adapter" => options.adapter = value.parse().unwrap_or_default(),
            "--npi" => {
                options.npi = value
                    .split(',')
                    .map(|v| v.trim().parse().map_err(|e| format!("--npi {v}: {e}")))
                    .collect::<Result<_, _>>()?;
            }
            "--maj" => {
                options.maj = value
                    .split(',')
                    .map(|v| v.trim().parse())
                    .collect::<Result<_, _>>()?;
            }
            "--job-loads" => {
                options.job_loads = value
                    .split(',')
                    .map(|v| v.trim().parse())
                    .collect::<Result<_, _>>()?;
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(options)
}

/// Hashes for `seconds` (the stop flag ends the search between dispatches): hashes per second.
fn gpu_rate(gpu: &mut GpuBackend, job: &Job, seconds: f64) -> Result<f64, String> {
    // Warm-up: compiles the pipeline on lazy drivers and grows the dispatch size.
    let warm = StopFlag::new();
    let timer = stop_after(&warm, seconds.min(1.0) / 2.0);
    gpu.search(job, NonceRange::FULL, &warm)
        .map_err(|e| e.to_string())?;
    let _ = timer.join();
    let stop = StopFlag::new();
    let timer = stop_after(&stop, seconds);
    let started = Instant::now();
    let outcome = gpu
        .search(job, NonceRange::new(1 << 31, 1 << 32), &stop)
        .map_err(|e| e.to_string())?;
    let elapsed = started.elapsed().as_secs_f64();
    let _ = timer.join();
    Ok(outcome.hashes as f64 / elapsed)
}

fn stop_after(stop: &StopFlag, seconds: f64) -> std::thread::JoinHandle<()> {
    let stop = stop.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs_f64(seconds));
        stop.stop();
    })
}

fn reference_rate(job: &Job, seconds: f64) -> f64 {
    let started = Instant::now();
    let mut hashes = 0u64;
    while started.elapsed().as_secs_f64() < seconds {
        let range = NonceRange::new(hashes as u32, 100_000);
        hashes += reference::search(job, range, &StopFlag::new()).hashes;
    }
    hashes as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let options = match options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("error: {message}");
            std::process::exit(2);
        }
    };
    let context = match GpuContext::open(&options.adapter) {
        Ok(context) => context,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::exit(1);
        }
    };
    // Bitcoin's genesis header at its own target: the early reject passes ~1 nonce in 2^32.
    let header = hashgrad::hash::parse_header_hex(
        "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c",
    )
    .unwrap_or([0; 80]);
    let target = Target::from_compact(CompactBits(0x1d00ffff)).unwrap_or(Target::MAX);
    let job = Job { header, target };

    let adapter = context.adapter_name().to_string();
    println!("adapter: {adapter} ({:?})", context.info.device_type);
    let baseline = reference_rate(&job, options.seconds);
    println!("sha2 reference, 1 thread: {:.2} MH/s", baseline / 1e6);
    let mut rows = Vec::new();
    let mut variants = Vec::new();
    for maj in &options.maj {
        for job_loads in &options.job_loads {
            for npi in &options.npi {
                let variant = KernelVariant {
                    maj: *maj,
                    job_loads: *job_loads,
                };
                variants.push((variant, *npi));
            }
        }
    }
    for (variant, npi) in variants {
        let config = GpuSearchConfig {
            nonces_per_invocation: npi,
            variant,
            ..GpuSearchConfig::default()
        };
        let mut gpu = match GpuBackend::with_context(context.clone(), config) {
            Ok(gpu) => gpu,
            Err(error) => {
                eprintln!("error: {error}");
                std::process::exit(1);
            }
        };
        match gpu_rate(&mut gpu, &job, options.seconds) {
            Ok(rate) => {
                println!(
                    "{}: {:.2} MH/s = {:.2}x the sha2 reference",
                    gpu.info().path,
                    rate / 1e6,
                    rate / baseline
                );
                rows.push(format!(
                    "{{\"variant\":\"{variant}\",\"nonces_per_invocation\":{npi},\"hashes_per_second\":{rate:.0}}}"
                ));
            }
            Err(error) => {
                eprintln!("error: {error}");
                std::process::exit(1);
            }
        }
    }
    println!(
        "{{\"adapter\":{},\"reference_hashes_per_second\":{baseline:.0},\"gpu\":[{}]}}",
        serde_json::Value::from(adapter),
        rows.join(",")
    );
}
