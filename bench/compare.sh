#!/usr/bin/env bash
# Runs, in one go on this machine: the C limit (shared/bench/sqlite_limit.c), Huey on SQLite (the peer) and
# `rota bench`; prints every figure, then Rota's ratios against the other two and the issue's targets.
#
# The throughput figures (C limit, rota bench's enqueue and e2e groups) run in --rounds rounds (default 3),
# C then Rota in each; the report gives the median of the rounds, and each ratio's median over the rounds
# (a ratio is taken within one round). Latency and backlog figures, and Huey, run once.
#
# Usage: bench/compare.sh [--quick] [--rounds N] [--no-build] [--no-huey] [-- extra `rota bench` arguments]
#   env SHARED=path to the shared/ folder (default: ../shared next to the repository)
#   env ROTA_BINARY=a rota binary to use instead of building .build/release/rota
#   env KEEP=dir to keep every raw output in (default: a temporary directory, removed at exit)
# The machine may be noisy: compare the ratios of one run, and repeat runs.
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

quick=""; build=1; huey=1; n=100000; huey_n=20000; lat_n=100; rounds=3; extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick="--quick"; n=20000; huey_n=3000; lat_n=20; rounds=1 ;;
    --rounds) shift; rounds=${1:-}
              case "$rounds" in ''|*[!0-9]*|0) echo "compare.sh: --rounds takes a number of 1 or more" >&2; exit 2 ;; esac ;;
    --no-build) build=0 ;;
    --no-huey) huey=0 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "compare.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

shared=${SHARED:-}
if [ -z "$shared" ]; then
  for candidate in "$repo/../shared" "/work/shared"; do
    if [ -f "$candidate/bench/sqlite_limit.c" ]; then shared=$candidate; break; fi
  done
fi
if [ -z "$shared" ] || [ ! -f "$shared/bench/sqlite_limit.c" ]; then
  echo "compare.sh: cannot find shared/bench/sqlite_limit.c; set SHARED=path/to/shared" >&2
  exit 2
fi
if [ -n "${KEEP:-}" ]; then out=$KEEP; mkdir -p "$out"; else out=$(mktemp -d); trap 'rm -rf "$out"' EXIT; fi

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

if ! cc -O2 -o "$out/sqlite_limit" "$shared/bench/sqlite_limit.c" -lsqlite3 2>"$out/cc.log"; then
  cat "$out/cc.log" >&2; echo "C limit not built (needs cc and libsqlite3-dev); skipping it"
  rm -f "$out/sqlite_limit"
fi
for round in $(seq 1 "$rounds"); do
  echo "== round $round of $rounds: C limit (WAL; NORMAL, then FULL), n=$n"
  if [ -x "$out/sqlite_limit" ]; then
    "$out/sqlite_limit" "$n" NORMAL | tee "$out/c_normal.$round.txt"
    "$out/sqlite_limit" "$n" FULL | tee "$out/c_full.$round.txt"
  else
    : >"$out/c_normal.$round.txt"; : >"$out/c_full.$round.txt"
  fi
  echo "== round $round of $rounds: rota bench --only enqueue,e2e $quick ${extra[*]:-}"
  if ! "$rota" bench --only enqueue,e2e $quick "${extra[@]}" | tee "$out/rota.$round.txt"; then
    echo "compare.sh: rota bench failed (figures above may be partial)" >&2
  fi
done

: >"$out/huey.txt"; : >"$out/huey_latency.txt"
if [ "$huey" = 1 ]; then
  echo "== Huey (SQLite storage, 4 threads), n=$huey_n"
  if python3 -c 'import huey' 2>/dev/null || python3 -m pip install -q huey >/dev/null 2>&1; then
    timeout 600 python3 "$shared/bench/peer_huey.py" "$huey_n" 4 | tee "$out/huey.txt" || echo "huey run failed" >&2
    echo "== Huey latency across processes ($lat_n tasks, one per 50 ms)"
    timeout 300 python3 "$shared/bench/peer_huey_latency.py" "$lat_n" 0.05 | tee "$out/huey_latency.txt" || echo "huey latency run failed" >&2
  else
    echo "huey not installable here; skipping the peer"
  fi
fi

echo "== rota bench --only dispatch,cli,backlog $quick ${extra[*]:-}"
if ! "$rota" bench --only dispatch,cli,backlog $quick "${extra[@]}" | tee "$out/rota.txt"; then
  echo "compare.sh: rota bench failed (figures above may be partial)" >&2
fi

