//! `hashgrad bench`: measures the sha256d rate of each backend (every CPU path, the GPU) and,
//! in the same run, the plain `sha2` two-call rate it is compared with; prints a table or one
//! JSON document (`--json`). A progress bar on stderr shows while it runs on a terminal.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::gpu::AdapterChoice;
use crate::hash::cpu::{CpuBackend, CpuPath, cpu_name, default_threads};
use crate::hash::gpu::GpuBackend;
use crate::hash::select::{AutoPick, CpuFallback, auto_pick};
use crate::hash::{Backend, Job, NonceRange, StopFlag, reference};
use crate::pow::{CompactBits, Target};

/// Bitcoin's genesis header: a real job with a hard target, so the rate is all hashing.
const GENESIS: [u8; 80] = {
    let mut header = [0u8; 80];
    header[0] = 1;
    let merkle: [u8; 32] = [
        0x3b, 0xa3, 0xed, 0xfd, 0x7a, 0x7b, 0x12, 0xb2, 0x7a, 0xc7, 0x2c, 0x3e, 0x67, 0x76, 0x8f,
        0x61, 0x7f, 0xc8, 0x1b, 0xc3, 0x88, 0x8a, 0x51, 0x32, 0x3a, 0x9f, 0xb8, 0xaa, 0x4b, 0x1e,
        0x5e, 0x4a,
    ];
    let mut i = 0;
    while i < 32 {
        header[36 + i] = merkle[i];
        i += 1;
    }
    let tail: [u8; 8] = [0x29, 0xab, 0x5f, 0x49, 0xff, 0xff, 0x00, 0x1d];
    let mut i = 0;
    while i < 8 {
        header[68 + i] = tail[i];
        i += 1;
    }
    header
};

/// Arguments of `hashgrad bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// cpu (every CPU path this processor runs), gpu, or all (both).
    #[arg(long, default_value = "all")]
    pub backend: String,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// CPU worker threads; default: measure one thread and one per core.
    #[arg(long)]
    pub threads: Option<usize>,
    /// GPU adapter by index (see `hashgrad adapters`) or name substring.
    #[arg(long, default_value = "auto")]
    pub adapter: String,
    /// Print one JSON document instead of a table (and no progress bar).
    #[arg(long)]
    pub json: bool,
}

/// One measured backend configuration.
#[derive(Debug, Clone, Serialize)]
pub struct BenchRow {
    /// `cpu` or `gpu`.
    pub kind: &'static str,
    /// The CPU model or GPU adapter name.
    pub device: String,
    /// The code path measured, e.g. `avx2-8way`, `sha-ni-2x`, `portable`, `wgsl`.
    pub path: String,
    /// Worker threads (CPU) or 1 (GPU).
    pub threads: usize,
    /// Nonces hashed during the measurement.
    pub hashes: u64,
    /// Wall-clock seconds the measurement took.
    pub seconds: f64,
    /// Millions of sha256d hashes per wall-clock second.
    pub mhs: f64,
    /// CPU seconds the process used during the measurement (Linux only).
    pub cpu_seconds: Option<f64>,
    /// Hashes per CPU-second, in millions: the per-thread rate on an idle core. On a busy
    /// machine it is the figure to compare; `mhs` shows what this run got.
    pub mhs_per_cpu_second: Option<f64>,
    /// The `sha2` two-call rate on the same number of threads, measured in this run.
    pub sha2_mhs: f64,
    /// `mhs / sha2_mhs`.
    pub ratio: f64,
    /// On the row of what `--backend auto` would run here (its path and thread count): why it
    /// picks that, e.g. `auto: sha-ni-2x (no GPU opened) — SHA-NI present, …`.
    pub auto_pick: Option<String>,
}

/// The plain `sha2` two-call rate on some threads.
#[derive(Debug, Clone, Serialize)]
pub struct Sha2Rate {
    /// Worker threads the reference ran on.
    pub threads: usize,
    /// Millions of double-SHA-256 hashes per wall-clock second.
    pub mhs: f64,
    /// Millions of hashes per CPU-second of the process; `None` off Linux.
    pub mhs_per_cpu_second: Option<f64>,
}

/// The JSON document `--json` prints.
#[derive(Debug, Serialize)]
pub struct BenchReport {
    /// The CPU model name.
    pub cpu: String,
    /// Seconds each backend was measured for (`--seconds`).
    pub seconds_per_measurement: f64,
    /// `sha2` two-call rate by thread count.
    pub sha2_reference: Vec<Sha2Rate>,
    /// One row per measured backend configuration: every CPU path per thread count, then the GPU.
    pub results: Vec<BenchRow>,
    /// Backends that could not be measured, and why.
    pub skipped: Vec<String>,
}

/// What one measurement returns: hashes, wall seconds, and CPU seconds the process used.
type Measured = (u64, f64, Option<f64>);

