"""Every change of a job's state, in one place.

A job is recorded `pending` (submit), claimed by one process (its `owner`), `running`, then
`finished` or `failed`. Each move is a compare-and-set in the store (a store.Move): it happens only
from the states named here, so two processes racing for one job cannot both move it. The store
runs the SQL; this module decides every move.

    submit        -> pending, owner '' (asynchronous: queued; a batch's points in one write)
    run here      -> running, owner = its web app (synchronous, once a warm process is free)
    hold          pending, owner ''      -> pending, owner = me (a worker thread waiting for a warm process)
    start         pending, owner '' or me -> running, owner = me (once a warm process is free)
    end           running, owner = me    -> finished | failed
    cancel        pending                -> failed (cancelled); running: flagged for its runner;
                  ended: refused (409). A batch: each of its points so.
    not queued    pending (a job or a batch's points) -> failed (enqueue)
    lost          running | held, dead owner -> failed (lost), or pending again (queued anew)
    orphaned      running | held, live owner that no thread of runs -> as lost, or let go (its own sweep)
    unqueued      pending, owner '', not in the queue -> queued again (idempotent: claim is a CAS)
    delete        any (cancelled first) -> gone; ended ones past the retention -> gone
    hit           (new) -> finished, cached_from = the finished job of its cache key (cache.py)
    wait          (new) -> pending, waits_for = the job of its key in flight; unqueued
    settle        pending, waits_for = an ended or gone job -> finished from it, or queued
"""

import collections
import contextlib
import json
import logging
import math
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

import orjson

import cache
import errors
import files
import pool
import settings
import store
import study
import wire
from errors import Rejected
from store import Move

logger = logging.getLogger("gaas")
MAX_INTEGER = 2**63 - 1  # SQLite's largest integer
# How long a job's start or end is written again while the store is unavailable (a restarted
# PostgreSQL answers within about a second); past that, the sweep of this process ends the job.
STORE_RETRY_SECONDS = 15.0


def setup_logging():
    """Send the gaas log lines to stderr (journald) once per process."""
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s gaas: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(settings.LOG_LEVEL)
        logger.propagate = False


# Submit


def queue_rank(user_id, new_jobs):
    """Refuse (429) a submit that would take a user past GEMSEO_HTTP_MAX_PENDING_JOBS; else
    return the queue priority of the user's next task: minus the jobs the user already has
    waiting, so that the queue serves users in turn (a user's n-th waiting job comes after every
    other user's first n), whatever the order of their submits."""
    waiting = store.waiting_jobs(user_id)
    if waiting + new_jobs > settings.MAX_PENDING_JOBS:
        raise Rejected(
            429,
            f"You have {waiting} jobs pending or running; {new_jobs} more would pass the limit of"
            f" {settings.MAX_PENDING_JOBS} (GEMSEO_HTTP_MAX_PENDING_JOBS). Wait for some to end, or cancel some.",
        )
    return -waiting


def submit(user_id, fields, input_files, enqueue=None, cached=None):
    """Record a job with its input files and queue it with enqueue(ids, priority) when given
    (asynchronous); return its row. Its directory is laid out when it starts. With cached (a
    cache.Request), a job with the results of a finished identical one takes them at once, and
    one identical to a job in flight waits for it, unqueued."""
    fields["input_files"] = _input_files(user_id, input_files)
    lookup = _cache_key(fields, cached)
    row = _submit_one(user_id, fields, enqueue, lambda tasks: store.create_job(fields, workdir_prefix(user_id), tasks, lookup))
    if row["cached_from"] is not None:
        _copy_results([(row["id"], row["workdir"])], store.get_job(row["cached_from"]), row["cached_from"])
        logger.info("job %s finished: user %s, %s, from the cache (job %s)", row["id"], user_id, fields["discipline_class_name"], row["cached_from"])
    elif row["waits_for"] is not None:
        logger.info("job %s pending: user %s, %s, waits for job %s", row["id"], user_id, fields["discipline_class_name"], row["waits_for"])
    else:
        logger.info("job %s pending: user %s, %s, %s", row["id"], user_id, fields["discipline_class_name"], fields["execution_mode"])
    return row


# The results cache (cache.py for the key, store.py for the lookups)


def _cache_key(fields, cached):
    """Set the job's cache key from a cache.Request (None: not cached); return whether to look
    it up (a request with "cache": false runs, and offers its results to later ones)."""
    fields["cache_key"] = cache.key(fields, cached.input_data, cached.discipline) if cached else None
    return bool(fields["cache_key"] and cached.lookup)


def from_cache(user_id, fields, input_files, cached, wait=True):
    """The row of a synchronous job that took the results of a finished identical job, after
    waiting for one in flight (with wait); or None, the job's fields then set to run (with its
    cache key). Never takes a warm process."""
    fields["input_files"] = _input_files(user_id, input_files)
    return _cache_key(fields, cached) and _hit(user_id, fields, wait) or None


