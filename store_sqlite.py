"""The embedded store: one SQLite file in WAL mode (store.py declares the interface)."""

import contextlib
import logging
import os
import sqlite3
import threading
import time

import store
from store import ADDED_COLUMNS, ADDED_INDEXES, DATA_FIELDS, PRIVATE, SCHEMA, TEAMS_SCHEMA

logger = logging.getLogger("gaas")

SQLITE_TRIGGERS = """
CREATE TRIGGER IF NOT EXISTS job_counts_insert AFTER INSERT ON jobs BEGIN
    INSERT INTO job_counts VALUES (NEW.user_id, NEW.job_status, 1)
    ON CONFLICT (user_id, job_status) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS job_counts_delete AFTER DELETE ON jobs BEGIN
    UPDATE job_counts SET n = n - 1 WHERE user_id = OLD.user_id AND job_status = OLD.job_status;
END;
CREATE TRIGGER IF NOT EXISTS job_counts_update AFTER UPDATE OF job_status ON jobs
WHEN OLD.job_status != NEW.job_status BEGIN
    UPDATE job_counts SET n = n - 1 WHERE user_id = OLD.user_id AND job_status = OLD.job_status;
    INSERT INTO job_counts VALUES (NEW.user_id, NEW.job_status, 1)
    ON CONFLICT (user_id, job_status) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS job_durations_end AFTER UPDATE OF job_status ON jobs
WHEN NEW.job_status IN ('finished', 'failed') AND OLD.job_status NOT IN ('finished', 'failed')
    AND NEW.started_at IS NOT NULL AND NEW.ended_at IS NOT NULL BEGIN
    UPDATE job_durations SET n = n + 1, total = total + (NEW.ended_at - NEW.started_at)
    WHERE le >= NEW.ended_at - NEW.started_at;
END;
"""



