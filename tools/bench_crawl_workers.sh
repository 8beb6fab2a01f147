#!/usr/bin/env bash
# Crawl throughput with 1, 2 and 4 workers (issue #20): the same loopback
# world (`byline bench crawl --serve-only`: ORIGINS generated sites of PAGES
# pages each) crawled into SQLite (one worker: an SQLite corpus has one
# crawler at a time) and into PostgreSQL (1, 2, 4 `byline crawl` processes
# sharing one corpus). Prints pages stored, wall seconds, pages/s, and the
# crawlers' CPU (user+system of all worker processes, from /usr/bin/time)
# per page.
#
# Usage: tools/bench_crawl_workers.sh [BYLINE] [ORIGINS] [PAGES] [CONCURRENCY]
#   BYLINE       the binary (default target/release/byline)
#   CONCURRENCY  requests in flight per run, split evenly between workers
# PostgreSQL: BYLINE_BENCH_PG=postgres://user@host:port (a server where this
# user may create databases); without it, a throwaway cluster is started
# with Debian's postgresql binaries (initdb + pg_ctl on a loopback port, as
# the postgres user when root) and removed afterwards.
set -euo pipefail

BYLINE=${1:-target/release/byline}
ORIGINS=${2:-20}
PAGES=${3:-100}
CONC=${4:-20}
BYLINE=$(realpath "$BYLINE")
WORK=$(mktemp -d /tmp/byline-bench-workers.XXXXXX)
chmod 755 "$WORK"
cleanup() {
    [[ -n "${SERVER_PID:-}" ]] && kill "$SERVER_PID" 2>/dev/null || true
    if [[ -n "${PGDATA_DIR:-}" ]]; then
        $AS_PG "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -m immediate stop >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# The world, in its own process (its CPU is not the crawlers').
mkfifo "$WORK/in"
"$BYLINE" --quiet bench crawl --serve-only --origins "$ORIGINS" --pages "$PAGES" \
    <"$WORK/in" >"$WORK/ports" &
SERVER_PID=$!
exec 3>"$WORK/in"
for _ in $(seq 100); do
    [[ $(wc -l <"$WORK/ports") -ge $ORIGINS ]] && break
    sleep 0.1
done
SEEDS=()
while read -r port; do SEEDS+=("http://127.0.0.1:$port/p/0"); done < <(head -n "$ORIGINS" "$WORK/ports")

FLAGS=(--delay-ms 0 --max-depth "$PAGES" --max-urls-per-origin $((PAGES + 10))
       --max-urls-per-shape $((PAGES + 10)) --contact http://127.0.0.1/bench --quiet)

# run_workers DB N: N workers on DB at once; prints "pages wall cpu".
run_workers() {
    local db=$1 n=$2 per=$(( (CONC + $2 - 1) / $2 ))
    local start end cpu=0 pids=()
    start=$(date +%s.%N)
    for i in $(seq "$n"); do
        /usr/bin/time -f "%U %S" -o "$WORK/time.$i" \
            "$BYLINE" --db "$db" crawl "${FLAGS[@]}" --concurrency "$per" \
            --worker-id "bench$i" "${SEEDS[@]}" >"$WORK/out.$i" 2>&1 &
        pids+=($!)
    done
    for p in "${pids[@]}"; do
        wait "$p" || { echo "a worker failed:" >&2; cat "$WORK"/out.* >&2; exit 1; }
    done
    end=$(date +%s.%N)
    for i in $(seq "$n"); do
        cpu=$(awk -v c="$cpu" '{print c + $1 + $2}' "$WORK/time.$i")
    done
    echo "$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }') $cpu"
}

report() { # label pages wall cpu
    awk -v l="$1" -v p="$2" -v w="$3" -v c="$4" \
        'BEGIN { printf "%-22s %6d pages %7.2f s %8.1f pages/s %7.3f ms CPU/page\n", l, p, w, p / w, c * 1000 / p }'
}

echo "world: $ORIGINS origins x $PAGES pages on 127.0.0.1, $CONC requests in flight per run"

# SQLite: one worker.
read -r wall cpu < <(run_workers "$WORK/corpus.db" 1)
pages=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from pages').fetchone()[0])" "$WORK/corpus.db")
report "sqlite, 1 worker" "$pages" "$wall" "$cpu"

# PostgreSQL.
if [[ -n "${BYLINE_BENCH_PG:-}" ]]; then
    PGURL=$BYLINE_BENCH_PG
    AS_PG=""
    PSQLBIN=psql
else
    PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    AS_PG=""
    if [[ $(id -u) == 0 ]]; then AS_PG="runuser -u postgres --"; fi
    PGDATA_DIR=$WORK/pg
    mkdir "$PGDATA_DIR"
    [[ -n "$AS_PG" ]] && chown postgres "$PGDATA_DIR"
    $AS_PG "$PGBIN/initdb" -D "$PGDATA_DIR" -U postgres -A trust >/dev/null
    PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    $AS_PG "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -l "$PGDATA_DIR/log" -w \
        -o "-h 127.0.0.1 -p $PORT -k $PGDATA_DIR -c fsync=off -c max_connections=200" start >/dev/null
    PGURL="postgres://postgres@127.0.0.1:$PORT"
    PSQLBIN=$PGBIN/psql
fi
sql() { "$PSQLBIN" "$PGURL/$1" -qAt -c "$2"; }
for n in 1 2 4; do
    sql postgres "CREATE DATABASE bench_w$n" >/dev/null
    read -r wall cpu < <(run_workers "$PGURL/bench_w$n" "$n")
    pages=$(sql "bench_w$n" "SELECT count(*) FROM pages")
    report "postgres, $n worker(s)" "$pages" "$wall" "$cpu"
done
exec 3>&-
