#!/usr/bin/env bash
# Runs every test of the workspace: unit, property and integration tests (real HTTP between
# real processes on 127.0.0.1), including the cases that compare Miroir against real
# Meilisearch nodes. Those use MEILI_BIN when set, else ../shared/meilisearch/meilisearch (an
# unmodified Meilisearch CE 1.50 beside the repository) when present; with neither they are
# skipped and say so.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

if [ -z "${MEILI_BIN:-}" ] && [ -x ../shared/meilisearch/meilisearch ]; then
  MEILI_BIN="$(cd ../shared/meilisearch && pwd)/meilisearch"
  export MEILI_BIN
fi
if [ -n "${MEILI_BIN:-}" ]; then
  echo "test: real-node cases run against $MEILI_BIN ($("$MEILI_BIN" --version 2>/dev/null || echo 'version unknown'))" >&2
else
  echo "test: no Meilisearch binary; real-node cases are skipped" >&2
fi

cargo build --workspace --all-targets
cargo test --workspace --no-fail-fast "$@"
