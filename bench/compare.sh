#!/usr/bin/env bash
# Runs, in one go on this machine, Rota against its yardsticks and prints every figure, then the ratios and
# the issue's targets:
#   SQLite      the C limit (bench/sqlite_limit.c), Huey on SQLite (bench/peer_huey*.py, the peer) and
#               `rota bench`;
#   PostgreSQL  a throwaway cluster (scripts/postgres.sh, stopped and deleted at exit), the pgbench limit
#               (bench/pg_limit.sh: River-shaped claim-and-complete, 64 tasks per transaction, 4 clients) and
#               `rota bench --db postgres://...`. Skipped, with a line saying so, when the server's binaries
#               are not installed (this script installs nothing).
#
# The throughput figures (the limits, rota bench's enqueue and e2e groups) run in --rounds rounds (default 3),
# limit then Rota in each; the report gives the median of the rounds, and each ratio's median over the rounds
# (a ratio is taken within one round). Latency, idle and backlog figures, and Huey, run once.
#
# Usage: bench/compare.sh [--quick] [--rounds N] [--no-build] [--no-huey] [--no-sqlite] [--no-postgres]
#                         [-- extra `rota bench` arguments]
#   env ROTA_BINARY=a rota binary to use instead of building .build/release/rota
#   env KEEP=dir to keep every raw output in (default: a temporary directory, removed at exit)
# The machine may be noisy: compare the ratios of one run, and repeat runs.
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
bench=$repo/bench

quick=""; build=1; huey=1; sqlite=1; postgres=1; n=100000; pg_n=200000; huey_n=20000; lat_n=100; rounds=3; extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick="--quick"; n=20000; pg_n=20000; huey_n=3000; lat_n=20; rounds=1 ;;
    --rounds) shift; rounds=${1:-}
              case "$rounds" in ''|*[!0-9]*|0) echo "compare.sh: --rounds takes a number of 1 or more" >&2; exit 2 ;; esac ;;
    --no-build) build=0 ;;
    --no-huey) huey=0 ;;
    --no-sqlite) sqlite=0 ;;
    --no-postgres) postgres=0 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "compare.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

if [ -n "${KEEP:-}" ]; then out=$KEEP; mkdir -p "$out"; keep=1; else out=$(mktemp -d); keep=0; fi
pgdir=""
cleanup() {
  if [ -n "$pgdir" ]; then "$repo/scripts/postgres.sh" stop "$pgdir" >/dev/null 2>&1 || true; fi
  if [ "$keep" = 0 ]; then rm -rf "$out"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== machine: $(nproc) cores, $(uname -sr), load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)"

rota=${ROTA_BINARY:-$repo/.build/release/rota}
if [ "$build" = 1 ] && [ -z "${ROTA_BINARY:-}" ]; then
  echo "== building rota (release)"
  if ! swift build -c release --product rota >"$out/build.log" 2>&1; then
    tail -30 "$out/build.log" >&2
    echo "compare.sh: the release build failed" >&2
    exit 1
  fi
fi
if [ ! -x "$rota" ]; then echo "compare.sh: no rota binary at $rota" >&2; exit 1; fi

# Every raw output file exists, empty when its part did not run, so the report can read them all.
for round in $(seq 1 "$rounds"); do
  for f in c_normal c_full rota pg_limit rota_pg; do : >"$out/$f.$round.txt"; done
done
for f in huey huey_latency rota rota_pg; do : >"$out/$f.txt"; done

