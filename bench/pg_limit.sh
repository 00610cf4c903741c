#!/usr/bin/env bash
# pg_limit.sh: the PostgreSQL limit of a job system's lifecycle on this machine, Rota's yardstick for
# `rota bench --db postgres://...`.
#
# What it measures: pgbench runs CLIENTS clients (threads) over N due tasks in a bare table (the columns a
# scheduler needs, one partial index for claims, a result table). Each transaction is River-shaped, as a
# scheduler that records its completions and claims more in one turn:
#   1. claims up to 64 due tasks: a MATERIALIZED CTE selects them in claim order FOR UPDATE SKIP LOCKED
#      (so clients never wait for each other's rows), an UPDATE marks them running;
#   2. marks those tasks done;
#   3. writes one result row each;
# then commits. Server settings are the server's defaults (fsync and synchronous_commit on). It prints
#   pg-limit n=N clients=C lifecycle_64=<tasks done per second of wall-clock time>/s done=N
# bench/compare.sh divides e2e_noop (PostgreSQL) by lifecycle_64.
#
# It follows the workspace's reference (shared/bench/pg_limit.sh) statement for statement; its tables
# (lim_tasks, lim_results) are made in DATABASE's default schema and dropped at the end.
#
#   usage: bench/pg_limit.sh SOCKET_DIR [N=200000] [CLIENTS=4] [DATABASE=rota]
#   (a server listening on a unix socket in SOCKET_DIR, user postgres: scripts/postgres.sh start DIR)
set -euo pipefail
host=${1:?usage: pg_limit.sh SOCKET_DIR [N=200000] [CLIENTS=4] [DATABASE=rota]}
n=${2:-200000}; clients=${3:-4}; database=${4:-rota}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$bin" ] || [ ! -x "$bin/pgbench" ]; then
  echo "pg_limit.sh: no pgbench under /usr/lib/postgresql/*/bin (Debian: postgresql, postgresql-contrib)" >&2
  exit 1
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/pg_limit.XXXXXX")
trap 'rm -rf "$work"' EXIT

sql() { "$bin/psql" -h "$host" -U postgres -d "$database" -qAtX -v ON_ERROR_STOP=1 -c "SET client_min_messages = warning" -c "$1"; }

sql "DROP TABLE IF EXISTS lim_tasks, lim_results;
     CREATE TABLE lim_tasks(id bigserial PRIMARY KEY, queue text NOT NULL, state int NOT NULL, run_at timestamptz NOT NULL,
       priority int NOT NULL DEFAULT 0, attempt int NOT NULL DEFAULT 0, lease_until timestamptz, payload jsonb);
     CREATE INDEX lim_tasks_due ON lim_tasks(queue, priority, run_at, id) WHERE state = 0;
     CREATE TABLE lim_results(task_id bigint NOT NULL, attempt int NOT NULL, finished_at timestamptz NOT NULL, output jsonb,
       PRIMARY KEY(task_id, attempt));
     INSERT INTO lim_tasks(queue, state, run_at, payload)
       SELECT 'default', 0, now(), '{\"item\":12345,\"note\":\"x\"}' FROM generate_series(1, $n);"
sql "VACUUM ANALYZE lim_tasks"

# One transaction of the lifecycle; :ids is the claimed ids, comma-separated ('0' when none was left).
cat >"$work/lifecycle.sql" <<'SQL'
BEGIN;
WITH locked AS MATERIALIZED (
    SELECT id FROM lim_tasks WHERE queue = 'default' AND state = 0 AND run_at <= now()
    ORDER BY priority, run_at, id LIMIT 64 FOR UPDATE SKIP LOCKED),
  claimed AS (
    UPDATE lim_tasks t SET state = 1, attempt = t.attempt + 1, lease_until = now() + interval '60 s'
    FROM locked WHERE t.id = locked.id RETURNING t.id)
  SELECT coalesce(string_agg(id::text, ','), '0') AS ids FROM claimed \gset
UPDATE lim_tasks SET state = 2, lease_until = NULL WHERE id = ANY(ARRAY[:ids]::bigint[]);
INSERT INTO lim_results(task_id, attempt, finished_at, output)
  SELECT id, attempt, now(), '{"ok":true}' FROM lim_tasks WHERE id = ANY(ARRAY[:ids]::bigint[]);
END;
SQL

# Enough transactions per client for every task (the last ones find none left and do nothing).
per_client=$(( ((n + 63) / 64 + clients - 1) / clients ))
start=$(date +%s.%N)
if ! "$bin/pgbench" -h "$host" -U postgres -n -M simple -c "$clients" -j "$clients" -t "$per_client" \
    -f "$work/lifecycle.sql" "$database" >"$work/pgbench.log" 2>&1; then
  tail -5 "$work/pgbench.log" >&2
  exit 1
fi
end=$(date +%s.%N)
done_n=$(sql "SELECT count(*) FROM lim_tasks WHERE state = 2")
sql "DROP TABLE lim_tasks, lim_results"
python3 -c "import sys; n, c, d, s, e = sys.argv[1:]; print(f'pg-limit n={n} clients={c} lifecycle_64={int(d) / (float(e) - float(s)):.0f}/s done={d}')" \
  "$n" "$clients" "$done_n" "$start" "$end"
