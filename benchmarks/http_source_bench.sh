#!/usr/bin/env bash
# http_source_bench.sh: istore with an http source against thumbor 7.8 with its HTTP loader and
# result storage, both fetching the 1920x1080 JPEG from one local nginx origin, side by side in one
# run (wrk -t2 -c8, rounds interleaved: thumbor, istore, thumbor, istore, ...):
#
#   cached      the same resize (w=320) again and again: thumbor's result storage, istore's replay
#   cold        every request a URL never asked before (first fetch: origin, decode, resize, store)
#   source      istore alone: the cached http source unprocessed against a cached file source
#   auto        istore alone: format=auto answering WebP against the plain cached resize
#
# usage: benchmarks/http_source_bench.sh [cached] [cold] [source] [auto]   (default: all four)
# env:   WRK_D WARM_D RUNS (../shared/bench/lib.sh defaults: 20s 5s 3), WORKERS (istore, 2),
#        COLD_BLOCK (distinct URLs set aside per cold run, 12000),
#        SYNC=1 (istore on gunicorn's sync workers, one request at a time per process, instead of
#        its threaded worker); ISTORE_* settings pass through to istore
# needs: ../shared/bench/setup.sh done (thumbor venv, images in /tmp/anchors/img), wrk, nginx.
# Scratch in /tmp/istore-proxy-bench (origin files, logs, pid files); every server it starts is
# stopped by its recorded PID at exit.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=$ROOT/../shared/bench
[ -f "$BENCH/lib.sh" ] || BENCH=/work/shared/bench
source "$BENCH/lib.sh"
S=/tmp/istore-proxy-bench
RUN=$S/run
mkdir -p "$RUN" "$S/logs"
PARTS=${*:-cached cold source auto}
COLD_BLOCK=${COLD_BLOCK:-12000}
COLD_BLOCKS=$((RUNS + 1))  # the warm-up and each run get a block of their own

