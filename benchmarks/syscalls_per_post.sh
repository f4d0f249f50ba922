#!/bin/sh
# System calls per POST in the gunicorn workers listening on 127.0.0.1:PORT, counted by perf's
# syscall tracepoints during 9 s of wrk (8 connections, post.lua, new keys under PREFIX) after a
# 3 s warm-up, so the thread pools have their threads when perf attaches. Counts, not timings:
# what a durable commit costs in flushes and lock polling (benchmarks/README.md, "Durability").
#   benchmarks/syscalls_per_post.sh 8651 /bench/q1/
PORT=$1; PREFIX=$2
HERE=$(dirname "$0")
OUT=$(mktemp)
wrk -t2 -c8 -d3s -s "$HERE/post.lua" "http://127.0.0.1:$PORT/" -- "${PREFIX}warm/" > /dev/null
WORKERS=$(pgrep -f "bind 127.0.0.1:$PORT" | tail -n +2 | tr '\n' ',' | sed 's/,$//')
perf stat -x, -o "$OUT" -p "$WORKERS" -e 'syscalls:sys_enter_fdatasync,syscalls:sys_enter_flock' \
    -e 'syscalls:sys_enter_clock_nanosleep,syscalls:sys_enter_futex' -- sleep 10 &
sleep 0.2
RESULT=$(wrk -t2 -c8 -d9s -s "$HERE/post.lua" "http://127.0.0.1:$PORT/" -- "$PREFIX")
wait
COUNT=$(echo "$RESULT" | awk '/requests in/ {print $1}')
echo "port $PORT: $COUNT POSTs, $(echo "$RESULT" | awk '/Requests\/sec/ {print $2}') req/s"
awk -F, -v n="$COUNT" '/syscalls/ {split($3, name, ":"); printf "  %s per POST: %.2f\n", name[2], $1 / n}' "$OUT"
rm -f "$OUT"
