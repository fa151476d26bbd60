#!/usr/bin/env bash
# Builds Miroir (release) and starts it: by default `miroir-demo`, Miroir on 127.0.0.1:7700 in
# front of three embedded simulated Meilisearch nodes (a test double; a binary of its own so the
# production `miroir` binary carries no simulator). Any arguments are passed to the `miroir`
# binary instead, e.g. `scripts/demo.sh --config conf/examples/miroir.toml`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

if [ $# -eq 0 ]; then
  cargo build --release -p miroir-demo
  exec target/release/miroir-demo
fi
cargo build --release -p miroir
exec target/release/miroir "$@"
