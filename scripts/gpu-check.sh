#!/usr/bin/env bash
# The one script to run on a machine with a GPU: builds in release, runs the GPU tests with
# HASHGRAD_REQUIRE_GPU=1 (so a missing adapter fails instead of skipping), measures the sha256d
# rate (`hashgrad bench --backend all --json`, the criterion `gpu_search` bench and the
# `hashrate` bench's GPU group, examples/gpu_hashrate over nonces per invocation and the kernel
# variants against the sha2 reference), and prints hashes/s and hashes per SM per clock cycle
# where nvidia-smi reports the clock.
#
#   scripts/gpu-check.sh [--seconds S] [--adapter NAME|INDEX] [--quick] [--prebuilt DIR]
#   scripts/gpu-check.sh --stage DIR   # build here, copy the binaries to DIR, stop
#
# --quick skips the criterion benches and the tuning sweep (for a short device lease);
# --prebuilt runs binaries made by --stage (for a GPU machine without Rust: carry DIR there).
# Results also go to $OUT (or target/gpu-check) as gpu-check.log and gpu-check.json.
set -u -o pipefail
cd "$(dirname "$0")/.."
root=$PWD

seconds=5
adapter=auto
quick=0
prebuilt=""
stage=""
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds="$2"; shift 2 ;;
        --adapter) adapter="$2"; shift 2 ;;
        --quick) quick=1; shift ;;
        --prebuilt) prebuilt="$2"; shift 2 ;;
        --stage) stage="$2"; shift 2 ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

# HASHGRAD_PROFILE=dev checks this script quickly without a release build.
if [ "${HASHGRAD_PROFILE:-release}" = release ]; then profile=(--release); bin=target/release; else profile=(); bin=target/debug; fi

# --stage: release binaries (the CLI, the rate example, the GPU test binaries) into one folder.
if [ -n "${stage:-}" ]; then
    set -e
    mkdir -p "$stage"
    cargo build "${profile[@]}" --bins --examples
    cp "$bin/hashgrad" "$bin/examples/gpu_hashrate" "$stage/"
    cargo test "${profile[@]}" --test gpu_search --test gpu_smoke --test train_reduce_gpu --no-run --message-format=json \
        | grep -o '"executable":"[^"]*"' | cut -d'"' -f4 | while read -r exe; do
            name=$(basename "$exe"); cp "$exe" "$stage/${name%-*}"
        done
    cp "$0" "$stage/"
    # Smaller to carry (a device lease takes 64 MiB of files); debug info is not needed there.
    if command -v strip >/dev/null 2>&1; then strip --strip-debug "$stage"/hashgrad "$stage"/gpu_*; fi
    ls -l "$stage"
    exit 0
fi

out="${OUT:-$root/target/gpu-check}"
mkdir -p "$out"
log="$out/gpu-check.log"
: >"$log"
say() { echo "$@" | tee -a "$log"; }
failed=0
step() { # step NAME COMMAND...: runs and logs one step, remembers a failure
    local name="$1"; shift
    say "== $name: $*"
    if "$@" 2>&1 | tee -a "$log"; then say "== $name: ok"; else say "== $name: FAILED"; failed=1; fi
}