if [ "$sqlite" = 1 ]; then
  if ! cc -O2 -o "$out/sqlite_limit" "$bench/sqlite_limit.c" -lsqlite3 2>"$out/cc.log"; then
    cat "$out/cc.log" >&2; echo "C limit not built (needs cc and libsqlite3-dev); skipping it"
    rm -f "$out/sqlite_limit"
  fi
  for round in $(seq 1 "$rounds"); do
    echo "== SQLite, round $round of $rounds: C limit (WAL; NORMAL, then FULL), n=$n"
    if [ -x "$out/sqlite_limit" ]; then
      "$out/sqlite_limit" "$n" NORMAL | tee "$out/c_normal.$round.txt"
      "$out/sqlite_limit" "$n" FULL | tee "$out/c_full.$round.txt"
    fi
    echo "== SQLite, round $round of $rounds: rota bench --only enqueue,e2e $quick ${extra[*]:-}"
    if ! "$rota" bench --only enqueue,e2e $quick "${extra[@]}" | tee "$out/rota.$round.txt"; then
      echo "compare.sh: rota bench failed (figures above may be partial)" >&2
    fi
  done

  if [ "$huey" = 1 ]; then
    echo "== Huey (SQLite storage, 4 threads), n=$huey_n"
    if python3 -c 'import huey' 2>/dev/null || python3 -m pip install -q huey >/dev/null 2>&1; then
      timeout 600 python3 "$bench/peer_huey.py" "$huey_n" 4 | tee "$out/huey.txt" || echo "huey run failed" >&2
      echo "== Huey latency across processes ($lat_n tasks, one per 50 ms)"
      timeout 300 python3 "$bench/peer_huey_latency.py" "$lat_n" 0.05 | tee "$out/huey_latency.txt" || echo "huey latency run failed" >&2
    else
      echo "huey not installable here; skipping the peer"
    fi
  fi

  echo "== SQLite: rota bench --only dispatch,cli,backlog $quick ${extra[*]:-}"
  if ! "$rota" bench --only dispatch,cli,backlog $quick "${extra[@]}" | tee "$out/rota.txt"; then
    echo "compare.sh: rota bench failed (figures above may be partial)" >&2
  fi
fi

if [ "$postgres" = 1 ]; then
  pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
  if [ -z "$pgbin" ] || [ ! -x "$pgbin/initdb" ] || [ ! -x "$pgbin/pgbench" ]; then
    echo "== PostgreSQL: SKIPPED: no server binaries (initdb, pgbench) under /usr/lib/postgresql/*/bin, and this script"
    echo "   installs nothing (Debian: apt-get install postgresql); --no-postgres silences this line"
    postgres=0
  else
    pgdir=$(mktemp -d /tmp/rota-bench-pg.XXXXXX)
    if ! url=$("$repo/scripts/postgres.sh" start "$pgdir" 2>"$out/postgres-start.log"); then
      cat "$out/postgres-start.log" >&2
      echo "== PostgreSQL: SKIPPED: the throwaway cluster did not start (above)"
      postgres=0
    else
      echo "== PostgreSQL $("$pgbin/postgres" --version | awk '{print $3}'): a throwaway cluster at $url (server defaults, fsync on)"
    fi
  fi
fi
if [ "$postgres" = 1 ]; then
  for round in $(seq 1 "$rounds"); do
    echo "== PostgreSQL, round $round of $rounds: pgbench limit (64 tasks per transaction, 4 clients), n=$pg_n"
    if ! "$bench/pg_limit.sh" "$pgdir" "$pg_n" 4 | tee "$out/pg_limit.$round.txt"; then
      echo "compare.sh: pg_limit.sh failed" >&2
    fi
    echo "== PostgreSQL, round $round of $rounds: rota bench --db URL --only enqueue,e2e $quick ${extra[*]:-}"
    if ! "$rota" bench --db "$url" --only enqueue,e2e $quick "${extra[@]}" | tee "$out/rota_pg.$round.txt"; then
      echo "compare.sh: rota bench --db failed (figures above may be partial)" >&2
    fi
  done
  echo "== PostgreSQL: rota bench --db URL --only dispatch,cli,idle,backlog $quick ${extra[*]:-}"
  if ! "$rota" bench --db "$url" --only dispatch,cli,idle,backlog $quick "${extra[@]}" | tee "$out/rota_pg.txt"; then
    echo "compare.sh: rota bench --db failed (figures above may be partial)" >&2
  fi
fi

echo "== load at the end: $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)"

python3 - "$out" "$rounds" "$sqlite" "$postgres" <<'PY'
import re, sys, pathlib, statistics
d = pathlib.Path(sys.argv[1])
rounds = int(sys.argv[2])
sqlite, postgres = sys.argv[3] == "1", sys.argv[4] == "1"
def kv(name):
    p = d / name
    text = p.read_text() if p.exists() else ""
    return {k: float(v) for k, v in re.findall(r'([A-Za-z_][\w]*)=(-?[0-9.]+(?:e[+-]?\d+)?)', text)}
