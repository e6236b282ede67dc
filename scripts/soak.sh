#!/usr/bin/env bash
# The soak (not in CI): mixed traffic for MINUTES against a Redis, PostgreSQL and site of its own
# (never the machine's services), sampling memory, connections and table size each minute.
#   scripts/soak.sh 30 [var/soak/last-run.json] [--chart docs/soak.png]
# Figures and how to read them: docs/reliability.md.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $# -lt 1 ]]; then
  echo "usage: scripts/soak.sh MINUTES [OUT.json] [--chart PNG]; scripts/soak.sh chart RUN.json PNG" >&2
  exit 2
fi
exec "${VENV:-.venv}/bin/python" -m benchmarks.soak "$@"