# --- Vulkan loader and driver (see the device notes: bare machines may lack the loader) ---
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1'; then
    if ls .gl/*.deb >/dev/null 2>&1; then
        say "no Vulkan loader installed: unpacking the carried .gl/*.deb"
        for f in .gl/*.deb; do dpkg -x "$f" /; done
        ldconfig
    else
        say "warning: no libvulkan.so.1 found; install libvulkan1 (and the GPU's Vulkan driver)"
    fi
fi
nvidia_icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f "$nvidia_icd" ]; then
    export VK_DRIVER_FILES="$nvidia_icd"
    say "VK_DRIVER_FILES=$VK_DRIVER_FILES"
fi

if [ -z "$prebuilt" ] && ! command -v cargo >/dev/null 2>&1; then
    say "cargo not found: install Rust (https://rustup.rs), or run --stage DIR where Rust is and --prebuilt DIR here"
    exit 1
fi

# --- GPU facts for the per-clock figure ---
gpu_name=""
sm_count=""
if command -v nvidia-smi >/dev/null 2>&1; then
    gpu_name=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
    sm_count=$(python3 -c 'import torch; print(torch.cuda.get_device_properties(0).multi_processor_count)' 2>/dev/null || true)
    if [ -z "$sm_count" ]; then
        case "$gpu_name" in # SMs by product, where PyTorch is not there to ask
            *H200*|*"H100 80GB HBM3"*|*"H100 SXM"*) sm_count=132 ;;
            *"H100 PCIe"*|*"H100 NVL"*) sm_count=114 ;;
            *A100*) sm_count=108 ;;
            *L40S*|*"L40"*) sm_count=142 ;;
            *"RTX 4090"*) sm_count=128 ;;
        esac
    fi
    say "GPU: $gpu_name, SMs: ${sm_count:-unknown}"
fi
clock_log="$out/sm-clock.txt"
: >"$clock_log"
start_clock_sampler() {
    if command -v nvidia-smi >/dev/null 2>&1; then
        (while true; do
            nvidia-smi --query-gpu=clocks.sm,utilization.gpu --format=csv,noheader,nounits >>"$clock_log" 2>/dev/null
            sleep 0.5
        done) &
        sampler=$!
    fi
}
stop_clock_sampler() { [ -n "${sampler:-}" ] && kill "$sampler" 2>/dev/null; sampler=""; }

# --- build and test ---
if [ -n "$prebuilt" ]; then
    bin="$prebuilt"
    example="$bin/gpu_hashrate"
    for t in gpu_search gpu_smoke train_reduce_gpu; do step "gpu-tests-$t" env HASHGRAD_REQUIRE_GPU=1 "$bin/$t"; done
else
    example="$bin/examples/gpu_hashrate"
    step build cargo build "${profile[@]}" --bins --examples
    step gpu-tests env HASHGRAD_REQUIRE_GPU=1 cargo test "${profile[@]}" --test gpu_search --test gpu_smoke --test train_reduce_gpu
fi
step adapters "$bin/hashgrad" adapters

# --- measure ---
start_clock_sampler
adapter_args=()
[ "$adapter" = auto ] || adapter_args=(--adapter "$adapter")
step bench "$bin/hashgrad" bench --backend all --json --seconds "$seconds" "${adapter_args[@]}"
npi=64
maj=select
loads=locals
[ "$quick" = 1 ] || { npi=32,64,128,256,512; maj=select,shared-xor; loads=locals,inline; }
rate_json="$out/gpu-rate.json"
step gpu-hashrate "$example" --seconds "$seconds" --adapter "$adapter" --npi "$npi" --maj "$maj" --job-loads "$loads"
grep '"reference_hashes_per_second"' "$log" | tail -1 >"$rate_json"
stop_clock_sampler
if [ "$quick" = 0 ] && [ -z "$prebuilt" ]; then
    step criterion-gpu cargo bench --bench gpu_search
    if [ -f benches/hashrate.rs ]; then step criterion-hashrate cargo bench --bench hashrate -- gpu; fi
    # Gradient reduction vs the device's copy rate, K in {4,16,64}, N in {1M, 32M} floats.
    step criterion-reduce env HASHGRAD_BENCH_BIG=1 cargo bench --bench reduce -- /gpu/
fi

# --- summary: hashes/s and hashes per SM per clock cycle ---
python3 - "$rate_json" "$clock_log" "${sm_count:-0}" "$gpu_name" "$out/gpu-check.json" <<'EOF' | tee -a "$log"
import json, statistics, sys
rate_path, clock_path, sms, name, out_path = sys.argv[1], sys.argv[2], int(sys.argv[3] or 0), sys.argv[4], sys.argv[5]
try:
    rates = json.load(open(rate_path))
except Exception as e:
    print(f"no GPU rate measured ({e})"); sys.exit(0)
clocks = []
for line in open(clock_path):
    parts = [p.strip() for p in line.split(",")]
    if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit() and int(parts[1]) >= 90:
        clocks.append(int(parts[0]))  # samples with the GPU busy
mhz = statistics.median(clocks) if clocks else None
base = rates["reference_hashes_per_second"]
summary = {"adapter": rates["adapter"], "gpu": name, "sms": sms or None, "sm_clock_mhz": mhz, "rows": []}
print(f"adapter {rates['adapter']}; sha2 reference (1 thread) {base/1e6:.2f} MH/s")
for row in rates["gpu"]:
    hs = row["hashes_per_second"]
    line = f"{row.get('variant', '?'):>17}, nonces/invocation {row['nonces_per_invocation']:>4}: {hs/1e9:.3f} GH/s ({hs/base:.1f}x reference)"
    per_clock = None
    if sms and mhz:
        per_clock = hs / (sms * mhz * 1e6)
        line += f", {per_clock:.4g} hashes per SM per cycle at {mhz:.0f} MHz x {sms} SMs"
    print(line)
    summary["rows"].append({**row, "hashes_per_sm_cycle": per_clock})
best = max(r["hashes_per_second"] for r in rates["gpu"])
print(f"best {best/1e9:.3f} GH/s; goal on an H100/H200: >= 7.3 GH/s")
json.dump(summary, open(out_path, "w"), indent=1)
EOF

if [ "$failed" = 1 ]; then say "gpu-check: some steps FAILED (see $log)"; exit 1; fi
say "gpu-check: all steps passed; results in $out"
