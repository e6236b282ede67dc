#!/usr/bin/env bash
# The scale-out topology rehearsed on this machine (docs/scaling.md, "The rehearsal"):
#
#   scripts/rehearse.sh start            Redis Cluster (3 masters + 3 replicas), a database and a RabbitMQ virtual
#                                        host of its own, web-a and web-b (2 granian workers each, two ports),
#                                        worker-1 and worker-2 (Celery), beat; then a first model trained by a worker
#                                        (--no-train after start: none, the prior serves)
#   scripts/rehearse.sh status           the cluster's nodes, each host, each web host's /readyz (exit 1 unless all run)
#   scripts/rehearse.sh manage ARGS...   manage.py ARGS against the rehearsal (e.g. `manage ledger --json`)
#   scripts/rehearse.sh ratio            events/s and decisions/s with 2 web hosts against 1 (rounds interleaved)
#   scripts/rehearse.sh stop             stop every host and the cluster; drop the virtual host and the database
#
# --dir DIR (before the action; default var/rehearsal) holds its state, logs and models. REHEARSAL_NAME (database
# and virtual host, default adsite_rehearsal), REHEARSAL_REDIS_PORT (default 7100) and REHEARSAL_POSTGRES
# (default postgres://postgres@127.0.0.1:5432) choose where it lives. The machine's own services are used,
# never stopped or reconfigured. The work is done by benchmarks/rehearsal.py.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${VENV:-.venv}/bin/python" -m benchmarks.rehearsal "$@"