def _hit(user_id, fields, wait):
    """from_cache's lookup, the job's fields set."""
    deadline = time.monotonic() + (fields["timeout"] or math.inf)
    while True:
        source = store.cache_source(fields["cache_key"])
        if source is None:
            return None
        if source[1] == "finished":
            row = store.create_job(dict(fields, job_status="pending"), workdir_prefix(user_id), lookup=True, hit_only=True)
            if row is None:  # its source went meanwhile: look again
                continue
            return _took_results(row, user_id, fields)
        if not wait or source[1] == "pending":  # one still queued may start in hours: run now
            return None
        # An identical job running: its results, when it ends, instead of a second run.
        while store.job_status(source[0]) in ("pending", "running") and time.monotonic() < deadline:
            time.sleep(0.02)
        if time.monotonic() >= deadline:
            return None


def _took_results(row, user_id, fields):
    """A synchronous hit's row, once its source's files are copied."""
    _copy_results([(row["id"], row["workdir"])], store.get_job(row["cached_from"]), row["cached_from"])
    logger.info("job %s finished: user %s, %s, synchronous, from the cache (job %s)", row["id"], user_id, fields["discipline_class_name"], row["cached_from"])
    return row


def _copy_results(taken, source, source_id):
    """Lay out the directories of jobs that took the results of job source_id (a row or None):
    only when it wrote files (a thousand hits of a batch would otherwise cost a thousand folders)."""
    source_dir = source["workdir"] if source is not None else None
    found = files.result_files(source_dir)
    for job_id, workdir in taken if found else ():
        try:
            files.copy_results(Path(source_dir), found, Path(workdir), files.cache_note(source_id))
        except OSError:
            logger.exception("job %s: the files of job %s could not be copied", job_id, source_id)


def settle_waiting(leader_id, enqueue=None):
    """Settle the jobs that wait for leader_id, which ended or is gone: they take its results,
    or the first of them is queued to run on its own. Return how many moved."""
    taken, source_dir, first = store.settle_waiting(leader_id)
    if taken:
        _copy_results(taken, {"workdir": source_dir}, leader_id)
        logger.info("jobs %s finished from the cache (job %s)", [job_id for job_id, _ in taken], leader_id)
    if first is not None:
        if enqueue is None:
            import worker  # the queue: imported late, as worker.py imports this module

            enqueue = worker.enqueue
        logger.info("job %s pending: job %s it waited for did not finish; queued to run on its own", first, leader_id)
        try:
            enqueue([first])
        except Exception:  # the sweep queues it when the queue is back
            logger.exception("job %s could not be queued", first)
    return len(taken) + (first is not None)


def submit_study(user_id, study_fields, fields, enqueue):
    """Record a study (its columns) with its job, queued as any asynchronous job; return the
    study's row."""
    fields["input_files"] = "[]"
    row = _submit_one(
        user_id,
        fields,
        enqueue,
        lambda tasks: store.create_study(study_fields, fields, workdir_prefix(user_id), tasks),
        job_of=lambda row: row["job_id"],
    )
    logger.info("study %s pending: user %s, job %s", row["id"], user_id, row["job_id"])
    return row


def _submit_one(user_id, fields, enqueue, create, job_of=lambda row: row["id"]):
    """Record one pending job with create(tasks) and queue it; return what create returned."""
    rank = queue_rank(user_id, 1)
    fields["job_status"] = "pending"
    message = getattr(enqueue, "message", None)  # the queue is in the store: one transaction
    tasks = (lambda ids: [message(ids, rank)]) if message else None
    row = _record(lambda: create(tasks), message)
    job_id = job_of(row)
    # Not queued: a hit (ended), or a job waiting for an identical one (settle_waiting queues it).
    queued = "waits_for" not in row.keys() or (row["waits_for"] is None and row["cached_from"] is None)
    if enqueue is not None and message is None and queued:
        try:
            enqueue([job_id], rank)
        except Exception as error:
            logger.exception("job %s could not be queued", job_id)
            fail(job_id, ("pending",), "enqueue", f"The job could not be queued: {type(error).__name__}: {error}")
            raise _not_queued(f"Job {job_id}", error) from None
    return row


def _not_queued(what, error):
    """The 503 of a job or batch that the queue refused; with Retry-After when it is down."""
    backend = errors.unavailable(error)
    if backend:
        return Rejected(503, f"{what} could not be queued: {backend} is unavailable; try again.", {"Retry-After": str(errors.RETRY_AFTER)})
    return Rejected(503, f"{what} could not be queued: {error}.")


def workdir_prefix(user_id):
    """A job's directory is this followed by its id (files.job_directory)."""
    return f"{files.job_directory(user_id, 0).parent}/job-"


def _input_files(user_id, input_files):
    """The JSON list of the File entries of a job's input files, each checked to be the user's."""
    return json.dumps([wire.file_entry(_owned_input(user_id, item)) for item in input_files])


def _record(write, in_store):
    """Run the store write of a submit; when it queues the tasks too, a failure leaves nothing."""
    if not in_store:
        return write()
    try:
        return write()
    except Rejected:
        raise
    except Exception as error:
        if errors.unavailable(error):
            raise  # nothing was kept; the web app answers 503 naming the backend
        logger.exception("jobs could not be recorded and queued")
        raise Rejected(503, f"The job could not be recorded and queued (nothing was kept): {type(error).__name__}.") from None


