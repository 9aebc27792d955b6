"""Operating the PostgreSQL store: copy-store from SQLite, init, backup with pg_dump and restore."""

import hashlib
import time

import requests

from conftest import Service
from test_api import upload
from test_batches import submit, wait_batch

BACKENDS = ("sqlite",)  # each test starts from SQLite or makes its own PostgreSQL database


def wait_health(service, timeout=60):
    deadline = time.monotonic() + timeout
    while (response := requests.get(service.url + "/health", timeout=30)).status_code != 200:
        assert time.monotonic() < deadline, response.text
        time.sleep(0.2)
    return response.json()


def test_copy_store_grows_a_sqlite_service_into_postgresql(fresh_service, backends):
    service = fresh_service(GEMSEO_HTTP_SYNC_PROCESSES=1)
    alice, bob = service.api("alice", "alice-pw"), service.api("bob", "bob-pw")
    done = alice.run("Sellar1", input_data={"x_1": [2.0]})
    failed = alice.run("Failing", input_data={"x": [3.5]})
    data = bytes(range(256)) * 20
    stored = upload(bob, data, "table.bin")
    batch = submit(alice, {"samples": [{"x_1": [float(i)]} for i in range(5)]})
    assert wait_batch(alice, batch["id"], timeout=120)["batch_status"] == "finished"
    service.stop_worker()
    pending = alice.run("WriteTag", "asynchronous", input_data={"tag": [7]})
    old_token = service.token("alice", "alice-pw")
    before = {name: api.get("/v1/job?limit=1000").json() for name, api in (("alice", alice), ("bob", bob))}
    service.stop_server()

    url = backends.settings("postgresql")["GEMSEO_HTTP_DATABASE_URL"]
    # A password on the command line (ps shows it to every user) is refused; the URL comes from
    # the environment (file) instead.
    refused = service.admin("copy-store", url)
    assert refused.returncode != 0 and "command line" in refused.stderr and "Traceback" not in refused.stderr
    service.env["GEMSEO_HTTP_DATABASE_URL"] = url
    copied = service.admin("copy-store")
    assert copied.returncode == 0, copied.stderr
    assert "1 pending jobs queued again" in copied.stdout, copied.stdout
    again = service.admin("copy-store")
    assert again.returncode != 0 and "not empty" in again.stderr and "Traceback" not in again.stderr
    del service.env["GEMSEO_HTTP_DATABASE_URL"]

    moved = Service(service.root, GEMSEO_HTTP_DATABASE_URL=url, GEMSEO_HTTP_SYNC_PROCESSES=1)
    # The logs of the SQLite service are in the same files: read what comes after them.
    starts = {name: (moved.logs / name).stat().st_size for name in ("server.log", "worker.log")}
    try:
        moved.start_server()
        # The password and the old session keep working (same hashes, versions and key).
        alice2 = moved.api("alice", "alice-pw")
        me = requests.get(moved.url + "/v1/user/me/", headers={"Authorization": f"Bearer {old_token}"}, timeout=30)
        assert me.status_code == 200 and me.json()["username"] == "alice"
        bob2 = moved.api("bob", "bob-pw")
        after = {"alice": alice2.get("/v1/job?limit=1000").json(), "bob": bob2.get("/v1/job?limit=1000").json()}
        assert after == before
        full = alice2.get(f"/v1/job/{done['id']}").json()
        assert full["output_data"] == done["output_data"] and full["input_data"] == done["input_data"]
        assert alice2.get(f"/v1/job/{failed['id']}").json()["message"] == failed["message"]
        files = bob2.get("/v1/file").json()
        assert [item["sha256sum"] for item in files] == [stored["sha256sum"]] == [hashlib.sha256(data).hexdigest()]
        assert alice2.get("/v1/file").json() == []  # still bob's alone
        results = alice2.get(f"/v1/batch/{batch['id']}/results").json()
        assert results["job_status"] == ["finished"] * 5 and len(results["output_data"]["y_1"]) == 5
        # The job left pending in SQLite's queue runs from the new queue.
        moved.start_worker()
        ended = alice2.wait(pending["id"], timeout=120)
        assert ended["job_status"] == "finished" and ended["output_data"] == {"echo": [7.0]}
        # Queued once: by copy-store. A sweep that read the queue while a worker thread held the
        # task, waiting for its first warm process, queued the copied (old) job a second time.
        # Two more loops of each process's housekeeping (each begins with a beat) have swept since.
        ((worker_id,),) = moved.sql("SELECT id FROM processes WHERE id LIKE ? ORDER BY beat_at DESC LIMIT 1", ("worker:%",))
        moved.wait_beats(wait_health(moved)["web_process"], 2, also=[worker_id])
        logs = "".join((moved.logs / name).read_bytes()[start:].decode(errors="replace") for name, start in starts.items())
        assert "queued again" not in logs, logs
        # New ids follow the copied ones.
        newer = alice2.run("Sellar1")
        assert newer["id"] > pending["id"]
        assert wait_health(moved)["store"].startswith("postgresql")
    finally:
        moved.close()