/// CPU time (user + system) this process has used, from `/proc/self/stat` (Linux), so a rate
/// per CPU-second can be shown next to the wall-clock rate on a busy machine.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    // Linux reports these in USER_HZ ticks, 100 per second on every architecture's ABI.
    Some((user + system) / 100.0)
}

/// Runs `search` on the whole nonce space until `seconds` have passed, ticking `progress`.
fn timed(
    seconds: f64,
    progress: &ProgressBar,
    search: impl FnOnce(&StopFlag) -> anyhow::Result<u64>,
) -> anyhow::Result<Measured> {
    let stop = StopFlag::new();
    let started = Instant::now();
    let deadline = Duration::from_secs_f64(seconds);
    let start_position = progress.position();
    let cpu_before = process_cpu_seconds();
    let hashes = std::thread::scope(|scope| {
        let stop_timer = stop.clone();
        let timer = scope.spawn(move || {
            while started.elapsed() < deadline && !stop_timer.is_stopped() {
                std::thread::sleep(Duration::from_millis(50));
                progress.set_position(start_position + started.elapsed().as_millis() as u64);
            }
            stop_timer.stop();
        });
        let result = search(&stop);
        stop.stop();
        let _ = timer.join();
        result
    })?;
    progress.set_position(start_position + (seconds * 1000.0) as u64);
    let wall = started.elapsed().as_secs_f64();
    let cpu = match (cpu_before, process_cpu_seconds()) {
        (Some(before), Some(after)) if after > before => Some(after - before),
        _ => None,
    };
    Ok((hashes, wall, cpu))
}

fn measure_backend(
    backend: &mut dyn Backend,
    seconds: f64,
    progress: &ProgressBar,
) -> anyhow::Result<Measured> {
    let job = job();
    timed(seconds, progress, |stop| {
        Ok(backend.search(&job, NonceRange::FULL, stop)?.hashes)
    })
}

