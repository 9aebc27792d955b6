"""An idle consumer thread waits for a ring, not a poll (wakeup.py, worker.LazySqliteStorage)."""

import os
import subprocess
import sys
import threading
import time

import wakeup
import worker


def test_a_task_queued_by_another_process_wakes_a_waiting_dequeue(tmp_path, monkeypatch):
    queue = str(tmp_path / "huey.db")
    storage = worker.LazySqliteStorage(name="gaas", filename=queue)
    # Were the ring lost, the dequeue would wait this long: it must end far sooner.
    monkeypatch.setattr(storage, "WAIT_SECONDS", 60)
    found = {}

    def consume():
        start = time.monotonic()
        found["data"], found["seconds"] = storage.dequeue(), time.monotonic() - start

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    # Its FIFO is made before it looks at the queue: from then on, a ring reaches it.
    deadline = time.monotonic() + 30
    while not os.path.isdir(storage.bells) or not os.listdir(storage.bells):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    # Another process queues, as the web app does.
    code = f"import worker; s = worker.LazySqliteStorage(name='gaas', filename={queue!r}); s.enqueue(b'task')"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=worker.settings.CODE_DIR, timeout=60)
    thread.join(30)
    assert found["data"] == b"task"
    assert found["seconds"] < 30, found


def test_a_ring_made_before_the_wait_is_not_lost(tmp_path):
    listener = wakeup.Listener(str(tmp_path / "bells"))
    listener.listen()
    wakeup.ring(listener.folder)
    start = time.monotonic()
    listener.wait(60)
    assert time.monotonic() - start < 30
    # listen() forgets it: the next wait waits.
    listener.listen()
    start = time.monotonic()
    listener.wait(0.2)
    assert time.monotonic() - start >= 0.15


def test_the_fifo_of_an_ended_process_is_removed_by_the_next_ring(tmp_path):
    folder = str(tmp_path / "bells")
    # Killed, as it were: no clean exit that would remove its FIFO.
    code = f"import os, wakeup; listener = wakeup.Listener({folder!r}); listener.listen(); os._exit(0)"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=worker.settings.CODE_DIR, timeout=60)
    assert len(os.listdir(folder)) == 1
    mine = wakeup.Listener(folder)
    mine.listen()
    wakeup.ring(folder)
    assert os.listdir(folder) == [f"{os.getpid()}-{threading.get_ident()}"]


def test_the_fifo_of_an_ended_thread_is_closed_and_removed(tmp_path):
    # Guards wakeup._Fifo.__del__: Huey restarts a crashed consumer thread as a new thread, and
    # each ended one left an open descriptor and a FIFO that every ring wrote to.
    listener = wakeup.Listener(str(tmp_path / "bells"))
    opened = {}

    def consumer():
        listener.listen()
        fd = listener.local.fifo.fd
        opened["fd"], opened["fifo"] = fd, (os.fstat(fd).st_dev, os.fstat(fd).st_ino)

    thread = threading.Thread(target=consumer)
    thread.start()
    thread.join(30)
    assert "fd" in opened
    assert os.listdir(listener.folder) == []
    # Its descriptor is closed: gone, or its number since reused by another thread for another file.
    try:
        now = os.fstat(opened["fd"])
    except OSError:
        now = None
    assert now is None or (now.st_dev, now.st_ino) != opened["fifo"]
