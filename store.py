"""The job store: users, jobs, uploaded files and heartbeats, shared by the web app and the worker.

Every SQL statement of gaas is in this module and its two backends (huey's storage.py is the
model): `Store` declares every method a backend provides, and holds the SQL both speak;
store_sqlite.SqliteStore is the embedded default, store_postgres.PostgresStore the store of
several machines (GEMSEO_HTTP_DATABASE_URL). Which state may follow which is decided in jobs.py,
which calls set_status() with the states it expects (a compare-and-set).

The module functions at the bottom (`store.get_job(...)`) call the method of that name on
current(), the store that the settings name.
"""

import collections
import contextlib
import threading
import time
from typing import NamedTuple

import orjson

import settings

# The password hash of a user the directory or a proxy signs in: no password matches it here.
DIRECTORY_USER = "directory"
# The statuses of the wire contract, in their order of life. `created` is never used by gaas:
# the list filter accepts it and /metrics counts it, as the contract names it.
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
    batch_index INTEGER,
    -- The study this job runs (job_type 'study'), NULL otherwise.
    study_id INTEGER
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
-- A study (API.md Part 4): its StudyInput, and what its Study shows without reading its
-- evaluations (kept up to date by each batch of evaluations, in the same transaction).
CREATE TABLE IF NOT EXISTS studies (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    job_id INTEGER,
    spec TEXT NOT NULL,
    formulation TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    objective TEXT NOT NULL,
    n_evaluations INTEGER NOT NULL DEFAULT 0,
    best TEXT,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS studies_by_user ON studies (user_id, id);
-- One row per evaluation of a study: the record of study.py as JSON text.
CREATE TABLE IF NOT EXISTS evaluations (
    study_id INTEGER NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
    evaluation INTEGER NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (study_id, evaluation)
) WITHOUT ROWID;
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
-- Jobs ended from the results cache ("hit") and jobs with the cache on that ran ("miss"),
-- counted as they are recorded: /metrics reads two rows, and purges never lower them.
CREATE TABLE IF NOT EXISTS cache_counts (
    outcome TEXT PRIMARY KEY,
    n INTEGER NOT NULL
);
-- What studies' disciplines computed (study_cache.py), keyed as jobs are (cache.py): the outputs
-- of an "execute" key, the Jacobian of a "study_linearize" one, as JSON text. They go with the
-- study's job.
CREATE TABLE IF NOT EXISTS cached_evaluations (
    cache_key TEXT PRIMARY KEY,
    job_id INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    class_name TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS cached_evaluations_by_job ON cached_evaluations (job_id);
CREATE INDEX IF NOT EXISTS cached_evaluations_by_class ON cached_evaluations (class_name, user_id);
-- Requests answered, summed over every web process (each adds what it counted every beat).
CREATE TABLE IF NOT EXISTS request_counts (
    method TEXT NOT NULL,
    route TEXT NOT NULL,
    status INTEGER NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (method, route, status)
);
"""

# Teams (issue 20): personal access tokens, groups and their members, the audit log; users get
# is_admin by ADDED_COLUMNS (each backend adds a missing column its own way).
TEAMS_SCHEMA = """
CREATE TABLE IF NOT EXISTS access_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    -- SHA-256 of the secret: a 256-bit random secret needs no slow hash.
    token_hash TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    expires_at REAL,
    last_used_at REAL
);
CREATE INDEX IF NOT EXISTS access_tokens_by_user ON access_tokens (user_id, id);
CREATE TABLE IF NOT EXISTS groups (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS memberships (
    group_id INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL,
    role TEXT NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX IF NOT EXISTS memberships_by_user ON memberships (user_id);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL DEFAULT '',
    address TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS audit_by_time ON audit (at);
CREATE INDEX IF NOT EXISTS audit_by_action ON audit (action, id);
CREATE INDEX IF NOT EXISTS audit_by_actor ON audit (actor, id);
"""
# The group a job, batch or study is shared with (NULL: private); the points of a shared batch
# and the job of a shared study carry it too.
ADDED_COLUMNS = (
    ("users", "is_admin", "INTEGER NOT NULL DEFAULT 0"),
    ("jobs", "group_id", "INTEGER"),
    ("batches", "group_id", "INTEGER"),
    ("studies", "group_id", "INTEGER"),
    # The results cache (API.md Part 5): the job's key (cache.key; NULL: not cached), the job
    # whose results a hit took, the job a waiting duplicate waits for, and where results came from.
    ("jobs", "cache_key", "TEXT"),
    ("jobs", "cached_from", "INTEGER"),
    ("jobs", "waits_for", "INTEGER"),
    ("jobs", "provenance", "TEXT"),
)
# How many characters of each key's hash a study gets of the keys known at its start: a false
# match only costs a lookup, and a million keys stay a few megabytes.
KNOWN_KEY = 16
# What SQLite's index of cache keys holds, as lookups must write it for the index to serve them.
KEY_PREFIX = f"substr(cache_key, 1, {KNOWN_KEY})"
# Made once ADDED_COLUMNS are there: the lists of what is shared with a group read them (the
# job list's total counts its group's index entries, not 100,000 rows).
ADDED_INDEXES = (
    *(f"CREATE INDEX IF NOT EXISTS {table}_by_group ON {table} (group_id, id)" for table in ("jobs", "batches", "studies")),
    "CREATE INDEX IF NOT EXISTS jobs_by_group_user ON jobs (group_id, user_id, job_status)",
    "CREATE INDEX IF NOT EXISTS jobs_by_leader ON jobs (waits_for) WHERE waits_for IS NOT NULL",
)
ROLES = ("viewer", "member", "owner")


LIST_COLUMNS = (
    "id, user_id, name, discipline_class_name, job_type, job_status, execution_mode, error,"
    " created_at, started_at, ended_at, timeout, workdir, linearization_mode,"
    " {traceback_end} AS traceback_end, batch_id, batch_index, study_id, group_id, cached_from, {names}"
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
# A study with the status and times of its job.
# The names of an entry's owner and group, for the wire (`owner` is taken in jobs: the process).
def entry_names(table):
    return (
        f"(SELECT username FROM users WHERE users.id = {table}.user_id) AS owner_name,"
        f" (SELECT name FROM groups WHERE groups.id = {table}.group_id) AS group_name"
    )


STUDY_COLUMNS = (
    "studies.*, " + entry_names("studies") + ", jobs.job_status, jobs.error, {traceback_end} AS traceback_end,"
    " jobs.started_at, jobs.ended_at FROM studies LEFT JOIN jobs ON jobs.id = studies.job_id"
)
# Whether pending jobs wait for a job (identical to it, API.md Part 5).
WAITING = "SELECT 1 FROM jobs WHERE waits_for = ? AND job_status = 'pending' LIMIT 1"
GET_JOB = f"SELECT jobs.*, {entry_names('jobs')}, {DATA_COLUMNS} FROM jobs LEFT JOIN job_data ON job_data.job_id = jobs.id WHERE jobs.id = ?"
PRIVATE = 0o600  # the store holds password hashes and every job


BATCH_COLUMNS = f"*, {entry_names('batches')} FROM batches"


def shared_where(user_id, group_ids, prefix=""):
    """(SQL condition, parameters) of a list's rows: the user's own (none for user_id None) and
    those shared with any of group_ids."""
    terms, params = [], []
    if user_id is not None:
        terms.append(f"{prefix}user_id = ?")
        params.append(user_id)
    if group_ids:
        terms.append(f"{prefix}group_id IN ({', '.join('?' * len(group_ids))})")
        params.extend(group_ids)
    return f"({' OR '.join(terms)})", params


class Membership(NamedTuple):
    """A user's role in a group."""

    group_id: int
    name: str
    role: str


class Move(NamedTuple):
    """A compare-and-set on one job: to `status` from one of the `expected` states, when its
    columns have the values of `where` ({column: value} or None), writing `fields` with it."""

    job_id: int
    status: str
    expected: tuple
    where: dict | None
    fields: dict


class Settled(NamedTuple):
    """What a batch's cache lookup decided: the points to queue, the hits by source id
    ({source: (its workdir, [point ids])}) and the waiting points ({point: the job it waits for})."""

    queued: list
    hits: dict
    waits: dict


class Claimed(NamedTuple):
    """A job that a process holds (running, or pending and held while it waits for a warm
    process), with what the sweeps need to decide for it."""

    id: int
    owner: str
    beat_at: float | None  # the owner's last heartbeat, None when it has none
    attempts: int
    execution_mode: str
    job_status: str
    started_at: float | None


class Store:
    """What every backend provides. The methods that raise NotImplementedError differ by backend;
    the others hold the SQL both speak, `?` marking parameters in both."""

    # Dialect: the last 400 characters of a text, "name contains ?", and the members of a JSON
    # object text (from clause, its JSON type, a number that grows in text order).
    TRACEBACK_END = None
    CONTAINS = None
    JSON_MEMBERS = None
    # The index of the jobs' cache keys (made after ADDED_INDEXES), and what follows "FROM jobs"
    # in a lookup by keys to use it (_rows_by_keys).
    CACHE_INDEXES = ()
    BY_CACHE_KEY = ""
    # The exception of a broken UNIQUE constraint.
    integrity_error = None
    # True when a read waits on the network: the web app then reads in a thread, not on its loop.
    remote = False

    def __init__(self):
        self.local = threading.local()
        # A job's miss is counted here after its insert, and written with this process's next
        # heartbeat (beat, forget): not one more write in every job's insert.
        self.unsaved_misses, self.misses_lock = 0, threading.Lock()
        self.list_columns = LIST_COLUMNS.format(traceback_end=self.TRACEBACK_END, names=entry_names("jobs"))
        self.study_columns = STUDY_COLUMNS.format(traceback_end=self.TRACEBACK_END.replace("traceback", "jobs.traceback"))

    # Connections, transactions, schema: each backend's own

    def summary(self):
        """A line naming the backend and where its data is, for the log and /health."""
        raise NotImplementedError

    def open(self):
        """A new connection whose execute() takes the shared SQL and whose rows read by name."""
        raise NotImplementedError

    def broken(self, conn):
        """Whether this thread's connection must be opened again."""
        return False

    def connect(self):
        """Return this thread's connection, opening it on first use."""
        conn = getattr(self.local, "conn", None)
        if conn is None or self.broken(conn):
            conn = self.local.conn = self.open()
        return conn

    def transaction(self):
        """`with store.transaction() as conn:` a write transaction, one at a time over the store."""
        raise NotImplementedError

    def snapshot(self):
        """A connection of its own inside a read-only transaction, usable from any thread."""
        raise NotImplementedError

    def init(self, queue_ddl=()):
        """Create the schema, or bring an older store's to it; safe to call any number of times."""
        raise NotImplementedError

    def feed(self):
        """A Feed on a connection of its own, for the web app's long polls."""
        raise NotImplementedError

    def start_checkpoints(self):
        """Start what the backend needs done in the background (nothing but for SQLite)."""

    def queue_task(self, conn, storage, data, priority):
        """Record a Huey task in the transaction of conn (for a queue in the store's database)."""
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
        """The user row of that name, or None."""
        return self.connect().execute("SELECT * FROM users WHERE username = ?", (username,)).fetchone()

    def user_by_id(self, user_id):
        """The user row of that id, or None."""
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
            conn.execute("DELETE FROM access_tokens WHERE user_id = ?", (user_id,))
            conn.execute("DELETE FROM memberships WHERE user_id = ?", (user_id,))
            conn.execute("DELETE FROM evaluations WHERE study_id IN (SELECT id FROM studies WHERE user_id = ?)", (user_id,))
            conn.execute("DELETE FROM studies WHERE user_id = ?", (user_id,))
            conn.execute("DELETE FROM cached_evaluations WHERE user_id = ?", (user_id,))
            conn.execute("DELETE FROM users WHERE id = ?", (user_id,))
        return workdirs, files, partial

    def list_users(self):
        """(id, username, created_at, is_admin, directory) of every user, by id; directory tells a
        user with no password here."""
        return self.connect().execute(
            "SELECT id, username, created_at, is_admin, password_hash = ? AS directory FROM users ORDER BY id", (DIRECTORY_USER,)
        ).fetchall()

    # Jobs

    def create_job(self, fields, workdir_prefix, tasks=None, lookup=False, hit_only=False, miss=False):
        """Insert a job from a dict of column values (data fields included), its directory
        workdir_prefix followed by its id, and return its row. tasks(ids) gives the queue tasks
        (storage, message, priority) to record in the same transaction, when the queue is in
        this store's database: a job is then never recorded without its task.

        With lookup, a job whose cache_key a finished job has is recorded finished from it (a
        hit: no task), one that a pending or running job has waits for it (no task either).
        With hit_only, a job that is no hit is not recorded: None. A job looked up and not found,
        or with miss (looked up before), counts as a cache miss."""
        with self.transaction() as conn:
            source = self._cache_source(conn, fields.get("cache_key")) if lookup else None
            if hit_only and (source is None or source[1] != "finished"):
                return None
            if source is None:
                job_id = self._insert_job(conn, fields, workdir_prefix, tasks)
            else:
                job_id = self._insert_job(conn, dict(fields, waits_for=source[0]), workdir_prefix, None)
                if source[1] == "finished":
                    self._take_results(conn, [job_id], source[0])
            row = conn.execute(GET_JOB, (job_id,)).fetchone()
        if source is None and (lookup and fields.get("cache_key") or miss):
            self.count_miss()
        return row

    def create_synchronous_job(self, fields, workdir_prefix, running):
        """A synchronous job's lookup and insert in one write, once it holds a warm process:
        (the row of a hit, finished from its source, None); (None, the source) when an identical
        job runs (the caller waits for it); else (the job inserted with `running` over fields and
        counted as a miss, the pending source or None)."""
        with self.transaction() as conn:
            source = self._cache_source(conn, fields["cache_key"])
            if source is not None and source[1] == "running":
                return None, source
            if source is not None and source[1] == "finished":
                job_id = self._insert_job(conn, dict(fields, job_status="pending", waits_for=source[0]), workdir_prefix, None)
                self._take_results(conn, [job_id], source[0])
                return conn.execute(GET_JOB, (job_id,)).fetchone(), None
            job_id = self._insert_job(conn, {**fields, **running}, workdir_prefix, None)
            row = conn.execute(GET_JOB, (job_id,)).fetchone()
        self.count_miss()
        return row, source

    # The results cache

    def cache_source(self, key):
        """(id, status) of the job whose results a job of this cache key takes: a finished one,
        else one pending or running (that it waits for); or None."""
        return self._cache_source(self.connect(), key)

    def _cache_source(self, conn, key):
        return None if key is None else self._cache_sources(conn, [key]).get(key)

    def _cache_sources(self, conn, keys):
        """{key: (id, status)} of the source of each key that has one (a finished job first)."""
        found = {}
        rows = self._rows_by_keys(
            conn,
            "SELECT cache_key, id, job_status FROM jobs{by} WHERE {keys} AND cached_from IS NULL AND waits_for IS NULL"
            " AND job_status IN ('pending', 'running', 'finished') ORDER BY id",
            keys,
        )
        for key, job_id, status in rows:
            if key not in found or (status == "finished" and found[key][1] != "finished"):
                found[key] = (job_id, status)
        return found

    def _rows_by_keys(self, conn, sql, keys, size=250):
        """The rows of sql (first column: cache_key) for jobs of these cache keys: `{by}` follows
        "FROM jobs", `{keys}` stands for the condition on the keys (_keys_condition)."""
        wanted, rows = set(keys), []
        for start in range(0, len(keys), size):
            where, params = self._keys_condition(keys[start : start + size])
            rows += conn.execute(sql.format(by=self.BY_CACHE_KEY, keys=where), params).fetchall()
        return [row for row in rows if row[0] in wanted]

    def _keys_condition(self, keys):
        """(SQL condition, parameters) that selects the jobs of these keys by CACHE_INDEXES (and
        maybe others whose rows _rows_by_keys then drops)."""
        return f"cache_key IN ({', '.join('?' * len(keys))})", keys

    def _take_results(self, conn, job_ids, source_id):
        """End pending jobs (those waiting for source_id, or new hits) as finished with the
        source's results, provenance and complete inputs."""
        self._take_results_of(conn, [(job_id, source_id) for job_id in job_ids])

    def _take_results_of(self, conn, pairs):
        """_take_results for (job id, source id) pairs, a few statements for a whole batch."""
        now = time.time()
        for given, params in values_tables(pairs, 1):
            pairing = f"(SELECT column1 AS job, column2 AS source FROM {given}) AS pairing"
            conn.execute(
                "UPDATE jobs SET job_status = 'finished', cached_from = pairing.source, waits_for = NULL, ended_at = ?,"
                " provenance = (SELECT source.provenance FROM jobs AS source WHERE source.id = pairing.source)"
                f" FROM {pairing} WHERE jobs.id = pairing.job AND jobs.job_status = 'pending'",
                (now, *params),
            )
            conn.execute(
                f"UPDATE job_data SET ({', '.join(DATA_FIELDS)}) = (SELECT {', '.join(DATA_FIELDS)} FROM job_data AS source"
                f" WHERE source.job_id = pairing.source) FROM {pairing} WHERE job_data.job_id = pairing.job",
                params,
            )
        self._count_cache(conn, "hit", len(pairs))

    @staticmethod
    def _count_cache(conn, outcome, n):
        if n:
            conn.execute(
                "INSERT INTO cache_counts (outcome, n) VALUES (?, ?) ON CONFLICT (outcome) DO UPDATE SET n = cache_counts.n + ?",
                (outcome, n, n),
            )

    def cache_counts(self):
        """{"hit": n, "miss": n} since the store was made, this process's misses not yet written
        included (another process's are written with its next heartbeat)."""
        counts = dict(self.connect().execute("SELECT outcome, n FROM cache_counts").fetchall())
        counts["miss"] = counts.get("miss", 0) + self.unsaved_misses
        return {outcome: int(counts.get(outcome, 0)) for outcome in ("hit", "miss")}

    def count_miss(self):
        """Count a job's miss, written with this process's next heartbeat."""
        with self.misses_lock:
            self.unsaved_misses += 1

    def _save_misses(self, conn):
        """Write the misses counted since the last time in this transaction; return them, to be
        counted again if it fails (_with_misses)."""
        with self.misses_lock:
            misses, self.unsaved_misses = self.unsaved_misses, 0
        self._count_cache(conn, "miss", misses)
        return misses

    @contextlib.contextmanager
    def _with_misses(self):
        """A transaction that also writes the unsaved misses, and keeps them unsaved if it fails."""
        misses = 0
        try:
            with self.transaction() as conn:
                misses = self._save_misses(conn)
                yield conn
        except BaseException:
            with self.misses_lock:
                self.unsaved_misses += misses
            raise

    def settle_waiting(self, leader_id):
        """Settle the jobs waiting for leader_id once it ended or is gone: finished, they take its
        results; else the first of them runs on its own (its id returned, to be queued) and the
        others wait for it. Return (the [(id, workdir)] that took results, the source's workdir,
        the id to queue or None)."""
        with self.transaction() as conn:
            waiting = conn.execute(
                "SELECT id, workdir FROM jobs WHERE waits_for = ? AND job_status = 'pending' ORDER BY id", (leader_id,)
            ).fetchall()
            if not waiting:
                return [], None, None
            leader = conn.execute("SELECT job_status, workdir FROM jobs WHERE id = ?", (leader_id,)).fetchone()
            if leader is not None and leader[0] == "finished":
                self._take_results(conn, [row[0] for row in waiting], leader_id)
                return [(row[0], row[1]) for row in waiting], leader[1], None
            if leader is not None and leader[0] in ("pending", "running"):
                return [], None, None
            first = waiting[0][0]
            conn.execute("UPDATE jobs SET waits_for = NULL WHERE id = ?", (first,))
            conn.execute("UPDATE jobs SET waits_for = ? WHERE waits_for = ? AND job_status = 'pending'", (first, leader_id))
            self._count_cache(conn, "miss", 1)
            return [], None, first

    def has_waiting(self, leader_id):
        """Whether pending jobs wait for this one."""
        return self.connect().execute(WAITING, (leader_id,)).fetchone() is not None

    def stray_leaders(self):
        """Ids of the jobs that pending jobs wait for and that ended or are gone (their end did
        not settle them: a lost worker, a cancel, a delete)."""
        rows = self.connect().execute(
            "SELECT DISTINCT waiting.waits_for FROM jobs AS waiting LEFT JOIN jobs AS leader ON leader.id = waiting.waits_for"
            " WHERE waiting.waits_for IS NOT NULL AND waiting.job_status = 'pending'"
            " AND (leader.id IS NULL OR leader.job_status IN ('finished', 'failed'))"
        )
        return [row[0] for row in rows]

    def clear_cache(self, class_name=None):
        """Forget the cache keys of ended jobs and the studies' evaluations (of one class when
        given): later jobs run. Return how many were forgotten."""
        where, params = "cache_key IS NOT NULL AND job_status IN ('finished', 'failed')", []
        if class_name:
            where += " AND discipline_class_name = ?"
            params.append(class_name)
        with self.transaction() as conn:
            forgotten = conn.execute(f"UPDATE jobs SET cache_key = NULL WHERE {where}", params).rowcount
            entries = f"DELETE FROM cached_evaluations{' WHERE class_name = ?' if class_name else ''}"
            return forgotten + conn.execute(entries, params[:1]).rowcount

    def known_cache_keys(self, classes, user_id=None):
        """The first KNOWN_KEY characters of the keys of these classes' finished "execute" jobs that
        ran and of the studies' evaluations (the user's only, when given), for a study's start."""
        marks = ", ".join("?" * len(classes))
        mine = "" if user_id is None else " AND user_id = ?"
        params = [*classes, *([] if user_id is None else [user_id])]
        rows = self.connect().execute(
            f"SELECT substr(cache_key, 1, {KNOWN_KEY}) FROM jobs WHERE discipline_class_name IN ({marks}){mine}"
            " AND job_type = 'execute' AND cache_key IS NOT NULL AND cached_from IS NULL AND job_status = 'finished'"
            f" UNION SELECT substr(cache_key, 1, {KNOWN_KEY}) FROM cached_evaluations WHERE class_name IN ({marks}){mine}",
            params * 2,
        )
        return [row[0] for row in rows]

    def cached_evaluations(self, keys):
        """{key: JSON text} of the keys found: a finished job's outputs that ran, else a study's entry."""
        conn = self.connect()
        found = dict(
            self._rows_by_keys(
                conn,
                "SELECT jobs.cache_key, job_data.output_data FROM jobs{by} JOIN job_data ON job_data.job_id = jobs.id"
                " WHERE {keys} AND jobs.cached_from IS NULL AND jobs.job_status = 'finished'",
                keys,
            )
        )
        rest = [key for key in keys if key not in found]
        found.update(rows_in(conn, "SELECT cache_key, data FROM cached_evaluations WHERE cache_key IN ({marks})", rest))
        return found

    def add_cached_evaluations(self, job_id, user_id, entries, hits=0, misses=0):
        """Store a study's evaluations, [key, class name, JSON text] each (a key already there keeps
        its entry), and count its lookups, in one transaction."""
        now = time.time()
        with self.transaction() as conn:
            if conn.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone() is None:
                return  # deleted while it ran: its entries would outlive it
            conn.executemany(
                "INSERT INTO cached_evaluations (cache_key, job_id, user_id, class_name, data, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (cache_key) DO NOTHING",
                [(key, job_id, user_id, class_name, data, now) for key, class_name, data in entries],
            )
            self._count_cache(conn, "hit", hits)
            self._count_cache(conn, "miss", misses)

    def _insert_job(self, conn, fields, workdir_prefix, tasks):
        fields = {"created_at": time.time(), **fields}
        data = {name: fields.pop(name) for name in DATA_FIELDS if name in fields}
        names = ", ".join(fields)
        marks = ", ".join("?" * len(fields))
        job_id = conn.execute(f"INSERT INTO jobs ({names}) VALUES ({marks}) RETURNING id", tuple(fields.values())).fetchall()[0][0]
        conn.execute("UPDATE jobs SET workdir = ? WHERE id = ?", (f"{workdir_prefix}{job_id}", job_id))
        self._write_data(conn, job_id, data, insert=True)
        for task in tasks([job_id]) if tasks else ():
            self.queue_task(conn, *task)
        return job_id

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

    def _list_shared_jobs(self, conn, user_id, status, limit, offset, group_ids):
        """list_jobs of a user's own jobs (user_id None: none) and those shared with group_ids:
        the newest of each source by its index, then merged (an OR would scan every job)."""
        also = " AND job_status = ?" if status else ""
        sources = [("group_id = ?", group) for group in group_ids]
        if user_id is not None:
            sources.append(("user_id = ?", user_id))
        arms, params = [], []
        for place, (where, value) in enumerate(sources):
            arms.append(f"SELECT id FROM (SELECT id FROM jobs WHERE {where}{also} ORDER BY id DESC LIMIT ?) AS source{place}")
            params.extend([value, *([status] if status else []), limit + offset])
        rows = conn.execute(
            f"SELECT {self.list_columns} FROM jobs WHERE id IN ({' UNION '.join(arms)}) ORDER BY id DESC LIMIT ? OFFSET ?",
            (*params, limit, offset),
        ).fetchall()
        # The total: the user's own from job_counts, the groups' others from their index.
        marks = ", ".join("?" * len(group_ids))
        where, params = f"group_id IN ({marks}){also}", [*group_ids, *([status] if status else [])]
        total = 0
        if user_id is not None:
            where += " AND user_id <> ?"
            params.append(user_id)
            own = conn.execute(f"SELECT CAST(coalesce(sum(n), 0) AS BIGINT) FROM job_counts WHERE user_id = ?{also}",
                               (user_id, *([status] if status else []))).fetchone()[0]
            total = int(own)
        return rows, total + conn.execute(f"SELECT count(*) FROM jobs WHERE {where}", params).fetchone()[0]

    def job_status(self, job_id):
        """The status of a job, or None when there is no such job."""
        row = self.connect().execute("SELECT job_status FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else row["job_status"]

    def list_jobs(
        self, user_id, status=None, limit=100, offset=0, batch_id=None, discipline=None, name=None, error=None, not_error=None,
        group_ids=(), cached=None,
    ):
        """Return (rows without data fields, total count) of a user's jobs (user_id None: none of
        them) and those shared with group_ids, newest first (a batch's points in their order);
        `name` matches a part of the job name, `not_error` leaves out one error kind, `cached`
        keeps only the jobs that took their results from the cache (True) or the others (False)."""
        # The filter reads the same on jobs and on job_counts.
        where, params = shared_where(user_id, group_ids)
        if status:
            where += " AND job_status = ?"
            params.append(status)
        conn = self.connect()
        if cached is not None:
            where += f" AND cached_from IS {'NOT ' if cached else ''}NULL"
        if group_ids and batch_id is None and cached is None and not (discipline or name or error or not_error):
            return self._list_shared_jobs(conn, user_id, status, limit, offset, group_ids)
        if batch_id is not None or discipline or name or error or not_error or group_ids or cached is not None:
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
            "SELECT CAST(coalesce(sum(n), 0) AS BIGINT) FROM job_counts WHERE user_id = ? AND job_status IN ('pending', 'running')",
            (user_id,),
        ).fetchone()
        return int(row[0])

    def set_status(self, job_id, status, expected, where=None, **fields):
        """Make one Move; return whether the job moved."""
        return self.set_statuses([Move(job_id, status, expected, where, fields)])[0]

    def set_statuses(self, moves):
        """Make several Moves in one transaction (a batch's next point starts as the last one
        ends); return whether each moved."""
        with self.transaction() as conn:
            return self._move_in(conn, moves)

    def set_statuses_and_read(self, moves, job_id=None, waited_for=None):
        """set_statuses(moves), then in the same transaction the row of job_id and whether
        pending jobs wait for the job waited_for (has_waiting), each when given: (whether each
        moved, the row or None, whether any waits)."""
        with self.transaction() as conn:
            moved = self._move_in(conn, moves)
            row = None if job_id is None else conn.execute(GET_JOB, (job_id,)).fetchone()
            return moved, row, waited_for is not None and conn.execute(WAITING, (waited_for,)).fetchone() is not None

    def _move_in(self, conn, moves):
        moved = []
        for move in moves:
            update, params, data = move_statement(move)
            moved.append(conn.execute(update, params).rowcount == 1)
            if moved[-1]:
                self._write_data(conn, move.job_id, data)
        return moved

    def move_batch(self, batch_id, status, expected, **fields):
        """Move every point of a batch that is in one of the `expected` states to `status`,
        writing `fields` with it; return how many moved."""
        update, params, _ = move_statement(Move(batch_id, status, expected, None, fields))
        with self.transaction() as conn:
            return conn.execute(update.replace("WHERE id = ?", "WHERE batch_id = ?"), params).rowcount

    def cancel_requested(self, job_id):
        """Whether the job's runner must stop it (asked to, or the job is gone)."""
        row = self.connect().execute("SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return row is None or bool(row[0])

    def delete_job(self, job_id):
        """Delete a job and its data, and the study it runs with its evaluations (those of the
        results cache too)."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM evaluations WHERE study_id IN (SELECT id FROM studies WHERE job_id = ?)", (job_id,))
            conn.execute("DELETE FROM studies WHERE job_id = ?", (job_id,))
            conn.execute("DELETE FROM cached_evaluations WHERE job_id = ?", (job_id,))
            conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def claimed_jobs(self, owner=None):
        """The Claimed jobs: running ones, and pending ones a process holds; only that owner's
        when given."""
        where = "jobs.job_status = 'running' OR (jobs.job_status = 'pending' AND jobs.owner != '')"
        params = ()
        if owner is not None:
            where, params = f"jobs.owner = ? AND ({where})", (owner,)
        rows = self.connect().execute(
            "SELECT jobs.id, jobs.owner, processes.beat_at, jobs.attempts, jobs.execution_mode, jobs.job_status,"
            f" jobs.started_at FROM jobs LEFT JOIN processes ON processes.id = jobs.owner WHERE {where}",
            params,
        )
        return [Claimed(*row) for row in rows.fetchall()]

    def unclaimed_jobs(self, created_before):
        """Ids of the asynchronous jobs still waiting for a worker, recorded before that time."""
        rows = self.connect().execute(
            "SELECT id FROM jobs WHERE job_status = 'pending' AND owner = '' AND waits_for IS NULL"
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

    def create_batch(self, batch, common, inputs, workdir_prefix, tasks=None, keys=None, lookup=False):
        """Record a batch and its points in one transaction: `common` holds the column values shared
        by every point, `inputs` the input_data JSON text of each, `keys` their cache keys (None:
        not cached); a point's directory is workdir_prefix followed by its id; tasks as for
        create_job, given the ids of the points to queue. With lookup, points are hits or wait
        for an identical job as create_job's, a point repeated in the batch waits for its first.
        Return (batch id, point ids, Settled)."""
        keys = keys or [None] * len(inputs)
        with self.transaction() as conn:
            # Decided before the points are in (a point is not its own source), so that a hit is
            # written finished at once: one row each, not a row and an update.
            plan = self._batch_plan(conn, keys) if lookup else [("queue", None)] * len(keys)
            batch_id = conn.execute(
                "INSERT INTO batches (user_id, name, discipline_class_name, n_samples, created_at, design, input_names, group_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    batch["user_id"],
                    batch["name"],
                    batch["discipline_class_name"],
                    len(inputs),
                    time.time(),
                    batch["design"],
                    batch["input_names"],
                    batch.get("group_id"),
                ),
            ).fetchall()[0][0]
            now = time.time()
            fields = {key: value for key, value in dict(common, created_at=now, batch_id=batch_id).items() if key != "job_status"}
            names = ", ".join([*fields, "batch_index", "cache_key", "cached_from", "job_status", "ended_at", "provenance"])
            points = [(index, key, source if kind == "hit" else None) for index, (key, (kind, source)) in enumerate(zip(keys, plan))]
            # A statement a chunk of points, not one a point: SQLite opens a statement journal
            # for each statement that fires a trigger (job_counts), 30 us a point.
            for given, params in values_tables(points, len(fields) + 1):
                conn.execute(
                    f"INSERT INTO jobs ({names}) SELECT {', '.join('?' * len(fields))}, point.batch_index, point.cache_key,"
                    " point.source, CASE WHEN point.source IS NULL THEN 'pending' ELSE 'finished' END,"
                    " CASE WHEN point.source IS NULL THEN NULL ELSE ? END,"
                    " (SELECT provenance FROM jobs AS source WHERE source.id = point.source)"
                    " FROM (SELECT column1 AS batch_index, column2 AS cache_key, CAST(column3 AS BIGINT) AS source"
                    f" FROM {given}) AS point ORDER BY point.batch_index",
                    (*fields.values(), now, *params),
                )
            ids = [row[0] for row in conn.execute("SELECT id FROM jobs WHERE batch_id = ? ORDER BY batch_index", (batch_id,))]
            conn.execute("UPDATE jobs SET workdir = ? || CAST(id AS TEXT) WHERE batch_id = ?", (str(workdir_prefix), batch_id))
            hits, waits, queued = collections.defaultdict(list), {}, []
            for job_id, (kind, source) in zip(ids, plan):
                if kind == "hit":
                    hits[source].append(job_id)
                elif kind == "wait":
                    waits[job_id] = source
                elif kind == "follow":  # the batch's first point of its key
                    waits[job_id] = ids[source]
                else:
                    queued.append(job_id)
            taken = {job_id for job_ids in hits.values() for job_id in job_ids}
            conn.executemany("INSERT INTO job_data (job_id, input_data) VALUES (?, ?)", [pair for pair in zip(ids, inputs) if pair[0] not in taken])
            pairs = [(job_id, source) for source, job_ids in hits.items() for job_id in job_ids]
            for given, params in values_tables(pairs):
                conn.execute(
                    f"INSERT INTO job_data (job_id, {', '.join(DATA_FIELDS)}) SELECT given.column1, {', '.join(f'source.{name}' for name in DATA_FIELDS)}"
                    f" FROM {given} JOIN job_data AS source ON source.job_id = given.column2",
                    params,
                )
            conn.executemany("UPDATE jobs SET waits_for = ? WHERE id = ?", [(leader, job_id) for job_id, leader in waits.items()])
            self._count_cache(conn, "hit", len(taken))
            self._count_cache(conn, "miss", sum(1 for job_id, key in zip(ids, keys) if key and job_id not in taken and job_id not in waits) if lookup else 0)
            workdirs = dict(rows_in(conn, "SELECT id, workdir FROM jobs WHERE id IN ({marks})", list(hits)))
            for task in tasks(queued) if tasks else ():
                self.queue_task(conn, *task)
        return batch_id, ids, Settled(queued, {source: (workdirs.get(source), job_ids) for source, job_ids in hits.items()}, waits)

    def _batch_plan(self, conn, keys):
        """What each new point of a batch does, from the sources of its key: ("hit", source id),
        ("wait", id of a job in flight), ("follow", index of the batch's first point of the same
        key) or ("queue", None)."""
        sources = self._cache_sources(conn, list(dict.fromkeys(key for key in keys if key)))
        plan, first = [], {}
        for index, key in enumerate(keys):
            source = sources.get(key)
            if source is not None:
                plan.append(("hit" if source[1] == "finished" else "wait", source[0]))
            elif key in first:
                plan.append(("follow", first[key]))
            else:
                plan.append(("queue", None))
                if key:
                    first[key] = index
        return plan

    def get_batch(self, batch_id, user_id=None):
        """The batch row (of this user, when given), or None."""
        row = self.connect().execute(f"SELECT {BATCH_COLUMNS} WHERE id = ?", (batch_id,)).fetchone()
        return row if row is not None and user_id in (None, row["user_id"]) else None

    def list_batches(self, user_id, limit=100, offset=0, group_ids=()):
        """(batch rows of a user and those shared with group_ids, newest first, their total count)."""
        where, params = shared_where(user_id, group_ids)
        conn = self.connect()
        rows = conn.execute(
            f"SELECT {BATCH_COLUMNS} WHERE {where} ORDER BY id DESC LIMIT ? OFFSET ?", (*params, limit, offset)
        ).fetchall()
        total = conn.execute(f"SELECT count(*) FROM batches WHERE {where}", params).fetchone()[0]
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

    # Studies

    def create_study(self, study, job_fields, workdir_prefix, tasks=None):
        """Record a study (a dict of its columns) and its job in one transaction, tasks as for
        create_job; return the study's row."""
        with self.transaction() as conn:
            names = ", ".join(["created_at", *study])
            marks = ", ".join("?" * (len(study) + 1))
            study_id = conn.execute(
                f"INSERT INTO studies ({names}) VALUES ({marks}) RETURNING id", (time.time(), *study.values())
            ).fetchall()[0][0]
            job_id = self._insert_job(conn, dict(job_fields, study_id=study_id), workdir_prefix, tasks)
            conn.execute("UPDATE studies SET job_id = ? WHERE id = ?", (job_id, study_id))
            return conn.execute(f"SELECT {self.study_columns} WHERE studies.id = ?", (study_id,)).fetchone()

    def get_study(self, study_id, user_id=None):
        """The study row with its job's status and times, or None when absent or another user's."""
        row = self.connect().execute(f"SELECT {self.study_columns} WHERE studies.id = ?", (study_id,)).fetchone()
        if row is None or (user_id is not None and row["user_id"] != user_id):
            return None
        return row

    def list_studies(self, user_id, limit=100, offset=0, group_ids=()):
        """(study rows of a user and those shared with group_ids, newest first, their total count)."""
        where, params = shared_where(user_id, group_ids, "studies.")
        conn = self.connect()
        rows = conn.execute(
            f"SELECT {self.study_columns} WHERE {where} ORDER BY studies.id DESC LIMIT ? OFFSET ?", (*params, limit, offset)
        ).fetchall()
        total = conn.execute(f"SELECT count(*) FROM studies WHERE {where}", params).fetchone()[0]
        return rows, total

    def add_evaluations(self, study_id, texts, first, best):
        """Store evaluations numbered from `first` (their JSON texts) and the study's new best
        (JSON text, None to keep it), in one transaction; long polls of its history wake."""
        with self.transaction() as conn:
            conn.executemany(
                "INSERT INTO evaluations (study_id, evaluation, record) VALUES (?, ?, ?)",
                [(study_id, first + place, text) for place, text in enumerate(texts)],
            )
            conn.execute(
                "UPDATE studies SET n_evaluations = ?, best = coalesce(?, best) WHERE id = ?",
                (first + len(texts) - 1, best, study_id),
            )

    def forget_evaluations(self, study_id):
        """Remove a study's evaluations, its count and best (a study that starts again)."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM evaluations WHERE study_id = ?", (study_id,))
            conn.execute("UPDATE studies SET n_evaluations = 0, best = NULL WHERE id = ?", (study_id,))

    def evaluations(self, study_id, since=0):
        """The JSON texts of a study's evaluations numbered above `since`, in order."""
        rows = self.connect().execute(
            "SELECT record FROM evaluations WHERE study_id = ? AND evaluation > ? ORDER BY evaluation", (study_id, since)
        )
        return [row[0] for row in rows]

    # Uploaded files

    def add_file(self, user_id, filename, unique_filename, sha256sum, size):
        """Record an uploaded file; return its id."""
        with self.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO files (user_id, filename, unique_filename, sha256sum, size, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                (user_id, filename, unique_filename, sha256sum, size, time.time()),
            )
            return cursor.fetchall()[0][0]

    def delete_file(self, file_id):
        """Forget an uploaded file (the caller removes it from disk)."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM files WHERE id = ?", (file_id,))

    def list_files(self, user_id):
        """The file rows of a user, by id."""
        return self.connect().execute("SELECT * FROM files WHERE user_id = ? ORDER BY id", (user_id,)).fetchall()

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
        """The uploads row of a chunked upload in progress, or None."""
        return self.connect().execute(
            "SELECT * FROM uploads WHERE user_id = ? AND upload_key = ?", (user_id, upload_key)
        ).fetchone()

    def save_upload_state(self, user_id, upload_key, partial_name, next_chunk, total_chunks, size):
        """Record how far a chunked upload has come."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO uploads (user_id, upload_key, partial_name, next_chunk, total_chunks, updated_at, size)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, upload_key) DO UPDATE"
                " SET partial_name = excluded.partial_name, next_chunk = excluded.next_chunk,"
                " total_chunks = excluded.total_chunks, updated_at = excluded.updated_at, size = excluded.size",
                (user_id, upload_key, partial_name, next_chunk, total_chunks, time.time(), size),
            )

    def drop_upload_state(self, user_id, upload_key):
        """Forget a chunked upload (finished or abandoned)."""
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
        with self._with_misses() as conn:
            conn.execute(
                "INSERT INTO processes (id, host, pid, started_at, beat_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET beat_at = excluded.beat_at",
                (owner_id, host, int(pid), now, now),
            )

    def forget(self, owner_id):
        """Drop the heartbeat of a process that stops in order."""
        with self._with_misses() as conn:
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
        """The time of the last heartbeat of any worker, or None."""
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
        """{(method, route, status): n} of the whole service."""
        rows = self.connect().execute("SELECT method, route, status, n FROM request_counts")
        return {(method, route, status): n for method, route, status, n in rows}

    # Teams: access tokens, admins, groups, the audit log

    def add_access_token(self, user_id, name, token_hash, expires_at):
        """Record a personal access token; return its row."""
        with self.transaction() as conn:
            return conn.execute(
                "INSERT INTO access_tokens (user_id, name, token_hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?) RETURNING *",
                (user_id, name, token_hash, time.time(), expires_at),
            ).fetchone()

    def access_token(self, token_hash=None, token_id=None):
        """The access token row of that hash or id, or None."""
        column, value = ("token_hash", token_hash) if token_id is None else ("id", token_id)
        return self.connect().execute(f"SELECT * FROM access_tokens WHERE {column} = ?", (value,)).fetchone()

    def touch_access_token(self, token_id, at):
        """Record when a token was last used."""
        with self.transaction() as conn:
            conn.execute("UPDATE access_tokens SET last_used_at = ? WHERE id = ?", (at, token_id))

    def list_access_tokens(self, user_id):
        """A user's access token rows, by id."""
        return self.connect().execute("SELECT * FROM access_tokens WHERE user_id = ? ORDER BY id", (user_id,)).fetchall()

    def delete_access_token(self, user_id, token_id):
        """Revoke a token of this user; return its row, or None when there is none."""
        with self.transaction() as conn:
            return conn.execute(
                "DELETE FROM access_tokens WHERE id = ? AND user_id = ? RETURNING *", (token_id, user_id)
            ).fetchone()

    def set_admin(self, username, is_admin):
        """Make a user an admin or not; return whether the user exists."""
        with self.transaction() as conn:
            return conn.execute("UPDATE users SET is_admin = ? WHERE username = ?", (int(is_admin), username)).rowcount == 1

    def add_group(self, name):
        """Create a group; return its id, or raise NameTaken."""
        try:
            with self.transaction() as conn:
                return conn.execute(
                    "INSERT INTO groups (name, created_at) VALUES (?, ?) RETURNING id", (name, time.time())
                ).fetchall()[0][0]
        except self.integrity_error:
            raise NameTaken(name) from None

    def delete_group(self, name):
        """Delete a group and its memberships; return whether it existed."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM memberships WHERE group_id IN (SELECT id FROM groups WHERE name = ?)", (name,))
            return conn.execute("DELETE FROM groups WHERE name = ?", (name,)).rowcount == 1

    def list_groups(self):
        """(id, name, created_at, members) of every group, by name."""
        return self.connect().execute(
            "SELECT groups.id, groups.name, groups.created_at, count(memberships.user_id) AS members FROM groups"
            " LEFT JOIN memberships ON memberships.group_id = groups.id GROUP BY groups.id, groups.name, groups.created_at"
            " ORDER BY groups.name"
        ).fetchall()

    def group_members(self, name):
        """(username, role) of a group's members by name, or None when there is no such group."""
        conn = self.connect()
        if conn.execute("SELECT 1 FROM groups WHERE name = ?", (name,)).fetchone() is None:
            return None
        return conn.execute(
            "SELECT users.username, memberships.role FROM memberships JOIN groups ON groups.id = memberships.group_id"
            " JOIN users ON users.id = memberships.user_id WHERE groups.name = ? ORDER BY users.username",
            (name,),
        ).fetchall()

    def set_member(self, group, username, role):
        """Add a user to a group with a role, or change the role; return the role it had ('' when
        none), or None when the group or the user does not exist."""
        with self.transaction() as conn:
            ids = conn.execute(
                "SELECT groups.id, users.id FROM groups, users WHERE groups.name = ? AND users.username = ?", (group, username)
            ).fetchone()
            if ids is None:
                return None
            before = conn.execute("SELECT role FROM memberships WHERE group_id = ? AND user_id = ?", tuple(ids)).fetchone()
            conn.execute(
                "INSERT INTO memberships (group_id, user_id, role) VALUES (?, ?, ?)"
                " ON CONFLICT (group_id, user_id) DO UPDATE SET role = excluded.role",
                (*ids, role),
            )
            return before[0] if before else ""

    def remove_member(self, group, username):
        """Take a user out of a group; return whether they were in it."""
        with self.transaction() as conn:
            return conn.execute(
                "DELETE FROM memberships WHERE group_id IN (SELECT id FROM groups WHERE name = ?)"
                " AND user_id IN (SELECT id FROM users WHERE username = ?)",
                (group, username),
            ).rowcount == 1

    def user_with_groups(self, user_id):
        """The user row of that id as a dict with its `groups`: (Membership, ...), or None."""
        row = self.user_by_id(user_id)
        if row is None:
            return None
        held = self.connect().execute(
            "SELECT memberships.group_id, groups.name, memberships.role FROM memberships"
            " JOIN groups ON groups.id = memberships.group_id WHERE memberships.user_id = ?",
            (user_id,),
        ).fetchall()
        return {**{key: row[key] for key in row.keys()}, "groups": tuple(Membership(*member) for member in held)}

    def group_id(self, name):
        """The id of the group of that name, or None."""
        row = self.connect().execute("SELECT id FROM groups WHERE name = ?", (name,)).fetchone()
        return None if row is None else row[0]

    def user_groups(self, user_id):
        """(name, role) of the groups a user is in, by name."""
        return self.connect().execute(
            "SELECT groups.name, memberships.role FROM memberships JOIN groups ON groups.id = memberships.group_id"
            " WHERE memberships.user_id = ? ORDER BY groups.name",
            (user_id,),
        ).fetchall()

    def set_directory_roles(self, user_id, roles, managed):
        """Make a user's memberships of the `managed` groups (those the directory maps) what
        `roles` ({group: role}) says, creating missing groups; return {group: (old role, new role)}
        of what changed, '' for none."""
        changed = {}
        with self.transaction() as conn:
            held = dict(conn.execute(
                "SELECT groups.name, memberships.role FROM memberships JOIN groups ON groups.id = memberships.group_id"
                " WHERE memberships.user_id = ?", (user_id,)
            ).fetchall())
            for group in sorted(managed):
                old, new = held.get(group, ""), roles.get(group, "")
                if old == new:
                    continue
                changed[group] = (old, new)
                if new:
                    conn.execute("INSERT INTO groups (name, created_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING", (group, time.time()))
                    conn.execute(
                        "INSERT INTO memberships (group_id, user_id, role) SELECT id, ?, ? FROM groups WHERE name = ?"
                        " ON CONFLICT (group_id, user_id) DO UPDATE SET role = excluded.role",
                        (user_id, new, group),
                    )
                else:
                    conn.execute(
                        "DELETE FROM memberships WHERE user_id = ? AND group_id IN (SELECT id FROM groups WHERE name = ?)",
                        (user_id, group),
                    )
        return changed

    def add_audit(self, actor, action, target="", address="", detail=""):
        """Record one entry of the audit log."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO audit (at, actor, action, target, address, detail) VALUES (?, ?, ?, ?, ?, ?)",
                (time.time(), actor, action, target, address, detail),
            )

    def list_audit(self, limit=100, offset=0, action=None, actor=None):
        """(audit rows, newest first, their total count), of one action or actor when given."""
        where, params = "1 = 1", []
        for column, value in (("action", action), ("actor", actor)):
            if value:
                where += f" AND {column} = ?"
                params.append(value)
        conn = self.connect()
        rows = conn.execute(f"SELECT * FROM audit WHERE {where} ORDER BY id DESC LIMIT ? OFFSET ?", (*params, limit, offset)).fetchall()
        return rows, conn.execute(f"SELECT count(*) FROM audit WHERE {where}", params).fetchone()[0]

    def purge_audit(self, before, dry_run=False):
        """Remove the audit entries older than that time; return how many (would be) removed."""
        if dry_run:
            return self.connect().execute("SELECT count(*) FROM audit WHERE at < ?", (before,)).fetchone()[0]
        with self.transaction() as conn:
            return conn.execute("DELETE FROM audit WHERE at < ?", (before,)).rowcount

    # Figures for /health and /metrics

    def ping(self):
        """Raise unless the store answers a read."""
        self.connect().execute("SELECT 1 FROM jobs LIMIT 1").fetchall()

    def jobs_by_status(self):
        """{status: jobs} over every user."""
        return dict(self.connect().execute("SELECT job_status, CAST(sum(n) AS BIGINT) FROM job_counts GROUP BY job_status"))

    def duration_histogram(self):
        """[(upper bound, count of jobs at most that long)], then the sum of all durations."""
        rows = self.connect().execute("SELECT le, n, total FROM job_durations ORDER BY le").fetchall()
        return [(row[0], row[1]) for row in rows], rows[-1][2] if rows else 0.0

    def table_counts(self):
        """{table: rows} of the store's tables, to tell an empty store."""
        conn = self.connect()
        return {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in ("users", "jobs", "files", "uploads", "batches", "studies")}


# SQLite's limit on a statement's parameters before 3.32.
PARAMETERS = 999


def values_tables(rows, spare=0):
    """Rows of values (tuples of one length) as tables for statements, `(VALUES ...) AS given`
    (its columns column1, column2, ... on both backends), each with its parameters: as many rows
    a table as the limit on parameters allows with `spare` others in the statement."""
    width = len(rows[0]) if rows else 1
    size, marks = max(1, (PARAMETERS - spare) // width), f"({', '.join('?' * width)})"
    for start in range(0, len(rows), size):
        chunk = rows[start : start + size]
        yield f"(VALUES {', '.join([marks] * len(chunk))}) AS given", [value for row in chunk for value in row]


def rows_in(conn, sql, values, size=500):
    """The rows of sql for every value, its `{marks}` the parameters of a chunk of them: within
    SQLite's limit on parameters, for any number of values."""
    rows = []
    for start in range(0, len(values), size):
        chunk = values[start : start + size]
        rows += conn.execute(sql.format(marks=", ".join("?" * len(chunk))), chunk).fetchall()
    return rows


def move_statement(move):
    """(UPDATE statement, its parameters, the data fields to write if it moved) of a Move."""
    job_id, status, expected, where, fields = move
    fields = dict(fields, job_status=status)
    data = {name: fields.pop(name) for name in DATA_FIELDS if name in fields}
    assignments = ", ".join(f"{name} = ?" for name in fields)
    marks = ", ".join("?" * len(expected))
    where = where or {}
    conditions = "".join(f" AND {name} = ?" for name in where)
    update = f"UPDATE jobs SET {assignments} WHERE id = ? AND job_status IN ({marks}){conditions}"
    return update, (*fields.values(), job_id, *expected, *where.values()), data


def fill_counts(tx):
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

    def version(self):
        """A number that moves when jobs may have ended (each backend its own, and cheap)."""
        raise NotImplementedError

    def ended_among(self, ids):
        """The ids among these of the jobs that ended."""
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
        """The ids among these of the batches with no point pending or running."""
        if not ids:
            return []
        marks = ", ".join("?" * len(ids))
        waiting = {
            row[0]
            for row in self.conn.execute(
                f"SELECT DISTINCT batch_id FROM jobs WHERE batch_id IN ({marks})"
                " AND job_status IN ('pending', 'running')",
                ids,
            )
        }
        return [batch_id for batch_id in ids if batch_id not in waiting]

    def histories_ready(self, keys):
        """The (study id, since) among these whose study has an evaluation above `since`, or
        whose job ended, or that is gone."""
        if not keys:
            return []
        ids = sorted({study_id for study_id, _ in keys})
        marks = ", ".join("?" * len(ids))
        found = {
            row[0]: (row[1], row[2])
            for row in self.conn.execute(
                f"SELECT studies.id, studies.n_evaluations, jobs.job_status FROM studies"
                f" LEFT JOIN jobs ON jobs.id = studies.job_id WHERE studies.id IN ({marks})",
                ids,
            )
        }
        ready = []
        for study_id, since in keys:
            count, status = found.get(study_id, (None, None))
            if count is None or count > since or status not in ("pending", "running"):
                ready.append((study_id, since))
        return ready

    def close(self):
        self.conn.close()


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
                # Imported here: each backend module imports this one for Store.
                if key[0]:
                    import store_postgres

                    made = store_postgres.PostgresStore(key[0])
                else:
                    import store_sqlite

                    made = store_sqlite.SqliteStore(key[1])
                _current = (key, made)
            found = _current
    return found[1]


def init(queue_ddl=()):
    """Create the data folders and the store's schema; safe to call any number of times."""
    for folder in (settings.FILE_DIRECTORY, settings.FILE_DIRECTORY / ".partial", settings.FILE_DIRECTORY / ".locks", settings.WORKSPACE_EXECUTION):
        folder.mkdir(parents=True, exist_ok=True)
    current().init(queue_ddl)


def _on_current(method):
    """The module function of a Store method: store.get_job(...) is current().get_job(...)."""
    name = method.__name__

    def call(*args, **kwargs):
        return getattr(current(), name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = method.__doc__
    return call


# The Store's methods as module functions, on the store the settings name.
summary = _on_current(Store.summary)
connect = _on_current(Store.connect)
transaction = _on_current(Store.transaction)
feed = _on_current(Store.feed)
start_checkpoints = _on_current(Store.start_checkpoints)
table_counts = _on_current(Store.table_counts)
ping = _on_current(Store.ping)
add_user = _on_current(Store.add_user)
user_by_name = _on_current(Store.user_by_name)
user_by_id = _on_current(Store.user_by_id)
set_password = _on_current(Store.set_password)
delete_user = _on_current(Store.delete_user)
list_users = _on_current(Store.list_users)
create_job = _on_current(Store.create_job)
create_synchronous_job = _on_current(Store.create_synchronous_job)
get_job = _on_current(Store.get_job)
job_status = _on_current(Store.job_status)
list_jobs = _on_current(Store.list_jobs)
waiting_jobs = _on_current(Store.waiting_jobs)
set_status = _on_current(Store.set_status)
set_statuses = _on_current(Store.set_statuses)
set_statuses_and_read = _on_current(Store.set_statuses_and_read)
move_batch = _on_current(Store.move_batch)
cancel_requested = _on_current(Store.cancel_requested)
delete_job = _on_current(Store.delete_job)
claimed_jobs = _on_current(Store.claimed_jobs)
unclaimed_jobs = _on_current(Store.unclaimed_jobs)
ended_jobs = _on_current(Store.ended_jobs)
ended_batches = _on_current(Store.ended_batches)
create_batch = _on_current(Store.create_batch)
get_batch = _on_current(Store.get_batch)
list_batches = _on_current(Store.list_batches)
batch_progress = _on_current(Store.batch_progress)
batch_reader = _on_current(Store.batch_reader)
delete_batch = _on_current(Store.delete_batch)
create_study = _on_current(Store.create_study)
get_study = _on_current(Store.get_study)
list_studies = _on_current(Store.list_studies)
add_evaluations = _on_current(Store.add_evaluations)
forget_evaluations = _on_current(Store.forget_evaluations)
evaluations = _on_current(Store.evaluations)
add_file = _on_current(Store.add_file)
delete_file = _on_current(Store.delete_file)
list_files = _on_current(Store.list_files)
owned_file = _on_current(Store.owned_file)
old_files = _on_current(Store.old_files)
files_in_use = _on_current(Store.files_in_use)
upload_state = _on_current(Store.upload_state)
save_upload_state = _on_current(Store.save_upload_state)
drop_upload_state = _on_current(Store.drop_upload_state)
stale_uploads = _on_current(Store.stale_uploads)
beat = _on_current(Store.beat)
forget = _on_current(Store.forget)
forget_silent = _on_current(Store.forget_silent)
live_processes = _on_current(Store.live_processes)
last_worker_beat = _on_current(Store.last_worker_beat)
reserve_sign_in = _on_current(Store.reserve_sign_in)
clear_sign_ins = _on_current(Store.clear_sign_ins)
add_request_counts = _on_current(Store.add_request_counts)
request_counts = _on_current(Store.request_counts)
jobs_by_status = _on_current(Store.jobs_by_status)
duration_histogram = _on_current(Store.duration_histogram)
add_access_token = _on_current(Store.add_access_token)
access_token = _on_current(Store.access_token)
touch_access_token = _on_current(Store.touch_access_token)
list_access_tokens = _on_current(Store.list_access_tokens)
delete_access_token = _on_current(Store.delete_access_token)
set_admin = _on_current(Store.set_admin)
add_group = _on_current(Store.add_group)
delete_group = _on_current(Store.delete_group)
list_groups = _on_current(Store.list_groups)
group_members = _on_current(Store.group_members)
set_member = _on_current(Store.set_member)
remove_member = _on_current(Store.remove_member)
user_groups = _on_current(Store.user_groups)
user_with_groups = _on_current(Store.user_with_groups)
group_id = _on_current(Store.group_id)
set_directory_roles = _on_current(Store.set_directory_roles)
add_audit = _on_current(Store.add_audit)
list_audit = _on_current(Store.list_audit)
purge_audit = _on_current(Store.purge_audit)
cache_source = _on_current(Store.cache_source)
cache_counts = _on_current(Store.cache_counts)
settle_waiting = _on_current(Store.settle_waiting)
has_waiting = _on_current(Store.has_waiting)
stray_leaders = _on_current(Store.stray_leaders)
clear_cache = _on_current(Store.clear_cache)
known_cache_keys = _on_current(Store.known_cache_keys)
cached_evaluations = _on_current(Store.cached_evaluations)
add_cached_evaluations = _on_current(Store.add_cached_evaluations)
