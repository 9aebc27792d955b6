"""Two jobs never share a working directory, and the service's own directories never change."""

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def test_relative_writes_stay_in_each_job_directory(live, alice):
    server_cwd = os.readlink(f"/proc/{live.server.pid}/cwd")
    worker_cwd = os.readlink(f"/proc/{live.worker.pid}/cwd")
    # Each job writes out.txt by a relative path, waits, then reads it back: a shared directory
    # would show another job's tag in its output or its file.
    asynchronous = [
        alice.run("WriteTag", "asynchronous", input_data={"tag": [100 + n], "delay": [0.3]})
        for n in range(10)
    ]
    with ThreadPoolExecutor(4) as pool:
        synchronous = list(
            pool.map(
                lambda n: alice.run("WriteTag", input_data={"tag": [200 + n], "delay": [0.3]}),
                range(4),
            )
        )
    ended = [alice.wait(job["id"], timeout=120) for job in asynchronous] + synchronous
    for job in ended:
        tag = int(job["input_data"]["tag"][0])
        assert job["job_status"] == "finished", job["traceback"]
        assert job["output_data"] == {"echo": [float(tag)]}
        assert Path(job["workdir"], "out.txt").read_text() == f"tag {tag}\n"
        downloaded = alice.get(f"/v1/job/{job['id']}/files/download?filename=out.txt")
        assert downloaded.content == f"tag {tag}\n".encode()
    assert len({job["workdir"] for job in ended}) == 14
    assert os.readlink(f"/proc/{live.server.pid}/cwd") == server_cwd
    assert os.readlink(f"/proc/{live.worker.pid}/cwd") == worker_cwd
    # Nothing landed in the service's own directories.
    for folder in (server_cwd, worker_cwd, str(live.root)):
        assert not Path(folder, "out.txt").exists()


def test_reused_discipline_still_runs_and_writes_each_time(alice, bob):
    """Same user, same inputs twice: both runs write their file (nothing is served from a cache)."""
    first = alice.run("WriteTag", input_data={"tag": [9]})
    second = alice.run("WriteTag", input_data={"tag": [9]})
    third = alice.run("WriteTag", "asynchronous", input_data={"tag": [9]})
    other = bob.run("WriteTag", input_data={"tag": [9]})
    for job in (first, second, alice.wait(third["id"]), other):
        assert job["job_status"] == "finished"
        assert Path(job["workdir"], "out.txt").read_text() == "tag 9\n"
