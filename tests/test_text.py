"""Text that names or filters (user names, job names, filters, upload ids, discipline names) is
refused with 422 naming the field when it holds control characters, on every store: PostgreSQL
refuses NUL in its text columns, and the request once ended in a 500 there."""

import pytest
import requests

from conftest import TIMEOUT

BACKENDS = ("sqlite", "postgresql")
pytestmark = pytest.mark.every_backend


def refused(response, where):
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == f"{where} must not hold control characters."


@pytest.mark.parametrize("name", ["bob\x00", "alice\n", "\x7f"])
def test_sign_in_form(live, name):
    response = requests.post(live.url + "/token", data={"username": name, "password": "x"}, timeout=TIMEOUT)
    refused(response, "Field 'username'")


@pytest.mark.parametrize("key", ["name", "discipline", "error"])
def test_job_filters(alice, key):
    refused(alice.get("/v1/job", params={key: "a\x00b"}), f"Query '{key}'")
    assert alice.get("/v1/job", params={key: "été ü"}).status_code == 200


def test_job_and_batch_names(alice):
    for body in ({"name": "\x00"}, {"name": "a\tb"}):
        refused(alice.post("/v1/discipline/Sellar1/execute", json=body), "Field 'name'")
        refused(alice.post("/v1/discipline/Sellar1/execute?execution_mode=asynchronous", json=body), "Field 'name'")
        refused(alice.post("/v1/discipline/Sellar1/batch", json={**body, "samples": [{}]}), "Field 'name'")
    assert alice.run("Sellar1", name="été ü")["name"] == "été ü"


def test_input_file_names(alice):
    body = {"input_files": [{"unique_filename": "x\x00"}]}
    refused(alice.post("/v1/discipline/Sellar1/execute", json=body), "Field 'input_files[0].unique_filename'")


def test_upload_ids_and_file_names(alice):
    part = {"files": ("notes.txt", b"x")}
    refused(alice.post("/v1/file/upload", files=part, data={"upload_id": "u\x00"}), "Field 'upload_id'")
    # A file name is reduced to its printable characters; nothing left is refused.
    response = alice.post("/v1/file/upload", files={"files": ("\x00", b"x")})
    assert response.status_code == 400 and "not usable" in response.json()["detail"]
    stored = alice.post("/v1/file/upload", files={"files": ("a\x00b.txt", b"x")}).json()
    assert stored[0]["filename"] == "ab.txt"


@pytest.mark.parametrize("path", ["/v1/discipline/%00", "/v1/discipline/Sellar%01"])
def test_discipline_names_in_paths(alice, path):
    refused(alice.get(path), "Path 'name'")
    refused(alice.post(path + "/execute", json={}), "Path 'name'")
    refused(alice.post(path + "/input_names", json={}), "Path 'name'")
