/* sqlite_limit.c: the physical limit of a SQLite-backed task queue on this machine, Rota's yardstick.
 *
 * What it measures: the statements any SQLite scheduler needs, prepared once and run from C with no
 * language runtime, no scheduler and no extra columns or indexes around them, on a new database file in
 * WAL mode (synchronous=NORMAL, or FULL when given as the second argument):
 *
 *   insert_1_per_txn      N/10 tasks enqueued one per transaction (BEGIN IMMEDIATE; INSERT; COMMIT)
 *   insert_1000_per_txn   the other 9N/10 enqueued 1,000 per transaction
 *   lifecycle_1_per_txn   N/10 tasks claimed one at a time (UPDATE ... WHERE id IN (SELECT ... LIMIT 1)
 *                         RETURNING, one transaction), then completed with a result row (a second one)
 *   lifecycle_64_per_txn  the other 9N/10 claimed 64 at a time, each claim's tasks completed in one
 *                         transaction (the shape of a scheduler that claims and records in batches)
 *
 * Rates are tasks per second of wall-clock time. It prints one line:
 *   sqlite-limit sync=NORMAL n=N insert_1_per_txn=R/s insert_1000_per_txn=R/s lifecycle_1_per_txn=R/s
 *   lifecycle_64_per_txn=R/s worked=N
 * bench/compare.sh divides `rota bench`'s enqueue_one, enqueue_bulk and e2e_noop by these (same run).
 *
 * It follows the workspace's reference (shared/bench/sqlite_limit.c) statement for statement, so the
 * ratios keep their meaning; the database goes in $TMPDIR (default /tmp), as `rota bench`'s does.
 *
 *   build: cc -O2 -o sqlite_limit bench/sqlite_limit.c -lsqlite3   (Debian: libsqlite3-dev)
 *   run:   ./sqlite_limit [N=100000] [NORMAL|FULL]
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static sqlite3 *db;

static double seconds_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Stops on any result other than OK, ROW or DONE, with SQLite's message. */
static int check(int rc, const char *what) {
  if (rc != SQLITE_OK && rc != SQLITE_ROW && rc != SQLITE_DONE) {
    fprintf(stderr, "sqlite_limit: %s: %s\n", what, sqlite3_errmsg(db));
    exit(1);
  }
  return rc;
}

static void run(const char *sql) { check(sqlite3_exec(db, sql, NULL, NULL, NULL), sql); }

static sqlite3_stmt *prepare(const char *sql) {
  sqlite3_stmt *statement = NULL;
  check(sqlite3_prepare_v2(db, sql, -1, &statement, NULL), sql);
  return statement;
}

/* Steps a statement that returns no row, then resets it for the next use. */
static void step_reset(sqlite3_stmt *statement, const char *what) {
  check(sqlite3_step(statement), what);
  sqlite3_reset(statement);
}

