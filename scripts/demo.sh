#!/usr/bin/env bash
# Builds Miroir (release) and starts it: by default `miroir demo`, Miroir on 127.0.0.1:7700
# in front of three embedded simulated Meilisearch nodes. Any arguments are passed to the
# binary instead, e.g. `scripts/demo.sh --config conf/examples/miroir.toml`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

cargo build --release -p miroir
if [ $# -eq 0 ]; then
  exec target/release/miroir demo
fi
exec target/release/miroir "$@"