# Per round: the C limit (NORMAL, FULL), rota bench on SQLite, the pgbench limit, rota bench on PostgreSQL.
per_round = [{'cn': kv(f'c_normal.{r}.txt'), 'cf': kv(f'c_full.{r}.txt'), 'ro': kv(f'rota.{r}.txt'),
              'pl': kv(f'pg_limit.{r}.txt'), 'rp': kv(f'rota_pg.{r}.txt')} for r in range(1, rounds + 1)]
def medians(source):
    keys = set().union(*(rnd[source].keys() for rnd in per_round))
    return {k: statistics.median([rnd[source][k] for rnd in per_round if k in rnd[source]]) for k in keys}
med = {s: medians(s) for s in ('cn', 'cf', 'ro', 'pl', 'rp')}
med['ro'] = {**kv('rota.txt'), **med['ro']}
med['rp'] = {**kv('rota_pg.txt'), **med['rp']}
hu, hl = kv('huey.txt'), kv('huey_latency.txt')

rows = []
def ratio(label, top, bottom, target=None):
    """top and bottom: (source, key); the ratio is the median of the rounds' ratios when both come from rounds,
    else the ratio of the medians (or of the once-only figures)."""
    def value(ref):
        src, key = ref
        if src == 'hu': return hu.get(key)
        return med[src].get(key)
    a, b = value(top), value(bottom)
    if a is None or not b:
        rows.append((label, "n/a", "", "")); return
    r = a / b
    if top[0] in per_round[0] and bottom[0] in per_round[0]:
        rs = [rnd[top[0]][top[1]] / rnd[bottom[0]][bottom[1]] for rnd in per_round
              if top[1] in rnd[top[0]] and rnd[bottom[0]].get(bottom[1])]
        if rs: r = statistics.median(rs)
    verdict = "" if target is None else ("ok" if r >= target else f"BELOW {target:g}")
    rows.append((label, f"{a:,.0f} / {b:,.0f}", f"{r:.2f}", verdict))
def value(label, v, limit=None, lower_is_better=True, unit=""):
    if v is None:
        rows.append((label, "n/a", "", "")); return
    verdict = ""
    if limit is not None:
        good = v < limit if lower_is_better else v >= limit
        verdict = "ok" if good else f"MISSES {limit:g}{unit}"
    rows.append((label, f"{v:,.2f}{unit}", "", verdict))
def backlog_ratio(label, br):
    """The claim rate behind a backlog against an empty queue: at least 0.8."""
    if br is None: rows.append(("backlog_claim_ratio", "n/a", "", ""))
    else: rows.append((label, f"{br:.2f}", "", "ok" if br >= 0.8 else "MISSES 0.8"))
def flush():
    print("\n".join(f"  {a:<56} {b:>24} {c:>6}  {e}" for a, b, c, e in rows))
    rows.clear()

