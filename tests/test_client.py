"""The HTTPDiscipline client of gemseo-http 3.0.0, unchanged, against the live service (run in a
venv of its own: tests/reference_client.py)."""

import hashlib

import pytest


def client(reference_client, live, class_name, *steps, tmp_path=None, **options):
    """Make the client of class_name, run steps on it (tests/reference_client.py); their results."""
    return reference_client.run(
        live.url, *steps, name=f"remote {class_name}", class_name=class_name, root_path=str(tmp_path or ""), **options
    )


def test_synchronous(live, reference_client):
    grammars, out = client(reference_client, live, "Sellar1", ["grammars"], ["execute", {"x_1": [2.0]}])
    assert set(grammars["inputs"]) == {"x_1", "x_shared", "y_2", "gamma"}
    assert out["y_1"][0] == pytest.approx((2.0 + 1.0 - 0.2) ** 0.5)


@pytest.mark.every_backend
@pytest.mark.parametrize("long_polling", [True, False])
def test_asynchronous(live, reference_client, long_polling):
    (out,) = client(
        reference_client, live, "Sellar1", ["execute", {"x_1": [3.0]}],
        is_asynchronous=True, use_long_polling=long_polling, polling_wait_time=0.2,
    )
    assert out["y_1"][0] == pytest.approx((3.0 + 1.0 - 0.2) ** 0.5)


def test_linearization(live, reference_client):
    _, linearized = client(
        reference_client, live, "Sellar1", ["differentiate", ["x_1"], ["y_1"]], ["linearize", {"x_1": [2.0]}],
        linearize_after_execution=True,
    )
    assert linearized["jacobian"]["y_1"]["x_1"][0][0] == pytest.approx(0.5 / (2.0 + 1.0 - 0.2) ** 0.5)


@pytest.mark.every_backend
def test_input_and_output_files(live, reference_client, tmp_path):
    source = tmp_path / "input.txt"
    # Bigger than one chunk, and an exact multiple of it: the client then sends an empty chunk.
    source.write_bytes(b"abcd" * 512)
    downloads = tmp_path / "downloads"
    out, listed = client(
        reference_client,
        live,
        "ReadInput",
        ["execute"],
        ["get", f"{live.url}/v1/file"],
        tmp_path=downloads,
        is_asynchronous=True,
        file_paths_to_upload=[str(source)],
        file_paths_to_download=["results"],
        chunk_size=1024,
    )
    assert out["length"][0] == 2048
    (downloaded,) = downloads.glob("*/results/upper.txt")
    assert downloaded.read_bytes() == b"ABCD" * 512
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    assert digest in [item["sha256sum"] for item in listed]


@pytest.mark.parametrize("asynchronous", [False, True])
def test_remote_traceback_reaches_the_client(live, reference_client, asynchronous):
    with pytest.raises(RuntimeError, match="the model diverged at x=1.0"):
        client(reference_client, live, "Failing", ["execute"], is_asynchronous=asynchronous)
