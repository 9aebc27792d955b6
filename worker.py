"""The Huey queue and its job task: `huey_consumer worker.huey -k thread -w 2`.

Each consumer thread lends its turn to one warm job process of this module's pool; the job runs
there, so the consumer itself never runs GEMSEO code and survives whatever a job does.
"""

import logging
import os
import threading
import time

from huey import Huey, crontab
from huey.storage import SqliteStorage

import retention
import runner
import settings
import store

logger = logging.getLogger("gaas")
WORKER_ID = runner.owner_id("worker")


class LazySqliteStorage(SqliteStorage):
    """Huey's SQLite storage, creating its folder and tables on first use instead of at import."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, create_tables=False, **kwargs)

    def _create_connection(self):
        os.makedirs(os.path.dirname(self.filename), exist_ok=True)
        conn = super()._create_connection()
        # As in the job store: WAL with NORMAL stays consistent and skips an fsync per enqueue.
        conn.execute("PRAGMA synchronous=NORMAL")
        for sql in self.ddl:
            conn.execute(sql)
        return conn


huey = Huey("gaas", storage_class=LazySqliteStorage, filename=str(settings.HUEY_DATABASE_PATH))

_lock = threading.Lock()
_pool = None
_threads = 0


def pool():
    """Return the worker's pool, setting the worker up on first use."""
    global _pool
    with _lock:
        if _pool is None:
            runner.setup_logging()
            store.init()
            store.beat(WORKER_ID)
            runner.fail_lost_jobs(requeue=run_job)
            _pool = runner.Pool(0, "worker", WORKER_ID)
            _pool.start()
            threading.Thread(target=_heartbeat, name="heartbeat", daemon=True).start()
            store.start_checkpoints()
        return _pool


@huey.on_startup()
def _thread_started():
    """Each consumer thread adds one warm process, so the pool matches `-w`."""
    global _threads
    current = pool()
    with _lock:
        _threads += 1
        current.grow()


@huey.on_shutdown()
def _thread_stopped():
    """The last consumer thread to stop closes the pool (earlier ones may still run jobs)."""
    global _threads, _pool
    with _lock:
        _threads -= 1
        if _threads > 0 or _pool is None:
            return
        closing, _pool = _pool, None
    closing.close()


def _heartbeat():
    while True:
        try:
            store.beat(WORKER_ID)
        except Exception:
            logger.exception("heartbeat failed")
        time.sleep(settings.HEARTBEAT_INTERVAL)


@huey.task()
def run_job(job_id):
    """Run one asynchronous job."""
    runner.run_job(pool(), job_id, WORKER_ID)


@huey.periodic_task(crontab(minute="*/10"))
def apply_retention():
    """Remove old jobs and unused uploads when GEMSEO_HTTP_JOB_RETENTION_DAYS is set."""
    if settings.JOB_RETENTION_DAYS > 0:
        store.init()
        retention.purge(settings.JOB_RETENTION_DAYS)
