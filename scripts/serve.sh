#!/usr/bin/env bash
# Serve adsite (`make run` calls this).
#
# The web server is granian over adsite/rsgi.py: keep-alive, and each request body is read in full before a
# Python worker sees it, so clients that send a body slowly (or never) cannot hold the workers. It runs
# through adsite/ops/granian_server.py: the workers' listening sockets (one each) are held by granian's main
# process, so a worker that stops or dies loses none of its waiting connections, and new connections go only
# to the workers that are warm.
# Restarting the web role without losing requests: `supervisorctl -c var/supervisord.conf signal HUP web`
# (a graceful reload: new workers one at a time, each old one stopped once its replacement is warm, finishing
# the requests it holds; new code is loaded). `supervisorctl restart web` stops the whole server first:
# connections are refused until it is back.
#
# Embedded mode (nothing set): one web process answering ADSITE_WEB_THREADS (default 8) requests at once,
# so in-process state (feature store, counters) is coherent; nothing else runs (Celery tasks are eager).
#
# Services and scale-out modes (DATABASE_URL and REDIS_URL set; REDIS_CLUSTER=1 and CELERY_BROKER_URL for
# scale-out, docs/scaling.md): supervisord (pinned in pyproject.toml) runs each role as its
# own program and restarts it alone when it exits; the web never waits on the workers. Roles:
#   web     granian, WEB_CONCURRENCY worker processes (default 2), respawned by granian if one dies
#   worker  Celery worker (flushes the event buffer, trains, catches up features)
#   beat    Celery beat (the schedule)
# ADSITE_ROLES picks the roles this host runs (comma-separated; default web,worker,beat), e.g.
# ADSITE_ROLES=web on a web-only host, ADSITE_ROLES=worker on a worker host (ADSITE_WORKER_NAME names its
# Celery node). Beat: one sends per deployment whichever hosts run it (a PostgreSQL advisory lock,
# adsite/ops/beat.py); the others stand by and take over when it stops. The generated supervisord configuration is
# $ADSITE_VAR_DIR/supervisord.conf; `.venv/bin/supervisorctl -c var/supervisord.conf status` lists the
# programs and their pids. Ctrl-C (or SIGTERM to this script's process, which becomes supervisord) stops all.
#
# The mode is the one adsite/settings.py decides (ADSITE_MODE); REDIS_URL alone is refused there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${VENV:-.venv}/bin
PORT=${PORT:-8000}
WEB_CONCURRENCY=${WEB_CONCURRENCY:-2}
VAR=${ADSITE_VAR_DIR:-var}
MODE=$(DJANGO_SETTINGS_MODULE=adsite.settings "$PY/python" -c \
  'from django.conf import settings; print(settings.ADSITE_MODE)' 2>&1 | tail -n 1) || {
  echo "adsite: cannot start: ${MODE}" >&2
  exit 2
}
mkdir -p "$VAR"
VAR=$(cd "$VAR" && pwd)
ROLES=${ADSITE_ROLES:-web,worker,beat}
[[ "$MODE" == "embedded" ]] && ROLES=web
# A second server on a port already taken would fail to bind anyway, but only after it had emptied
# the running server's metrics directory below: refuse before touching anything (a host without the
# web role binds no port).
if [[ ",$ROLES," == *,web,* ]] && "$PY/python" -c 'import socket, sys; s = socket.socket(); s.settimeout(0.5); sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)' "$PORT"; then
  echo "adsite: port ${PORT} is already serving (another make run?); choose another with PORT=..." >&2
  exit 2
fi
# Prometheus metrics aggregated over every web process (and correct after restarts): one directory
# per port, so a second server from the same checkout never empties the first one's.
export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-${VAR}/prometheus/${PORT}}"
rm -rf "$PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
# each web worker leaves a file named by its pid here once it is warm: a graceful reload (SIGHUP to the web
# role: `supervisorctl -c var/supervisord.conf signal HUP web`) stops an old worker only once its
# replacement is ready (adsite/ops/granian_server.py)
export ADSITE_WEB_READY_DIR="${ADSITE_WEB_READY_DIR:-${VAR}/web-ready/${PORT}}"
rm -rf "$ADSITE_WEB_READY_DIR" && mkdir -p "$ADSITE_WEB_READY_DIR"
WEB=("$PWD/$PY/python" -m adsite.ops.granian_server --interface rsgi --host 127.0.0.1 --port "$PORT" --respawn-failed-workers
     --respawn-interval 1 --log-level "${ADSITE_SERVER_LOG_LEVEL:-warning}" adsite.rsgi:application)

if [[ "$MODE" == "embedded" ]]; then
  echo "adsite: embedded mode on http://127.0.0.1:${PORT}/ (SQLite in var/, in-process features, eager tasks)"
  # The in-process feature store starts empty: rebuild it from the stored events (replayed in time
  # order through the same feature code) before the first request.
  export INFERENCE_STORE_REBUILD_ON_START="${INFERENCE_STORE_REBUILD_ON_START:-1}"
  # no Celery beat here: the web process rolls the dashboard's snapshots and analytics on a thread
  export DASHBOARD_ROLLUP_THREAD="${DASHBOARD_ROLLUP_THREAD:-1}"
  export ADSITE_WEB_THREADS="${ADSITE_WEB_THREADS:-${GUNICORN_THREADS:-8}}"
  exec "${WEB[@]}" --workers 1
fi

CONF="$VAR/supervisord.conf"
program() {  # name, command: one supervisord program, logging to this script's stdout
  cat <<EOF

[program:$1]
command=$2
directory=$PWD
autostart=true
autorestart=true
startsecs=2
startretries=1000
stopasgroup=true
killasgroup=true
stopwaitsecs=20
stdout_logfile=/dev/stdout
stdout_logfile_maxbytes=0
redirect_stderr=true
EOF
}
{
  cat <<EOF
; generated by scripts/serve.sh; roles: $ROLES
[supervisord]
nodaemon=true
logfile=$VAR/supervisord.log
pidfile=$VAR/supervisord.pid
loglevel=info

[unix_http_server]
file=$VAR/supervisord.sock

[supervisorctl]
serverurl=unix://$VAR/supervisord.sock

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
EOF
  for role in ${ROLES//,/ }; do
    case "$role" in
      web) program web "${WEB[*]} --workers $WEB_CONCURRENCY" ;;
      worker) program worker "$PWD/$PY/celery -A adsite worker --loglevel=INFO --concurrency=1 --hostname ${ADSITE_WORKER_NAME:-worker}@%%h" ;;
      beat) program beat "$PWD/$PY/celery -A adsite beat --loglevel=INFO --schedule $VAR/celerybeat-schedule" ;;
      *) echo "adsite: unknown role '$role' in ADSITE_ROLES (web, worker, beat)" >&2; exit 2 ;;
    esac
  done
} > "$CONF"
echo "adsite: ${MODE} mode, roles ${ROLES}; web on http://127.0.0.1:${PORT}/ (granian x ${WEB_CONCURRENCY}); supervisord: ${CONF}"
exec "$PY/supervisord" -c "$CONF"
