"""A pool of warm job processes (jobproc.py), each serving one request at a time.

Used by the worker (asynchronous jobs) and by the web app (synchronous jobs and discipline
descriptions). Each job runs in a process that runs nothing else meanwhile, in the job's own
directory, so jobs never share a current directory and a crash only costs that process. This
module knows processes, not jobs: jobs.py decides what a job's end means.
"""

import contextlib
import json
import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path

import settings

logger = logging.getLogger("gaas")
JOBPROC = str(Path(__file__).with_name("jobproc.py"))
# How often a running job's record is read to notice a cancel request.
CANCEL_CHECK_INTERVAL = 0.2


class PoolClosed(Exception):
    """The pool is shutting down."""


class ProcessGone(Exception):
    """A job process died or was stopped while it held a request."""

    def __init__(self, reason, returncode):
        super().__init__(reason)
        self.reason, self.returncode = reason, returncode


def idle_directory():
    return settings.ROOT_PATH / "idle"


def child_environment():
    env = dict(os.environ)
    env["GAAS_IDLE_DIR"] = str(idle_directory())
    env["GAAS_ENABLED"] = ",".join(sorted(settings.ENABLED_DISCIPLINES))
    env["GAAS_REUSE_DISCIPLINES"] = "1" if settings.REUSE_DISCIPLINES else "0"
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Zygote:
    """The process that imports GEMSEO once and forks warm job processes (jobproc.py)."""

    def __init__(self, env):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.popen = subprocess.Popen(
            [sys.executable, JOBPROC, str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=env["GAAS_IDLE_DIR"],
        )
        theirs.close()
        self.sock = ours
        self.lock = threading.Lock()
        self.ready = False

    def wait_ready(self):
        self.sock.settimeout(settings.PROCESS_STARTUP_TIMEOUT)
        try:
            if not self.sock.recv(1024):
                raise OSError(f"the zygote exited with status {self.popen.wait()}")
        finally:
            self.sock.settimeout(None)
        self.ready = True

    def _ask(self, message, fds=()):
        data = json.dumps(message).encode()
        with self.lock:
            if fds:
                socket.send_fds(self.sock, [data], fds)
            else:
                self.sock.send(data)
            reply = self.sock.recv(65536)
        if not reply:
            raise OSError("the zygote is gone")
        return json.loads(reply)

    def fork(self):
        ours, theirs = socket.socketpair()
        try:
            pid = self._ask({"op": "fork"}, [theirs.fileno()])["pid"]
        finally:
            theirs.close()
        process = JobProcess(pid, Connection(ours.detach()), self)
        process.wait_ready()
        return process

    def exit_status(self, pid):
        try:
            return self._ask({"op": "wait", "pid": pid})["status"]
        except OSError:
            return None

    def alive(self):
        return self.popen.poll() is None

    def close(self):
        """Stop the zygote; safe to call again (the pool's close and its spawner may both)."""
        self.sock.close()  # the zygote kills its forks and exits when its socket closes
        try:
            # Still importing, it cannot see its socket close: no point in waiting for it.
            self.popen.wait(10 if self.ready else 0)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()


class JobProcess:
    """One warm job process, forked by a zygote, the leader of its own process group."""

    def __init__(self, pid, conn, zygote):
        self.pid, self.conn, self.zygote = pid, conn, zygote
        self.jobs = 0
        self.exit_code = None
        self.dead = False

    def wait_ready(self):
        if not self.conn.poll(settings.PROCESS_STARTUP_TIMEOUT):
            raise OSError(f"job process {self.pid} did not start")
        self.conn.recv()

    def kill(self):
        """Stop the process and everything in its group; return its exit code."""
        if self.dead:
            return self.exit_code
        self.dead = True
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.conn.close()
        self.exit_code = self.zygote.exit_status(self.pid)
        return self.exit_code

    def ask(self, message, deadline=None, should_stop=None, on_message=None, grace=0.0):
        """Send a request and wait for its reply; kill the process and raise ProcessGone if it
        dies, passes the deadline (monotonic) or should_stop() returns a reason. Messages
        without "ok" sent before the reply (a study's evaluations, its questions) go to
        on_message, whose answer, when not None, is sent back. With a grace, a stop sends SIGTERM
        first and gives the process that long to end its work."""
        try:
            self.conn.send(message)
        except OSError:
            return self._gone("crashed")
        next_check = time.monotonic() + CANCEL_CHECK_INTERVAL
        while True:
            try:
                if self.conn.poll(0.05):
                    reply = self.conn.recv()
                    if on_message is None or "ok" in reply:
                        return reply
                    self._answer(on_message, reply)  # then the checks below: messages may come without a pause
            except (EOFError, OSError):
                return self._gone("crashed")
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return self._stop("timeout", grace, on_message)
            if should_stop is not None and now >= next_check:
                next_check = now + CANCEL_CHECK_INTERVAL
                reason = should_stop()
                if reason:
                    return self._stop(reason, grace, on_message)

    def _stop(self, reason, grace, on_message):
        """SIGTERM, then up to `grace` seconds for the messages and reply of what the process
        still writes (a study: its last evaluations, problem.h5); then ProcessGone, the group
        killed."""
        if grace:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            end = time.monotonic() + grace
            with contextlib.suppress(EOFError, OSError):
                while self.conn.poll(max(end - time.monotonic(), 0)):
                    reply = self.conn.recv()
                    if on_message is None or "ok" in reply:
                        break
                    self._answer(on_message, reply)
        self._gone(reason)

    def _answer(self, on_message, message):
        answer = on_message(message)
        if answer is not None:
            self.conn.send(answer)

    def _gone(self, reason):
        raise ProcessGone(reason, self.kill())


class Pool:
    """Keeps `size` warm job processes; each serves one request at a time."""

    def __init__(self, size, name, owner_id):
        self.size, self.name, self.owner_id = size, name, owner_id
        self._idle = []
        self._alive = 0
        self._cond = threading.Condition()
        self._closed = False
        self._spawns = queue.SimpleQueue()
        self._env = None
        self._zygote = None
        self._processes = set()
        self.failing = None  # why the last start of a process failed, until one starts

    def start(self):
        """Start the processes; they warm up in the background."""
        self._env = dict(child_environment(), GAAS_POOL=self.owner_id)
        idle_directory().mkdir(parents=True, exist_ok=True)
        # One long-lived thread starts the zygote: the kernel's parent-death signal is tied to
        # the thread that started a process, so that thread must live as long as the pool.
        threading.Thread(target=self._spawner, name=f"{self.name}-spawner", daemon=True).start()
        with self._cond:
            for _ in range(self.size):
                self._add()

    @property
    def closed(self):
        return self._closed

    def resize(self, size):
        """Keep `size` warm processes: more are started now, extra ones retire when idle."""
        with self._cond:
            self.size = size
            while self._alive < size:
                self._add()
            while self._alive > size and self._idle:
                process = self._idle.pop()
                self._processes.discard(process)
                self._alive -= 1
                process.kill()

    def _add(self):
        self._alive += 1
        self._spawns.put(True)

    def _spawner(self):
        zygote = None
        while self._spawns.get():
            try:
                if zygote is not None and not zygote.alive():
                    logger.error("the %s zygote died; starting another", self.name)
                    zygote.close()
                    zygote = None
                if zygote is None:
                    zygote = self._zygote = Zygote(self._env)
                    zygote.wait_ready()
                process = zygote.fork()
            except Exception:
                if self._closed:  # the pool closed the zygote under us: nothing went wrong
                    return
                # Whatever went wrong (a zygote slower than its start-up limit, a reply out of
                # step), this thread must live on: drop the zygote and start afresh next time.
                logger.exception("cannot start a %s job process", self.name)
                self.failing = f"cannot start a job process: {sys.exc_info()[1]}"[:300]
                if zygote is not None:
                    zygote.close()
                    zygote = self._zygote = None
                with self._cond:
                    self._alive -= 1
                    self._cond.notify_all()
                time.sleep(1)
                continue
            with self._cond:
                if self._closed:
                    process.kill()
                    continue
                self.failing = None
                self._processes.add(process)
                self._idle.append(process)
                self._cond.notify()

    def acquire(self, timeout=None):
        """Take an idle warm process, waiting for one if needed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._idle:
                if self._closed:
                    raise PoolClosed(self.name)
                if self._alive < self.size:
                    self._add()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(f"no {self.name} job process free")
                self._cond.wait(remaining)
            return self._idle.pop()

    def take_idle(self):
        """An idle warm process, or None at once (no wait, none started)."""
        with self._cond:
            return self._idle.pop() if self._idle else None

    def release(self, process, healthy=True):
        """Give a process back; an unhealthy or worn one is replaced by a fresh one."""
        process.jobs += 1
        with self._cond:
            fits = self._alive <= self.size
            if healthy and fits and not self._closed and process.jobs < settings.PROCESS_MAX_JOBS:
                self._idle.append(process)
                self._cond.notify()
                return
            self._processes.discard(process)
            self._alive -= 1
            if not self._closed and self._alive < self.size:
                self._add()
        process.kill()

    def call(self, message, timeout, wait=None):
        """Ask any process a quick question (catalogue, description); raise ProcessGone if it
        crashed or passed `timeout`, TimeoutError if none was free within `wait` seconds."""
        process = self.acquire(wait)
        try:
            reply = process.ask(message, deadline=time.monotonic() + timeout)
        except BaseException:
            self.release(process, healthy=False)
            raise
        self.release(process)
        return reply

    def status(self):
        """What /health says of this pool: its size, its processes and why they cannot start."""
        with self._cond:
            report = {"size": self.size, "processes": len(self._processes), "idle": len(self._idle)}
        report["failing"] = self.failing
        return report

    def close(self):
        with self._cond:
            self._closed = True
            processes = list(self._processes)
            self._cond.notify_all()
        self._spawns.put(False)
        for process in processes:
            process.kill()
        if self._zygote is not None:
            self._zygote.close()


def host_id():
    """This machine as owner ids name it: the hostname, then what tells apart two process-id
    spaces under one hostname (containers sharing the node's name, another machine of that
    name): the boot id and the PID namespace. Process ids mean something only within it."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
        space = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return socket.gethostname()
    return f"{socket.gethostname()}/{boot}-{space}"


def owner_id(kind):
    """A unique id for this worker or web app process: kind:host:pid:random (host: host_id())."""
    return f"{kind}:{host_id()}:{os.getpid()}:{os.urandom(4).hex()}"


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill_leftovers(dead_owner):
    """Kill the job processes (and their children) a dead owner left on this machine."""
    marker = f"GAAS_POOL={dead_owner}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ValueError):
            continue