def _owned_input(user_id, item):
    """The file row of an input file (a File object, its shape checked by the caller)."""
    row = store.owned_file(user_id, item.get("id"), item.get("unique_filename"))
    if row is None:
        raise Rejected(404, f"Uploaded file {item.get('filename') or item.get('id')!r} not found.")
    return row


def run_synchronous(job_pool, user_id, fields, input_files, owner, cached=None):
    """Run a synchronous job in this process's pool and return its final row.

    The job is recorded once a warm process is free, running already and claimed by this web
    app (if the web app dies, it ends lost): one write to start it, one to end it and read it
    back. With cached (a cache.Request), a hit or an identical job in flight is looked for
    first: in the write that starts the job when a warm process is free at once, else before
    waiting for one (from_cache: a hit never waits for a warm process)."""
    fields["input_files"] = _input_files(user_id, input_files)
    lookup = cached is not None and _cache_key(fields, cached)
    row, process = _start_looked_up(job_pool, user_id, fields, owner) if lookup else (None, None)
    if row is not None and process is None:
        return row  # a hit
    if row is None and lookup:
        hit = _hit(user_id, fields, wait=True)
        if hit is not None:
            return hit
    job_id = None
    if process is None:
        queue_rank(user_id, 1)
        try:
            process = job_pool.acquire(settings.POOL_WAIT_TIMEOUT)
        except TimeoutError:
            raise errors.no_warm_process(settings.POOL_WAIT_TIMEOUT) from None
    try:
        if row is None:
            now = time.time()
            with claims.recording(now):
                # Looked up and not found: a miss, counted in the same write.
                row = store.create_job({**fields, **_running(owner, process, now)}, workdir_prefix(user_id), miss=lookup)
                claims.hold(row["id"])
        job_id = row["id"]
        logger.info("job %s running: user %s, %s, synchronous", job_id, user_id, row["discipline_class_name"])
        started_at = time.monotonic()
        reply, healthy = _execute(job_pool, process, job_id, row)
        if not healthy:
            job_pool.release(process, healthy=False)
            process = None
        _, _, row = _end(job_id, row, owner, reply, started_at, read=job_id)
    except Exception as error:
        # With the store down, this process's sweep ends the job once the store is back.
        if job_id is not None and not errors.unavailable(error):
            fail(job_id, ("running",), "internal", f"The job could not run: {error}")
        raise
    finally:
        if job_id is not None:
            claims.release(job_id)
        if process is not None:
            job_pool.release(process)
    if row is None:
        raise Rejected(404, f"Job {job_id} was deleted while it ran.")
    return row


def _start_looked_up(job_pool, user_id, fields, owner):
    """With a warm process free at once, the cache lookup and the job's start in one write (a
    read fewer than from_cache then create_job). Return (the row of a hit, None), (the row of the
    job started, running, the process it holds), or (None, None): no process free, the user at
    the pending limit (from_cache may still find a hit) or an identical job running."""
    process = job_pool.take_idle()
    if process is None:
        return None, None
    row = None
    try:
        queue_rank(user_id, 1)
        now = time.time()
        with claims.recording(now):
            row, _ = store.create_synchronous_job(fields, workdir_prefix(user_id), _running(owner, process, now))
            if row is not None and row["cached_from"] is None:
                claims.hold(row["id"])
                return row, process
    except Rejected:
        pass
    finally:
        if row is None or row["cached_from"] is not None:
            job_pool.release(process)
    if row is not None:
        _took_results(row, user_id, fields)
    return row, None


def _running(owner, process, now):
    return {"job_status": "running", "owner": owner, "created_at": now, "started_at": now, "pid": process.pid}


# Batches: many points of one discipline, each an ordinary job


POINTS_PER_TASK = 16  # short points share a task (a worker task puts back what takes too long)


def submit_batch(user_id, batch, common, inputs, input_files, enqueue, cached=None):
    """Record a batch of points (input_data JSON texts) in one transaction and queue them in
    tasks of POINTS_PER_TASK; return the batch id. With cached (a cache.Request whose
    input_data is the points' list of dicts), points take the results of finished identical
    jobs at once, and points identical to a job in flight (or to an earlier point) wait for it."""
    rank = queue_rank(user_id, len(inputs))
    common = dict(common, job_status="pending", input_files=_input_files(user_id, input_files))
    keys, lookup = None, False
    if cached is not None:
        keys = cache.keys(common, cached.input_data, cached.discipline)
        lookup = cached.lookup and any(keys)
    message = getattr(enqueue, "message", None)  # the queue is in the store: one transaction

    def tasks(ids):
        # The user's n-th waiting point gets priority -n: other users' jobs come in between.
        return [message(ids[start : start + POINTS_PER_TASK], rank - start) for start in range(0, len(ids), POINTS_PER_TASK)]

    prefix = workdir_prefix(user_id)
    batch_id, ids, settled = _record(
        lambda: store.create_batch(batch, common, inputs, prefix, tasks if message else None, keys, lookup), message
    )
    for source_id, (source_dir, taken) in settled.hits.items():
        _copy_results([(job_id, f"{prefix}{job_id}") for job_id in taken], {"workdir": source_dir}, source_id)
    try:
        queued = settled.queued
        for start in range(0, len(queued), POINTS_PER_TASK) if message is None else ():
            enqueue(queued[start : start + POINTS_PER_TASK], rank - start)
    except Exception as error:
        logger.exception("batch %s could not be queued", batch_id)
        _fail_pending_points(batch_id, "enqueue", f"The job could not be queued: {type(error).__name__}: {error}")
        raise _not_queued(f"Batch {batch_id}", error) from None
    hits = sum(len(taken) for _, taken in settled.hits.values())
    logger.info(
        "batch %s pending: user %s, %s, %s points (%s from the cache, %s waiting for identical ones)",
        batch_id, user_id, batch["discipline_class_name"], len(ids), hits, len(settled.waits),
    )
    return batch_id


