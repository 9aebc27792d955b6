"""The job store: users, jobs, uploaded files and heartbeats, shared by the web app and the worker.

Every SQL statement of gaas is in this module. The rules of which state may follow which live in
jobs.py, which calls set_status() with the states it expects (a compare-and-set).

Two backends behind one interface (huey's storage.py is the model): SqliteStore, the embedded
default, and PostgresStore when GEMSEO_HTTP_DATABASE_URL is set. BaseStore holds the SQL both
speak; each backend adds its connections, transactions, schema and change feed. `store.get_job()`
is a method of current(), the store that the settings name.
"""

import contextlib
import logging
import os
import re
import sqlite3
import threading
import time
from datetime import datetime, timezone

import orjson

import settings

logger = logging.getLogger("gaas")

# The statuses of the wire contract, in their order of life. `created` is never used by gaas.
STATUSES = ("created", "pending", "running", "finished", "failed")
ENDED = ("finished", "failed")
# Upper bounds of the job duration histogram of /metrics, in seconds.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600)

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at REAL NOT NULL,
    -- Part of every token: changing it (new password, deleted user) ends all sessions.
    token_version INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    discipline_class_name TEXT NOT NULL,
    job_type TEXT NOT NULL,
    job_status TEXT NOT NULL,
    execution_mode TEXT NOT NULL,
    error TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    started_at REAL,
    ended_at REAL,
    timeout REAL,
    -- The process (worker or web app, see processes) that claimed the job; '' while queued.
    owner TEXT NOT NULL DEFAULT '',
    pid INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    workdir TEXT NOT NULL DEFAULT '',
    linearization_mode TEXT NOT NULL DEFAULT 'auto',
    discipline_options TEXT NOT NULL DEFAULT '{}',
    linearize_options TEXT NOT NULL DEFAULT '{}',
    differentiated_inputs TEXT NOT NULL DEFAULT '[]',
    differentiated_outputs TEXT NOT NULL DEFAULT '[]',
    input_files TEXT NOT NULL DEFAULT '[]',
    traceback TEXT NOT NULL DEFAULT '',
    -- A point of a batch: its batch and its place in it (NULL for a job of its own).
    batch_id INTEGER,
    batch_index INTEGER
);
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    discipline_class_name TEXT NOT NULL,
    n_samples INTEGER NOT NULL,
    created_at REAL NOT NULL,
    -- How the points were made: {"samples": n} or the doe object of the request.
    design TEXT NOT NULL DEFAULT '{}',
    -- The inputs the request gave (shared or per point): the columns of the results.
    input_names TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS batches_by_user ON batches (user_id, id);
