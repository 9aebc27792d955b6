"""Health report and Prometheus metrics of the web app."""

import threading
import time
from collections import Counter

import settings
import store

class RequestCounter:
    """Answered requests by method, route template and status, counted by CountRequests.

    Each web process adds its counts to the store every heartbeat and before a scrape, so that
    /metrics counts the requests of every process and host behind the load balancer."""

    def __init__(self, paths):
        self.paths = paths
        self.counts = Counter()  # not yet in the store
        self.lock = threading.Lock()

    def flush(self):
        # The lock guards the swap only: the store write must not hold up the event loop's counting.
        with self.lock:
            counts, self.counts = self.counts, Counter()
        try:
            store.add_request_counts(counts)
        except Exception:
            with self.lock:
                self.counts.update(counts)  # kept for the next flush
            raise

    def totals(self):
        """The counts of the whole service."""
        self.flush()
        return store.request_counts()

    def count(self, scope, status):
        # The router leaves the matched endpoint in the scope; its route template names it.
        path = self.paths.get(scope.get("endpoint"), "unmatched")
        # Under the lock: a flush in a thread swaps the counter between a read and a write.
        with self.lock:
            self.counts[(scope["method"], path, status)] += 1


class CountRequests:
    """ASGI middleware: the app state's RequestCounter (set up in the lifespan) counts each
    answered request."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        status = 500

        async def counting_send(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send=counting_send)
        finally:
            scope["app"].state.counter.count(scope, status)


def queue_kind(huey):
    return {"PriorityRedisStorage": "redis", "PostgresStorage": "postgresql"}.get(type(getattr(huey, "storage", None)).__name__, "sqlite")


def health(huey):
    """Return (healthy, report): the store and the queue answer, and a worker beat recently."""
    report, problems = {"store": store.summary(), "queue_backend": queue_kind(huey)}, []
    try:
        store.ping()
        report["database"] = "ok"
        beat = store.last_worker_beat()
    except Exception as error:
        report["database"] = f"error: {error}"
        problems.append("the database does not answer")
        beat = None
    try:
        report["queue_depth"] = len(huey)
        report["queue"] = "ok"
    except Exception as error:
        report["queue"] = f"error: {error}"
        problems.append("the queue does not answer")
    if beat is None:
        report["worker_heartbeat_age_s"] = None
        problems.append("no worker has ever beaten its heart")
    else:
        age = time.time() - beat
        report["worker_heartbeat_age_s"] = round(age, 3)
        if age > settings.HEARTBEAT_TIMEOUT:
            problems.append(f"the last worker heartbeat is {age:.0f} s old")
    report["status"] = "unhealthy" if problems else "ok"
    if problems:
        report["reason"] = "; ".join(problems)
    return not problems, report


def public_health(report):
    """The health report without what only the host's administrators should read: where the
    store lives, raw error texts, the pools' failures."""
    public = {key: value for key, value in report.items() if key not in ("store", "pools", "reason")}
    public["store"] = report["store"].split()[0]
    for key in ("database", "queue"):
        if public.get(key, "ok") != "ok":
            public[key] = "error"
    return public


def _labels(**labels):
    inner = ",".join(f'{key}="{str(value).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"' for key, value in labels.items())
    return "{" + inner + "}"


def _bound(value):
    return "+Inf" if value == float("inf") else f"{value:g}"


def render(huey, counts):
    """The Prometheus text exposition of the service's state; counts are the request counts."""
    lines = []

    def metric(name, kind, help_text, samples):
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for suffix, labels, value in samples:
            lines.append(f"{name}{suffix}{_labels(**labels) if labels else ''} {value}")

    by_status = store.jobs_by_status()
    metric(
        "gaas_jobs",
        "gauge",
        "Jobs in the store by status.",
        [("", {"status": status}, by_status.get(status, 0)) for status in store.STATUSES],
    )
    try:
        depth = len(huey)
    except Exception:
        depth = float("nan")
    metric("gaas_queue_depth", "gauge", "Tasks waiting in the Huey queue.", [("", {}, depth)])
    metric(
        "gaas_backend",
        "gauge",
        "Where the store and the queue live (1 for the one in use).",
        [("", {"store": store.summary().split()[0], "queue": queue_kind(huey)}, 1)],
    )
    buckets, total = store.duration_histogram()
    samples = [("_bucket", {"le": _bound(bound)}, count) for bound, count in buckets]
    count = buckets[-1][1] if buckets else 0
    samples += [("_sum", {}, total), ("_count", {}, count)]
    metric("gaas_job_duration_seconds", "histogram", "Run time of the jobs that ended since the store was made.", samples)
    metric(
        "gaas_http_requests_total",
        "counter",
        "Requests answered by every web app process, by method, route and status.",
        [
            ("", {"method": method, "route": route, "status": status}, value)
            for (method, route, status), value in sorted(counts.items())
        ],
    )
    cache = store.cache_counts()
    metric(
        "gaas_cache_hits_total", "counter", "Jobs ended with the results of an identical job (the results cache).", [("", {}, cache["hit"])]
    )
    metric("gaas_cache_misses_total", "counter", "Jobs with the results cache on that ran.", [("", {}, cache["miss"])])
    metric(
        "gaas_limit",
        "gauge",
        "Limits of this service: points in one batch, jobs a user may have pending or running.",
        [
            ("", {"name": "max_batch_samples"}, settings.MAX_BATCH_SAMPLES),
            ("", {"name": "max_pending_jobs"}, settings.MAX_PENDING_JOBS),
        ],
    )
    beat = store.last_worker_beat()
    age = float("nan") if beat is None else round(time.time() - beat, 3)
    metric(
        "gaas_worker_heartbeat_age_seconds",
        "gauge",
        "Seconds since the last heartbeat of any worker.",
        [("", {}, age)],
    )
    return "\n".join(lines) + "\n"