# How long a cancel waits for running jobs to stop (their runners check every
# pool.CANCEL_CHECK_INTERVAL); the web app waits on its event loop, not here.
STOP_WAIT = 3.0


def cancel_batch(batch_id):
    """Pending points never start; running ones are asked to stop: return whether any was."""
    _fail_pending_points(batch_id, "cancelled", "The job was cancelled.")
    running = store.move_batch(batch_id, "running", ("running",), cancel_requested=1)
    logger.info("batch %s cancelled", batch_id)
    return running


def _fail_pending_points(batch_id, error, text):
    """End every pending point of a batch as failed; return how many."""
    return store.move_batch(batch_id, "failed", ("pending",), ended_at=time.time(), error=error, traceback=text)


def batch_status(counts, started):
    """The status of a batch from its points' {status: count} and its first start."""
    if counts.get("pending", 0) + counts.get("running", 0):
        return "running" if started is not None else "pending"
    return "failed" if counts.get("failed", 0) else "finished"


def delete_batch(batch_id):
    """Remove a batch, its points and their directories (cancel it first)."""
    cancel_batch(batch_id)
    files.remove_stored(workdirs=store.delete_batch(batch_id))
    logger.info("batch %s deleted", batch_id)


# Run


def run_queued(job_pool, job_ids, owner, go_on=lambda: True):
    """Run pending jobs one after the other in one warm process; return (their final statuses,
    None where not run, and the ids left when go_on() said to stop).

    As one job ends, the next one starts in the same write, which reads it back: a batch's
    short points cost one round trip to the store each. Each still has its own status,
    directory, time limit and log.
    """
    statuses, ids, process, started, ran, claimed = [], list(job_ids), None, None, set(), []
    waiting = []
    try:
        process, waiting = _process_or_hold(job_pool, ids, owner, claimed)
        while ids:
            job_id = ids.pop(0)
            if started != job_id:
                # Holding jobs, wait a bounded time: a pool that cannot start lets them go to
                # another worker (the sweep queues them again) instead of keeping them for ever.
                process = process or job_pool.acquire(settings.PROCESS_STARTUP_TIMEOUT if waiting else None)
                claims.hold(job_id)
                claimed.append(job_id)
                # Claimed, started and read in one write, once a process is free: a task queued
                # twice for one job (see requeue_unqueued) loses this race and does nothing.
                # Jobs held while waiting are started or let go in that same write.
                moves = [_start(job_id, owner, process, held_by=owner if job_id in waiting else "")]
                moves += [_let_go(other, owner) for other in waiting if other != job_id]
                moved, row = _retried(
                    lambda: _started_by(owner, process, store.set_statuses_and_read(moves, job_id)), job_id, "start"
                )
                waiting = []
                if not moved:
                    statuses.append(None)  # cancelled, deleted or taken by another task
                    continue
            # else: row is the job as the write that started it left it.
            logger.info("job %s running: user %s, %s", job_id, row["user_id"], row["discipline_class_name"])
            started_at = time.monotonic()
            ran.add(job_id)
            reply, healthy = _execute(job_pool, process, job_id, row)
            if not healthy:
                job_pool.release(process, healthy=False)
                process = None
            keep_going = bool(ids) and go_on()
            next_id = ids[0] if keep_going and process is not None else None
            if next_id is not None:
                claims.hold(next_id)
                claimed.append(next_id)
            status, started, row = _end(job_id, row, owner, reply, started_at, next_id, process, read=next_id)
            statuses.append(status)
            if not keep_going:
                break
    except BaseException:
        if started is not None and started not in ran:  # started by the last write, never run: give it back
            store.set_status(started, "pending", ("running",), where={"owner": owner}, owner="", started_at=None, pid=None)
        if waiting:  # still waiting for a process (the pool closed): let the jobs go
            store.set_statuses([_let_go(other, owner) for other in waiting])
        raise
    finally:
        for job_id in claimed:
            claims.release(job_id)
        if process is not None:
            job_pool.release(process)
    return statuses, ids


