#!/usr/bin/env bash
# What the Redis task store adds to a write (README "Several Miroirs"): p50/p99 of a small
# document addition through Miroir over three simulated nodes, with the embedded store and with
# Redis (AOF `appendfsync always`, then `everysec`), one connection and then eight.
#
#   bench/task_store_latency.sh
#
# Release binaries from target/release/ (cargo build --release -p miroir -p meili-sim
# -p miroir-loadtest); redis-server on PATH. Environment: SECONDS_EACH (10), WORK
# (/tmp/miroir-store-latency), BASE_PORT (7850), MIROIR_BIN (another Miroir build to measure).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/target/release
# Another build of Miroir to compare (the nodes and the load generator stay these).
MIROIR_BIN=${MIROIR_BIN:-$BIN/miroir}
SECONDS_EACH=${SECONDS_EACH:-10}
WORK=${WORK:-/tmp/miroir-store-latency}
BASE_PORT=${BASE_PORT:-7850}
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
        # Any answer: Miroir's /health is 503 until it has seen the nodes.
        [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" != 000 ] && return 0
        sleep 0.05
    done
    echo "no answer from $1" >&2
    exit 1
}

# Starts Miroir on port $1 with task-store section $2; prints nothing.
miroir() {
    local port=$1 store=$2 dir=$WORK/miroir-$1
    mkdir -p "$dir"
    {
        echo "shards = 8"
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

redis() {
    local port=$1 fsync=$2
    mkdir -p "$WORK/redis-$port"
    redis-server --port "$port" --bind 127.0.0.1 --dir "$WORK/redis-$port" --save '' \
        --appendonly yes --appendfsync "$fsync" >"$WORK/redis-$port.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do
        redis-cli -p "$port" ping >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "redis on $port did not start" >&2
    exit 1
}

for i in 0 1 2; do wait_http "${NODES[$i]}/health"; done
redis $((BASE_PORT + 10)) always
redis $((BASE_PORT + 11)) everysec
miroir $((BASE_PORT + 20)) ''
miroir $((BASE_PORT + 21)) "[task_store]
backend = \"redis\"
url = \"redis://127.0.0.1:$((BASE_PORT + 10))/0\""
miroir $((BASE_PORT + 22)) "[task_store]
backend = \"redis\"
url = \"redis://127.0.0.1:$((BASE_PORT + 11))/0\""

BODY='[{"id":1,"title":"a film"},{"id":2,"title":"another film"}]'
for connections in 1 8; do
    for target in "embedded $((BASE_PORT + 20))" "redis-always $((BASE_PORT + 21))" \
        "redis-everysec $((BASE_PORT + 22))"; do
        set -- $target
        line=$("$BIN/miroir-loadtest" run --target "127.0.0.1:$2" --key "$KEY" --method POST \
            --path /indexes/bench/documents --body "$BODY" \
            --connections "$connections" --seconds "$SECONDS_EACH" | tail -1)
        echo "$1, $connections connection(s): $line"
    done
done