stop_all() { local f; for f in "$RUN"/*.pid; do [ -e "$f" ] && stop_pidfile "$f"; done; return 0; }
trap stop_all EXIT

# -- the origin: nginx serving the photo, and COLD_BLOCK x COLD_BLOCKS distinct names for it --------
ORIGIN_DIR=$S/origin
if [ ! -d "$ORIGIN_DIR/c" ] || [ "$(ls "$ORIGIN_DIR/c" | wc -l)" -lt $((COLD_BLOCK * COLD_BLOCKS)) ]; then
  rm -rf "$ORIGIN_DIR"; mkdir -p "$ORIGIN_DIR/c"
  cp "$IMG/photo_1920x1080.jpg" "$IMG/photo_1920x1080_w320.jpg" "$ORIGIN_DIR/"
  (cd "$ORIGIN_DIR/c" && for ((i = 0; i < COLD_BLOCK * COLD_BLOCKS; i++)); do ln -s ../photo_1920x1080.jpg "$i.jpg"; done)
fi
OPORT=$(free_port)
cat >"$S/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $S/nginx.pid;
error_log $S/logs/nginx.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on; tcp_nopush on;
  keepalive_requests 100000;
  client_body_temp_path $S/tmp_body; proxy_temp_path $S/tmp_proxy;
  fastcgi_temp_path $S/tmp_fcgi; uwsgi_temp_path $S/tmp_uwsgi; scgi_temp_path $S/tmp_scgi;
  types { image/jpeg jpg; }
  server { listen 127.0.0.1:$OPORT; root $ORIGIN_DIR; expires 1h; }
}
EOF
start_bg "$RUN/origin.pid" "$S/logs/origin.log" nginx -p "$S" -e "$S/logs/nginx.log" -c "$S/nginx.conf"
wait_http "http://127.0.0.1:$OPORT/photo_1920x1080.jpg" 20
ORIGIN=127.0.0.1:$OPORT

# -- thumbor: two single-process instances (one per wrk thread), HTTP loader, storages on ----------
T1=$(free_port) T2=$(free_port)
rm -rf "$S/thumbor_storage" "$S/thumbor_result"
cat >"$S/thumbor.conf" <<EOF
LOADER = 'thumbor.loaders.http_loader'
ALLOW_UNSAFE_URL = True
QUALITY = 85
STORAGE = 'thumbor.storages.file_storage'
FILE_STORAGE_ROOT_PATH = '$S/thumbor_storage'
RESULT_STORAGE = 'thumbor.result_storages.file_storage'
RESULT_STORAGE_FILE_STORAGE_ROOT_PATH = '$S/thumbor_result'
RESULT_STORAGE_STORES_UNSAFE = True
EOF
for P in $T1 $T2; do
  start_bg "$RUN/thumbor.$P.pid" "$S/logs/thumbor.$P.log" \
    "$THUMBOR_VENV/bin/thumbor" -i 127.0.0.1 -p "$P" -c "$S/thumbor.conf" --processes=1 -l warning
done
for P in $T1 $T2; do wait_http "http://127.0.0.1:$P/healthcheck" 60; done
export SPLIT_PORTS="$T1,$T2"
THUMBOR_PIDS="$(cat "$RUN"/thumbor.*.pid | tr '\n' ' ')"

# -- istore: gunicorn as benchmarks/start_istore.sh starts it, loopback sources allowed ------------
IPORT=$(free_port)
IDATA=$S/istore; rm -rf "$IDATA"; mkdir -p "$IDATA"
WORKER_CLASS=$(cd "$ROOT" && .venv/bin/python -c 'import runpy; print(runpy.run_path("gunicorn.conf.py").get("worker_class", "sync"))' 2>/dev/null || echo '?')
if [ "${SYNC:-}" = 1 ]; then  # sync needs threads=1 (with more, gunicorn picks gthread itself)
  export GUNICORN_CMD_ARGS="--worker-class sync --threads 1 ${GUNICORN_CMD_ARGS:-}"
  WORKER_CLASS=sync
fi
ISTORE_ACCESS_LOG= ISTORE_ALLOW_LOOPBACK_SOURCES=true "$ROOT/benchmarks/start_istore.sh" "$IPORT" "$IDATA" >/dev/null
cp "$IDATA/gunicorn.pid" "$RUN/istore.pid"
ISTORE=http://127.0.0.1:$IPORT
ISTORE_PID=$(cat "$IDATA/gunicorn.pid")
SRC=$ISTORE/bench/http://$ORIGIN/photo_1920x1080.jpg
curl -sf -XPOST "$SRC" -d 'metadata={}' >/dev/null
curl -sf -XPOST "$ISTORE/bench/http://$ORIGIN/photo_1920x1080_w320.jpg" -d 'metadata={}' >/dev/null
if [[ " $PARTS " == *" cold "* ]]; then
  for ((i = 0; i < COLD_BLOCK * COLD_BLOCKS; i++)); do echo "http://$ORIGIN/c/$i.jpg"; done >"$S/cold-urls.txt"
  (cd "$ROOT" && DJANGO_DEBUG=false SECRET_KEY=bench-import-x ISTORE_DATA_DIR=$IDATA \
     .venv/bin/python manage.py import_urls "$S/cold-urls.txt" --prefix /cold/ >/dev/null 2>&1)
fi

echo "== http_source_bench $(date -Is): $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "   origin nginx $ORIGIN, thumbor $T1+$T2 (split), istore $ISTORE (workers ${WORKERS:-2}), commit $(git -C "$ROOT" rev-parse --short HEAD)"
echo "   gunicorn worker class: $WORKER_CLASS; settings: $(env | grep ^ISTORE_ | grep -v ACCESS_LOG | tr '\n' ' ')"
tag=$S/logs/$(date +%H%M%S)

median() { python3 "$BENCH/wrkstat.py" "$1" "${@:2}"; }
rps() { python3 -c 'import re,statistics,sys; print(statistics.median(float(re.search(r"Requests/sec:\s+([\d.]+)", open(f).read()).group(1)) for f in sys.argv[1:]))' "$@"; }
ratio() { python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.2f}')" "$1" "$2"; }

check() {  # check URL [curl args]: a 200 JPEG/WebP before measuring
  local code; code=$(curl -s -o "$S/check.out" -w '%{http_code} %{content_type}' "${@:2}" "$1")
  echo "   check $code $(wc -c <"$S/check.out") B  $1"
  [[ $code == 200* ]] || { echo "bad answer from $1" >&2; exit 1; }
}

if [[ " $PARTS " == *" cached "* ]]; then
  TH="http://127.0.0.1:$T1/unsafe/320x0/$ORIGIN/photo_1920x1080.jpg"
  IS="$SRC?apply=resize&w=320"
  check "$TH"; check "http://127.0.0.1:$T2/unsafe/320x0/$ORIGIN/photo_1920x1080.jpg"; check "$IS"
  wrk -t"$WRK_T" -c"$WRK_C" -d"$WARM_D" -s "$BENCH/split.lua" "$TH" >/dev/null 2>&1
  wrk -t"$WRK_T" -c"$WRK_C" -d"$WARM_D" "$IS" >/dev/null 2>&1
  for ((i = 1; i <= RUNS; i++)); do
    SERVER_PIDS=$THUMBOR_PIDS wrk_once "$tag.cached.thumbor.$i.txt" "$TH" -s "$BENCH/split.lua"
    SERVER_PIDS=$ISTORE_PID wrk_once "$tag.cached.istore.$i.txt" "$IS"
  done
  echo "-- cached resize w=320 (thumbor result storage; istore cached http source + derivative)"
  median "thumbor" "$tag".cached.thumbor.*.txt; median "istore" "$tag".cached.istore.*.txt
  echo "   istore/thumbor: $(ratio "$(rps "$tag".cached.istore.*.txt)" "$(rps "$tag".cached.thumbor.*.txt)")  (target >= 1.3)"
fi

if [[ " $PARTS " == *" cold "* ]]; then
  cold() {  # cold NAME BLOCK URL_PREFIX URL_SUFFIX [wrk args]: one run over never-asked URLs
    local name=$1 block=$2 prefix=$3 suffix=$4; shift 4
    COLD_START=$((block * COLD_BLOCK)) COLD_PREFIX=$prefix COLD_SUFFIX=$suffix COLD_THREADS=$WRK_T \
      wrk_once "$name" "http://127.0.0.1:${SPLIT_PORTS%%,*}/" -s "$ROOT/benchmarks/cold.lua" "$@"
  }
  TP="/unsafe/320x0/$ORIGIN/c/" IP="/cold/http://$ORIGIN/c/"
  check "http://127.0.0.1:$T1${TP}$((COLD_BLOCK * COLD_BLOCKS - 1)).jpg"
  check "$ISTORE${IP}$((COLD_BLOCK * COLD_BLOCKS - 1)).jpg?apply=resize&w=320"
  WRK_D=$WARM_D SPLIT_PORTS="$T1,$T2" cold "$S/logs/warm.thumbor.txt" 0 "$TP" ".jpg"
  WRK_D=$WARM_D SPLIT_PORTS="$IPORT" cold "$S/logs/warm.istore.txt" 0 "$IP" ".jpg?apply=resize&w=320"
  for ((i = 1; i <= RUNS; i++)); do
    SERVER_PIDS=$THUMBOR_PIDS SPLIT_PORTS="$T1,$T2" cold "$tag.cold.thumbor.$i.txt" "$i" "$TP" ".jpg"
    SERVER_PIDS=$ISTORE_PID SPLIT_PORTS="$IPORT" cold "$tag.cold.istore.$i.txt" "$i" "$IP" ".jpg?apply=resize&w=320"
  done
  echo "-- first fetch: every request a new source URL, resize w=320 (fetch, decode, resize, store)"
  median "thumbor" "$tag".cold.thumbor.*.txt; median "istore" "$tag".cold.istore.*.txt
  echo "   istore/thumbor: $(ratio "$(rps "$tag".cold.istore.*.txt)" "$(rps "$tag".cold.thumbor.*.txt)")  (target >= 1.1)"
fi

if [[ " $PARTS " == *" source "* ]]; then
  HS="$ISTORE/bench/http://$ORIGIN/photo_1920x1080_w320.jpg"
  FS="$ISTORE/bench/file:///tmp/anchors/img/photo_1920x1080_w320.jpg"
  check "$HS"; check "$FS"
  wrk -t"$WRK_T" -c"$WRK_C" -d"$WARM_D" "$HS" >/dev/null 2>&1
  wrk -t"$WRK_T" -c"$WRK_C" -d"$WARM_D" "$FS" >/dev/null 2>&1
  for ((i = 1; i <= RUNS; i++)); do
    SERVER_PIDS=$ISTORE_PID wrk_once "$tag.source.file.$i.txt" "$FS"
    SERVER_PIDS=$ISTORE_PID wrk_once "$tag.source.http.$i.txt" "$HS"
  done
  echo "-- cached source, unprocessed (the 8,727-byte w320 JPEG)"
  median "file source" "$tag".source.file.*.txt; median "http source" "$tag".source.http.*.txt
  echo "   http/file: $(ratio "$(rps "$tag".source.http.*.txt)" "$(rps "$tag".source.file.*.txt)")  (target >= 0.50)"
fi

if [[ " $PARTS " == *" auto "* ]]; then
  PLAIN="$SRC?apply=resize&w=320" AUTO="$SRC?apply=resize&w=320&format=auto"
  check "$PLAIN"; check "$AUTO" -H "Accept: image/webp,*/*"
  wrk -t"$WRK_T" -c"$WRK_C" -d"$WARM_D" "$PLAIN" >/dev/null 2>&1
  wrk -t"$WRK_T" -c"$WRK_C" -d"$WARM_D" -H "Accept: image/webp,*/*" "$AUTO" >/dev/null 2>&1
  for ((i = 1; i <= RUNS; i++)); do
    SERVER_PIDS=$ISTORE_PID wrk_once "$tag.auto.plain.$i.txt" "$PLAIN"
    SERVER_PIDS=$ISTORE_PID wrk_once "$tag.auto.webp.$i.txt" "$AUTO" -H "Accept: image/webp,*/*"
  done
  echo "-- cached resize w=320: plain JPEG against format=auto answering WebP"
  median "plain" "$tag".auto.plain.*.txt; median "format=auto (WebP)" "$tag".auto.webp.*.txt
  echo "   auto/plain: $(ratio "$(rps "$tag".auto.webp.*.txt)" "$(rps "$tag".auto.plain.*.txt)")  (target >= 0.90)"
fi
echo "   istore: $(rss_tree "$ISTORE_PID")"