def _process_or_hold(job_pool, ids, owner, claimed):
    """(a free warm process, []), or when none is free yet (None, the jobs claimed for this owner,
    still pending). Unclaimed while this thread waits, the jobs are in no queue (it took their
    task): a sweep took them for lost tasks and queued them again, as it did with every job of an
    old queue while the worker's first warm process imported GEMSEO (after copy-store, a restart).
    They are held in `claims` too (added to `claimed`): if the write's answer is lost, this
    process's sweep lets go of those it holds in the store that no thread has (end_orphans)."""
    try:
        return job_pool.acquire(timeout=0), []
    except TimeoutError:
        pass
    for job_id in ids:
        claims.hold(job_id)
        claimed.append(job_id)
    moves = [Move(job_id, "pending", ("pending",), {"owner": ""}, {"owner": owner}) for job_id in ids]
    return None, [job_id for job_id, moved in zip(ids, store.set_statuses(moves)) if moved]


def _let_go(job_id, owner):
    """The move that gives back a pending job this owner held while it waited for a process."""
    return Move(job_id, "pending", ("pending",), {"owner": owner}, {"owner": ""})


def _started_by(owner, process, written):
    """(whether this start moved the job, its row) from a start write: a start written again after
    a cut connection finds the job started by its first try: by this owner, in this process."""
    (moved, *_), row, _ = written
    if not moved and row is not None and row["job_status"] == "running":
        moved = (row["owner"], row["pid"]) == (owner, process.pid)
    return moved, row


def _retried(write, job_id, what):
    """Run write(), again while the store is unavailable, for up to STORE_RETRY_SECONDS: a job's
    start and end are compare-and-sets, so a write that took effect before its answer was cut
    does nothing the second time."""
    delay, deadline = 0.05, time.monotonic() + STORE_RETRY_SECONDS
    while True:
        try:
            return write()
        except Exception as error:
            backend = errors.unavailable(error)
            if backend is None or time.monotonic() + delay > deadline:
                raise
            logger.warning("job %s: %s is unavailable to record its %s; trying again: %s", job_id, backend, what, str(error).strip())
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


def _start(job_id, owner, process, held_by=""):
    """The move that starts a pending job, unclaimed or held by this owner, in this process."""
    return Move(job_id, "running", ("pending",), {"owner": held_by}, {"owner": owner, "started_at": time.time(), "pid": process.pid})


def _end(job_id, row, owner, reply, started_at, next_id=None, process=None, read=None):
    """Store a job's end, and start the pending job next_id in the same write; return (the final
    status or None if the result was dropped, next_id if it started or None, and the row of the
    job `read` as this write left it, when given)."""
    status = reply.pop("job_status")
    key = row["cache_key"]
    # Keyed by the code that ran: a host whose plugin differs from the web app's. The key's
    # code in the provenance's text is the common case, seen without parsing it.
    if key and reply.get("provenance") and key.rpartition(":")[2] not in reply["provenance"]:
        ran = orjson.loads(reply["provenance"])["discipline"]["code_sha256"]
        reply["cache_key"] = f"{key.rpartition(':')[0]}:{ran}"
    moves = [Move(job_id, status, ("running",), {"owner": owner}, dict(reply, ended_at=time.time()))]
    if next_id is not None:
        moves.append(_start(next_id, owner, process))
    # Whether identical jobs wait for this one (a cached job only), read in the end's write.
    leader = job_id if key else None
    read_row, waiting = None, False
    try:
        if read is None and leader is None:
            moved = _retried(lambda: store.set_statuses(moves), job_id, "end")
        else:
            moved, read_row, waiting = _retried(lambda: store.set_statuses_and_read(moves, read, leader), job_id, "end")
    except Exception as error:  # e.g. outputs too big for the store: the job must still end
        if errors.unavailable(error):
            raise  # still down: this process's sweep ends the job once the store is back
        logger.exception("job %s: its result could not be stored", job_id)
        status, reply = "failed", {"error": "internal"}
        text = f"The result could not be stored: {type(error).__name__}: {error}"
        moved = [fail(job_id, ("running",), "internal", text, where={"owner": owner}), False]
        read_row = store.get_job(read) if read == job_id else None
        waiting = leader is not None and store.has_waiting(job_id)
    next_started = next_id if len(moved) > 1 and moved[1] else None
    if not moved[0]:
        now = read_row if read == job_id else store.get_job(job_id)
        logger.warning(
            "job %s: its %s result was dropped: the job is %s, owned by %s",
            job_id,
            status,
            "deleted" if now is None else now["job_status"],
            "nobody" if now is None else now["owner"] or "nobody",
        )
        return None, next_started, read_row
    logger.info(
        "job %s %s: user %s, %s, %.3f s%s",
        job_id,
        status,
        row["user_id"],
        row["discipline_class_name"],
        time.monotonic() - started_at,
        f", error {reply['error']}" if reply.get("error") else "",
    )
    if waiting:
        settle_waiting(job_id)
    return status, next_started, read_row


def _decoded(row):
    job = dict(row)
    for key in store.JSON_FIELDS:
        job[key] = json.loads(job[key])
    return job


