#!/usr/bin/env bash
# start_istore.sh PORT [DATA_DIR]: istore under gunicorn (2 workers) for benchmarks, serving
# file:// sources from /tmp/anchors/img (../shared/bench/setup.sh makes the images) and
# registering the benchmark keys /bench/file:///tmp/anchors/img/<image>.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${1:?port}
DATA=${2:-$(mktemp -d /tmp/istore-bench-XXXX)}
export DJANGO_DEBUG=false SECRET_KEY=bench-$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
export ISTORE_DATA_DIR=$DATA ISTORE_FILE_ROOTS=/tmp/anchors/img ISTORE_ALLOW_ANONYMOUS_WRITES=true
export ISTORE_ACCESS_LOG=${ISTORE_ACCESS_LOG-/dev/null}
.venv/bin/python manage.py migrate -v0
.venv/bin/gunicorn istore_site.wsgi -c gunicorn.conf.py -w "${WORKERS:-2}" --bind 127.0.0.1:"$PORT" \
  --pid "$DATA/gunicorn.pid" --daemon
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/_health" >/dev/null && break; sleep 0.1; done
for img in /tmp/anchors/img/*.jpg; do
  curl -sf -XPOST "http://127.0.0.1:$PORT/bench/file://$img" -d 'metadata={"bench": true}' >/dev/null
done
echo "istore on 127.0.0.1:$PORT (data $DATA, pid $(cat "$DATA/gunicorn.pid"))"