def test_copy_store_refuses_a_target_that_is_not_postgresql(tmp_path):
    result = Service(tmp_path).admin("copy-store", "sqlite:///tmp/x.db")  # no need to start it
    assert result.returncode != 0 and "postgresql://" in result.stderr and "Traceback" not in result.stderr


def recording_wrappers(folder, bindir):
    """pg_dump and pg_restore wrappers in folder that record their argv and environment."""
    folder.mkdir()
    for name in ("pg_dump", "pg_restore"):
        wrapper = folder / name
        wrapper.write_text(
            f'#!/bin/sh\nprintf "%s\\n" "$0" "$@" >> {folder}/argv\nenv >> {folder}/environ\nexec {bindir}/{name} "$@"\n'
        )
        wrapper.chmod(0o755)
    return folder


def test_init_backup_and_restore_with_pg_dump(tmp_path, backends):
    url = backends.settings("postgresql")["GEMSEO_HTTP_DATABASE_URL"]
    password = backends.postgres.password
    # pg_dump and pg_restore had the URL, password included, on their command line (ps showed it).
    bindir = str(recording_wrappers(tmp_path / "bin", backends.postgres.bindir))
    service = Service(tmp_path / "root", GEMSEO_HTTP_DATABASE_URL=url, GEMSEO_HTTP_PG_BIN=bindir, GEMSEO_HTTP_SYNC_PROCESSES=1)
    result = service.admin("init")
    assert result.returncode == 0 and "postgresql" in result.stdout, result.stderr
    port = backends.postgres.port
    assert result.stderr.splitlines()[0] == f"store: postgresql 127.0.0.1:{port}/{url.rpartition('/')[2]}"
    assert password not in result.stderr + result.stdout
    assert {"users", "jobs", "job_data", "huey_task"} <= {
        row[0] for row in service.sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    }
    service.add_user("alice", "alice-pw")
    try:
        service.start_server()
        service.start_worker()
        alice = service.api("alice", "alice-pw")
        job = alice.wait(alice.run("Sellar1", "asynchronous")["id"], timeout=120)
        assert job["job_status"] == "finished"
        folder = tmp_path / "backup"
        backup = service.admin("backup", str(folder))
        assert backup.returncode == 0, backup.stderr
        assert (folder / "gaas.pgdump").stat().st_size > 0 and (folder / "secret_key").exists()
        service.close()

        # Lose the data, then restore: refused while the store holds data, unless --force.
        service.sql("DELETE FROM jobs")
        refused = service.admin("restore", str(folder))
        assert refused.returncode != 0 and "--force" in refused.stderr
        restored = service.admin("restore", "--force", str(folder))
        assert restored.returncode == 0, restored.stderr
        service.start_server()
        again = service.api("alice", "alice-pw").get(f"/v1/job/{job['id']}").json()
        assert again["job_status"] == "finished" and again["output_data"] == job["output_data"]
        argv = (tmp_path / "bin" / "argv").read_text()
        assert "/pg_dump\n" in argv and "/pg_restore\n" in argv and password not in argv
        assert f"PGPASSWORD={password}" in (tmp_path / "bin" / "environ").read_text()
    finally:
        service.close()


def test_the_store_queues_a_task_as_huey_does(backends):
    # Guards store_postgres.HUEY_ENQUEUE: the store writes a job's task into huey's private table
    # in the job's own transaction. A new huey that renames the table or the channel, or changes
    # what a task row holds, must fail here rather than leave tasks no worker takes.
    import psycopg
    from huey.storage import PostgresStorage

    import store_postgres

    url = backends.settings("postgresql")["GEMSEO_HTTP_DATABASE_URL"]
    storage = PostgresStorage("gaas", dsn=url, create_tables=False)
    target = store_postgres.PostgresStore(url)
    target.init(storage.ddl)
    assert (storage.table_task, storage.channel) == ("huey_task", "huey.q.gaas")
    with psycopg.connect(url, autocommit=True) as conn:
        columns = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s ORDER BY ordinal_position", (storage.table_task,)
        ).fetchall()
        assert [name for (name,) in columns] == ["id", "queue", "data", "priority"]
        conn.execute(f'LISTEN "{storage.channel}"')
        storage.enqueue(b"by huey", 3)
        with target.transaction() as tx:
            target.queue_task(tx, storage, b"by the store", 3)
        assert [note.channel for note in conn.notifies(timeout=10, stop_after=2)] == [storage.channel] * 2
        cursor = conn.execute(f"SELECT * FROM {storage.table_task} ORDER BY id")
        names = [column.name for column in cursor.description]
        by_huey, by_store = [{name: value for name, value in zip(names, row) if name not in ("id", "data")} for row in cursor.fetchall()]
    assert by_huey == by_store
    assert [storage.dequeue(), storage.dequeue(), storage.dequeue()] == [b"by huey", b"by the store", None]
    storage.close()
