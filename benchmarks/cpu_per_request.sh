#!/usr/bin/env bash
# cpu_per_request.sh PID URL [SECONDS]: load one URL with wrk (-t2 -c8, after a 3 s warm-up) and print
# the requests/s and the CPU (user and kernel, ms) that the server PID and its children spent per request.
# PID is a gunicorn master (benchmarks/start_istore.sh writes DATA_DIR/gunicorn.pid). Run by hand.
set -euo pipefail
PID=${1:?gunicorn master pid} URL=${2:?url} SECONDS_=${3:-10}
ticks() {  # utime and stime of PID and its children, in clock ticks
  for p in "$PID" $(pgrep -P "$PID"); do awk '{print $14, $15}' "/proc/$p/stat"; done | awk '{u += $1; s += $2} END {print u, s}'
}
hz=$(getconf CLK_TCK)
wrk -t2 -c8 -d3s "$URL" >/dev/null
read -r u0 s0 < <(ticks)
out=$(wrk -t2 -c8 -d"${SECONDS_}s" "$URL")
read -r u1 s1 < <(ticks)
n=$(awk '/requests in/ {print $1}' <<<"$out")
rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
awk -v n="$n" -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v hz="$hz" -v rps="$rps" -v url="$URL" \
  'BEGIN {printf "%s req/s  user %.3f ms  kernel %.3f ms per request  %s\n", rps, u * 1000 / hz / n, s * 1000 / hz / n, url}'
grep -q "Non-2xx" <<<"$out" && echo "!! non-2xx answers" || true
