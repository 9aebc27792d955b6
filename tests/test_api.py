"""The wire contract (Part 1 and the Part 2 routes) against the live service."""

import hashlib
import os
import time
from pathlib import Path

import pytest
import requests

from conftest import TIMEOUT, Api


@pytest.mark.every_backend
def test_token_and_me(live, alice):
    me = alice.get("/v1/user/me/").json()
    assert me["username"] == "alice"
    assert set(me) == {"id", "username"}
    bad = requests.post(live.url + "/token", data={"username": "alice", "password": "nope"})
    assert bad.status_code == 401 and "detail" in bad.json()
    unknown = requests.post(live.url + "/token", data={"username": "zed", "password": "x"})
    assert unknown.status_code == 401


@pytest.mark.every_backend
def test_password_guessing_is_throttled_per_user_name(live, alice):
    live.add_user("guessed", "right-pw")

    def sign_in(name, password):
        return requests.post(live.url + "/token", data={"username": name, "password": password}, timeout=TIMEOUT)

    assert sign_in("guessed", "wrong").status_code == 401
    assert sign_in("guessed", "right-pw").status_code == 200  # a success forgets the failures
    for _ in range(10):
        assert sign_in("guessed", "wrong").status_code == 401
    refused = sign_in("guessed", "right-pw")  # even the right password, until the window passes
    assert refused.status_code == 429
    assert "try again" in refused.json()["detail"] and 0 < int(refused.headers["Retry-After"]) <= 60
    assert sign_in("alice", "alice-pw").status_code == 200  # other user names are not affected


@pytest.mark.parametrize("header", [None, "Bearer nonsense", "Bearer a.b.c", "Basic abc"])
def test_routes_need_a_valid_token(live, header):
    headers = {"Authorization": header} if header else {}
    for path in ("/v1/discipline", "/v1/job", "/v1/file", "/v1/user/me/", "/v1/job/1"):
        response = requests.get(live.url + path, headers=headers, timeout=TIMEOUT)
        assert response.status_code == 401, path
        assert response.json()["detail"]


def test_forged_token_is_refused(live, alice):
    token = alice.session.headers["Authorization"].split()[1]
    header, payload, signature = token.split(".")
    # One character changed (a fixed replacement would equal the signature once in 1,024 tokens).
    changed = "B" if signature[0] == "A" else "A"
    other = Api(live.url, f"{header}.{payload}.{changed}{signature[1:]}")
    assert other.get("/v1/user/me/").status_code == 401


def test_catalogue(alice):
    names = alice.get("/v1/discipline").json()
    assert "Sellar1" in names and "SobieskiMission" in names
    # Plugins found through GEMSEO_PATH are served like the built-in ones.
    assert "WriteTag" in names
    # Disciplines that run code from the request are off by default; AnalyticDiscipline is on,
    # its formulas checked (tests/test_analytic.py).
    for unsafe in ("DiscFromExe", "HTTPDiscipline", "AutoPyDiscipline", "XLSDiscipline"):
        assert unsafe not in names
    assert "AnalyticDiscipline" in names


def test_unsafe_discipline_cannot_run(alice, live):
    body = {"discipline_options": {"command_line": "touch marker", "input_template": "x"}}
    for route in ("execute", "execute?execution_mode=asynchronous", "input_names", "inputs_schema"):
        response = alice.post(f"/v1/discipline/DiscFromExe/{route}", json=body)
        # Not "unknown": the class exists, and the answer says who can enable it and how.
        assert response.status_code == 403, response.text
        assert "GEMSEO_HTTP_ENABLED_DISCIPLINES" in response.json()["detail"]
    assert alice.get("/v1/discipline/DiscFromExe").status_code == 403
    assert not list(live.root.rglob("marker"))
    assert alice.post("/v1/discipline/NoSuchThing/input_names").status_code == 404


def test_descriptions(alice):
    assert alice.post("/v1/discipline/Sellar1/input_names").json() == [
        "x_1",
        "x_shared",
        "y_2",
        "gamma",
    ]
    assert alice.post("/v1/discipline/Sellar1/output_names", json={}).json() == ["y_1"]
    schema = alice.post("/v1/discipline/Sellar1/inputs_schema").json()
    assert schema["properties"]["x_1"]["type"] == "array"
    assert "y_1" in alice.post("/v1/discipline/Sellar1/outputs_schema").json()["properties"]
    defaults = alice.post("/v1/discipline/Sellar1/default_input_data").json()
    assert defaults["x_shared"] == [1.0, 0.0]


