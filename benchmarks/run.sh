#!/usr/bin/env bash
# The command behind docs/benchmarks.md: every backend and precision, in one run, with the
# seed's way (torch eager, no_grad, 256x256) measured before and after as the baseline.
# Synthetic weights (official layout): latency and memory do not depend on the values.
# Extra arguments go to the bench: e.g. `--peers --model depth_anything_v2_small` adds the peers
# (torch eager, the original code's way; Hugging Face transformers: needs depthlite[peers]).
set -euo pipefail
cd "$(dirname "$0")/.."
depthlite bench --synthetic --repeats "${REPEATS:-40}" \
  --json docs/bench.json --plot docs/bench.png "$@"
