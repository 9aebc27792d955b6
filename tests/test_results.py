"""A batch's results streamed from the store (results.py): the same table as the whole one built in
memory before, pages of it with offset and limit, one snapshot per answer, bounded memory."""

import csv
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

import results
import settings
import store
import store_postgres
import store_sqlite
from conftest import CODE

BACKENDS = ("sqlite", "postgresql")
pytestmark = pytest.mark.every_backend
INPUT_NAMES = ["x", "k", "a.b", 'q"t']

# (status, error, inputs, outputs) of each point: every status, failures with and without
# outputs, missing and null outputs, lists of several lengths, scalars, text, nested lists, and
# names that a JSON path would misread.
POINTS = [
    ("finished", "", {"x": [1.5, 2.0], "k": 3, "a.b": [0.1], 'q"t': "é,\"x\""}, {"y": [1.0, 2.0, 3.0], "s": 0.5, 'q"t': [1e-07]}),
    ("finished", "", {"x": [1.0, 2.5], "a.b": [0.2], "default": [9.0]}, {"s": 1e20, "y": [4.0, 5.0], "z": None}),
    ("failed", "ValueError", {"x": [0.0, 0.0], "k": None}, {"y": [6.0, 6.0, 6.0]}),
    ("failed", "cancelled", {"x": [2.0, 2.0]}, {}),
    ("pending", "", {"x": [3.0, 3.0], "k": [1, 2, 3, 4]}, None),
    ("running", "", {"x": [4.0, 4.0]}, None),
    ("finished", "", {"x": [5.0, 5.0]}, {}),
    ("finished", "", {"x": [6.0]}, {"y": [7.0, 8.0, 9.0, 10.0], "t": "text, with \"quotes\"\nand a line", "n": [[1, 2], [3, 4]], "b": True, "i": 42}),
    ("finished", "", {"x": [7.0, 7.5]}, {"y": [], "s": None, "é": [-0.0, 1e-300, 123456789.125]}),
]


# The whole table in memory: how results were built before they were streamed.


def old_table(points, input_names):
    inputs = [orjson.loads(point["input_data"]) for point in points]
    outputs = [orjson.loads(point["output_data"]) if point["job_status"] == "finished" else {} for point in points]
    output_names = list(dict.fromkeys(name for data in outputs for name in data))
    return {
        "job_id": [point["id"] for point in points],
        "job_status": [point["job_status"] for point in points],
        "error": [point["error"] for point in points],
        "input_data": {name: [data.get(name) for data in inputs] for name in input_names},
        "output_data": {name: [data.get(name) for data in outputs] for name in output_names},
    }


def old_csv(table, first_index=0):
    columns = []
    for group in ("input_data", "output_data"):
        for name, values in table[group].items():
            size = max((len(value) if isinstance(value, list) else 1 for value in values if value is not None), default=1)
            for component in range(size):
                header = name if size == 1 else f"{name}[{component}]"
                columns.append((header, [old_cell(value, component) for value in values]))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["batch_index", "job_id", "job_status", "error", *(header for header, _ in columns)])
    for index, job_id in enumerate(table["job_id"]):
        writer.writerow(
            [first_index + index, job_id, table["job_status"][index], table["error"][index], *(cells[index] for _, cells in columns)]
        )
    return out.getvalue()


def old_cell(value, component):
    if isinstance(value, list):
        value = value[component] if component < len(value) else None
    elif component:
        value = None
    return "" if value is None else repr(value) if isinstance(value, float) else str(value)


# Helpers


def service_store(service):
    """A store object of the live service's database, in this process."""
    url = service.env.get("GEMSEO_HTTP_DATABASE_URL")
    return store_postgres.PostgresStore(url) if url else store_sqlite.SqliteStore(service.root / "database" / "gaas.db")


def make_batch(target, user_id, points, input_names=INPUT_NAMES):
    """A batch written through the store's functions, its points in the states given; its id."""
    batch = {"user_id": user_id, "name": "mixed", "discipline_class_name": "Sellar1", "design": "{}", "input_names": json.dumps(input_names)}
    common = {"user_id": user_id, "discipline_class_name": "Sellar1", "job_type": "execute", "job_status": "pending", "execution_mode": "asynchronous"}
    batch_id, ids, _ = target.create_batch(batch, common, [json.dumps(inputs) for _, _, inputs, _ in points], "/nonexistent/")
    now = time.time()
    moves = []
    for job_id, (status, error, _, outputs) in zip(ids, points):
        fields = {"error": error} if error else {}
        if outputs is not None:
            fields["output_data"] = json.dumps(outputs)
        if status != "pending":
            moves.append(store.Move(job_id, status, ("pending",), None, {"started_at": now, "ended_at": now, **fields}))
    target.set_statuses(moves)
    return batch_id


def stored_points(target, batch_id):
    return target.connect().execute(
        f"SELECT jobs.id, jobs.job_status, jobs.error, {store.DATA_COLUMNS} FROM jobs"
        " LEFT JOIN job_data ON job_data.job_id = jobs.id WHERE batch_id = ? ORDER BY batch_index",
        (batch_id,),
    ).fetchall()


