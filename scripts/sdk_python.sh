#!/usr/bin/env bash
# Runs the official Meilisearch Python SDK's own test suite against Miroir over 3 real
# Meilisearch nodes, then against one real node, with the same master key, and prints both
# pass counts. The SDK is not part of this repository: pass a checkout of
# meilisearch-python (tag v0.43.0, the PyPI `meilisearch` 0.43.0 release) with a Python
# environment that has pytest and the SDK's dependencies.
#
#   scripts/sdk_python.sh /path/to/meilisearch-python [/path/to/python]
#
# MEILI_BIN (default ../shared/meilisearch/meilisearch) and MIROIR_BIN (default
# target/debug/miroir) name the binaries. SDK_TASK_TIMEOUT_MS, when set, raises the SDK's
# 5 s wait for tasks to at least that (on a loaded machine tasks of 3 nodes plus Miroir
# take longer, and the suite then measures the machine rather than the answers).
# SDK_TESTS (default `tests`) names the test files or directories to run.
# Every process started here is stopped on exit.
set -euo pipefail

sdk=${1:?usage: $0 /path/to/meilisearch-python [python]}
python=${2:-python3}
root=$(cd "$(dirname "$0")/.." && pwd)
meili=${MEILI_BIN:-$root/../shared/meilisearch/meilisearch}
miroir=${MIROIR_BIN:-$root/target/debug/miroir}
key=masterKey
work=$(mktemp -d /tmp/miroir-sdk-python.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_up() {
    for _ in $(seq 1 200); do
        curl -fs "$1/health" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "no answer from $1" >&2
    return 1
}

# Starts a node and sets `url` (not echoed: a command substitution would run it in a
# subshell, and the exit trap would not know its pid).
start_node() {
    local name=$1 port
    port=$(free_port)
    "$meili" --db-path "$work/$name/data" --dump-dir "$work/$name/dumps" \
        --snapshot-dir "$work/$name/snapshots" --http-addr "127.0.0.1:$port" \
        --master-key "$key" --no-analytics >"$work/$name.log" 2>&1 &
    pids+=($!)
    url="http://127.0.0.1:$port"
    wait_up "$url"
}

# A pytest plugin (not SDK code) that lengthens the SDK's task waits when asked.
cat >"$work/sdk_task_timeout.py" <<'PY'
import os

_least = int(os.environ.get("SDK_TASK_TIMEOUT_MS", "0"))
if _least:
    import meilisearch.task as _task

    _wait = _task.TaskHandler.wait_for_task

    def _longer(self, uid, timeout_in_ms=5000, interval_in_ms=50):
        return _wait(self, uid, max(timeout_in_ms, _least), interval_in_ms)

    _task.TaskHandler.wait_for_task = _longer
PY

run_suite() {
    local url=$1 label=$2
    echo "== $label ($url)"
    (cd "$sdk" && PYTHONPATH="$work${PYTHONPATH:+:$PYTHONPATH}" MEILISEARCH_URL=$url \
        "$python" -m pytest -q -p no:cacheprovider -p sdk_task_timeout -o addopts="" ${SDK_TESTS:-tests} \
        >"$work/$label.txt" 2>&1) || true
    tail -n 1 "$work/$label.txt"
    grep -E '^(FAILED|ERROR) ' "$work/$label.txt" | sed 's/ - .*//' | sort >"$work/$label.failed" || true
}

mkdir -p "$work"
nodes=()
for i in 0 1 2; do
    start_node "n$i"
    nodes+=("$url")
done
port=$(free_port)
{
    echo "shards = 8"
    echo "master_key = \"$key\""
    echo "data_dir = \"$work/miroir\""
    printf '\n[server]\nport = %s\n\n[metrics]\nenabled = false\n\n' "$port"
    for i in 0 1 2; do
        printf '[[nodes]]\nid = "n%s"\naddress = "%s"\n\n' "$i" "${nodes[$i]}"
    done
} >"$work/miroir.toml"
"$miroir" --config "$work/miroir.toml" >"$work/miroir.log" 2>&1 &
pids+=($!)
wait_up "http://127.0.0.1:$port"
run_suite "http://127.0.0.1:$port" miroir

start_node single
run_suite "$url" single

echo "== failing through Miroir, passing on one node"
comm -23 "$work/miroir.failed" "$work/single.failed"
out=${SDK_OUT:-/tmp}
cp "$work/miroir.txt" "$out/miroir.txt"
cp "$work/single.txt" "$out/single.txt"
echo "(full outputs: $out/miroir.txt, $out/single.txt)"
