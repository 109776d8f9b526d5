#!/usr/bin/env bash
# A testnet across N Linux network namespaces on one host: each node has its own network
# stack, one veth pair into a bridge and one private IP (10.77.0.I+1/24) that this script
# creates; nothing listens on loopback (lo stays down in every namespace). Every node runs from
# configs/testnet-multi.toml with its own addresses, peers, pinned fingerprints and training
# voters filled in. Succeeds when every node reaches BLOCKS blocks on one tip with all peers
# connected and has committed a training round (the Raft-elected leader reached the others).
#
# usage: sudo scripts/netns-testnet.sh [NODES=3] [BLOCKS=5] [TIMEOUT_SECS=60]
# env:   HASHGRAD=path/to/hashgrad (default: target/release/hashgrad, else target/debug)
#        KEEP=1 keeps the work dir (configs, data, logs)
# Exit codes: 0 agreed, 1 did not converge, 2 bad usage, 77 namespaces cannot be made here.
set -euo pipefail
cd "$(dirname "$0")/.."

nodes=${1:-3}
blocks=${2:-5}
timeout=${3:-60}
if ! [[ $nodes =~ ^[0-9]+$ ]] || ((nodes < 1 || nodes > 16)); then
  echo "NODES must be 1-16" >&2
  exit 2
fi
bin=${HASHGRAD:-}
if [[ -z $bin ]]; then
  for candidate in target/release/hashgrad target/debug/hashgrad; do
    [[ -x $candidate ]] && bin=$candidate && break
  done
fi
[[ -n $bin && -x $bin ]] || { echo "no hashgrad binary; build it or set HASHGRAD" >&2; exit 2; }
bin=$(realpath "$bin")
template=$(realpath configs/testnet-multi.toml)

tag="hg$$"
bridge="${tag}br"
work=$(mktemp -d)
pids=()
namespaces=()

cleanup() {
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  for ns in "${namespaces[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  ip link del "$bridge" 2>/dev/null || true
  if [[ ${KEEP:-0} == 1 ]]; then echo "work dir kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

if [[ $(id -u) != 0 ]] || ! ip link add "$bridge" type bridge 2>/dev/null; then
  echo "skip: cannot create network namespaces and a bridge here (needs root and CAP_NET_ADMIN)" >&2
  exit 77
fi
ip link set "$bridge" up

ip_of() { echo "10.77.0.$(($1 + 1))"; }

for ((i = 0; i < nodes; i++)); do
  ns="${tag}n$i"
  ip netns add "$ns"
  namespaces+=("$ns")
  ip link add "${tag}h$i" type veth peer name "${tag}p$i"
  ip link set "${tag}p$i" netns "$ns"
  ip link set "${tag}h$i" master "$bridge" up
  ip -n "$ns" link set "${tag}p$i" name eth0
  ip -n "$ns" addr add "$(ip_of "$i")/24" dev eth0
  ip -n "$ns" link set eth0 up
done

# Keys first: a node started with stdin closed creates its key, prints its id and exits.
ids=()
for ((i = 0; i < nodes; i++)); do
  line=$(ip netns exec "${tag}n$i" "$bin" node --network regtest --data-dir "$work/n$i" \
    --listen "$(ip_of "$i"):0" --no-mine --stop-on-stdin-eof </dev/null 2>>"$work/n$i.log")
  id=$(sed -n 's/.* id=\([0-9a-f]\{64\}\).*/\1/p' <<<"$line")
  [[ -n $id ]] || { echo "n$i printed no id: $line" >&2; exit 1; }
  ids+=("$id")
done

pinned=$(printf '"%s", ' "${ids[@]}")
for ((i = 0; i < nodes; i++)); do
  peers=""
  for ((j = 0; j < nodes; j++)); do
    ((j == i)) || peers+="\"${ids[j]}@$(ip_of "$j"):7100\", "
  done
  sed -e "s|^data_dir = .*|data_dir = \"$work/n$i\"|" \
    -e "s|^listen = \"10.77.0.1:7100\"|listen = \"$(ip_of "$i"):7100\"|" \
    -e "s|^listen = \"10.77.0.1:7180\"|listen = \"$(ip_of "$i"):7180\"|" \
    -e "s|^peers = .*|peers = [${peers%, }]|" \
    -e "s|^pinned = .*|pinned = [${pinned%, }]|" \
    -e "s|^voters = .*|voters = [${pinned%, }]|" \
    -e "s|^pace_ms = .*|pace_ms = 300|" \
    "$template" >"$work/n$i.toml"
  ip netns exec "${tag}n$i" "$bin" node --config "$work/n$i.toml" \
    </dev/null >>"$work/n$i.log" 2>&1 &
  pids+=($!)
done

status() { # NODE -> the /status JSON, fetched from the next node's namespace over the bridge
  # (a namespace reaches its own IP only through lo, which stays down)
  local from=$((($1 + 1) % nodes))
  ((nodes > 1)) || ip -n "${tag}n0" link set lo up
  ip netns exec "${tag}n$from" curl -s --max-time 2 "http://$(ip_of "$1"):7180/status" || true
}
field() { sed -n "s/.*\"$1\":\"\{0,1\}\([0-9a-f]*\).*/\1/p" <<<"$2"; }

echo "netns testnet: $nodes nodes in namespaces ${tag}n0..$((nodes - 1)), IPs $(ip_of 0)..$(ip_of $((nodes - 1)))"
deadline=$((SECONDS + timeout))
while ((SECONDS < deadline)); do
  sleep 1
  tips=() heights=() rounds=() ok=1
  for ((i = 0; i < nodes; i++)); do
    json=$(status "$i")
    height=$(field height "$json")
    tip=$(field tip "$json")
    peers=$( (grep -o "\"outbound\"" <<<"$json" || true) | wc -l)
    round=$(field round "$json")
    heights+=("${height:-?}")
    tips+=("${tip:-?}")
    rounds+=("${round:-?}")
    [[ -n $height && -n $round ]] && ((height >= blocks && peers == nodes - 1 && round >= 1)) || ok=0
  done
  echo "  heights ${heights[*]}, training rounds ${rounds[*]}"
  if ((ok)) && [[ $(printf '%s\n' "${tips[@]}" | sort -u | wc -l) == 1 ]]; then
    echo "netns testnet: all $nodes nodes agree on tip ${tips[0]:0:16}… at height ${heights[0]}, each with $((nodes - 1)) peers, training at rounds ${rounds[*]}"
    exit 0
  fi
  for ((i = 0; i < nodes; i++)); do
    kill -0 "${pids[i]}" 2>/dev/null || { echo "n$i exited; log:" >&2; tail -5 "$work/n$i.log" >&2; exit 1; }
  done
done
echo "netns testnet: no agreement within ${timeout} s (heights ${heights[*]})" >&2
for ((i = 0; i < nodes; i++)); do tail -3 "$work/n$i.log" >&2; done
exit 1
