#!/usr/bin/env bash
# Serve adsite. Embedded mode (nothing set): one gunicorn process with threads, so in-process state
# (feature store, counters) is coherent. Services mode (DATABASE_URL and REDIS_URL set): gunicorn with
# WEB_CONCURRENCY workers plus a Celery worker and beat; Ctrl-C stops all of them together.
# The mode is the one adsite/settings.py decides (ADSITE_MODE); REDIS_URL alone is refused there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${VENV:-.venv}/bin
PORT=${PORT:-8000}
MODE=$(DJANGO_SETTINGS_MODULE=adsite.settings "$PY/python" -c \
  'from django.conf import settings; print(settings.ADSITE_MODE)' 2>&1 | tail -n 1) || {
  echo "adsite: cannot start: ${MODE}" >&2
  exit 2
}
BIND="127.0.0.1:${PORT}"
# Prometheus metrics aggregated over every worker process (and correct after restarts).
export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-${ADSITE_VAR_DIR:-var}/prometheus}"
rm -rf "$PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
GUNICORN=("$PY/gunicorn" adsite.wsgi --bind "$BIND" --config scripts/gunicorn.conf.py --access-logfile -)

if [[ "$MODE" == "services" ]]; then
  echo "adsite: services mode on http://${BIND}/ (gunicorn x ${WEB_CONCURRENCY:-2}, celery worker, beat)"
  pids=()
  cleanup() {
    trap - INT TERM EXIT
    kill "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  }
  trap cleanup INT TERM EXIT
  "$PY/celery" -A adsite worker --loglevel=INFO --concurrency=1 & pids+=($!)
  "$PY/celery" -A adsite beat --loglevel=INFO --schedule "${ADSITE_VAR_DIR:-var}/celerybeat-schedule" & pids+=($!)
  "${GUNICORN[@]}" --workers "${WEB_CONCURRENCY:-2}" & pids+=($!)
  # Stop everything as soon as any one of them exits.
  wait -n "${pids[@]}"
else
  echo "adsite: embedded mode on http://${BIND}/ (SQLite in var/, in-process features, eager tasks)"
  # The in-process feature store starts empty: rebuild it from the stored events (replayed in time
  # order through the same feature code) before the first request.
  export INFERENCE_STORE_REBUILD_ON_START="${INFERENCE_STORE_REBUILD_ON_START:-1}"
  exec "${GUNICORN[@]}" --workers 1 --threads "${GUNICORN_THREADS:-8}"
fi
