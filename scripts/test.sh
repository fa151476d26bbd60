#!/usr/bin/env bash
# Runs every test of the workspace: unit, property and integration tests (real HTTP between
# real processes on 127.0.0.1). Set MEILI_BIN=/path/to/meilisearch to also run the cases
# that compare against real Meilisearch nodes; without it they are skipped, saying so.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

cargo build --workspace --all-targets
cargo test --workspace --no-fail-fast "$@"