def test_discipline_options_change_the_description(alice):
    body = {"discipline_options": {"n_x": 3, "n_y": 2}}
    names = alice.post("/v1/discipline/FiniteElementAnalysis/input_names").json()
    defaults = alice.post("/v1/discipline/FiniteElementAnalysis/default_input_data", json=body)
    assert defaults.status_code == 200, defaults.text
    assert len(defaults.json()[names[0]]) != len(
        alice.post("/v1/discipline/FiniteElementAnalysis/default_input_data").json()[names[0]]
    )


def test_bad_discipline_options(alice):
    response = alice.post(
        "/v1/discipline/Sellar1/input_names", json={"discipline_options": {"no_such_option": 1}}
    )
    # 422 like every other field error, with the words clients look for.
    assert response.status_code == 422
    assert "no_such_option" in response.json()["detail"] and "Invalid discipline_options" in response.json()["detail"]
    response = alice.post(
        "/v1/discipline/Sellar1/execute", json={"discipline_options": {"no_such_option": 1}}
    )
    assert response.status_code == 422


def test_unknown_discipline(alice):
    for route in ("input_names", "inputs_schema", "default_input_data", "execute"):
        response = alice.post(f"/v1/discipline/NoSuchThing/{route}")
        assert response.status_code == 404, route
        assert "NoSuchThing" in response.json()["detail"]


@pytest.mark.every_backend
def test_synchronous_execution(alice):
    # A run, not a hit of another test's job (a hit never starts: no started_at).
    job = alice.run("Sellar1", input_data={"x_1": [2.0]}, name="my sellar", cache=False)
    assert job["job_status"] == "finished" and job["cached_from"] is None
    assert job["name"] == "my sellar"
    assert job["output_data"]["y_1"][0] == pytest.approx((2.0 + 1.0 - 0.2 * 1.0) ** 0.5)
    assert job["input_data"]["x_shared"] == [1.0, 0.0]  # completed with the defaults
    assert job["created_at"] <= job["started_at"] <= job["ended_at"]
    assert alice.get(f"/v1/job/{job['id']}").json()["output_data"] == job["output_data"]


def test_scalar_input_is_accepted(alice):
    job = alice.run("Sellar1", input_data={"x_1": 2.0})
    assert job["job_status"] == "finished", job["traceback"]


def test_linearize(alice):
    job = alice.run("Sellar1", input_data={"x_1": [2.0]}, linearize=True)
    assert job["job_type"] == "execute_and_linearize"
    jac = job["jacobian_data"]["y_1"]["x_1"]
    assert jac[0][0] == pytest.approx(0.5 / (2.0 + 1.0 - 0.2) ** 0.5)
    job = alice.run(
        "Sellar1",
        linearize=True,
        linearization_mode="finite_differences",
        differentiated_inputs=["x_1"],
        differentiated_outputs=["y_1"],
    )
    assert set(job["jacobian_data"]["y_1"]) == {"x_1"}


@pytest.mark.every_backend
def test_asynchronous_execution_and_long_polling(alice):
    job = alice.run("WriteTag", "asynchronous", input_data={"tag": [7], "delay": [0.5]})
    assert job["job_status"] in ("pending", "running")
    # The job is recorded before the answer goes out.
    assert alice.get(f"/v1/job/{job['id']}").status_code == 200
    start = time.monotonic()
    polled = alice.get(f"/v1/job/{job['id']}?long_polling=true&long_polling_timeout=20.5").json()
    assert polled["job_status"] == "finished"
    assert time.monotonic() - start < 15
    assert polled["output_data"] == {"echo": [7.0]}


@pytest.mark.every_backend
def test_long_polling_timeout_is_a_decimal(alice):
    job = alice.run("Sleeper", "asynchronous", input_data={"duration": [3]})
    start = time.monotonic()
    polled = alice.get(f"/v1/job/{job['id']}?long_polling=true&long_polling_timeout=0.4").json()
    elapsed = time.monotonic() - start
    assert polled["job_status"] in ("pending", "running")
    assert 0.3 < elapsed < 2.5
    assert alice.wait(job["id"])["job_status"] == "finished"


