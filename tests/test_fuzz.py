"""Fuzzing: Schemathesis sends generated requests to every operation of the OpenAPI document and
runs all its checks on the answers (server errors, undocumented statuses, schemas, valid requests
rejected, invalid ones accepted, Allow headers...), on a service of its own, on SQLite and on
PostgreSQL (which refuses some text that SQLite takes: NUL), there for the operations whose
client text can reach the store."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Api, start_service

ST = Path(sys.executable).with_name("st")
SEED = 1
MAX_EXAMPLES = 100
BACKENDS = ("sqlite", "postgresql")
pytestmark = pytest.mark.every_backend
# Operations that answer without putting any client text into a store query, whatever the
# backend: the admin routes (a non-admin's 403 comes first: alice is not one) and a discipline's
# description (a warm process computes it). SQLite's run covers them; PostgreSQL's would only
# repeat it.
SAME_ON_EVERY_STORE = r"^/v1/admin/|^/v1/discipline/\{name\}(/\{what\})?$"


# Which constructor options a discipline needs and which inputs it has depend on the class that
# {name} names: a document for every class cannot say it. There, a schema-valid body may get 400
# (bad options, e.g. 19 classes need some) or 422 (an input the class does not have); both name
# what is wrong. So does a study's body, whose names must be those of the disciplines it lists.
# Every other check, and every other operation, keeps schemathesis's defaults.
DISCIPLINE_DEPENDENT = """
[[operations]]
include-path-regex = "^/v1/discipline/\\\\{name\\\\}/|^/v1/study$"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "422", "429"]
"""


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory, backend, backends):
    """A service that only the fuzzer uses, and a token for alice."""
    # Generated inputs can ask a test discipline to sleep for ages or allocate terabytes, and a
    # long poll on such a job to wait 100 s: bounded, so that no request outlives --request-timeout.
    # Batches too: the document's maximum follows the setting, and the fuzzer asks for it; at
    # 10,000 points (the default) the worker ran thousands of jobs through the whole run, and
    # cancelling one such batch on PostgreSQL took 10 s under load. test_batches checks big ones.
    service = start_service(
        tmp_path_factory.mktemp("fuzz"),
        GEMSEO_HTTP_JOB_TIMEOUT=10,
        GEMSEO_HTTP_JOB_MEMORY_LIMIT_MB=2048,
        GEMSEO_HTTP_MAX_LONG_POLLING_TIMEOUT=10,
        GEMSEO_HTTP_MAX_BATCH_SAMPLES=100,
        **backends.settings(backend),
    )
    try:
        token = service.token("alice", "alice-pw")
        # The token works (else every answer is a 401, which passes most checks), and the first
        # description's wait for a warm process is taken here, not by a fuzzed request.
        response = Api(service.url, token).get("/v1/discipline", timeout=300)
        assert response.status_code == 200, response.text
        yield service, token
    finally:
        service.close()


def test_whole_document_passes_every_check(fuzzed, tmp_path):
    service, token = fuzzed
    assert ST.is_file(), f"{ST} is missing: install schemathesis into this environment"
    config = tmp_path / "schemathesis.toml"  # also keeps any schemathesis.toml above from applying
    config.write_text(DISCIPLINE_DEPENDENT)
    command = [
        str(ST),
        "--config-file", str(config),
        "run", f"{service.url}/openapi.json",
        "--url", service.url,  # requests go to the loopback service, whatever the document says
        "--checks", "all",
        "--seed", str(SEED),
        "--max-examples", str(MAX_EXAMPLES),
        "--continue-on-failure",  # every failure of an operation, not only its first
        "--workers", "1",  # one order of requests, so one seed gives one run
        "--generation-database", "none",  # no examples replayed from earlier runs
        "--request-timeout", "60",
        "-H", f"Authorization: Bearer {token}",
        "--no-color",
        "--report", "json",
        "--report-json-path", str(tmp_path / "report.json"),
    ]
    if service.backend != "sqlite":
        command += ["--exclude-path-regex", SAME_ON_EVERY_STORE]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    output = result.stdout + result.stderr
    report_path = tmp_path / "report.json"
    assert report_path.is_file(), output
    report = json.loads(report_path.read_text())
    operations = report["operations"] or {}
    assert operations.get("tested"), f"no operation was tested:\n{output}"
    assert operations["tested"] == operations["selected"], f"operations not all tested: {operations}\n{output}"
    if service.backend == "sqlite":
        assert operations["selected"] == operations["total"], f"operations not all selected: {operations}"
    assert not report["errors"], output
    assert not report["failures"], output
    assert result.returncode == 0 and report["complete"], output