python3 - "$out" "$rounds" <<'PY'
import re, sys, pathlib, statistics
d = pathlib.Path(sys.argv[1])
rounds = int(sys.argv[2])
def kv(name):
    p = d / name
    text = p.read_text() if p.exists() else ""
    return {k: float(v) for k, v in re.findall(r'([A-Za-z_][\w]*)=(-?[0-9.]+(?:e[+-]?\d+)?)', text)}
per_round = [(kv(f'c_normal.{r}.txt'), kv(f'c_full.{r}.txt'), kv(f'rota.{r}.txt')) for r in range(1, rounds + 1)]
def median_of(index):
    keys = set().union(*(rnd[index].keys() for rnd in per_round))
    return {k: statistics.median([rnd[index][k] for rnd in per_round if k in rnd[index]]) for k in keys}
cn, cf = median_of(0), median_of(1)
hu, hl = kv('huey.txt'), kv('huey_latency.txt')
ro = {**kv('rota.txt'), **median_of(2)}
# Which per-round dict a ratio's operands come from: (name, source index or None for once-only files).
sources = {'cn': 0, 'cf': 1}

rows = []
def ratio(label, a, b, target=None, rota_key=None, ref=None):
    if a is None or not b:
        rows.append((label, "n/a", "", "")); return
    r = a / b
    # Within-round ratios for C references: the median of the rounds' ratios.
    if rota_key and ref and ref[0] in sources:
        rs = [rnd[2][rota_key] / rnd[sources[ref[0]]][ref[1]] for rnd in per_round
              if rota_key in rnd[2] and rnd[sources[ref[0]]].get(ref[1])]
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

print()
print(f"== Rota against the C limit and Huey (same run; medians of {rounds} round(s), ratios taken within a round)")
for rk, (src, ck), target, label in [
        ('enqueue_one', ('cn', 'insert_1_per_txn'), 0.5, "enqueue_one / C insert_1_per_txn (NORMAL)"),
        ('enqueue_bulk', ('cn', 'insert_1000_per_txn'), 0.4, "enqueue_bulk / C insert_1000_per_txn (NORMAL)"),
        ('enqueue_one_full', ('cf', 'insert_1_per_txn'), None, "enqueue_one_full / C insert_1_per_txn (FULL)"),
        ('enqueue_bulk_full', ('cf', 'insert_1000_per_txn'), None, "enqueue_bulk_full / C insert_1000_per_txn (FULL)"),
        ('e2e_noop', ('cn', 'lifecycle_64_per_txn'), 0.3, "e2e_noop / C lifecycle_64_per_txn (NORMAL)"),
        ('e2e_noop_full', ('cf', 'lifecycle_64_per_txn'), None, "e2e_noop_full / C lifecycle_64_per_txn (FULL)"),
        ('e2e_noop_2sched', ('cn', 'lifecycle_64_per_txn'), None, "e2e_noop_2sched / C lifecycle_64_per_txn (NORMAL)")]:
    ref = cn if src == 'cn' else cf
    ratio(label, ro.get(rk), ref.get(ck), target, rota_key=rk, ref=(src, ck))
ratio("enqueue_one / Huey enqueue", ro.get('enqueue_one'), hu.get('enqueue'))
ratio("e2e_noop / Huey work", ro.get('e2e_noop'), hu.get('work'), 25)
print("\n".join(f"  {a:<52} {b:>24} {c:>6}  {e}" for a, b, c, e in rows))
rows.clear()
print("== absolute targets")
value("e2e_noop (/s, NORMAL)", ro.get('e2e_noop'), 50000, lower_is_better=False)
value("e2e_noop_full (/s, FULL)", ro.get('e2e_noop_full'), 20000, lower_is_better=False)
value("dispatch_p50_ms (in-process)", ro.get('dispatch_p50_ms'))
value("dispatch_p99_ms (in-process)", ro.get('dispatch_p99_ms'), 2, unit=" ms")
value("cli_dispatch_p50_ms", ro.get('cli_dispatch_p50_ms'))
value("cli_dispatch_p99_ms", ro.get('cli_dispatch_p99_ms'), 50, unit=" ms")
value("huey latency p50_ms (peer, across processes)", hl.get('p50_ms'))
value("huey latency p99_ms (peer, across processes)", hl.get('p99_ms'))
br = ro.get('backlog_claim_ratio')
if br is None: rows.append(("backlog_claim_ratio", "n/a", "", ""))
else: rows.append(("backlog_claim_ratio (1M backlog / empty)", f"{br:.2f}", "", "ok" if br >= 0.8 else "MISSES 0.8"))
value("peak_rss_mib (scheduler on the backlog)", ro.get('peak_rss_mib'), 100, unit=" MiB")
print("\n".join(f"  {a:<52} {b:>24} {c:>6}  {e}" for a, b, c, e in rows))
PY
