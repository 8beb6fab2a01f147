#!/usr/bin/env bash
# Side-by-side crawl benchmark: byline vs Scrapy on the same local sites.
#
# Serves the SQLite manual (Debian sqlite3-doc) and the PostgreSQL 15 manual
# (postgresql-doc-15) with `python3 -m http.server` on two loopback ports,
# crawls both with `byline crawl --delay-ms 0` and with Scrapy (CrawlSpider +
# LinkExtractor, body text to JSONL, ROBOTSTXT_OBEY, no delay), one after the
# other, and prints CPU (user + system) ms per page, pages/s and peak RSS of
# each crawler process (from /usr/bin/time; the HTTP servers are separate
# processes and not counted), and the ratio.
#
# CPU time on a shared 2-core VM moves by 10-25 % between identical runs, so
# the pair is run `--rounds` times (default 3), byline then Scrapy in each
# round, each from an empty store: every round is printed, then each
# crawler's median round and the ratio of the medians.
#
# Usage: tools/bench_scrapy.sh [--byline PATH] [--max-pages N] [--venv DIR]
#                               [--sites DIR,DIR] [--skip-scrapy] [--rounds N]
# Needs: python3 with venv, /usr/bin/time, the two doc packages (or --sites).
# The venv (Scrapy pinned below) is created in a temporary directory and
# removed afterwards unless --venv names one to keep and reuse.
set -euo pipefail

SCRAPY_VERSION=2.19.0
here=$(cd "$(dirname "$0")" && pwd)
byline="$here/../target/release/byline"
max_pages=""
venv=""
sites="/usr/share/doc/sqlite3,/usr/share/doc/postgresql-doc-15/html"
skip_scrapy=0
rounds=3
while [ $# -gt 0 ]; do
    case "$1" in
        --byline) byline=$2; shift 2 ;;
        --max-pages) max_pages=$2; shift 2 ;;
        --venv) venv=$2; shift 2 ;;
        --sites) sites=$2; shift 2 ;;
        --skip-scrapy) skip_scrapy=1; shift ;;
        --rounds) rounds=$2; shift 2 ;;
        -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
[ -x "$byline" ] || { echo "no byline binary at $byline (cargo build --release)" >&2; exit 2; }
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "--rounds must be a positive integer, got $rounds" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (Debian package time)" >&2; exit 2; }

work=$(mktemp -d -t byline-bench-scrapy.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# One http.server per site on a free loopback port.
seeds=()
i=0
IFS=, read -r -a dirs <<<"$sites"
for d in "${dirs[@]}"; do
    [ -f "$d/index.html" ] || { echo "no $d/index.html (install sqlite3-doc / postgresql-doc-15)" >&2; exit 2; }
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    python3 -m http.server --bind 127.0.0.1 --directory "$d" "$port" >"$work/server$i.log" 2>&1 &
    pids+=($!)
    seeds+=("http://127.0.0.1:$port/index.html")
    i=$((i + 1))
done
for s in "${seeds[@]}"; do
    for _ in $(seq 50); do curl -fsS -o /dev/null "$s" 2>/dev/null && break; sleep 0.1; done
done
echo "sites: ${seeds[*]}"

# --- Scrapy's venv, made once before the first round
if [ "$skip_scrapy" = 0 ]; then
    if [ -z "$venv" ]; then venv="$work/venv"; fi
    if [ ! -x "$venv/bin/scrapy" ]; then
        python3 -m venv "$venv"
        "$venv/bin/python" -m pip install -q "scrapy==$SCRAPY_VERSION"
    fi
fi

bargs=(crawl --delay-ms 0)
[ -n "$max_pages" ] && bargs+=(--max-pages "$max_pages")
sargs=(-s ROBOTSTXT_OBEY=True -s DOWNLOAD_DELAY=0 -s LOG_LEVEL=WARNING
       -s TELNETCONSOLE_ENABLED=False -s HTTPCACHE_ENABLED=False)
[ -n "$max_pages" ] && sargs+=(-s "CLOSESPIDER_PAGECOUNT=$max_pages")
seedlist=$(IFS=,; echo "${seeds[*]}")
for r in $(seq "$rounds"); do
    # --- byline, into an empty store
    rm -f "$work/byline.db" "$work/byline.db-wal" "$work/byline.db-shm" "$work/byline.db.crawl-lock"
    /usr/bin/time -f '%U %S %M %e' -o "$work/byline.$r.time" \
        "$byline" --db "$work/byline.db" "${bargs[@]}" "${seeds[@]}" >"$work/byline.log" 2>&1 \
        || { cat "$work/byline.log" >&2; exit 1; }
    bpages=$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from pages").fetchone()[0])' "$work/byline.db")
    echo "$bpages" >"$work/byline.$r.pages"
    echo "round $r byline: $(tail -n 1 "$work/byline.$r.time") (user s, sys s, max RSS KiB, wall s), $bpages pages"
    # --- Scrapy
    if [ "$skip_scrapy" = 0 ]; then
        /usr/bin/time -f '%U %S %M %e' -o "$work/scrapy.$r.time" \
            "$venv/bin/scrapy" runspider "$here/bench_scrapy/spider.py" \
            -a "seeds=$seedlist" -a hosts=127.0.0.1 "${sargs[@]}" -O "$work/scrapy.jsonl" \
            >"$work/scrapy.log" 2>&1 || { cat "$work/scrapy.log" >&2; exit 1; }
        wc -l <"$work/scrapy.jsonl" >"$work/scrapy.$r.pages"
        echo "round $r scrapy $SCRAPY_VERSION: $(tail -n 1 "$work/scrapy.$r.time") (user s, sys s, max RSS KiB, wall s), $(cat "$work/scrapy.$r.pages") pages"
    fi
done

python3 - "$work" "$rounds" "$skip_scrapy" <<'PY'
import os, statistics, sys
work, rounds, skip = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
def load(name, r):
    u, s, rss, wall = (float(x) for x in open(os.path.join(work, f"{name}.{r}.time")).read().split()[-4:])
    pages = int(open(os.path.join(work, f"{name}.{r}.pages")).read().split()[0])
    return {"u": u, "s": s, "rss": rss, "wall": wall, "pages": pages,
            "ms": (u + s) * 1000 / max(pages, 1)}
def row(label, m):
    print(f"| {label} | {m['u']:.2f} + {m['s']:.2f} s | {m['pages']} | {m['ms']:.2f} ms "
          f"| {m['pages'] / max(m['wall'], 1e-9):.1f} | {m['rss'] / 1024:.1f} MiB |")
names = ["byline"] + ([] if skip else ["scrapy"])
runs = {n: [load(n, r) for r in range(1, rounds + 1)] for n in names}
print("| crawler | CPU user + sys | pages | CPU per page | pages/s | peak RSS |")
print("|---|---|---|---|---|---|")
for r in range(rounds):
    for n in names:
        row(f"{n}, round {r + 1}", runs[n][r])
med = {}
for n in names:
    ms = [m["ms"] for m in runs[n]]
    med[n] = statistics.median(ms)
    print(f"{n}: median {med[n]:.2f} ms CPU per page (rounds: {', '.join(f'{x:.2f}' for x in ms)}), "
          f"peak RSS at most {max(m['rss'] for m in runs[n]) / 1024:.1f} MiB")
if not skip:
    print(f"byline / scrapy CPU per page (medians): {med['byline'] / med['scrapy']:.2f}")
PY
