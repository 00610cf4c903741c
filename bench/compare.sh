#!/usr/bin/env bash
# Runs, in one go on this machine: the C limit (../shared/bench/sqlite_limit.c), Huey on SQLite (the peer),
# and `rota bench`; prints every figure and Rota's ratios against the other two.
# Usage: bench/compare.sh [--quick]      (env SHARED=path to the shared/ folder, default ../shared)
set -euo pipefail
cd "$(dirname "$0")/.."
quick=""; n=100000; huey_n=20000
if [ "${1:-}" = "--quick" ]; then quick="--quick"; n=20000; huey_n=3000; fi
shared=${SHARED:-../shared}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "== building"
swift build -c release --product rota >/dev/null
cc -O2 -o "$out/sqlite_limit" "$shared/bench/sqlite_limit.c" -lsqlite3

echo "== C limit (NORMAL, FULL)"
"$out/sqlite_limit" "$n" NORMAL | tee "$out/c_normal.txt"
"$out/sqlite_limit" "$n" FULL | tee "$out/c_full.txt"

echo "== Huey (SQLite storage, 4 threads)"
if python3 -c 'import huey' 2>/dev/null || pip install -q huey >/dev/null 2>&1; then
  python3 "$shared/bench/peer_huey.py" "$huey_n" 4 | tee "$out/huey.txt" || true
else
  echo "huey not installable here; skipping the peer" | tee "$out/huey.txt"
fi

echo "== rota bench $quick"
./.build/release/rota bench $quick | tee "$out/rota.txt"

python3 - "$out" <<'PY'
import re, sys, pathlib
d = pathlib.Path(sys.argv[1])
def kv(text):
    return {k: float(v.rstrip('/s')) for k, v in re.findall(r'(\w+)=([0-9.]+)(?:/s)?', text)}
cn, cf = kv((d/'c_normal.txt').read_text()), kv((d/'c_full.txt').read_text())
hu, ro = kv((d/'huey.txt').read_text()), kv((d/'rota.txt').read_text())
def ratio(label, a, b):
    if a is None or not b: print(f"{label}: n/a"); return
    print(f"{label}: {a:,.0f} / {b:,.0f} = {a/b:.2f}")
print("== ratios (Rota / reference, same run)")
ratio("enqueue_one vs C insert_1_per_txn (NORMAL)", ro.get('enqueue_one'), cn.get('insert_1_per_txn'))
ratio("enqueue_bulk vs C insert_1000_per_txn (NORMAL)", ro.get('enqueue_bulk'), cn.get('insert_1000_per_txn'))
ratio("e2e_noop vs C lifecycle_64_per_txn (NORMAL)", ro.get('e2e_noop'), cn.get('lifecycle_64_per_txn'))
ratio("e2e_noop_full vs C lifecycle_64_per_txn (FULL)", ro.get('e2e_noop_full'), cf.get('lifecycle_64_per_txn'))
ratio("enqueue_one vs Huey enqueue", ro.get('enqueue_one'), hu.get('enqueue'))
ratio("e2e_noop vs Huey work", ro.get('e2e_noop'), hu.get('work'))
for k in ('dispatch_p99_ms', 'cli_dispatch_p99_ms', 'backlog_claim_ratio', 'peak_rss_mib'):
    if k in ro: print(f"{k}: {ro[k]}")
PY
