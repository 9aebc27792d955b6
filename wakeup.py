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


class Listener:
    """The FIFO of each thread that waits for tasks, made on its first listen()."""

    def __init__(self, folder):
        self.folder = folder
        self.local = threading.local()

    def listen(self):
        """Be ready to hear rings from now on, forgetting earlier ones: call it before looking at
        the queue, so that a task queued after the look still wakes wait()."""
        fd = getattr(self.local, "fd", None)
        if fd is None:
            os.makedirs(self.folder, mode=0o700, exist_ok=True)
            path = os.path.join(self.folder, f"{os.getpid()}-{threading.get_ident()}")
            try:
                os.mkfifo(path, 0o600)
            except FileExistsError:
                pass  # left by a thread of an earlier process with our PID
            # Read and write: a FIFO that no one holds for writing reads as ended and would wake
            # select() at once, for ever.
            fd = self.local.fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        try:
            while os.read(fd, 4096):
                pass
        except BlockingIOError:
            pass

    def wait(self, timeout):
        """Wait until rung since the last listen(), or for timeout seconds."""
        select.select([self.local.fd], [], [], timeout)