print()
if sqlite:
    ro = med['ro']
    print(f"== SQLite: Rota against the C limit and Huey (same run; medians of {rounds} round(s), ratios taken within a round)")
    for rk, (src, ck), target, label in [
            ('enqueue_one', ('cn', 'insert_1_per_txn'), 0.5, "enqueue_one / C insert_1_per_txn (NORMAL)"),
            ('enqueue_bulk', ('cn', 'insert_1000_per_txn'), 0.4, "enqueue_bulk / C insert_1000_per_txn (NORMAL)"),
            ('enqueue_one_full', ('cf', 'insert_1_per_txn'), None, "enqueue_one_full / C insert_1_per_txn (FULL)"),
            ('enqueue_bulk_full', ('cf', 'insert_1000_per_txn'), None, "enqueue_bulk_full / C insert_1000_per_txn (FULL)"),
            ('e2e_noop', ('cn', 'lifecycle_64_per_txn'), 0.3, "e2e_noop / C lifecycle_64_per_txn (NORMAL)"),
            ('e2e_noop_full', ('cf', 'lifecycle_64_per_txn'), None, "e2e_noop_full / C lifecycle_64_per_txn (FULL)"),
            ('e2e_noop_2sched', ('cn', 'lifecycle_64_per_txn'), None, "e2e_noop_2sched / C lifecycle_64_per_txn (NORMAL)")]:
        ratio(label, ('ro', rk), (src, ck), target)
    ratio("enqueue_one / Huey enqueue", ('ro', 'enqueue_one'), ('hu', 'enqueue'))
    ratio("e2e_noop / Huey work", ('ro', 'e2e_noop'), ('hu', 'work'), 25)
    flush()
    print("== SQLite: absolute targets")
    value("e2e_noop (/s, NORMAL)", ro.get('e2e_noop'), 50000, lower_is_better=False)
    value("e2e_noop_full (/s, FULL)", ro.get('e2e_noop_full'), 20000, lower_is_better=False)
    value("dispatch_p50_ms (in-process)", ro.get('dispatch_p50_ms'))
    value("dispatch_p99_ms (in-process)", ro.get('dispatch_p99_ms'), 2, unit=" ms")
    value("cli_dispatch_p50_ms", ro.get('cli_dispatch_p50_ms'))
    value("cli_dispatch_p99_ms", ro.get('cli_dispatch_p99_ms'), 50, unit=" ms")
    value("huey latency p50_ms (peer, across processes)", hl.get('p50_ms'))
    value("huey latency p99_ms (peer, across processes)", hl.get('p99_ms'))
    backlog_ratio("backlog_claim_ratio (1M backlog / empty)", ro.get('backlog_claim_ratio'))
    value("peak_rss_mib (scheduler on the backlog)", ro.get('peak_rss_mib'), 100, unit=" MiB")
    flush()
if postgres:
    rp = med['rp']
    print(f"== PostgreSQL: Rota against the pgbench limit (same run and server; medians of {rounds} round(s), ratios within a round)")
    ratio("e2e_noop / pgbench lifecycle_64 (4 clients)", ('rp', 'e2e_noop'), ('pl', 'lifecycle_64'), 0.7)
    ratio("e2e_noop_2sched / pgbench lifecycle_64", ('rp', 'e2e_noop_2sched'), ('pl', 'lifecycle_64'))
    ratio("e2e_noop_3sched / pgbench lifecycle_64", ('rp', 'e2e_noop_3sched'), ('pl', 'lifecycle_64'))
    ratio("e2e_noop_3sched / e2e_noop (3 schedulers vs 1)", ('rp', 'e2e_noop_3sched'), ('rp', 'e2e_noop'), 1.0)
    ratio("e2e_noop_2sched / e2e_noop (2 schedulers vs 1)", ('rp', 'e2e_noop_2sched'), ('rp', 'e2e_noop'))
    if sqlite:
        ratio("e2e_noop PostgreSQL / SQLite (NORMAL)", ('rp', 'e2e_noop'), ('ro', 'e2e_noop'))
    flush()
    print("== PostgreSQL: figures and targets")
    value("enqueue_one (/s, one commit each)", rp.get('enqueue_one'))
    value("enqueue_bulk (/s, 1,000 per commit)", rp.get('enqueue_bulk'))
    value("e2e_noop (/s)", rp.get('e2e_noop'))
    value("e2e_cpu_us_per_task (rota process only)", rp.get('e2e_cpu_us_per_task'))
    value("dispatch_p50_ms (in-process)", rp.get('dispatch_p50_ms'))
    value("dispatch_p99_ms (in-process)", rp.get('dispatch_p99_ms'))
    value("cli_dispatch_p50_ms (other process, NOTIFY)", rp.get('cli_dispatch_p50_ms'))
    value("cli_dispatch_p99_ms (other process, NOTIFY)", rp.get('cli_dispatch_p99_ms'), 20, unit=" ms")
    value("idle_cpu_pct (idle scheduler process, % of a core)", rp.get('idle_cpu_pct'))
    backlog_ratio("backlog_claim_ratio (backlog / empty)", rp.get('backlog_claim_ratio'))
    value("peak_rss_mib (scheduler on the backlog)", rp.get('peak_rss_mib'), 100, unit=" MiB")
    flush()
PY