def read_still(target, batch_id, request):
    """(the points as stored, request()) when no point changed meanwhile: the live service moves
    the fake points on (a running point with no runner is lost, a pending one queued again)."""
    for _ in range(5):
        before = stored_points(target, batch_id)
        answer = request()
        after = stored_points(target, batch_id)
        if [tuple(row) for row in before] == [tuple(row) for row in after]:
            return before, answer
    raise AssertionError("the points kept changing")


@pytest.fixture(scope="module")
def mixed(live, alice):
    """(store of the live service, id of the mixed batch)."""
    target = service_store(live)
    return target, make_batch(target, alice.get("/v1/user/me/").json()["id"], POINTS)


# Tests


def test_streamed_results_equal_the_whole_table(alice, mixed):
    target, batch_id = mixed
    points, response = read_still(target, batch_id, lambda: alice.get(f"/v1/batch/{batch_id}/results"))
    expected = old_table(points, INPUT_NAMES)
    assert {"finished", "failed"} <= set(expected["job_status"])
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-total-count"] == str(len(POINTS))
    assert response.json() == expected
    # Columns in the same order too.
    assert list(response.json()["output_data"]) == list(expected["output_data"]) == ["y", "s", 'q"t', "z", "t", "n", "b", "i", "é"]
    points, response = read_still(target, batch_id, lambda: alice.get(f"/v1/batch/{batch_id}/results?format=csv"))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.text == old_csv(old_table(points, INPUT_NAMES))


@pytest.mark.parametrize("offset, limit", [(0, 1), (0, 4), (2, 3), (4, 100), (8, 1), (8, 5), (9, 1), (50, 2)])
def test_offset_and_limit(alice, mixed, offset, limit):
    """A page is the table of its points: columns and sizes from them, batch_index counted on."""
    target, batch_id = mixed
    results_of = lambda query: read_still(target, batch_id, lambda: alice.get(f"/v1/batch/{batch_id}/results?{query}"))  # noqa: E731
    points, response = results_of(f"offset={offset}&limit={limit}")
    assert response.status_code == 200, response.text
    assert response.headers["x-total-count"] == str(len(POINTS))
    assert response.json() == old_table(points[offset : offset + limit], INPUT_NAMES)
    points, response = results_of(f"format=csv&offset={offset}&limit={limit}")
    assert response.status_code == 200, response.text
    assert response.text == old_csv(old_table(points[offset : offset + limit], INPUT_NAMES), offset)
    # Either parameter alone.
    points, response = results_of(f"offset={offset}")
    assert response.json() == old_table(points[offset:], INPUT_NAMES)
    points, response = results_of(f"limit={limit}")
    assert response.json() == old_table(points[:limit], INPUT_NAMES)


def test_offset_and_limit_pages_read_back_the_whole(alice, mixed):
    _, batch_id = mixed
    rows = []
    for offset in range(0, len(POINTS), 2):
        text = alice.get(f"/v1/batch/{batch_id}/results?format=csv&offset={offset}&limit=2").text
        rows += list(csv.DictReader(io.StringIO(text)))
    whole = list(csv.DictReader(io.StringIO(alice.get(f"/v1/batch/{batch_id}/results?format=csv").text)))
    assert [row["batch_index"] for row in rows] == [row["batch_index"] for row in whole] == [str(i) for i in range(len(POINTS))]
    assert [row["job_id"] for row in rows] == [row["job_id"] for row in whole]
    # A page's columns are its points' (k is 4 wide over the whole batch, 1 in the first page);
    # statuses aside, as the service may end the running point as lost between two reads.
    for page_row, row in zip(rows, whole):
        common = page_row.keys() & row.keys() - {"job_status", "error"}
        assert {"batch_index", "job_id", "x[0]", "x[1]"} <= common
        assert {key: page_row[key] for key in common} == {key: row[key] for key in common}


@pytest.mark.parametrize(
    "query, detail",
    [
        ("offset=-1", "Query 'offset' must be between 0 and"),
        ("offset=abc", "Query 'offset' must be an integer."),
        ("offset=1.5", "Query 'offset' must be an integer."),
        ("limit=0", "Query 'limit' must be between 1 and"),
        ("limit=-5", "Query 'limit' must be between 1 and"),
        ("limit=", "Query 'limit' must be an integer."),
        ("limit=1e3", "Query 'limit' must be an integer."),
        (f"offset={2**70}", "Query 'offset' must be between 0 and"),
        ("format=xml&limit=1", "Query 'format' must be 'json' or 'csv'."),
    ],
)
def test_bad_offset_or_limit(alice, mixed, query, detail):
    _, batch_id = mixed
    for kind in ("json", "csv"):
        response = alice.get(f"/v1/batch/{batch_id}/results?{query}" + ("" if "format" in query else f"&format={kind}"))
        assert response.status_code == 422, response.text
        assert response.json()["detail"].startswith(detail), response.json()


