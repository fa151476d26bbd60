#!/usr/bin/env bash
# Two Miroirs sharing one Redis against one Miroir (README "Several Miroirs"): ingest and
# search throughput and latency over three simulated nodes, everything on this machine.
# The load generator splits its connections evenly over the Miroirs of a configuration.
#
#   bench/two_miroirs.sh
#
# Configurations: one Miroir with the embedded store; one Miroir with Redis; two Miroirs with
# Redis. Redis runs with AOF `appendfsync always`. Release binaries from target/release/
# (cargo build --release -p miroir -p meili-sim -p miroir-loadtest); redis-server on PATH.
# Environment: SECONDS_EACH (8), CONNECTIONS (8, split over the Miroirs), WORK
# (/tmp/miroir-two), BASE_PORT (7950), MIROIR_BIN (another Miroir build to measure).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/target/release
# Another build of Miroir to compare (the nodes and the load generator stay these).
MIROIR_BIN=${MIROIR_BIN:-$BIN/miroir}
SECONDS_EACH=${SECONDS_EACH:-8}
CONNECTIONS=${CONNECTIONS:-8}
WORK=${WORK:-/tmp/miroir-two}
BASE_PORT=${BASE_PORT:-7950}
KEY=masterKey
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

rm -rf "$WORK" && mkdir -p "$WORK"
NODES=()
for i in 0 1 2; do
    port=$((BASE_PORT + i))
    "$BIN/meili-sim" --port "$port" --master-key "$KEY" --seed $((i + 1)) >"$WORK/sim$i.log" 2>&1 &
    PIDS+=($!)
    NODES+=("http://127.0.0.1:$port")
done

wait_http() {
    for _ in $(seq 200); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" != 000 ] && return 0
        sleep 0.05
    done
    echo "no answer from $1" >&2
    exit 1
}

# Starts Miroir on port $1 with task-store section $2.
miroir() {
    local port=$1 store=$2 dir=$WORK/miroir-$1
    mkdir -p "$dir"
    {
        echo "shards = 8"
        echo "replication_factor = 2"
        echo "master_key = \"$KEY\""
        echo "data_dir = \"$dir/data\""
        echo "[server]"
        echo "port = $port"
        echo "[metrics]"
        echo "enabled = false"
        echo "$store"
        for i in 0 1 2; do
            echo "[[nodes]]"
            echo "id = \"n$i\""
            echo "address = \"${NODES[$i]}\""
        done
    } >"$dir/miroir.toml"
    "$MIROIR_BIN" --config "$dir/miroir.toml" >"$dir/miroir.log" 2>&1 &
    PIDS+=($!)
    wait_http "http://127.0.0.1:$port/health"
}

for i in 0 1 2; do wait_http "${NODES[$i]}/health"; done
REDIS_PORT=$((BASE_PORT + 10))
mkdir -p "$WORK/redis"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK/redis" --save '' \
    --appendonly yes --appendfsync always >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done
REDIS="[task_store]
backend = \"redis\"
url = \"redis://127.0.0.1:$REDIS_PORT/0\""
EMBEDDED=$((BASE_PORT + 20)) A=$((BASE_PORT + 21)) B=$((BASE_PORT + 22))
miroir "$EMBEDDED" ''
miroir "$A" "$REDIS"
miroir "$B" "$REDIS"

DOCS=$(python3 -c 'import json; print(json.dumps([{"id": i, "title": "film %d" % i, "genre": ["drama","comedy","crime"][i % 3]} for i in range(100)]))')
SEARCH='{"q":"film","limit":10}'

# Loads every port of $2 (space-separated) at once with $1 (ingest|search); prints the summed
# throughput and each Miroir's line.
measure() {
    local kind=$1 ports=($2) n=${#ports[@]} outs=() loads=()
    local per=$((CONNECTIONS / n))
    for port in "${ports[@]}"; do
        out=$WORK/$kind-$port-$n.txt
        outs+=("$out")
        if [ "$kind" = ingest ]; then
            "$BIN/miroir-loadtest" run --target "127.0.0.1:$port" --key "$KEY" --method POST \
                --path /indexes/bench/documents --body "$DOCS" \
                --connections "$per" --seconds "$SECONDS_EACH" >"$out" &
        else
            "$BIN/miroir-loadtest" run --target "127.0.0.1:$port" --key "$KEY" --method POST \
                --path /indexes/bench/search --body "$SEARCH" \
                --connections "$per" --seconds "$SECONDS_EACH" >"$out" &
        fi
        loads+=($!)
    done
    for pid in "${loads[@]}"; do wait "$pid"; done
    local total=0
    for out in "${outs[@]}"; do
        rps=$(tail -1 "$out" | awk '{print $2}')
        total=$(python3 -c "print(round($total + $rps))")
    done
    echo "$kind, $n Miroir(s) ($3): $total req/s in all"
    for out in "${outs[@]}"; do echo "    $(tail -1 "$out")"; done
}

# Seed the index once so searches find documents.
curl -s -X POST "http://127.0.0.1:$A/indexes/bench/documents" -H "Authorization: Bearer $KEY" \
    -H 'Content-Type: application/json' --data "$DOCS" >/dev/null
sleep 2
for kind in ingest search; do
    measure "$kind" "$EMBEDDED" "embedded store"
    measure "$kind" "$A" "Redis"
    measure "$kind" "$A $B" "Redis"
done