def test_bad_queries(alice):
    job = alice.run("Sellar1")
    for query in ("long_polling=maybe", "long_polling=true&long_polling_timeout=abc"):
        response = alice.get(f"/v1/job/{job['id']}?{query}")
        assert response.status_code == 422 and response.json()["detail"]
    assert alice.post("/v1/discipline/Sellar1/execute?execution_mode=later").status_code == 422


@pytest.mark.every_backend
def test_failing_discipline(alice):
    job = alice.run("Failing", input_data={"x": [3.0]})
    assert job["job_status"] == "failed"
    assert job["error"] == "ValueError"
    assert "the model diverged at x=3.0" in job["traceback"]


def test_rejected_input_is_refused_before_a_job_is_recorded(alice):
    before = alice.get("/v1/job?limit=1").headers["X-Total-Count"]
    response = alice.post("/v1/discipline/Sellar1/execute", json={"input_data": {"x_1": ["a", "b"]}})
    assert response.status_code == 422 and "x_1" in response.json()["detail"]
    assert alice.get("/v1/job?limit=1").headers["X-Total-Count"] == before


@pytest.mark.parametrize(
    "body, status, words",
    [
        ("{not json", 400, "JSON"),
        ("[1, 2]", 422, "object"),
        ('{"input_data": [1]}', 422, "input_data"),
        ('{"input_data": {"nope": [1]}}', 422, "nope"),
        ('{"input_data": {"x_1": {"a": 1}}}', 422, "x_1"),
        ('{"discipline_options": "x"}', 422, "discipline_options"),
        ('{"linearize": "yes"}', 422, "linearize"),
        ('{"linearization_mode": "sideways"}', 422, "linearization_mode"),
        ('{"input_files": [{"id": 999999}]}', 404, "not found"),
        ('{"input_files": ["x"]}', 422, "input_files"),
        ('{"differentiated_inputs": [1]}', 422, "differentiated_inputs"),
        ('{"timeout": -1}', 422, "timeout"),
        # NaN and infinities are not JSON: refused where they stand.
        ('{"timeout": NaN}', 400, "line 1 column 13"),
        ('{"timeout": 1e999}', 400, "line 1 column 13"),
        ('{"input_data": {"x_1": [Infinity]}}', 400, "line 1 column 25"),
        ('{"input_files": [{"id": {"a": 1}}]}', 422, "input_files"),
        ('{"input_files": [{"id": 100000000000000000000}]}', 422, "input_files"),
    ],
)
def test_malformed_execute_requests(alice, body, status, words):
    before = alice.get("/v1/job").headers["X-Total-Count"]
    response = alice.post(
        "/v1/discipline/Sellar1/execute",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == status, response.text
    assert words in response.json()["detail"]
    # Nothing was recorded, and the server keeps serving.
    assert alice.get("/v1/job").headers["X-Total-Count"] == before
    assert alice.run("Sellar1")["job_status"] == "finished"


@pytest.mark.every_backend
def test_job_list_is_paged_newest_first(alice):
    ids = [alice.run("Sellar1")["id"] for _ in range(3)]
    response = alice.get("/v1/job?limit=2")
    page = response.json()
    assert [job["id"] for job in page] == ids[::-1][:2]
    assert int(response.headers["X-Total-Count"]) >= 3
    assert "output_data" not in page[0]
    second = alice.get("/v1/job?limit=2&offset=1").json()
    assert second[0]["id"] == ids[1]
    failed = alice.get("/v1/job?status=failed").json()
    assert all(job["job_status"] == "failed" for job in failed)
    assert alice.get("/v1/job?limit=0").status_code == 422
    assert alice.get("/v1/job?offset=99999999999999999999").status_code == 422
    assert alice.get("/v1/job?status=weird").status_code == 422


@pytest.mark.every_backend
def test_unknown_job_is_404(alice):
    for path in (
        "/v1/job/999999",
        "/v1/job/abc",
        "/v1/job/99999999999999999999",
        "/v1/job/-1",
        "/v1/job/999999/files",
        "/v1/job/999999/log",
    ):
        response = alice.get(path)
        assert response.status_code == 404, path
        assert response.json()["detail"]
    assert alice.get("/v1/job/999999/files/download?filename=x").status_code == 404
    assert alice.post("/v1/job/999999/cancel").status_code == 404
    assert alice.delete("/v1/job/999999").status_code == 404


def upload(api, path_or_bytes, name, chunk_size=1000, upload_id=None):
    """Upload like the HTTPDiscipline client: sequential chunks, the last one possibly empty."""
    data = path_or_bytes
    count, rest = divmod(len(data), chunk_size)
    sizes = [chunk_size] * count + [rest]
    offset, response = 0, None
    for number, size in enumerate(sizes):
        form = {"chunk_number": number, "total_chunks": len(sizes)}
        if upload_id:
            form["upload_id"] = upload_id
        response = api.post(
            "/v1/file/upload", files={"files": (name, data[offset : offset + size])}, data=form
        )
        assert response.status_code == 200, response.text
        offset += size
    return response.json()[0]


@pytest.mark.every_backend
@pytest.mark.parametrize("size", [0, 1, 999, 1000, 2000, 4321])
def test_chunked_upload(alice, size):
    data = os.urandom(size)
    record = upload(alice, data, f"blob-{size}.bin")
    assert record["filename"] == f"blob-{size}.bin"
    assert record["sha256sum"] == hashlib.sha256(data).hexdigest()
    listed = {item["id"]: item for item in alice.get("/v1/file").json()}
    assert listed[record["id"]]["sha256sum"] == record["sha256sum"]


@pytest.mark.every_backend
def test_interleaved_uploads_do_not_mix(alice, bob):
    """Two users, and two uploads of one user, sending chunks of the same file name in turn."""
    payloads = {
        ("alice", "u1"): os.urandom(2500),
        ("alice", "u2"): os.urandom(2500),
        ("bob", "u1"): os.urandom(2500),
    }
    apis = {"alice": alice, "bob": bob}
    results = {}
    for number in range(3):
        for (who, upload_id), data in payloads.items():
            response = apis[who].post(
                "/v1/file/upload",
                files={"files": ("same.bin", data[number * 1000 : (number + 1) * 1000])},
                data={"chunk_number": number, "total_chunks": 3, "upload_id": upload_id},
            )
            assert response.status_code == 200, response.text
            if number == 2:
                results[(who, upload_id)] = response.json()[0]
    for key, data in payloads.items():
        assert results[key]["sha256sum"] == hashlib.sha256(data).hexdigest()


@pytest.mark.every_backend
def test_out_of_order_chunk_is_refused(alice):
    response = alice.post(
        "/v1/file/upload",
        files={"files": ("lonely.bin", b"abc")},
        data={"chunk_number": 1, "total_chunks": 3},
    )
    assert response.status_code == 409
    assert "expected chunk 0" in response.json()["detail"]


def test_bad_uploads(alice):
    assert alice.post("/v1/file/upload", data={"chunk_number": 0}).status_code == 422
    response = alice.post(
        "/v1/file/upload", files={"files": ("x.bin", b"a")}, data={"chunk_number": "one"}
    )
    assert response.status_code == 422
    response = alice.post(
        "/v1/file/upload", files={"files": ("..", b"a")}, data={"chunk_number": 0}
    )
    assert response.status_code == 400
    response = alice.post(
        "/v1/file/upload",
        files={"files": ("x.bin", b"a")},
        data={"chunk_number": 0, "total_chunks": 10**20},
    )
    assert response.status_code == 422


@pytest.mark.every_backend
def test_long_utf8_file_name_is_cut_to_255_bytes(alice):
    record = upload(alice, b"data", "é" * 200 + ".txt")
    assert len(record["filename"].encode()) <= 255
    job = alice.run("WriteTag", input_files=[record])
    assert job["job_status"] == "finished", job["traceback"]
    assert record["filename"] in alice.get(f"/v1/job/{job['id']}/files").json()


def test_upload_names_are_reduced_to_a_base_name(alice, live):
    record = upload(alice, b"sneaky", "../../../etc/evil.txt")
    assert record["filename"] == "evil.txt"
    record = upload(alice, b"sneaky", "C:\\temp\\win.txt")
    assert record["filename"] == "win.txt"
    assert not (live.root / "etc").exists()


@pytest.mark.every_backend
def test_input_file_and_output_tree(alice):
    record = upload(alice, b"hello gaas\n", "input.txt")
    job = alice.run("ReadInput", input_files=[record])
    assert job["job_status"] == "finished", job["traceback"]
    assert job["output_data"] == {"length": [11.0]}
    tree = alice.get(f"/v1/job/{job['id']}/files").json()
    assert list(tree) == ["gaas-job.log", "input.txt", "results"]  # files before folders
    assert tree["results"] == {"upper.txt": None}
    response = alice.get(f"/v1/job/{job['id']}/files/download?filename=results/upper.txt")
    assert response.status_code == 200
    assert response.content == b"HELLO GAAS\n"
    assert "read 11 characters" in alice.get(f"/v1/job/{job['id']}/log").text


def test_download_is_confined_to_the_job_directory(alice, live):
    job = alice.run("WriteTag", input_data={"tag": [1]})
    workdir = Path(job["workdir"])
    secret = live.root / "secret.txt"
    secret.write_text("not yours")
    (workdir / "escape").symlink_to(secret)
    (workdir / "sub").mkdir()
    for name, status in [
        ("../../../secret.txt", 400),
        (str(secret), 400),
        ("escape", 404),
        ("sub", 404),
        ("missing.txt", 404),
        ("", 422),
    ]:
        response = alice.get(f"/v1/job/{job['id']}/files/download", params={"filename": name})
        assert response.status_code == status, name
        assert "not yours" not in response.text
    assert "escape" not in alice.get(f"/v1/job/{job['id']}/files").json()
    ok = alice.get(f"/v1/job/{job['id']}/files/download", params={"filename": "out.txt"})
    assert ok.content == b"tag 1\n"


def test_log_collects_python_and_c_output(alice):
    job = alice.run("Printer", input_data={"x": [1.0]})
    log = alice.get(f"/v1/job/{job['id']}/log").text
    assert "python says hello" in log
    assert "python stderr line" in log
    assert "C says hello" in log


@pytest.mark.every_backend
def test_health(live):
    response = requests.get(live.url + "/health", timeout=TIMEOUT)
    assert response.status_code == 200
    report = response.json()
    assert report["status"] == "ok" and report["database"] == "ok" and report["queue"] == "ok"
    # It names where the store and the queue live, and the web process that answered.
    store, queue = {"sqlite": ("sqlite", "sqlite"), "postgresql": ("postgresql", "postgresql")}.get(
        live.backend, ("postgresql", "redis")
    )
    assert report["store"].split()[0] == store and report["queue_backend"] == queue
    assert report["web_process"].startswith("web:")
    metrics = requests.get(live.url + "/metrics", timeout=TIMEOUT).text
    assert f'gaas_backend{{store="{store}",queue="{queue}"}} 1' in metrics


def test_unknown_route_and_method_are_json(live, alice):
    response = alice.get("/v1/nothing")
    assert response.status_code == 404 and response.json()["detail"]
    response = alice.request("PUT", "/v1/job")
    assert response.status_code == 405 and response.json()["detail"]


@pytest.mark.every_backend
def test_job_list_filters_by_discipline_name_and_error(alice):
    import uuid

    tag = uuid.uuid4().hex[:8]
    wing = alice.run("Sellar1", name=f"wing-{tag}")
    tail = alice.run("Sellar2", name=f"tail-{tag}")
    cancelled = alice.run("Sleeper", "asynchronous", name=f"wait-{tag}", input_data={"duration": [30]})
    assert alice.post(f"/v1/job/{cancelled['id']}/cancel").status_code == 200
    named = alice.get("/v1/job", params={"name": tag})
    assert [job["id"] for job in named.json()] == [cancelled["id"], tail["id"], wing["id"]]
    assert named.headers["X-Total-Count"] == "3"
    both = alice.get("/v1/job", params={"name": tag, "discipline": "Sellar1"}).json()
    assert [job["id"] for job in both] == [wing["id"]]
    stopped = alice.get("/v1/job", params={"name": tag, "status": "failed", "error": "cancelled"}).json()
    assert [job["id"] for job in stopped] == [cancelled["id"]] and stopped[0]["message"] == "The job was cancelled."