def test_empty_page(alice, mixed):
    _, batch_id = mixed
    table = alice.get(f"/v1/batch/{batch_id}/results?offset={len(POINTS)}").json()
    assert table == {"job_id": [], "job_status": [], "error": [], "input_data": {name: [] for name in INPUT_NAMES}, "output_data": {}}
    text = alice.get(f"/v1/batch/{batch_id}/results?format=csv&offset={len(POINTS)}").text
    assert text == "batch_index,job_id,job_status,error,x,k,a.b,\"q\"\"t\"\n"


def test_many_pages(alice, live, monkeypatch):
    """Points read a few at a time (a page of stored text holds 3 of these points) give the
    table of the points read at once."""
    target = service_store(live)
    outputs = {"y": [0.1 * i for i in range(3000)], "s": 1.0}
    points = [("finished" if i % 7 else "failed", "" if i % 7 else "RuntimeError", {"x": [float(i)], "k": i}, outputs) for i in range(40)]
    batch_id = make_batch(target, alice.get("/v1/user/me/").json()["id"], points, ["x", "k"])
    stored = stored_points(target, batch_id)
    expected = old_table(stored, ["x", "k"])
    assert alice.get(f"/v1/batch/{batch_id}/results").json() == expected
    assert alice.get(f"/v1/batch/{batch_id}/results?format=csv").text == old_csv(expected)
    # In this process, with pages of 3 points: the same bytes as the web app's.
    monkeypatch.setattr(results, "PAGE_BYTES", 3 * len(stored[0]["output_data"]) + 100)
    monkeypatch.setattr(results, "SPOOL_BYTES", 10_000)  # the columns go to temporary files
    point_settings(live, monkeypatch)
    batch = target.get_batch(batch_id, alice.get("/v1/user/me/").json()["id"])
    table = results.open_table(batch, 5, 30, "json")
    assert table.page == 3
    try:
        streamed = b"".join(results.stream_json(table))
    finally:
        table.reader.close()
    assert orjson.loads(streamed) == old_table(stored[5:35], ["x", "k"])
    table = results.open_table(batch, 5, 30)
    try:
        streamed = b"".join(results.stream_csv(table)).decode()
    finally:
        table.reader.close()
    assert streamed == old_csv(old_table(stored[5:35], ["x", "k"]), 5)


def point_settings(service, monkeypatch):
    """This process's store (store.current()) is the live service's."""
    monkeypatch.setattr(settings, "FILE_DIRECTORY", service.root / "files")
    monkeypatch.setattr(settings, "DATABASE_URL", service.env.get("GEMSEO_HTTP_DATABASE_URL"))
    monkeypatch.setattr(settings, "USER_DATABASE_PATH", service.root / "database" / "gaas.db")


def test_one_snapshot_per_answer(alice, live, monkeypatch):
    """Points that end while an answer streams do not show in it: its columns and rows agree."""
    target = service_store(live)
    user_id = alice.get("/v1/user/me/").json()["id"]
    # Pending (not running): the service would soon end a running point without a runner as lost.
    points = [("finished", "", {"x": [1.0]}, {"y": [1.0]}), ("pending", "", {"x": [2.0]}, None)]
    batch_id = make_batch(target, user_id, points, ["x"])
    point_settings(live, monkeypatch)
    batch = target.get_batch(batch_id, user_id)
    tables = [results.open_table(batch, 0, 10, kind) for kind in ("json", "csv")]
    try:
        pending = stored_points(target, batch_id)[1]["id"]
        assert target.set_status(pending, "finished", ("pending",), output_data=json.dumps({"y": [2.0, 3.0], "w": 4.0}))
        before = old_table([dict(row, job_status="pending") if row["id"] == pending else row for row in stored_points(target, batch_id)], ["x"])
        assert before["output_data"] == {"y": [[1.0], None]}
        assert orjson.loads(b"".join(results.stream_json(tables[0]))) == before
        assert b"".join(results.stream_csv(tables[1])).decode() == old_csv(before)
    finally:
        for table in tables:
            table.reader.close()
    # A new answer sees the point finished.
    after = alice.get(f"/v1/batch/{batch_id}/results").json()
    assert after["job_status"] == ["finished", "finished"] and after["output_data"] == {"y": [[1.0], [2.0, 3.0]], "w": [None, 4.0]}


def test_memory_of_big_results(backend, backends):
    """1,000 points of 1,000-float outputs (18 MB stored): the web process's peak memory grows
    by less than 50 MiB while it serves them (it grew by 84 MiB for JSON, 148 MiB for CSV)."""
    command = [sys.executable, str(CODE / "bench" / "results_memory.py"), "--points", "1000", "--size", "1000"]
    if backend == "postgresql":
        command += ["--database-url", backends.settings("postgresql")["GEMSEO_HTTP_DATABASE_URL"]]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    print(figures)
    assert figures["stored_mb"] > 18
    for kind in ("json", "csv"):
        assert figures[kind]["bytes"] > 18_000_000
        assert figures[kind]["growth_mib"] < 50, figures