def _execute(job_pool, process, job_id, row):
    """Run the job in the process; return (fields for the store, whether the process is reusable)."""
    job = _decoded(row)
    deadline = time.monotonic() + row["timeout"] if row["timeout"] else None

    def cancelled():
        try:
            return "cancelled" if store.cancel_requested(job_id) else None
        except Exception as error:
            if not errors.unavailable(error):
                raise
            return None  # a store outage does not stop the job; the next check asks again

    message = {"op": "execute", "job": job, "memory_limit_mb": settings.JOB_MEMORY_LIMIT_MB}
    options = {}
    if row["job_type"] == "study":
        recorder = StudyRecorder(store.get_study(row["study_id"]))
        evaluations = StudyCache(row, recorder)
        message.update(op="study", spec=recorder.spec, max_processes=settings.STUDY_MAX_PROCESSES, cache=evaluations.request)
        # A stopped study first ends its driver and writes problem.h5, within the cancel bound.
        options = {"on_message": evaluations.on_message, "grace": STUDY_GRACE}
    try:
        files.lay_out(Path(job["workdir"]), job["input_files"])  # File entries: filename, unique_filename
        reply = process.ask(message, deadline=deadline, should_stop=cancelled, **options)
    except pool.ProcessGone as gone:
        # Processes killed because their pool is closing (the web app stops) were not at fault.
        reason = "lost" if job_pool.closed and gone.reason == "crashed" else gone.reason
        return {"job_status": "failed", "error": reason, "traceback": _gone_text(reason, gone, row)}, False
    except Exception:
        # A fault of ours (the store, the pipe, the folder): the job must still end, and say why.
        logger.exception("job %s: runner error", job_id)
        return {"job_status": "failed", "error": "internal", "traceback": traceback.format_exc()}, False
    if not reply.pop("ok", False):
        return {"job_status": "failed", "error": "internal", "traceback": reply.get("detail", "")}, False
    if row["job_type"] == "study" and "output_data" in reply:
        reply["output_data"] = recorder.summary(reply["output_data"])
    # A study's process is kept warm like any other (a fresh fork would import the optimiser,
    # h5py and study.py again at every study): study.run restores GEMSEO's cache default and
    # closes its figures.
    return reply, reply.get("error") != "memory"


# Seconds a stopped study has to end its driver and write its files before its group is killed.
STUDY_GRACE = 1.0


class StudyRecorder:
    """Writes a study's evaluations as its job process sends them, each message in one
    transaction with the study's count and best point, from the worker thread that runs it."""

    def __init__(self, row):
        self.study_id = row["id"]
        if row["n_evaluations"]:  # run again (its worker vanished, requeue on): it starts over
            store.forget_evaluations(self.study_id)
        self.spec = orjson.loads(row["spec"])
        self.maximize = bool(self.spec["objective"].get("maximize", False))
        self.best = None  # the best record so far
        self.unsaved = []
        self.gone = False

    def write(self, message):
        if self.gone:
            return
        records = self.unsaved + study.unpack(message["batch"])
        best = study.best_record([self.best, *records] if self.best else records, self.maximize)
        changed = best is not self.best
        try:
            store.add_evaluations(
                self.study_id,
                [study.to_text(record) for record in records],
                records[0]["evaluation"],
                study.to_text(study.best([best], self.maximize)) if changed and best is not None else None,
            )
        except Exception as error:
            if not errors.unavailable(error):
                if store.get_study(self.study_id) is not None:
                    raise
                # Deleted while it ran (its cancel comes first): what it still sends has no home.
                logger.info("study %s was deleted: its last evaluations are dropped", self.study_id)
                self.gone = True
                return
            # Kept for the next message: the history has no gap once the store is back.
            logger.warning("study %s: %s is unavailable to record evaluations: %s", self.study_id, errors.unavailable(error), error)
            self.unsaved = records
            return
        self.unsaved, self.best = [], best

    def summary(self, text):
        """The study's summary (its job's output_data) with its best point: the job process
        leaves it out, as the records are built here."""
        summary = orjson.loads(text)
        records = [self.best, *self.unsaved] if self.best else self.unsaved
        summary["best"] = study.best(records, self.maximize)
        return orjson.dumps(summary).decode()


class StudyCache:
    """The worker's side of a study's results cache (study_cache.py): the keys known in scope at
    its start, sent with it; then the answers to its lookups, and its entries written as they
    come with its evaluations (handed on to the StudyRecorder)."""

    def __init__(self, row, recorder):
        self.job_id, self.user_id, self.recorder = row["id"], row["user_id"], recorder
        self.request = cache.study_request(row["user_id"], recorder.spec)
        if self.request is not None and self.request["lookup"]:
            classes = sorted({parts[1] for parts in self.request["parts"] if parts})
            self.request["known"] = store.known_cache_keys(classes, row["user_id"] if settings.CACHE == "user" else None)

    def on_message(self, message):
        if "cache_get" in message:
            try:
                return {"cache_entries": store.cached_evaluations(message["cache_get"])}
            except Exception as error:  # a miss: the study runs the point
                logger.warning("job %s: the results cache could not be read: %s", self.job_id, error)
                return {"cache_entries": {}}
        if "cache_put" in message:
            counts = message.get("cache_counts", {})
            try:
                store.add_cached_evaluations(self.job_id, self.user_id, message["cache_put"], counts.get("hit", 0), counts.get("miss", 0))
            except Exception as error:  # the study goes on without them: later ones run again
                logger.warning("job %s: %s evaluations not kept in the results cache: %s", self.job_id, len(message["cache_put"]), error)
        if "batch" in message:
            self.recorder.write(message)
        return None


