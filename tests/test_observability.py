"""The API description, health and metrics."""

import sqlite3

import requests
from openapi_spec_validator import validate
from prometheus_client.parser import text_string_to_metric_families
from starlette.routing import Route

from conftest import TIMEOUT


def test_openapi_document_is_valid_and_complete(live):
    import gaas

    spec = requests.get(live.url + "/openapi.json", timeout=TIMEOUT).json()
    validate(spec)
    for route in gaas.routes:
        if not isinstance(route, Route) or route.path in gaas.UNDOCUMENTED:
            continue
        for method in route.methods - {"HEAD"}:
            operation = spec["paths"][route.path][method.lower()]
            assert operation["responses"], (method, route.path)
    # Every route of the wire contract is there.
    for path in ("/token", "/v1/job/{job_id}/cancel", "/v1/file/upload", "/health", "/metrics"):
        assert path in spec["paths"]
    execute = spec["paths"]["/v1/discipline/{name}/execute"]["post"]
    assert {p["name"] for p in execute["parameters"]} == {"name", "execution_mode"}
    assert "202" in execute["responses"] and "requestBody" in execute


def test_a_route_missing_from_the_document_fails(live):
    import gaas
    import openapi
    import pytest

    extra = Route("/v1/secret", gaas.health, methods=["GET"])
    with pytest.raises(KeyError):
        openapi.document([*[r for r in gaas.routes if isinstance(r, Route)], extra], gaas.UNDOCUMENTED)


def test_docs_page_works_offline(live):
    page = requests.get(live.url + "/docs", timeout=TIMEOUT)
    assert page.status_code == 200 and "/docs/assets/swagger-ui-bundle.js" in page.text
    assert "http://" not in page.text and "https://" not in page.text
    for asset in ("/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css", "/ui/docs.js"):
        assert requests.get(live.url + asset, timeout=TIMEOUT).status_code == 200, asset


def metrics(live):
    text = requests.get(live.url + "/metrics", timeout=TIMEOUT).text
    return {family.name: family for family in text_string_to_metric_families(text)}


def durations(families):
    return {(s.name, s.labels.get("le")): s.value for s in families["gaas_job_duration_seconds"].samples}


def test_metrics_match_the_store(live, alice):
    before = durations(metrics(live))
    alice.run("Sellar1", cache=False)  # a run: its duration counts
    alice.run("Failing")
    families = metrics(live)
    db = sqlite3.connect(live.root / "database" / "gaas.db")
    counts = dict(db.execute("SELECT job_status, count(*) FROM jobs GROUP BY job_status"))
    for sample in families["gaas_jobs"].samples:
        assert sample.value == counts.get(sample.labels["status"], 0), sample
    # The histogram counts every job that ended since the store was made, deleted ones too: it
    # never goes down (a Prometheus histogram is a counter), and it counted the two runs above.
    histogram = durations(families)
    ended = db.execute("SELECT count(*) FROM jobs WHERE started_at IS NOT NULL AND ended_at IS NOT NULL").fetchone()[0]
    count = histogram[("gaas_job_duration_seconds_count", None)]
    assert count >= ended and count - before[("gaas_job_duration_seconds_count", None)] >= 2
    assert histogram[("gaas_job_duration_seconds_bucket", "+Inf")] == count
    bounds = sorted((float(le), value) for (name, le), value in histogram.items() if name.endswith("_bucket"))
    assert all(low[1] <= high[1] for low, high in zip(bounds, bounds[1:]))  # cumulative
    assert "gaas_queue_depth" in families
    age = families["gaas_worker_heartbeat_age_seconds"].samples[0].value
    assert 0 <= age < 30


def test_request_counter(live, alice):
    def count():
        family = metrics(live)["gaas_http_requests"]
        return sum(
            s.value for s in family.samples
            if s.name == "gaas_http_requests_total" and s.labels == {"method": "GET", "route": "/v1/job/{job_id}", "status": "404"}
        )

    before = count()
    alice.get("/v1/job/999999")
    alice.get("/v1/job/999998")
    assert count() == before + 2


def test_health(live, fresh_service):
    response = requests.get(live.url + "/health", timeout=TIMEOUT)
    assert response.status_code == 200
    report = response.json()
    assert report["database"] == "ok" and report["queue"] == "ok" and report["worker_heartbeat_age_s"] < 30
    alone = fresh_service(GEMSEO_HTTP_SYNC_PROCESSES=1, worker=False)
    response = requests.get(alone.url + "/health", timeout=TIMEOUT)
    assert response.status_code == 503 and "worker" in response.json()["reason"]


def test_one_log_line_per_job_state_change(live, alice):
    import re
    import time

    sync = alice.run("Sellar1", cache=False)  # a run: its log lines
    failing = alice.wait(alice.run("Failing", "asynchronous")["id"])
    assert failing["job_status"] == "failed"
    user = sync["user_id"]

    def lines(job_id, name):
        return re.findall(rf"INFO gaas: job {job_id} (\w+): (.*)", (live.logs / name).read_text())

    deadline = time.monotonic() + 10
    while len(lines(failing["id"], "worker.log")) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    server = lines(sync["id"], "server.log")
    # A synchronous job is recorded running, once its warm process is free.
    assert [status for status, _ in server] == ["running", "finished"]
    assert server[0][1] == f"user {user}, Sellar1, synchronous"
    assert server[1][1].startswith(f"user {user}, Sellar1, ") and server[1][1].endswith(" s")
    assert [status for status, _ in lines(failing["id"], "server.log")] == ["pending"]
    worker = lines(failing["id"], "worker.log")
    assert [status for status, _ in worker] == ["running", "failed"]
    assert worker[1][1].startswith(f"user {user}, Failing, ") and worker[1][1].endswith(", error ValueError")