-- The data of a job, apart: SQLite rewrites a whole row on any update, so a status change must
-- not rewrite megabytes of arrays (it did: 30 ms each for a million numbers).
CREATE TABLE IF NOT EXISTS job_data (
    job_id INTEGER PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    input_data TEXT NOT NULL DEFAULT '{}',
    output_data TEXT NOT NULL DEFAULT '{}',
    jacobian_data TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS jobs_by_user ON jobs (user_id, id);
CREATE INDEX IF NOT EXISTS jobs_by_user_status ON jobs (user_id, job_status, id);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (job_status, owner);
CREATE INDEX IF NOT EXISTS jobs_by_batch ON jobs (batch_id, job_status) WHERE batch_id IS NOT NULL;
-- Jobs per user and status, kept by triggers: the job list's total and /metrics read it
-- instead of counting 100,000 index entries.
CREATE TABLE IF NOT EXISTS job_counts (
    user_id INTEGER NOT NULL,
    job_status TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (user_id, job_status)
) WITHOUT ROWID;
-- The duration histogram of /metrics: counted when a job ends, so it never goes down when
-- jobs are purged, and a scrape reads 17 rows instead of every job.
CREATE TABLE IF NOT EXISTS job_durations (
    le REAL PRIMARY KEY,
    n INTEGER NOT NULL DEFAULT 0,
    total REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL,
    filename TEXT NOT NULL,
    unique_filename TEXT NOT NULL UNIQUE,
    sha256sum TEXT NOT NULL,
    size INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS files_by_user ON files (user_id, id);
CREATE TABLE IF NOT EXISTS uploads (
    user_id INTEGER NOT NULL,
    upload_key TEXT NOT NULL,
    partial_name TEXT NOT NULL,
    next_chunk INTEGER NOT NULL,
    total_chunks INTEGER NOT NULL,
    updated_at REAL NOT NULL,
    -- Bytes of the partial file once its chunks up to next_chunk are in: a chunk is appended
    -- from there, so bytes a failed or killed append left behind are cut off (NULL: unknown).
    size INTEGER,
    PRIMARY KEY (user_id, upload_key)
);
-- Heartbeats of the processes that run jobs: workers and web apps (synchronous jobs).
CREATE TABLE IF NOT EXISTS processes (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at REAL NOT NULL,
    beat_at REAL NOT NULL
);
-- Password checks of the last minute by address and user name: the sign-in throttle counts
-- across every web process and host.
CREATE TABLE IF NOT EXISTS sign_ins (
    attempt_key TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sign_ins_by_key ON sign_ins (attempt_key, at);
-- Requests answered, summed over every web process (each adds what it counted every beat).
CREATE TABLE IF NOT EXISTS request_counts (
    method TEXT NOT NULL,
    route TEXT NOT NULL,
    status INTEGER NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (method, route, status)
);
"""

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

# Columns of a list entry: everything but the data fields.
LIST_COLUMNS = (
    "id, user_id, name, discipline_class_name, job_type, job_status, execution_mode, error,"
    " created_at, started_at, ended_at, timeout, workdir, linearization_mode,"
    " {traceback_end} AS traceback_end, batch_id, batch_index"
)
JSON_FIELDS = (
    "discipline_options",
    "linearize_options",
    "differentiated_inputs",
    "differentiated_outputs",
    "input_files",
)
DATA_FIELDS = ("input_data", "output_data", "jacobian_data")
DATA_COLUMNS = ", ".join(f"coalesce({name}, '{{}}') AS {name}" for name in DATA_FIELDS)
JOB_SEQUENCE = "pg_get_serial_sequence('jobs', 'id')"
GET_JOB = f"SELECT jobs.*, {DATA_COLUMNS} FROM jobs LEFT JOIN job_data ON job_data.job_id = jobs.id WHERE jobs.id = ?"
PRIVATE = 0o600  # the store holds password hashes and every job

# PostgreSQL's form of the same schema: 64-bit ids and counts, double precision times.
PG_TYPES = (
    (r"INTEGER PRIMARY KEY AUTOINCREMENT", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
    (r"\bINTEGER\b", "BIGINT"),
    (r"\bREAL\b", "DOUBLE PRECISION"),
    (r"\) WITHOUT ROWID;", ");"),
)
PG_TRIGGERS = """
CREATE OR REPLACE FUNCTION gaas_job_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.job_status = NEW.job_status THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE job_counts SET n = n - 1 WHERE user_id = OLD.user_id AND job_status = OLD.job_status;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO job_counts VALUES (NEW.user_id, NEW.job_status, 1)
        ON CONFLICT (user_id, job_status) DO UPDATE SET n = job_counts.n + 1;
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.job_status IN ('finished', 'failed') THEN
        -- Wakes the long polls of every web process (one message per transaction).
        PERFORM pg_notify('gaas_ended', '');
        IF OLD.job_status NOT IN ('finished', 'failed') AND NEW.started_at IS NOT NULL
            AND NEW.ended_at IS NOT NULL THEN
            UPDATE job_durations SET n = n + 1, total = total + (NEW.ended_at - NEW.started_at)
            WHERE le >= NEW.ended_at - NEW.started_at;
        END IF;
    END IF;
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER gaas_job_status AFTER INSERT OR DELETE OR UPDATE OF job_status ON jobs
FOR EACH ROW EXECUTE FUNCTION gaas_job_changed();
"""


class BaseStore:
    """The SQL that both backends speak; `?` marks parameters in both."""

    # Dialect: the last 400 characters of a text, and "name contains ?".
    TRACEBACK_END = "substr(traceback, -400)"
    CONTAINS = "instr(name, ?) > 0"
    integrity_error = sqlite3.IntegrityError
    # True when a read waits on the network: the web app then reads in a thread, not on its loop.
    remote = False

    def __init__(self):
        self.local = threading.local()
        self.list_columns = LIST_COLUMNS.format(traceback_end=self.TRACEBACK_END)

    def connect(self):
        """Return this thread's connection, opening it on first use."""
        conn = getattr(self.local, "conn", None)
        if conn is None or self.broken(conn):
            conn = self.local.conn = self.open()
        return conn

    def broken(self, conn):
        return False

    def start_checkpoints(self):
        """Start what the backend needs done in the background (nothing but for SQLite)."""

    def queue_task(self, conn, storage, data, priority):
        raise NotImplementedError(f"{type(self).__name__} does not hold a queue")

    # Users

    def add_user(self, username, password_hash):
        """Insert a user and return its id; raise NameTaken when the name is taken."""
        try:
            with self.transaction() as conn:
                return conn.execute(
                    "INSERT INTO users (username, password_hash, created_at) VALUES (?, ?, ?) RETURNING id",
                    (username, password_hash, time.time()),
                ).fetchall()[0][0]
        except self.integrity_error:
            raise NameTaken(username) from None

    def user_by_name(self, username):
        return self.connect().execute("SELECT * FROM users WHERE username = ?", (username,)).fetchone()

    def user_by_id(self, user_id):
        return self.connect().execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone()

    def set_password(self, username, password_hash):
        """Change a password and end every session of the user; return whether the user exists."""
        with self.transaction() as conn:
            cursor = conn.execute(
                "UPDATE users SET password_hash = ?, token_version = token_version + 1 WHERE username = ?",
                (password_hash, username),
            )
            return cursor.rowcount == 1

    def delete_user(self, user_id):
        """Delete a user with their jobs, files and uploads; return what the caller must remove from
        disk: (job directories, stored file names, partial upload names)."""
        with self.transaction() as conn:
            workdirs = [row[0] for row in conn.execute("SELECT workdir FROM jobs WHERE user_id = ?", (user_id,))]
            files = [row[0] for row in conn.execute("SELECT unique_filename FROM files WHERE user_id = ?", (user_id,))]
            partial = [row[0] for row in conn.execute("SELECT partial_name FROM uploads WHERE user_id = ?", (user_id,))]
            conn.execute("DELETE FROM jobs WHERE user_id = ?", (user_id,))
            conn.execute("DELETE FROM files WHERE user_id = ?", (user_id,))
            conn.execute("DELETE FROM uploads WHERE user_id = ?", (user_id,))
            conn.execute("DELETE FROM job_counts WHERE user_id = ?", (user_id,))
            conn.execute("DELETE FROM batches WHERE user_id = ?", (user_id,))
            conn.execute("DELETE FROM users WHERE id = ?", (user_id,))
        return workdirs, files, partial

    def list_users(self):
        return self.connect().execute("SELECT id, username, created_at FROM users ORDER BY id").fetchall()

    # Jobs

    def create_job(self, fields, workdir_prefix, tasks=None):
        """Insert a job from a dict of column values (data fields included), its directory
        workdir_prefix followed by its id, and return its row. tasks(ids) gives the queue tasks
        (storage, message, priority) to record in the same transaction, when the queue is in
        this store's database: a job is then never recorded without its task."""
        fields = {"created_at": time.time(), **fields}
        data = {name: fields.pop(name) for name in DATA_FIELDS if name in fields}
        names = ", ".join(fields)
        marks = ", ".join("?" * len(fields))
        with self.transaction() as conn:
            job_id = conn.execute(f"INSERT INTO jobs ({names}) VALUES ({marks}) RETURNING id", tuple(fields.values())).fetchall()[0][0]
            conn.execute("UPDATE jobs SET workdir = ? WHERE id = ?", (f"{workdir_prefix}{job_id}", job_id))
            self._write_data(conn, job_id, data, insert=True)
            for task in tasks([job_id]) if tasks else ():
                self.queue_task(conn, *task)
            return conn.execute(GET_JOB, (job_id,)).fetchone()

    def _write_data(self, conn, job_id, data, insert=False):
        if insert:
            names = ", ".join(["job_id", *data])
            marks = ", ".join("?" * (len(data) + 1))
            conn.execute(f"INSERT INTO job_data ({names}) VALUES ({marks})", (job_id, *data.values()))
        elif data:
            assignments = ", ".join(f"{name} = ?" for name in data)
            conn.execute(f"UPDATE job_data SET {assignments} WHERE job_id = ?", (*data.values(), job_id))

    def get_job(self, job_id, user_id=None):
        """Return the job row with its data fields, or None when absent or owned by another user."""
        row = self.connect().execute(GET_JOB, (job_id,)).fetchone()
        if row is None or (user_id is not None and row["user_id"] != user_id):
            return None
        return row

    def job_status(self, job_id):
        row = self.connect().execute("SELECT job_status FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else row["job_status"]

    def list_jobs(
        self, user_id, status=None, limit=100, offset=0, batch_id=None, discipline=None, name=None, error=None, not_error=None
    ):
        """Return (rows without data fields, total count) of a user's jobs, newest first (a batch's
        points in their order); `name` matches a part of the job name, `not_error` leaves out one
        error kind."""
        # The filter reads the same on jobs and on job_counts.
        where, params = "user_id = ?", [user_id]
        if status:
            where += " AND job_status = ?"
            params.append(status)
        conn = self.connect()
        if batch_id is not None or discipline or name or error or not_error:
            for column, value in (("batch_id", batch_id), ("discipline_class_name", discipline), ("error", error)):
                if value:
                    where += f" AND {column} = ?"
                    params.append(value)
            if name:
                where += f" AND {self.CONTAINS}"
                params.append(name)
            if not_error:
                where += " AND (error IS NULL OR error <> ?)"
                params.append(not_error)
            order = "batch_index" if batch_id is not None else "id DESC"
            rows = conn.execute(
                f"SELECT {self.list_columns} FROM jobs WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?",
                (*params, limit, offset),
            ).fetchall()
            total = conn.execute(f"SELECT count(*) FROM jobs WHERE {where}", params).fetchone()[0]
            return rows, total
        rows = conn.execute(
            f"SELECT {self.list_columns} FROM jobs WHERE {where} ORDER BY id DESC LIMIT ? OFFSET ?",
            (*params, limit, offset),
        ).fetchall()
        total = conn.execute(f"SELECT CAST(coalesce(sum(n), 0) AS BIGINT) FROM job_counts WHERE {where}", params).fetchone()[0]
        return rows, int(total)

    def waiting_jobs(self, user_id):
        """How many jobs of a user are pending or running."""
        row = self.connect().execute(
            "SELECT CAST(coalesce(sum(n), 0) AS BIGINT) FROM job_counts WHERE user_id = ? AND job_status IN ('created', 'pending', 'running')",
            (user_id,),
        ).fetchone()
        return int(row[0])

    def set_status(self, job_id, status, expected, where=None, **fields):
        """Move a job to `status` if it is in one of the `expected` states and its columns have the
        values of `where` ({column: value}); return whether it moved."""
        return self.set_statuses([(job_id, status, expected, where, fields)])[0]

    def set_statuses(self, moves):
        """Make several set_status moves, (job id, status, expected, where, fields), in one
        transaction (a batch's next point starts as the last one ends); return whether each moved."""
        with self.transaction() as conn:
            return self._move_in(conn, moves)

    def set_statuses_and_read(self, moves, job_id):
        """set_statuses(moves), then the row of job_id in the same transaction: (whether each
        moved, the row or None)."""
        with self.transaction() as conn:
            return self._move_in(conn, moves), conn.execute(GET_JOB, (job_id,)).fetchone()

    def _move_in(self, conn, moves):
        moved = []
        for move in moves:
            update, params, data = _move(*move)
            moved.append(conn.execute(update, params).rowcount == 1)
            if moved[-1]:
                self._write_data(conn, move[0], data)
        return moved

    def request_cancel(self, job_id):
        """Flag a running job for its runner to stop; return whether it was running."""
        with self.transaction() as conn:
            cursor = conn.execute(
                "UPDATE jobs SET cancel_requested = 1 WHERE id = ? AND job_status = 'running'", (job_id,)
            )
            return cursor.rowcount == 1

    def fail_pending_of_batch(self, batch_id, error, text):
        """End every pending point of a batch as failed; return how many."""
        with self.transaction() as conn:
            return conn.execute(
                "UPDATE jobs SET job_status = 'failed', ended_at = ?, error = ?, traceback = ?"
                " WHERE batch_id = ? AND job_status IN ('created', 'pending')",
                (time.time(), error, text, batch_id),
            ).rowcount

    def request_cancel_of_batch(self, batch_id):
        with self.transaction() as conn:
            return conn.execute(
                "UPDATE jobs SET cancel_requested = 1 WHERE batch_id = ? AND job_status = 'running'", (batch_id,)
            ).rowcount

    def cancel_requested(self, job_id):
        row = self.connect().execute("SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return row is None or bool(row[0])

    def delete_job(self, job_id):
        with self.transaction() as conn:
            conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def claimed_jobs(self):
        """Return (id, owner, owner's last beat or None, attempts, mode, status) of the jobs that a
        process holds: running ones, and pending ones a process has claimed."""
        return self.connect().execute(
            "SELECT jobs.id, jobs.owner, processes.beat_at, jobs.attempts, jobs.execution_mode,"
            " jobs.job_status FROM jobs LEFT JOIN processes ON processes.id = jobs.owner"
            " WHERE jobs.job_status = 'running' OR (jobs.job_status = 'pending' AND jobs.owner != '')"
        ).fetchall()

    def running_jobs_of(self, owner):
        """Return (id, started_at, attempts, mode) of the jobs recorded as running in that process."""
        return self.connect().execute(
            "SELECT id, started_at, attempts, execution_mode FROM jobs WHERE job_status = 'running' AND owner = ?",
            (owner,),
        ).fetchall()

    def held_jobs_of(self, owner):
        """Ids of the pending jobs that process holds (a worker thread waiting for a warm process)."""
        rows = self.connect().execute("SELECT id FROM jobs WHERE job_status = 'pending' AND owner = ?", (owner,))
        return [row[0] for row in rows.fetchall()]

    def unclaimed_jobs(self, created_before):
        """Ids of the asynchronous jobs still waiting for a worker, recorded before that time."""
        rows = self.connect().execute(
            "SELECT id FROM jobs WHERE job_status = 'pending' AND owner = ''"
            " AND execution_mode = 'asynchronous' AND created_at < ? ORDER BY id",
            (created_before,),
        )
        return [row[0] for row in rows]

    def ended_jobs(self, before):
        """(id, workdir) of the jobs that ended before that time."""
        return self.connect().execute(
            "SELECT id, workdir FROM jobs WHERE job_status IN ('finished', 'failed') AND ended_at < ?",
            (before,),
        ).fetchall()

    def ended_batches(self, before):
        """Ids of the batches made before that time whose points all ended before it (or that
        have none left)."""
        rows = self.connect().execute(
            "SELECT id FROM batches WHERE created_at < ? AND NOT EXISTS (SELECT 1 FROM jobs"
            " WHERE jobs.batch_id = batches.id AND NOT (job_status IN ('finished', 'failed') AND ended_at < ?))",
            (before, before),
        )
        return [row[0] for row in rows]

    # Batches

    def create_batch(self, batch, common, inputs, workdir_prefix, tasks=None):
        """Record a batch and its points in one transaction: `common` holds the column values shared
        by every point, `inputs` the input_data JSON text of each; a point's directory is
        workdir_prefix followed by its id; tasks as for create_job. Return (batch id, point ids)."""
        with self.transaction() as conn:
            batch_id = conn.execute(
                "INSERT INTO batches (user_id, name, discipline_class_name, n_samples, created_at, design, input_names)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    batch["user_id"],
                    batch["name"],
                    batch["discipline_class_name"],
                    len(inputs),
                    time.time(),
                    batch["design"],
                    batch["input_names"],
                ),
            ).fetchall()[0][0]
            fields = dict(common, created_at=time.time(), batch_id=batch_id)
            names = ", ".join([*fields, "batch_index", "workdir"])
            marks = ", ".join("?" * (len(fields) + 2))
            insert = f"INSERT INTO jobs ({names}) VALUES ({marks}) RETURNING id"
            values = tuple(fields.values())
            ids = []
            for index, text in enumerate(inputs):
                job_id = conn.execute(insert, (*values, index, "")).fetchall()[0][0]
                ids.append(job_id)
            conn.execute("UPDATE jobs SET workdir = ? || CAST(id AS TEXT) WHERE batch_id = ?", (str(workdir_prefix), batch_id))
            conn.executemany("INSERT INTO job_data (job_id, input_data) VALUES (?, ?)", zip(ids, inputs))
            for task in tasks(ids) if tasks else ():
                self.queue_task(conn, *task)
        return batch_id, ids

    def get_batch(self, batch_id, user_id):
        """The batch row of this user, or None."""
        row = self.connect().execute("SELECT * FROM batches WHERE id = ?", (batch_id,)).fetchone()
        return row if row is not None and row["user_id"] == user_id else None

    def list_batches(self, user_id, limit=100, offset=0):
        conn = self.connect()
        rows = conn.execute(
            "SELECT * FROM batches WHERE user_id = ? ORDER BY id DESC LIMIT ? OFFSET ?", (user_id, limit, offset)
        ).fetchall()
        total = conn.execute("SELECT count(*) FROM batches WHERE user_id = ?", (user_id,)).fetchone()[0]
        return rows, total

    def batch_progress(self, batch_ids):
        """{batch id: ({status: count}, first start, last end)} of these batches' points."""
        progress = {batch_id: ({}, None, None) for batch_id in batch_ids}
        if not batch_ids:
            return progress
        marks = ", ".join("?" * len(batch_ids))
        for batch_id, status, count, started, ended in self.connect().execute(
            f"SELECT batch_id, job_status, count(*), min(started_at), max(ended_at) FROM jobs"
            f" WHERE batch_id IN ({marks}) GROUP BY batch_id, job_status",
            list(batch_ids),
        ):
            counts, first, last = progress[batch_id]
            counts[status] = count
            first = started if first is None or (started is not None and started < first) else first
            last = ended if last is None or (ended is not None and ended > last) else last
            progress[batch_id] = (counts, first, last)
        return progress

    def batch_reader(self, batch_id):
        """A BatchReader of a batch's points: every read in one snapshot, on a connection of its own."""
        return BatchReader(self.snapshot(), batch_id, self.JSON_MEMBERS)

    def delete_batch(self, batch_id):
        """Delete a batch and its points; return the points' directories."""
        with self.transaction() as conn:
            workdirs = [row[0] for row in conn.execute("SELECT workdir FROM jobs WHERE batch_id = ?", (batch_id,))]
            conn.execute("DELETE FROM jobs WHERE batch_id = ?", (batch_id,))
            conn.execute("DELETE FROM batches WHERE id = ?", (batch_id,))
        return workdirs

    # Uploaded files

    def add_file(self, user_id, filename, unique_filename, sha256sum, size):
        with self.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO files (user_id, filename, unique_filename, sha256sum, size, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                (user_id, filename, unique_filename, sha256sum, size, time.time()),
            )
            return cursor.fetchall()[0][0]

    def delete_file(self, file_id):
        with self.transaction() as conn:
            conn.execute("DELETE FROM files WHERE id = ?", (file_id,))

    def list_files(self, user_id):
        rows = self.connect().execute("SELECT * FROM files WHERE user_id = ? ORDER BY id", (user_id,))
        return [file_entry(row) for row in rows]

    def owned_file(self, user_id, file_id=None, unique_filename=None):
        """Return a file row of this user found by id or by unique name, or None."""
        conn = self.connect()
        if file_id is not None:
            row = conn.execute("SELECT * FROM files WHERE id = ?", (file_id,)).fetchone()
        else:
            row = conn.execute(
                "SELECT * FROM files WHERE unique_filename = ?", (unique_filename,)
            ).fetchone()
        if row is None or row["user_id"] != user_id:
            return None
        return row

    def old_files(self, before):
        """(id, unique name) of the uploaded files stored before that time."""
        return self.connect().execute(
            "SELECT id, unique_filename FROM files WHERE created_at < ?", (before,)
        ).fetchall()

    def files_in_use(self, leaving=()):
        """Unique names of the uploaded files that a job names among its inputs, not counting the
        jobs of ids `leaving`."""
        used, leaving = set(), set(leaving)
        for job_id, text in self.connect().execute("SELECT id, input_files FROM jobs WHERE input_files != '[]'"):
            if job_id not in leaving:
                used.update(item["unique_filename"] for item in orjson.loads(text))
        return used

    def upload_state(self, user_id, upload_key):
        return self.connect().execute(
            "SELECT * FROM uploads WHERE user_id = ? AND upload_key = ?", (user_id, upload_key)
        ).fetchone()

    def save_upload_state(self, user_id, upload_key, partial_name, next_chunk, total_chunks, size):
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO uploads (user_id, upload_key, partial_name, next_chunk, total_chunks, updated_at, size)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, upload_key) DO UPDATE"
                " SET partial_name = excluded.partial_name, next_chunk = excluded.next_chunk,"
                " total_chunks = excluded.total_chunks, updated_at = excluded.updated_at, size = excluded.size",
                (user_id, upload_key, partial_name, next_chunk, total_chunks, time.time(), size),
            )

    def drop_upload_state(self, user_id, upload_key):
        with self.transaction() as conn:
            conn.execute("DELETE FROM uploads WHERE user_id = ? AND upload_key = ?", (user_id, upload_key))

    def stale_uploads(self, before):
        """(user id, upload key, partial name) of the uploads left unfinished since that time."""
        return self.connect().execute(
            "SELECT user_id, upload_key, partial_name FROM uploads WHERE updated_at < ?", (before,)
        ).fetchall()

    # Heartbeats of workers and web apps

    def beat(self, owner_id):
        """Record that a worker or web app is alive."""
        host, pid = owner_id.split(":")[1:3]
        now = time.time()
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO processes (id, host, pid, started_at, beat_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET beat_at = excluded.beat_at",
                (owner_id, host, int(pid), now, now),
            )

    def forget(self, owner_id):
        with self.transaction() as conn:
            conn.execute("DELETE FROM processes WHERE id = ?", (owner_id,))

    def forget_silent(self, before):
        """Drop the heartbeats older than that time that no waiting or running job names."""
        with self.transaction() as conn:
            conn.execute(
                "DELETE FROM processes WHERE beat_at < ? AND id NOT IN"
                " (SELECT owner FROM jobs WHERE job_status IN ('pending', 'running') AND owner != '')",
                (before,),
            )

    def live_processes(self, since):
        """(id, beat_at) of the workers and web apps that beat since that time."""
        return self.connect().execute(
            "SELECT id, beat_at FROM processes WHERE beat_at >= ? ORDER BY id", (since,)
        ).fetchall()

    def last_worker_beat(self):
        return self.connect().execute("SELECT max(beat_at) FROM processes WHERE id LIKE 'worker:%'").fetchone()[0]

    # The sign-in throttle, shared by every web process

    def reserve_sign_in(self, key, attempts, window):
        """Count one password check for the key (address and user name); return 0, or the
        seconds to wait when `attempts` checks already started within `window` seconds."""
        now = time.time()
        with self.transaction() as conn:
            conn.execute("DELETE FROM sign_ins WHERE attempt_key = ? AND at <= ?", (key, now - window))
            count, first = conn.execute(
                "SELECT count(*), min(at) FROM sign_ins WHERE attempt_key = ?", (key,)
            ).fetchone()
            if count >= attempts:
                return max(first + window - now, 0.001)
            conn.execute("INSERT INTO sign_ins (attempt_key, at) VALUES (?, ?)", (key, now))
        return 0

    def clear_sign_ins(self, key=None, before=None):
        """Forget the checks of a key (a right password), or every check made before a time."""
        with self.transaction() as conn:
            if key is not None:
                conn.execute("DELETE FROM sign_ins WHERE attempt_key = ?", (key,))
            else:
                conn.execute("DELETE FROM sign_ins WHERE at <= ?", (before,))

    # Requests answered by every web process

    def add_request_counts(self, counts):
        """Add {(method, route, status): n} to the counts of the whole service."""
        if not counts:
            return
        with self.transaction() as conn:
            conn.executemany(
                "INSERT INTO request_counts (method, route, status, n) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (method, route, status) DO UPDATE SET n = request_counts.n + excluded.n",
                [(*key, n) for key, n in counts.items()],
            )

    def request_counts(self):
        rows = self.connect().execute("SELECT method, route, status, n FROM request_counts")
        return {(method, route, status): n for method, route, status, n in rows}

    # Figures for /health and /metrics

    def ping(self):
        self.connect().execute("SELECT 1 FROM jobs LIMIT 1").fetchall()

    def jobs_by_status(self):
        return dict(self.connect().execute("SELECT job_status, CAST(sum(n) AS BIGINT) FROM job_counts GROUP BY job_status"))

    def duration_histogram(self):
        """[(upper bound, count of jobs at most that long)], then the sum of all durations."""
        rows = self.connect().execute("SELECT le, n, total FROM job_durations ORDER BY le").fetchall()
        return [(row[0], row[1]) for row in rows], rows[-1][2] if rows else 0.0


class SqliteStore(BaseStore):
    """The embedded store: one SQLite file (GEMSEO_HTTP_USER_DATABASE_PATH) in WAL mode."""

    def __init__(self, path):
        super().__init__()
        self.path = path

    # The members of a JSON object text: key, value, JSON type, a number that grows in text order.
    JSON_MEMBERS = ("json_each({}) AS member", "member.type", "member.id")

    def describe(self):
        return f"sqlite {self.path}"

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
        conn.executescript(SCHEMA + SQLITE_TRIGGERS)
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
            _fill_counts(tx)
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

    def feed(self):
        return SqliteFeed(self.open())

    def backup_to(self, target):
        """Write a consistent copy of the store while writers go on (SQLite's online backup)."""
        backup_file(self.path, target)


class PostgresStore(BaseStore):
    """The store of several machines: a PostgreSQL database (GEMSEO_HTTP_DATABASE_URL).

    Write transactions take one advisory lock, so they run one at a time as SQLite's do: the
    per-user counts that triggers keep could otherwise deadlock, and a write takes well under a
    millisecond. Reads never wait for it.
    """

    TRACEBACK_END = "right(traceback, 400)"
    CONTAINS = "strpos(name, ?) > 0"
    remote = True
    WRITE_LOCK = 7_261_001  # any fixed number; the key of the advisory lock

    def __init__(self, url):
        import psycopg  # only when the store is PostgreSQL

        super().__init__()
        self.url, self.psycopg = url, psycopg
        self.integrity_error = psycopg.errors.IntegrityError

    JSON_MEMBERS = ("json_each(CAST({} AS json)) WITH ORDINALITY AS member (key, value, place)", "json_typeof(member.value)", "member.place")

    def snapshot(self):
        conn = self.open()
        conn.raw.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        return conn

    def describe(self):
        info = self.psycopg.conninfo.conninfo_to_dict(self.url)
        return f"postgresql {info.get('host', '')}:{info.get('port', 5432)}/{info.get('dbname', '')}"

    def open(self):
        raw = self.psycopg.connect(self.url, autocommit=True, row_factory=pg_rows, options=pg_options())
        return PgConnection(raw)

    def broken(self, conn):
        return conn.raw.closed or conn.raw.broken

    @contextlib.contextmanager
    def transaction(self):
        conn = self.connect()
        # One round trip for both (a simple query may hold several statements).
        conn.raw.execute(f"BEGIN; SELECT pg_advisory_xact_lock({self.WRITE_LOCK})")
        try:
            yield conn
        except BaseException:
            if not conn.raw.broken:
                conn.raw.execute("ROLLBACK")
            raise
        conn.raw.execute("COMMIT")

    def init(self, queue_ddl=()):
        """Create the schema (and the queue's tables when the queue is in this database)."""
        with self.transaction() as conn:
            ddl = SCHEMA
            for pattern, replacement in PG_TYPES:
                ddl = re.sub(pattern, replacement, ddl)
            # The ALTER: a store made before uploads had a size.
            for statement in (ddl, "ALTER TABLE uploads ADD COLUMN IF NOT EXISTS size BIGINT", PG_TRIGGERS, *queue_ddl):
                conn.raw.execute(statement)
            _fill_counts(conn)

    def feed(self):
        conn = self.open()
        conn.raw.execute("LISTEN gaas_ended")
        return PostgresFeed(conn)

    def queue_task(self, conn, storage, data, priority):
        for statement in self._task_statements(storage, data, priority):
            conn.execute(*statement)

    @staticmethod
    def _task_statements(storage, data, priority):
        """Record a Huey task in the store's transaction, as Huey's PostgresStorage.enqueue does."""
        return [
            (f"INSERT INTO {storage.table_task} (queue, data, priority) VALUES (?, ?, ?)", (storage.name, data, priority or 0)),
            ("SELECT pg_notify(?, '')", (storage.channel,)),
        ]

    def _pipelined(self, statements):
        """Run (sql, params) statements as one write transaction sent in one go (psycopg's
        pipeline): the write lock is then held for the server's work only, not across round
        trips of a busy client (waits for it took 16 ms a transaction under load, measured).
        Return their cursors."""
        conn = self.connect()
        raw = conn.raw
        try:
            with raw.pipeline():
                raw.execute("BEGIN")
                raw.execute("SELECT pg_advisory_xact_lock(%s)", (self.WRITE_LOCK,))
                cursors = [raw.execute(conn.translate(sql), tuple(params)) for sql, params in statements]
                raw.execute("COMMIT")
        except BaseException:
            if not raw.broken and raw.info.transaction_status != self.psycopg.pq.TransactionStatus.IDLE:
                raw.execute("ROLLBACK")
            raise
        return cursors

    def create_job(self, fields, workdir_prefix, tasks=None):
        # One round trip: the id drawn inside the write and the directory named from it there,
        # unless the task needs the id first (a sequence is outside transactions).
        fields = {"created_at": time.time(), **fields}
        data = {name: fields.pop(name) for name in DATA_FIELDS if name in fields}
        job_id = self.connect().execute(f"SELECT nextval({JOB_SEQUENCE})").fetchone()[0] if tasks else None
        new = f"(SELECT nextval({JOB_SEQUENCE}) AS id)" if job_id is None else "(SELECT CAST(? AS BIGINT) AS id)"
        statements = [
            (
                f"WITH new AS {new} INSERT INTO jobs (id, workdir, {', '.join(fields)})"
                f" VALUES ((SELECT id FROM new), ? || CAST((SELECT id FROM new) AS TEXT), {', '.join('?' * len(fields))})",
                (*([] if job_id is None else [job_id]), workdir_prefix, *fields.values()),
            ),
            (
                f"INSERT INTO job_data ({', '.join(['job_id', *data])}) VALUES ({', '.join([f'currval({JOB_SEQUENCE})', *'?' * len(data)])})",
                tuple(data.values()),
            ),
        ]
        for task in tasks([job_id]) if tasks else ():
            statements += self._task_statements(*task)
        # A subquery, evaluated once: currval() itself is volatile, and would scan the table.
        statements.append((GET_JOB.replace("= ?", f"= (SELECT currval({JOB_SEQUENCE}))"), ()))
        return self._pipelined(statements)[-1].fetchone()

    def set_statuses(self, moves):
        return [cursor.fetchone()[0] == 1 for cursor in self._pipelined(self._moves(moves))]

    def set_statuses_and_read(self, moves, job_id):
        *moved, read = self._pipelined([*self._moves(moves), (GET_JOB, (job_id,))])
        return [cursor.fetchone()[0] == 1 for cursor in moved], read.fetchone()

    @staticmethod
    def _moves(moves):
        # Each move one statement, its data written only if the job moved: no answer is needed
        # before the next statement, so the whole write goes in one pipeline.
        statements = []
        for move in moves:
            update, params, data = _move(*move)
            sql = f"WITH moved AS ({update} RETURNING id)"
            if data:
                assignments = ", ".join(f"{name} = ?" for name in data)
                sql += f", data AS (UPDATE job_data SET {assignments} WHERE job_id IN (SELECT id FROM moved))"
                params = (*params, *data.values())
            statements.append((sql + " SELECT count(*) FROM moved", params))
        return statements

    def table_counts(self):
        """{table: rows} of the store's tables, to tell an empty store."""
        return {
            table: self.connect().execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("users", "jobs", "files", "uploads", "batches")
        }


def _move(job_id, status, expected, where, fields):
    """(UPDATE statement, its parameters, the data fields to write if it moved) of a move."""
    fields = dict(fields, job_status=status)
    data = {name: fields.pop(name) for name in DATA_FIELDS if name in fields}
    assignments = ", ".join(f"{name} = ?" for name in fields)
    marks = ", ".join("?" * len(expected))
    where = where or {}
    conditions = "".join(f" AND {name} = ?" for name in where)
    update = f"UPDATE jobs SET {assignments} WHERE id = ? AND job_status IN ({marks}){conditions}"
    return update, (*fields.values(), job_id, *expected, *where.values()), data


def _fill_counts(tx):
    """Count once in a store made before job_counts and job_durations existed."""
    if tx.execute("SELECT 1 FROM job_counts LIMIT 1").fetchone() is None:
        tx.execute("INSERT INTO job_counts SELECT user_id, job_status, count(*) FROM jobs GROUP BY 1, 2")
    if tx.execute("SELECT 1 FROM job_durations LIMIT 1").fetchone() is None:
        for bound in (*DURATION_BUCKETS, float("inf")):
            row = tx.execute(
                "SELECT count(*), coalesce(sum(ended_at - started_at), 0) FROM jobs WHERE job_status IN"
                " ('finished', 'failed') AND started_at IS NOT NULL AND ended_at IS NOT NULL"
                " AND ended_at - started_at <= ?",
                (bound,),
            ).fetchone()
            tx.execute("INSERT INTO job_durations (le, n, total) VALUES (?, ?, ?)", (bound, row[0], row[1]))


def pg_options():
    """Session settings of every connection to a PostgreSQL store or queue."""
    return "-c synchronous_commit=" + ("on" if settings.DATABASE_SYNC_COMMIT else "off")


class Row:
    """A PostgreSQL row read as sqlite3.Row is: by position, by column name, keys()."""

    __slots__ = ("values", "names")

    def __init__(self, values, names):
        self.values, self.names = values, names

    def __getitem__(self, key):
        return self.values[key] if isinstance(key, int) else self.values[self.names[key]]

    def __iter__(self):
        return iter(self.values)

    def __len__(self):
        return len(self.values)

    def keys(self):
        return list(self.names)


_names = {}


def pg_rows(cursor):
    # The column names straight from the result: cursor.description builds an object per
    # column, and a sync run cost 0.8 ms of it (jobs has 30 columns).
    result = cursor.pgresult
    key = tuple(result.fname(place) for place in range(result.nfields)) if result is not None else ()
    names = _names.get(key)
    if names is None:
        names = _names[key] = {name.decode(): place for place, name in enumerate(key)}
    return lambda values: Row(values, names)


class PgConnection:
    """A psycopg connection that takes the `?` marks of the shared SQL."""

    _sql = {}

    def __init__(self, raw):
        self.raw = raw

    @classmethod
    def translate(cls, sql):
        text = cls._sql.get(sql)
        if text is None:
            text = cls._sql[sql] = sql.replace("%", "%%").replace("?", "%s")
        return text

    def execute(self, sql, params=()):
        return self.raw.execute(self.translate(sql), tuple(params))

    def executemany(self, sql, rows):
        with self.raw.cursor() as cursor:
            cursor.executemany(self.translate(sql), list(rows))

    def close(self):
        self.raw.close()

    def __del__(self):
        # A thread's connection goes with the thread (Starlette's idle threads end after 10 s).
        with contextlib.suppress(Exception):
            self.raw.close()


class BatchReader:
    """Reads of a batch's points for its results, in one snapshot of the store on a connection of
    its own: the columns read first and the rows read after agree, even while points end."""

    def __init__(self, conn, batch_id, json_members):
        self.conn, self.batch_id = conn, batch_id
        self.members, self.member_type, self.member_place = json_members

    def span(self, offset, limit):
        """(points of the batch, batch_index of the first and of the last point in the `limit`
        points from place `offset`, or None and None when there is none)."""
        total = self.conn.execute("SELECT count(*) FROM jobs WHERE batch_id = ?", (self.batch_id,)).fetchone()[0]
        count = min(limit, total - offset)
        if count <= 0:
            return total, None, None
        first, last = (
            self.conn.execute(
                "SELECT batch_index FROM jobs WHERE batch_id = ? ORDER BY batch_index LIMIT 1 OFFSET ?", (self.batch_id, place)
            ).fetchone()[0]
            for place in (offset, offset + count - 1)
        )
        return total, first, last

    def members_of(self, field, first, last, sizes=True):
        """[(name, place of its first appearance, size)] of the members of a data field (inputs of
        every point, outputs of finished points) from batch_index first to last. The size is the
        longest list's length, 1 for other values, None when every value is null (1 for any
        value without `sizes`: counting lists took two thirds of the time); the place orders them
        as met point by point. The database parses the stored texts: only these come back."""
        finished = " AND jobs.job_status = 'finished'" if field == "output_data" else ""
        length = "json_array_length(member.value)" if sizes else "1"
        return self.conn.execute(
            f"SELECT member.key, min(jobs.batch_index * 4294967296 + {self.member_place}),"
            f" max(CASE {self.member_type} WHEN 'null' THEN NULL WHEN 'array' THEN {length} ELSE 1 END)"
            f" FROM jobs JOIN job_data ON job_data.job_id = jobs.id, {self.members.format('job_data.' + field)}"
            f" WHERE jobs.batch_id = ? AND jobs.batch_index BETWEEN ? AND ?{finished} GROUP BY member.key",
            (self.batch_id, first, last),
        ).fetchall()

    def largest_point(self, first, last):
        """The longest stored text of a point (inputs, and outputs when finished), in characters."""
        return self.conn.execute(
            "SELECT max(length(coalesce(input_data, '')) + CASE WHEN job_status = 'finished'"
            " THEN length(coalesce(output_data, '')) ELSE 0 END) FROM jobs LEFT JOIN job_data ON job_data.job_id = jobs.id"
            " WHERE batch_id = ? AND batch_index BETWEEN ? AND ?",
            (self.batch_id, first, last),
        ).fetchone()[0] or 0

    def page(self, first, last, size, fields=("input_data", "output_data")):
        """Up to `size` points from batch_index first to last, in order: (batch_index, id,
        job_status, error, input_data, output_data), the data fields '' unless in `fields` and the
        outputs '{}' unless the point finished."""
        inputs = "coalesce(job_data.input_data, '{}')" if "input_data" in fields else "''"
        outputs = (
            "CASE WHEN page.job_status = 'finished' THEN coalesce(job_data.output_data, '{}') ELSE '{}' END"
            if "output_data" in fields
            else "''"
        )
        join = " LEFT JOIN job_data ON job_data.job_id = page.id" if fields else ""
        # The page's points first, then their data: sorting the joined rows read the data of
        # every point from `first` on, for each page.
        return self.conn.execute(
            f"SELECT page.batch_index, page.id, page.job_status, page.error, {inputs}, {outputs} FROM"
            " (SELECT batch_index, id, job_status, error FROM jobs WHERE batch_id = ? AND batch_index BETWEEN ? AND ?"
            f" ORDER BY batch_index LIMIT ?) AS page{join} ORDER BY page.batch_index",
            (self.batch_id, first, last, size),
        ).fetchall()

    def close(self):
        with contextlib.suppress(Exception):
            self.conn.close()


class Feed:
    """Tells waiting clients which jobs and batches ended, on a private connection."""

    def __init__(self, conn):
        self.conn = conn

    def ended_among(self, ids):
        ended = []
        for start in range(0, len(ids), 500):
            batch = ids[start : start + 500]
            marks = ", ".join("?" * len(batch))
            ended += [
                row[0]
                for row in self.conn.execute(
                    f"SELECT id FROM jobs WHERE id IN ({marks}) AND job_status IN ('finished', 'failed')",
                    batch,
                )
            ]
        return ended

    def batches_ended_among(self, ids):
        if not ids:
            return []
        marks = ", ".join("?" * len(ids))
        waiting = {
            row[0]
            for row in self.conn.execute(
                f"SELECT DISTINCT batch_id FROM jobs WHERE batch_id IN ({marks})"
                " AND job_status IN ('created', 'pending', 'running')",
                ids,
            )
        }
        return [batch_id for batch_id in ids if batch_id not in waiting]

    def close(self):
        self.conn.close()


class SqliteFeed(Feed):
    """SQLite's data_version moves when another connection commits; both reads take
    microseconds, so the web app runs them on its event loop."""

    def version(self):
        return self.conn.execute("PRAGMA data_version").fetchone()[0]


class PostgresFeed(Feed):
    """A LISTEN connection: the trigger of job ends notifies every web process at commit, and
    version() only reads what arrived on the socket (no query)."""

    def __init__(self, conn):
        super().__init__(conn)
        self.count = 0

    def version(self):
        self.count += sum(1 for _ in self.conn.raw.notifies(timeout=0))
        return self.count


# The tables copy_store() copies, parents first; job_counts follows from the jobs (triggers).
COPIED_TABLES = ("users", "batches", "jobs", "job_data", "files", "uploads", "job_durations", "request_counts")


def copy_store(source, target):
    """Copy every user, job, batch, file and upload of one store into another, empty one,
    keeping their ids; claimed but unstarted jobs are unclaimed. Return {table: rows copied}."""
    if any(target.table_counts().values()):
        raise ValueError(f"the target store ({target.describe()}) is not empty")
    copied = {}
    with target.transaction() as tx:
        tx.execute("DELETE FROM job_durations")  # the empty histogram init() made
        tx.execute("DELETE FROM request_counts")
        for table in COPIED_TABLES:
            cursor = source.connect().execute(f"SELECT * FROM {table}")
            names = [column[0] for column in cursor.description]
            insert = f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
            copied[table] = 0
            while rows := cursor.fetchmany(1000):
                tx.executemany(insert, [tuple(row) for row in rows])
                copied[table] += len(rows)
        tx.execute("UPDATE jobs SET owner = '' WHERE job_status = 'pending'")
        for table in ("users", "batches", "jobs", "files"):
            # The next ids follow the copied ones.
            tx.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"
            )
    return copied


class NameTaken(Exception):
    """A user of that name exists."""


_current = None
_current_lock = threading.Lock()


def current():
    """The store the settings name (made again when a test points the settings elsewhere)."""
    global _current
    key = (settings.DATABASE_URL, settings.USER_DATABASE_PATH)
    found = _current
    if found is None or found[0] != key:
        with _current_lock:
            if _current is None or _current[0] != key:
                made = PostgresStore(key[0]) if key[0] else SqliteStore(key[1])
                _current = (key, made)
            found = _current
    return found[1]


def init(queue_ddl=()):
    """Create the data folders and the store's schema; safe to call any number of times."""
    for folder in (settings.FILE_DIRECTORY, settings.FILE_DIRECTORY / ".partial", settings.FILE_DIRECTORY / ".locks", settings.WORKSPACE_EXECUTION):
        folder.mkdir(parents=True, exist_ok=True)
    current().init(queue_ddl)


def __getattr__(name):
    # store.get_job(...) and the other methods of the current store.
    if name.startswith("__"):
        raise AttributeError(name)
    return getattr(current(), name)


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


def iso(timestamp):
    """Format a POSIX timestamp as ISO 8601 UTC, or None."""
    if timestamp is None:
        return None
    moment = datetime.fromtimestamp(timestamp, timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def job_entry(row):
    """Return a job row as the JSON-ready dict of the wire contract, without data fields."""
    job = {key: row[key] for key in row.keys() if key not in DATA_FIELDS}
    for key in JSON_FIELDS:
        if key in job:
            job[key] = orjson.loads(job[key])
    for key in ("created_at", "started_at", "ended_at"):
        job[key] = iso(job[key])
    for key in ("owner", "pid", "cancel_requested", "attempts"):
        job.pop(key, None)
    end = job.pop("traceback_end", None)
    job.setdefault("traceback", "")
    job["message"] = failure_message(job["traceback"] or end or "") if job["job_status"] == "failed" else ""
    return job


def failure_message(text):
    """The line of a failure that matters: the exception's own line, last in a traceback."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def job_json(row):
    """Serialize a full job row, splicing the stored data fields in without parsing them."""
    head = orjson.dumps(job_entry(row))[:-1]
    data = "".join(f', "{key}": {row[key]}' for key in DATA_FIELDS)
    return head + data.encode() + b"}"


def file_entry(row):
    return {key: row[key] for key in ("id", "filename", "unique_filename", "sha256sum", "user_id")} | {
        "size": row["size"],
        "created_at": iso(row["created_at"]),
    }
