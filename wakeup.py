"""Waking idle consumer threads when a task is queued in SQLite.

Huey's SQLite storage cannot block in dequeue, so an idle consumer thread polled the queue every
20 ms: 2-3% of a core per idle worker, and up to 20 ms before a task started. Instead each
consumer thread waiting for a task listens on a FIFO of its own in a folder beside the queue,
and whoever queues a task writes a byte into each FIFO there. The FIFOs are named files, so this
works between the web app and the worker of one host, whatever users' sockets or /tmp they see.
A ring may be lost (a folder removed under us): a listener looks at the queue again after at most
`timeout` seconds anyway.
"""

import errno
import os
import select
import threading


def ring(folder):
    """Wake every thread listening in folder; those that are gone leave their FIFO, removed here."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return  # no consumer has listened yet
    for name in names:
        path = os.path.join(folder, name)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as error:
            if error.errno == errno.ENXIO:  # no reader: its process ended
                try:
                    os.unlink(path)
                except OSError:
                    pass
            continue
        try:
            os.write(fd, b"!")
        except BlockingIOError:
            pass  # full of earlier rings: it will wake anyway
        finally:
            os.close(fd)


class _Fifo:
    """A thread's FIFO, opened; closed and removed when its thread ends (its thread-local goes)."""

    def __init__(self, folder):
        os.makedirs(folder, mode=0o700, exist_ok=True)
        self.path = os.path.join(folder, f"{os.getpid()}-{threading.get_ident()}")
        try:
            os.mkfifo(self.path, 0o600)
        except FileExistsError:
            pass  # left by a thread of an earlier process with our PID
        # Read and write: a FIFO that no one holds for writing reads as ended and would wake
        # select() at once, for ever.
        self.fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK)

    def __del__(self, close=os.close, unlink=os.unlink):
        # A consumer thread that Huey restarts after a crash is a new thread: without this, each
        # restart would keep a descriptor and a FIFO that every ring still writes to. (os's
        # functions bound here: at the interpreter's exit, modules may be gone first.)
        close(self.fd)
        try:
            unlink(self.path)
        except OSError:
            pass


class Listener:
    """The FIFO of each thread that waits for tasks, made on its first listen()."""

    def __init__(self, folder):
        self.folder = folder
        self.local = threading.local()

    def listen(self):
        """Be ready to hear rings from now on, forgetting earlier ones: call it before looking at
        the queue, so that a task queued after the look still wakes wait()."""
        fifo = getattr(self.local, "fifo", None)
        if fifo is None:
            fifo = self.local.fifo = _Fifo(self.folder)
        try:
            while os.read(fifo.fd, 4096):
                pass
        except BlockingIOError:
            pass

    def wait(self, timeout):
        """Wait until rung since the last listen(), or for timeout seconds."""
        select.select([self.local.fifo.fd], [], [], timeout)
