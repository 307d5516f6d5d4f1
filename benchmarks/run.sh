#!/usr/bin/env bash
# The command behind docs/benchmarks.md: every backend and precision, in one run, with the
# seed's way (torch eager, no_grad, 256x256) measured before and after as the baseline.
# Synthetic weights (official layout): latency and memory do not depend on the values.
set -euo pipefail
cd "$(dirname "$0")/.."
depthlite bench --synthetic --repeats "${REPEATS:-40}" \
  --json docs/bench.json --plot docs/bench.png "$@"