class SqliteStore(store.Store):
    """The embedded store: one SQLite file (GEMSEO_HTTP_USER_DATABASE_PATH) in WAL mode."""

    TRACEBACK_END = "substr(traceback, -400)"
    CONTAINS = "instr(name, ?) > 0"
    JSON_MEMBERS = ("json_each({}) AS member", "member.type", "member.id")
    # A key's first characters, not its 129: an index of random keys is where a batch's insert
    # spent its time (2.5x less for 200 points, measured). Named, since from ten keys on the
    # planner would rather walk jobs_by_status (every finished job) than probe this index.
    CACHE_INDEXES = (
        "DROP INDEX IF EXISTS jobs_by_cache_key",
        f"CREATE INDEX IF NOT EXISTS jobs_by_cache_prefix ON jobs ({store.KEY_PREFIX}) WHERE cache_key IS NOT NULL",
    )
    BY_CACHE_KEY = " INDEXED BY jobs_by_cache_prefix"
    integrity_error = sqlite3.IntegrityError

    def __init__(self, path):
        super().__init__()
        self.path = path

    def summary(self):
        return f"sqlite {self.path}"

    def _keys_condition(self, keys):
        # By prefix only: with a "cache_key = ?" beside it, SQLite puts that value in place of the
        # column in the prefix's expression, which then no longer matches its index.
        return f"{store.KEY_PREFIX} IN ({', '.join('?' * len(keys))}) AND cache_key IS NOT NULL", [key[: store.KNOWN_KEY] for key in keys]

    def snapshot(self):
        """A connection of its own inside a read transaction, usable from any thread, one at a
        time (a streamed answer reads it from successive threads of the pool)."""
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("BEGIN")  # the snapshot is taken at the first read
        return conn

    def open(self, timeout=30):
        conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        # WAL with NORMAL stays consistent on power loss; only the last commits may be lost.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        # Checkpoints run in a thread of their own (start_checkpoints): inside a commit, one
        # cost that request 10 ms or more every few hundred writes.
        conn.execute("PRAGMA wal_autocheckpoint=0")
        return conn

    @contextlib.contextmanager
    def transaction(self):
        """`with store.transaction() as conn:` runs a write transaction that takes the lock at once."""
        conn = self.connect()
        self._begin(conn)
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.Error:
            # A failed COMMIT (disk full, I/O error) leaves the transaction open: close it, or
            # this thread's connection would stay inside it forever.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    @staticmethod
    def _begin(conn):
        # SQLite's own busy wait sleeps 1, 2, 5, 10... ms while the web app and the worker
        # hold the write lock for a tenth of that: retry at a finer grain instead.
        conn.execute("PRAGMA busy_timeout = 0")
        delay, deadline = 0.0001, time.monotonic() + 30
        try:
            while True:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as error:
                    if "locked" not in str(error) or time.monotonic() > deadline:
                        raise
                time.sleep(delay)
                delay = min(delay * 2, 0.002)
        finally:
            conn.execute("PRAGMA busy_timeout = 30000")

    def start_checkpoints(self, interval=1.0):
        """Copy the write-ahead log into the database every `interval` seconds, from a daemon
        thread (the web app and the worker each run one; they take turns on SQLite's lock)."""

        def loop():
            while True:
                time.sleep(interval)
                try:
                    self.connect().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as error:
                    logger.warning("checkpoint failed: %s", error)

        threading.Thread(target=loop, name="checkpoints", daemon=True).start()

    def init(self, queue_ddl=()):
        """Create the schema; safe to call any number of times."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self.connect()
        self._migrate_names(conn)
        conn.executescript(SCHEMA + TEAMS_SCHEMA + SQLITE_TRIGGERS)
        with self.transaction() as tx:
            # A store made when the data lived in the jobs table: move it.
            if "input_data" in self._columns(tx, "jobs"):
                tx.execute(f"INSERT OR IGNORE INTO job_data SELECT id, {', '.join(DATA_FIELDS)} FROM jobs")
                for name in DATA_FIELDS:
                    tx.execute(f"ALTER TABLE jobs DROP COLUMN {name}")
            if "token_version" not in self._columns(tx, "users"):
                tx.execute("ALTER TABLE users ADD COLUMN token_version INTEGER NOT NULL DEFAULT 0")
            if "size" not in self._columns(tx, "uploads"):
                tx.execute("ALTER TABLE uploads ADD COLUMN size INTEGER")
            for table, column, declaration in ADDED_COLUMNS:
                if column not in self._columns(tx, table):
                    tx.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
            for statement in (*ADDED_INDEXES, *self.CACHE_INDEXES):
                tx.execute(statement)
            store.fill_counts(tx)
        protect(self.path)

    @staticmethod
    def _columns(conn, table):
        return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}

    def _migrate_names(self, conn):
        """Bring an older store's tables to the names and columns that SCHEMA's indexes expect."""
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        # What older stores called `worker` holds web apps too.
        if "workers" in tables and "processes" not in tables:
            conn.execute("ALTER TABLE workers RENAME TO processes")
        if "jobs" in tables and "worker" in self._columns(conn, "jobs"):
            conn.execute("ALTER TABLE jobs RENAME COLUMN worker TO owner")
        if "jobs" in tables and "batch_id" not in self._columns(conn, "jobs"):
            conn.execute("ALTER TABLE jobs ADD COLUMN batch_id INTEGER")
            conn.execute("ALTER TABLE jobs ADD COLUMN batch_index INTEGER")
        if "jobs" in tables and "study_id" not in self._columns(conn, "jobs"):
            conn.execute("ALTER TABLE jobs ADD COLUMN study_id INTEGER")

    def feed(self):
        return SqliteFeed(self.open())



class SqliteFeed(store.Feed):
    """SQLite's data_version moves when another connection commits; both reads take
    microseconds, so the web app runs them on its event loop."""

    def version(self):
        return self.conn.execute("PRAGMA data_version").fetchone()[0]



def backup_file(source, target):
    """Write a consistent copy of an SQLite file while writers go on (SQLite's online backup)."""
    partial = target.with_suffix(".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE)
    os.close(fd)
    src, dst = sqlite3.connect(source, timeout=30), sqlite3.connect(partial)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()
    os.chmod(partial, PRIVATE)
    partial.replace(target)


def protect(path):
    """Make a database file and its journal files readable by their owner only."""
    for suffix in ("", "-wal", "-shm"):
        try:
            os.chmod(f"{path}{suffix}", PRIVATE)
        except FileNotFoundError:
            pass

