"""The HTTPDiscipline client of gemseo-http 3.0.0, unchanged, against the live service."""

import hashlib
from urllib.parse import urlsplit

import pytest
from gemseo_http.http_discipline import HTTPDiscipline
from numpy import array


def client(live, class_name, tmp_path=None, **options):
    parts = urlsplit(live.url)
    return HTTPDiscipline(
        name=f"remote {class_name}",
        class_name=class_name,
        url=f"{parts.scheme}://{parts.hostname}",
        port=parts.port,
        user="alice",
        password="alice-pw",
        root_path=tmp_path or "",
        # The client sends one request by a relative path: it needs a base URL.
        httpx_client_options={"base_url": live.url, "timeout": 60},
        **options,
    )


def test_synchronous(live):
    discipline = client(live, "Sellar1")
    assert set(discipline.io.input_grammar.names) == {"x_1", "x_shared", "y_2", "gamma"}
    out = discipline.execute({"x_1": array([2.0])})
    assert out["y_1"][0] == pytest.approx((2.0 + 1.0 - 0.2) ** 0.5)


@pytest.mark.parametrize("long_polling", [True, False])
def test_asynchronous(live, long_polling):
    discipline = client(
        live, "Sellar1", is_asynchronous=True, use_long_polling=long_polling, polling_wait_time=0.2
    )
    out = discipline.execute({"x_1": array([3.0])})
    assert out["y_1"][0] == pytest.approx((3.0 + 1.0 - 0.2) ** 0.5)


def test_linearization(live):
    discipline = client(live, "Sellar1", linearize_after_execution=True)
    discipline.add_differentiated_inputs(["x_1"])
    discipline.add_differentiated_outputs(["y_1"])
    jacobian = discipline.linearize({"x_1": array([2.0])})
    assert jacobian["y_1"]["x_1"][0, 0] == pytest.approx(0.5 / (2.0 + 1.0 - 0.2) ** 0.5)


def test_input_and_output_files(live, tmp_path):
    source = tmp_path / "input.txt"
    # Bigger than one chunk, and an exact multiple of it: the client then sends an empty chunk.
    source.write_bytes(b"abcd" * 512)
    downloads = tmp_path / "downloads"
    discipline = client(
        live,
        "ReadInput",
        tmp_path=downloads,
        is_asynchronous=True,
        file_paths_to_upload=[source],
        file_paths_to_download=["results"],
        chunk_size=1024,
    )
    out = discipline.execute()
    assert out["length"][0] == 2048
    (downloaded,) = downloads.glob("*/results/upper.txt")
    assert downloaded.read_bytes() == b"ABCD" * 512
    listed = discipline._http_client.get(f"{live.url}/v1/file").json()
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    assert digest in [item["sha256sum"] for item in listed]


@pytest.mark.parametrize("asynchronous", [False, True])
def test_remote_traceback_reaches_the_client(live, asynchronous):
    discipline = client(live, "Failing", is_asynchronous=asynchronous)
    with pytest.raises(RuntimeError, match="the model diverged at x=1.0"):
        discipline.execute()