def study_status(row):
    """A study's status: its job's (a study row carries its job's columns)."""
    return row["job_status"] or "failed"  # no job: deleted under the study


def _gone_text(reason, gone, row):
    if reason == "timeout":
        return f"The job was stopped after its time limit of {row['timeout']:g} s."
    if reason == "cancelled":
        return "The job was cancelled."
    if reason == "lost":
        return "The process running this job stopped before the job ended."
    return f"The job process died: {describe_exit(gone.returncode)}."


def describe_exit(returncode):
    if returncode is not None and returncode < 0:
        try:
            return f"killed by signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with status {returncode}"


# End, cancel, delete


def fail(job_id, expected, error, text, where=None):
    """End a job as failed, unless it already moved on; return whether it moved."""
    return store.set_status(
        job_id, "failed", expected, where=where, ended_at=time.time(), error=error, traceback=text
    )


def cancel(job_id, refuse_ended=False):
    """Cancel a job: a pending one ends at once, a running one is asked to stop by its runner
    (within pool.CANCEL_CHECK_INTERVAL): return whether it was running. With refuse_ended, a
    job that has already ended is refused (409)."""
    if fail(job_id, ("pending",), "cancelled", "The job was cancelled."):
        logger.info("job %s failed: cancelled while pending", job_id)
        return False
    if store.set_status(job_id, "running", ("running",), cancel_requested=1):
        return True
    status = store.job_status(job_id) if refuse_ended else None
    if status in store.ENDED:
        raise Rejected(409, f"Job {job_id} has already ended ({status}).")
    return False


def wait_stopped(job_id):
    """Wait (in this thread: for the admin commands) until a cancelled job has stopped."""
    deadline = time.monotonic() + STOP_WAIT
    while store.job_status(job_id) == "running" and time.monotonic() < deadline:
        time.sleep(0.02)


def delete(row):
    """Cancel a job if needed, then remove it and its directory."""
    cancel(row["id"])
    store.delete_job(row["id"])
    files.remove_stored(workdirs=[row["workdir"]])


def delete_study(row):
    """Cancel a study's job if needed, then remove the study, its evaluations, job and directory."""
    job = store.get_job(row["job_id"])
    if job is not None:
        delete(job)  # its study goes with its job


def delete_ended(old_jobs, batch_ids):
    """Remove jobs that ended, (id, workdir) each, and batches whose points all ended, with
    their directories (retention: nothing to cancel)."""
    for job_id, workdir in old_jobs:
        store.delete_job(job_id)
        files.remove_stored(workdirs=[workdir])
    for batch_id in batch_ids:
        # Its points are gone (they were old): listed with none, it would read "finished".
        files.remove_stored(workdirs=store.delete_batch(batch_id))


def delete_user(user):
    """Remove a user with every job (running ones cancelled first), file and upload; return the
    counts removed."""
    rows, _ = store.list_jobs(user["id"], "running", limit=1_000_000)
    for row in rows:
        if cancel(row["id"]):
            wait_stopped(row["id"])
    workdirs, stored, partial = store.delete_user(user["id"])
    files.remove_stored(stored, partial, workdirs)
    user_folder = settings.WORKSPACE_EXECUTION / f"user-{user['id']}"
    files.remove_stored(workdirs=[user_folder])
    return {"jobs": len(workdirs), "files": len(stored), "partial_uploads": len(partial)}


# Recovery


class Claims:
    """The jobs that this process's threads run, so that its own sweep can tell those the store
    says it runs but none of its threads does any more: the write that started or ended them was
    cut by a store outage, and the process, alive and beating, would hold them for ever."""

    def __init__(self):
        self.lock = threading.Lock()
        self.held = collections.Counter()  # job id -> threads that run it or are starting it
        self.recorded = collections.Counter()  # started_at of synchronous jobs being inserted

    def hold(self, job_id):
        """Count a job as run here: before the write that starts it, when its id is known."""
        with self.lock:
            self.held[job_id] += 1

    def release(self, job_id):
        """Stop counting it, once the write that ends it is done (or given up)."""
        with self.lock:
            self.held[job_id] -= 1
            if self.held[job_id] <= 0:
                del self.held[job_id]

    @contextlib.contextmanager
    def recording(self, started_at):
        """Around the insert of a job started at that time, whose id is not known before."""
        with self.lock:
            self.recorded[started_at] += 1
        try:
            yield
        finally:
            with self.lock:
                self.recorded[started_at] -= 1
                if self.recorded[started_at] <= 0:
                    del self.recorded[started_at]

    def orphans(self, rows):
        """The store.Claimed rows, read just before, of jobs no thread here runs or is recording."""
        with self.lock:
            held, first_recording = set(self.held), min(self.recorded, default=math.inf)
        return [row for row in rows if row.id not in held and (row.started_at or 0) < first_recording]


claims = Claims()


