"""The Huey queue and its job task: `huey_consumer worker.huey -k thread -w 2`.

Each consumer thread lends its turn to one warm job process of this module's pool; the job runs
there, so the consumer itself never runs GEMSEO code and survives whatever a job does.
"""

import logging
import os
import sys
import threading
import time

import errors
import jobs
import pool
import retention
import settings
import store
import store_postgres
import store_sqlite
import wakeup

# Huey imports the PostgreSQL and Redis drivers whenever they are installed: 0.3 s and 23 MiB
# more in every web and worker process (measured). Keep out those this mode does not use.
for _driver, _used in (("psycopg", settings.DATABASE_URL), ("redis", settings.REDIS_URL)):
    if not _used:
        sys.modules.setdefault(_driver, None)

from huey import Huey, crontab  # noqa: E402 (after the guard above)
from huey.storage import SqliteStorage  # noqa: E402

logger = logging.getLogger("gaas")
WORKER_ID = pool.owner_id("worker")


class LazySqliteStorage(SqliteStorage):
    """Huey's SQLite storage, creating its folder and tables on first use instead of at import;
    its dequeue waits for a task to be queued (wakeup.py) instead of the consumer polling."""

    blocking = True  # the consumer does not sleep between two empty dequeues: ours waited
    WAIT_SECONDS = 1.0  # the longest wait before looking again, were a ring lost

    def __init__(self, *args, **kwargs):
        super().__init__(*args, create_tables=False, **kwargs)
        self.bells = self.filename + "-bells"
        self.listener = wakeup.Listener(self.bells)

    def enqueue(self, data, priority=None):
        super().enqueue(data, priority)
        wakeup.ring(self.bells)

    def dequeue(self):
        self.listener.listen()
        found = super().dequeue()
        if found is None:
            self.listener.wait(self.WAIT_SECONDS)
            found = super().dequeue()
        return found

    def _create_connection(self):
        os.makedirs(os.path.dirname(self.filename), exist_ok=True)
        conn = super()._create_connection()
        # As in the job store: WAL with NORMAL stays consistent and skips an fsync per enqueue.
        conn.execute("PRAGMA synchronous=NORMAL")
        for sql in self.ddl:
            conn.execute(sql)
        store_sqlite.protect(self.filename)
        return conn


def make_huey(database_url, redis_url):
    """The queue in Redis, else in the PostgreSQL store's database, else in SQLite."""
    if redis_url:
        from huey import PriorityRedisHuey  # imports redis, only in this mode

        # Blocking pops: a task reaches a waiting thread at once, not at its next poll.
        return PriorityRedisHuey("gaas", url=redis_url, blocking=True, read_timeout=1)
    if database_url:
        from huey.storage import PostgresStorage

        # Tables made by store.init(queue_ddl()), under the store's lock; dequeue blocks on LISTEN.
        return Huey("gaas", storage_class=PostgresStorage, dsn=database_url, create_tables=False, options=store_postgres.pg_options())
    return Huey("gaas", storage_class=LazySqliteStorage, filename=str(settings.HUEY_DATABASE_PATH))


huey = make_huey(settings.DATABASE_URL, settings.REDIS_URL)


def queue_in_store():
    """Whether the queue is a table of the store's database (PostgreSQL for both)."""
    return bool(settings.DATABASE_URL) and not settings.REDIS_URL


def queue_ddl():
    """The queue's tables, for store.init() to make when they live in the store's database."""
    return huey.storage.ddl if queue_in_store() else ()


def init():
    """Make the store's schema and, when it holds the queue, the queue's tables."""
    store.init(queue_ddl())

_lock = threading.Lock()
_pool = None
_threads = set()


