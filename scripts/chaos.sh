#!/usr/bin/env bash
# Chaos suite (issue 7), real processes, faults injected; prints the figures table of
# docs/reliability.md. `scripts/chaos.sh` = the short (CI-sized) run; `scripts/chaos.sh long
# [ROUNDS]` = the long run (default 50 rounds, 5-minute broker outage). The tmpfs scenarios
# need root (they skip with the reason otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
if [ "${1:-short}" = "long" ]; then
  exec "$PY" -m tests.chaos.run_long --rounds "${2:-${CHAOS_ROUNDS:-50}}"
fi
exec "$PY" -m tests.chaos.run_long --short