def end_orphans(owner, enqueue):
    """End the jobs recorded as running in this process (owner) that none of its threads runs,
    as a vanished owner's are (recover_lost), and let go of the pending ones it holds that none
    of its threads waits for (the hold's answer was lost; the sweep queues them again); return
    how many ended or were queued again."""
    moved, let_go = 0, []
    for job in claims.orphans(store.claimed_jobs(owner)):
        if job.job_status == "pending":
            let_go.append(job.id)
            continue
        text = f"The process running this job ({owner}) lost it: the store was unavailable when it recorded the job's start or end."
        moved += _give_up(job, enqueue, text, f"process {owner} lost it")
    if let_go:
        store.set_statuses([_let_go(job_id, owner) for job_id in let_go])
        logger.warning("jobs %s held by %s and by none of its threads: let go", let_go, owner)
    return moved


def recover_lost(enqueue):
    """End as `lost` the jobs whose owner died on this host or stopped beating anywhere.

    With REQUEUE_LOST_JOBS, a running asynchronous job is instead queued again with enqueue([id]),
    once. A job that its dead worker held while it waited for a warm process never ran: it is
    always queued again. Each move names the owner and attempt it saw, so two sweeps (the web
    app's and a new worker's) cannot both queue one job again. Return how many jobs it moved.
    """
    host = pool.host_id()
    stale_before = time.time() - settings.HEARTBEAT_TIMEOUT
    moved = 0
    for job in store.claimed_jobs():
        parts = job.owner.split(":")
        here = len(parts) == 4 and parts[1] == host
        dead_here = here and not pool.pid_alive(int(parts[2]))
        if not dead_here and job.beat_at is not None and job.beat_at >= stale_before:
            continue
        if here:
            pool.kill_leftovers(job.owner)
        if job.job_status == "pending":
            seen = {"owner": job.owner, "attempts": job.attempts}
            if store.set_status(job.id, "pending", ("pending",), where=seen, owner=""):
                logger.warning("job %s pending: queued again, its worker %s vanished", job.id, job.owner)
                enqueue([job.id])
                moved += 1
            continue
        text = f"The process running this job ({job.owner or 'unknown'}) stopped before the job ended."
        moved += _give_up(job, enqueue, text, f"worker {job.owner} vanished")
    return moved


def _give_up(job, enqueue, text, why):
    """End as lost a running job (store.Claimed) that its owner no longer runs or, with
    REQUEUE_LOST_JOBS, queue an asynchronous one again, once; each move names the owner and
    attempt seen. Return 1 if it moved. `why` ends the log line of a job queued again."""
    seen = {"owner": job.owner, "attempts": job.attempts}
    if (
        settings.REQUEUE_LOST_JOBS
        and job.execution_mode == "asynchronous"
        and job.attempts == 0
        and store.set_status(job.id, "pending", ("running",), where=seen, owner="", attempts=1, started_at=None, pid=None)
    ):
        logger.warning("job %s pending: queued again after its %s", job.id, why)
        enqueue([job.id])
        return 1
    if fail(job.id, ("running",), "lost", text, where=seen):
        logger.warning("job %s failed: lost (owner %s)", job.id, job.owner)
        return 1
    return 0


class Sweeper:
    """What every web app and worker does at each heartbeat, so that on several machines the
    living decide for the vanished: end or queue again the jobs of vanished processes, every
    REQUEUE_PENDING_AFTER (or at once after a vanishing) queue again the jobs whose task is in no
    queue, and forget the heartbeats of processes long gone."""

    def __init__(self, enqueue, queued_ids, owner=None):
        self.enqueue, self.queued_ids, self.next_requeue, self.owner = enqueue, queued_ids, 0.0, owner

    def sweep(self):
        moved = recover_lost(self.enqueue) + (end_orphans(self.owner, self.enqueue) if self.owner else 0)
        # Jobs waiting for one that ended without settling them (lost, cancelled, deleted).
        for leader_id in store.stray_leaders():
            settle_waiting(leader_id, self.enqueue)
        if moved or time.monotonic() >= self.next_requeue:
            # A process vanished: the points of the task it held are in no queue; look now.
            self.next_requeue = time.monotonic() + settings.REQUEUE_PENDING_AFTER
            requeue_unqueued(self.enqueue, self.queued_ids, min_age=2 if moved else None)
            store.forget_silent(time.time() - 10 * settings.HEARTBEAT_TIMEOUT)


def requeue_unqueued(enqueue, queued_ids, min_age=None):
    """Queue again the asynchronous jobs that wait for a worker but whose task is in no queue:
    the web app died between recording and queueing, or a worker took the task and failed to
    claim the job. queued_ids() returns the job ids of the tasks in the queue. A task queued
    twice is harmless (the claim is a compare-and-set), so min_age (default
    REQUEUE_PENDING_AFTER) only bounds how often the queue is read. Return the ids queued again."""
    waiting = store.unclaimed_jobs(time.time() - (settings.REQUEUE_PENDING_AFTER if min_age is None else min_age))
    if not waiting:
        return []
    queued = queued_ids()
    missing = [job_id for job_id in waiting if job_id not in queued]
    for job_id in missing:
        logger.warning("job %s pending: its task was in no queue; queued again", job_id)
        enqueue([job_id])
    return missing