def worker_pool():
    """Return the worker's pool, setting the worker up on first use."""
    global _pool
    with _lock:
        if _pool is None:
            jobs.setup_logging()
            init()
            store.beat(WORKER_ID)
            if jobs.recover_lost(enqueue=enqueue):
                # A worker died: the points of the task it held are in no queue; look now.
                jobs.requeue_unqueued(enqueue, queued_job_ids, min_age=2)
            _pool = pool.Pool(0, "worker", WORKER_ID)
            _pool.start()
            threading.Thread(target=_heartbeat, name="heartbeat", daemon=True).start()
            store.start_checkpoints()
        return _pool


def _resize():
    """One warm process per live consumer thread: a thread that died and was restarted by the
    consumer must not leave its process behind as an extra one."""
    alive = {thread.ident for thread in threading.enumerate()}
    _threads.intersection_update(alive)
    _pool.resize(len(_threads))


@huey.on_startup()
def _thread_started():
    current = worker_pool()
    with _lock:
        _threads.add(threading.get_ident())
        if current is _pool:
            _resize()


@huey.on_shutdown()
def _thread_stopped():
    """The last consumer thread to stop closes the pool (earlier ones may still run jobs)."""
    global _pool
    with _lock:
        _threads.discard(threading.get_ident())
        if _pool is None:
            return
        if _threads:
            _resize()
            return
        closing, _pool = _pool, None
    closing.close()
    try:
        store.forget(WORKER_ID)  # a worker that stops in order is not waited for as lost
    except Exception:
        logger.exception("could not remove the heartbeat of %s", WORKER_ID)


def _heartbeat():
    """Beat, and sweep as the web app does: on several machines, the worker hosts decide
    together that a vanished host's jobs are lost, with or without a web app running."""
    sweeper = jobs.Sweeper(enqueue, queued_job_ids, WORKER_ID)
    while True:
        try:
            store.beat(WORKER_ID)
            sweeper.sweep()
        except Exception as error:
            if errors.unavailable(error):  # a line, not a traceback every beat while it is down
                logger.warning("heartbeat: %s is unavailable: %s", errors.unavailable(error), str(error).strip())
            else:
                logger.exception("heartbeat failed")
        time.sleep(settings.HEARTBEAT_INTERVAL)


# A task runs one job, or several short points of a batch in turn; past this many seconds it puts
# the rest back in the queue, one task a point, so that slow points spread over every thread.
TASK_SECONDS = 0.05


# Named as before the rename, so that tasks already in a queue still find their function.
@huey.task(context=True, name="run_async_job")
def run_queued_jobs(job_ids, task=None):
    """Run the jobs of a task, one after the other (one id: a task of an older queue)."""
    job_ids = [job_ids] if isinstance(job_ids, int) else list(job_ids)
    priority = (task.priority or 0) if task is not None else 0
    deadline = time.monotonic() + TASK_SECONDS
    _, rest = jobs.run_queued(worker_pool(), job_ids, WORKER_ID, go_on=lambda: time.monotonic() < deadline)
    for place, later in enumerate(rest, start=len(job_ids) - len(rest)):
        enqueue([later], priority - place)  # the user's later points keep their turn


def enqueue(job_ids, priority=0):
    """Queue a task for these job ids; higher priorities run first."""
    run_queued_jobs(list(job_ids), priority=priority)


def task_message(job_ids, priority=0):
    """(storage, message, priority) of the task for these job ids, for a store that records it in
    its own transaction (queue_in_store())."""
    task = run_queued_jobs.s(list(job_ids), priority=priority)
    return huey.storage, huey.serialize_task(task), priority


enqueue.message = task_message if queue_in_store() else None


def queued_job_ids():
    """The ids of the jobs whose task waits in the queue."""
    ids = set()
    for task in huey.pending():
        if isinstance(task, run_queued_jobs.task_class) and task.args:
            ids.update([task.args[0]] if isinstance(task.args[0], int) else task.args[0])
    return ids


@huey.periodic_task(crontab(minute="*/10"))
def apply_retention():
    """Remove old jobs and unused uploads when GEMSEO_HTTP_JOB_RETENTION_DAYS is set."""
    if settings.JOB_RETENTION_DAYS > 0:
        init()
        retention.purge(settings.JOB_RETENTION_DAYS)