static const char payload[] = "{\"item\":12345,\"note\":\"x\"}";

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 100000;
  const char *sync = argc > 2 ? argv[2] : "NORMAL";
  if (n < 10 || (strcmp(sync, "NORMAL") != 0 && strcmp(sync, "FULL") != 0)) {
    fprintf(stderr, "usage: sqlite_limit [N>=10] [NORMAL|FULL]\n");
    return 2;
  }
  const char *tmp = getenv("TMPDIR");
  char path[4096];
  snprintf(path, sizeof path, "%s/sqlite_limit_XXXXXX", tmp && *tmp ? tmp : "/tmp");
  int fd = mkstemp(path);
  if (fd < 0) { perror("sqlite_limit: mkstemp"); return 1; }
  close(fd);
  unlink(path);
  if (sqlite3_open(path, &db) != SQLITE_OK) { fprintf(stderr, "sqlite_limit: cannot open %s\n", path); return 1; }

  char pragma[64];
  snprintf(pragma, sizeof pragma, "PRAGMA synchronous=%s", sync);
  run(pragma);
  run("PRAGMA journal_mode=WAL");
  run("PRAGMA busy_timeout=5000");
  /* The columns a scheduler needs, one partial index for claims, one result row per attempt. */
  run("CREATE TABLE tasks(id INTEGER PRIMARY KEY, queue TEXT NOT NULL, state INTEGER NOT NULL, run_at INTEGER NOT NULL,"
      " priority INTEGER NOT NULL DEFAULT 0, attempt INTEGER NOT NULL DEFAULT 0, lease_until INTEGER, payload BLOB)");
  run("CREATE INDEX tasks_due ON tasks(queue, priority, run_at) WHERE state = 0");
  run("CREATE TABLE results(task_id INTEGER NOT NULL, attempt INTEGER NOT NULL, finished_at INTEGER NOT NULL,"
      " output BLOB, PRIMARY KEY(task_id, attempt))");

  sqlite3_stmt *insert = prepare("INSERT INTO tasks(queue, state, run_at, payload) VALUES('default', 0, ?1, ?2)");
  sqlite3_stmt *claim = prepare(
      "UPDATE tasks SET state = 1, attempt = attempt + 1, lease_until = ?1 WHERE id IN"
      " (SELECT id FROM tasks WHERE queue = 'default' AND state = 0 AND run_at <= ?2 ORDER BY priority, run_at LIMIT ?3)"
      " RETURNING id, attempt, payload");
  sqlite3_stmt *complete = prepare("UPDATE tasks SET state = 2, lease_until = NULL WHERE id = ?1");
  sqlite3_stmt *result = prepare("INSERT INTO results(task_id, attempt, finished_at, output) VALUES(?1, ?2, ?3, ?4)");

  /* Enqueue: a tenth one per transaction, the rest 1,000 per transaction; run_at is the row's number. */
  int single = n / 10;
  double t0 = seconds_now();
  for (int i = 0; i < single; i++) {
    run("BEGIN IMMEDIATE");
    sqlite3_bind_int64(insert, 1, i);
    sqlite3_bind_blob(insert, 2, payload, (int)sizeof payload - 1, SQLITE_STATIC);
    step_reset(insert, "insert");
    run("COMMIT");
  }
  double t1 = seconds_now();
  for (int i = single; i < n; i += 1000) {
    run("BEGIN IMMEDIATE");
    for (int j = i; j < i + 1000 && j < n; j++) {
      sqlite3_bind_int64(insert, 1, j);
      sqlite3_bind_blob(insert, 2, payload, (int)sizeof payload - 1, SQLITE_STATIC);
      step_reset(insert, "insert");
    }
    run("COMMIT");
  }
  double t2 = seconds_now();

  /* Lifecycle: claim (one transaction), then complete each claimed task and write its result (another). */
  const int batch_sizes[2] = {1, 64};
  double rates[2];
  int worked = 0;
  for (int b = 0; b < 2; b++) {
    int target = b == 0 ? single : n - single, count = 0;
    double start = seconds_now();
    while (count < target) {
      sqlite3_int64 ids[64];
      int attempts[64], claimed = 0;
      run("BEGIN IMMEDIATE");
      sqlite3_bind_int64(claim, 1, 1 << 30);   /* lease_until */
      sqlite3_bind_int64(claim, 2, 1 << 30);   /* now: every task is due */
      sqlite3_bind_int(claim, 3, batch_sizes[b]);
      int rc;
      while ((rc = sqlite3_step(claim)) == SQLITE_ROW && claimed < 64) {
        ids[claimed] = sqlite3_column_int64(claim, 0);
        attempts[claimed] = sqlite3_column_int(claim, 1);
        claimed++;
      }
      check(rc, "claim");
      sqlite3_reset(claim);
      run("COMMIT");
      if (claimed == 0) break;
      run("BEGIN IMMEDIATE");
      for (int k = 0; k < claimed; k++) {
        sqlite3_bind_int64(complete, 1, ids[k]);
        step_reset(complete, "complete");
        sqlite3_bind_int64(result, 1, ids[k]);
        sqlite3_bind_int(result, 2, attempts[k]);
        sqlite3_bind_int64(result, 3, 1);
        sqlite3_bind_blob(result, 4, "ok", 2, SQLITE_STATIC);
        step_reset(result, "result");
      }
      run("COMMIT");
      count += claimed;
    }
    rates[b] = count / (seconds_now() - start);
    worked += count;
  }

  printf("sqlite-limit sync=%s n=%d insert_1_per_txn=%.0f/s insert_1000_per_txn=%.0f/s lifecycle_1_per_txn=%.0f/s"
         " lifecycle_64_per_txn=%.0f/s worked=%d\n",
         sync, n, single / (t1 - t0), (n - single) / (t2 - t1), rates[0], rates[1], worked);

  sqlite3_finalize(insert);
  sqlite3_finalize(claim);
  sqlite3_finalize(complete);
  sqlite3_finalize(result);
  sqlite3_close(db);
  char file[4200];
  unlink(path);
  snprintf(file, sizeof file, "%s-wal", path);
  unlink(file);
  snprintf(file, sizeof file, "%s-shm", path);
  unlink(file);
  return worked == n ? 0 : 1;
}