fn measure_sha2(threads: usize, seconds: f64, progress: &ProgressBar) -> anyhow::Result<Measured> {
    let job = job();
    timed(seconds, progress, |stop| {
        let parts = NonceRange::FULL.split(threads);
        Ok(std::thread::scope(|scope| {
            let handles: Vec<_> = parts
                .iter()
                .map(|&part| {
                    let job = &job;
                    scope.spawn(move || reference::search(job, part, stop).hashes)
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
        }))
    })
}

fn job() -> Job {
    Job {
        header: GENESIS,
        target: Target::from_compact(CompactBits(0x1d00ffff)).unwrap_or(Target::MAX),
    }
}

fn mhs((hashes, seconds, _): Measured) -> f64 {
    hashes as f64 / seconds.max(1e-9) / 1e6
}

/// MH/s per CPU-second: what one thread does when it has a core to itself.
fn mhs_per_cpu((hashes, _, cpu): Measured) -> Option<f64> {
    cpu.map(|cpu| hashes as f64 / cpu.max(1e-9) / 1e6)
}

/// Measures every requested backend and the `sha2` reference, then prints a table or the `--json`
/// document; bad arguments or an unopenable GPU (with `--backend gpu`) are usage errors.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let (want_cpu, want_gpu) = match args.backend.trim().to_ascii_lowercase().as_str() {
        "cpu" => (true, false),
        "gpu" => (false, true),
        "all" => (true, true),
        other => {
            return Err(super::usage(format!(
                "unknown backend {other:?}: expected cpu, gpu or all"
            )));
        }
    };
    if !(args.seconds > 0.0 && args.seconds <= 3600.0) {
        return Err(super::usage(
            "--seconds must be more than 0 and at most 3600",
        ));
    }
    if args.threads == Some(0) {
        return Err(super::usage("--threads must be at least 1"));
    }
    let adapter: AdapterChoice = args.adapter.parse().unwrap_or_default();
    let mut skipped = Vec::new();

    // Open everything first so the progress bar knows how much there is to do.
    let mut gpu = None;
    // Whether the GPU that opened is a software adapter (`None`: none opened or not asked).
    let mut gpu_is_software = None;
    if want_gpu {
        match GpuBackend::open(&adapter) {
            Ok(backend) => {
                gpu_is_software = Some(backend.is_software());
                gpu = Some(CpuFallback::new(backend, args.threads));
            }
            Err(error) if !want_cpu => {
                return Err(super::usage(format!(
                    "cannot open the GPU backend: {error} (try --backend cpu)"
                )));
            }
            Err(error) => skipped.push(format!("gpu: {error}")),
        }
    }
    let thread_counts: Vec<usize> = match args.threads {
        Some(t) => vec![t],
        None if default_threads() > 1 => vec![1, default_threads()],
        None => vec![1],
    };
    let mut cpu_backends = Vec::new();
    if want_cpu {
        for &threads in &thread_counts {
            for path in CpuPath::available() {
                cpu_backends.push(CpuBackend::with_path(path, threads)?);
            }
        }
    }
    let sha2_threads: Vec<usize> = if want_cpu {
        thread_counts.clone()
    } else {
        vec![default_threads()]
    };
    let measurements = cpu_backends.len() + sha2_threads.len() + usize::from(gpu.is_some());
    let progress = if args.json || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new((measurements as f64 * args.seconds * 1000.0) as u64);
        bar.set_style(
            ProgressStyle::with_template("{spinner} bench [{bar:30}] {elapsed}/{duration} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar
    };

    let mut sha2_rates = Vec::new();
    for &threads in &sha2_threads {
        progress.set_message(format!("sha2 two-call, {threads} threads"));
        let measured = measure_sha2(threads, args.seconds, &progress)?;
        sha2_rates.push(Sha2Rate {
            threads,
            mhs: mhs(measured),
            mhs_per_cpu_second: mhs_per_cpu(measured),
        });
    }
    let sha2_for = |threads: usize| {
        sha2_rates
            .iter()
            .find(|rate| rate.threads == threads)
            .or(sha2_rates.last())
            .map_or(0.0, |rate| rate.mhs)
    };
    // The row `auto` would run: the GPU, or the best CPU path on the threads it would use.
    let (pick, mut why) = auto_pick(gpu_is_software);
    if !want_gpu {
        why.push_str("; --backend cpu did not probe the GPU, which auto takes if it is hardware");
    }
    let auto_threads = args.threads.unwrap_or_else(default_threads);
    let mut rows = Vec::new();
    let mut push_row = |backend: &dyn Backend, measured: Measured, sha2: f64| {
        let info = backend.info();
        let is_pick = match pick {
            AutoPick::Gpu => info.kind == crate::hash::BackendKind::Gpu,
            AutoPick::Cpu(path) => {
                info.kind == crate::hash::BackendKind::Cpu
                    && info.path == path.name()
                    && info.threads == auto_threads
            }
        };
        let rate = mhs(measured);
        rows.push(BenchRow {
            kind: match info.kind {
                crate::hash::BackendKind::Cpu => "cpu",
                crate::hash::BackendKind::Gpu => "gpu",
            },
            device: info.device,
            path: info.path,
            threads: info.threads,
            hashes: measured.0,
            seconds: measured.1,
            mhs: rate,
            cpu_seconds: measured.2,
            mhs_per_cpu_second: mhs_per_cpu(measured),
            sha2_mhs: sha2,
            ratio: if sha2 > 0.0 { rate / sha2 } else { 0.0 },
            auto_pick: is_pick.then(|| why.clone()),
        });
    };
    for backend in &mut cpu_backends {
        progress.set_message(format!("{}, {} threads", backend.path(), backend.threads()));
        let measured = measure_backend(backend, args.seconds, &progress)?;
        let sha2 = sha2_for(backend.threads());
        push_row(&*backend, measured, sha2);
    }
    if let Some(backend) = gpu.as_mut() {
        progress.set_message(format!("GPU {}", backend.info().device));
        let measured = measure_backend(backend, args.seconds, &progress)?;
        let sha2 = sha2_for(default_threads());
        push_row(&*backend, measured, sha2);
    }
    progress.finish_and_clear();

    let report = BenchReport {
        cpu: cpu_name(),
        seconds_per_measurement: args.seconds,
        sha2_reference: sha2_rates,
        results: rows,
        skipped,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

fn print_table(report: &BenchReport) {
    println!(
        "sha256d, {} s per measurement, CPU {}",
        report.seconds_per_measurement, report.cpu
    );
    let per_cpu = |rate: Option<f64>| rate.map_or("-".to_string(), |r| format!("{r:.2}"));
    for rate in &report.sha2_reference {
        println!(
            "sha2 two-call reference, {} thread{}: {:.2} MH/s ({} MH/s per CPU-second)",
            rate.threads,
            if rate.threads == 1 { "" } else { "s" },
            rate.mhs,
            per_cpu(rate.mhs_per_cpu_second)
        );
    }
    println!(
        "{:<4} {:<14} {:>7} {:>10} {:>10} {:>7} {:>12}  device",
        "kind", "path", "threads", "MH/s", "sha2 MH/s", "ratio", "MH/s/cpu-s"
    );
    for row in &report.results {
        println!(
            "{:<4} {:<14} {:>7} {:>10.2} {:>10.2} {:>6.2}x {:>12}  {}",
            row.kind,
            row.path,
            row.threads,
            row.mhs,
            row.sha2_mhs,
            row.ratio,
            per_cpu(row.mhs_per_cpu_second),
            row.device
        );
        if let Some(why) = &row.auto_pick {
            println!("     ^ {why}");
        }
    }
    for reason in &report.skipped {
        println!("skipped {reason}");
    }
}
