"""Real throwaway servers (PostgreSQL, Redis) and simulated hosts on loopback, all stopped by PID."""

import base64
import hashlib
import itertools
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import redis
from psycopg import sql

TIMEOUT = 60


def _bindable(port):
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _port_block():
    """This pytest-xdist worker's own ports: an equal share of those below the kernel's ephemeral
    range, so no other worker and no outgoing connection is given one. A process the worker
    starts (bench/bench.py in test_bench) inherits its environment, not its place in the block:
    it binds port 0 as outside xdist."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    owner = os.environ.setdefault("GAAS_TEST_PORTS_OWNER", str(os.getpid()))
    if worker is None or owner != str(os.getpid()):
        return None
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    size = (low - 10000) // max(count, 1)
    start = 10000 + int(worker.removeprefix("gw")) * size
    return itertools.cycle(range(start, start + size))


_ports = _port_block()


def free_port():
    """Return a TCP port that is free on 127.0.0.1 right now.

    Under pytest-xdist, a port a worker's bind(0) just got back could be handed to another worker
    before the server meant for it binds it, or it could be the port of another worker's service
    that is being restarted: a test then signs in to somebody else's service. So each worker takes
    ports from its own block, each once, in turn."""
    if _ports is None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]
    for port in itertools.islice(_ports, 1000):
        if _bindable(port):
            return port
    raise RuntimeError("no free port in this worker's block")


def find_postgres():
    """Return the folder of the PostgreSQL programs, or None when they are not installed."""
    found = shutil.which("initdb")
    if found:
        # Resolved so that pg_dump and psql come from the server's own version, not from
        # Debian's /usr/bin wrappers, which pick a version from the system's clusters.
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                      key=lambda path: [int(part) for part in path.parent.parent.name.split(".")])
    return versions[-1].parent if versions else None


def find_redis():
    """Return the path of redis-server, or None when it is not installed."""
    found = shutil.which("redis-server") or "/usr/bin/redis-server"
    return found if os.access(found, os.X_OK) else None


def running(pid):
    """Whether pid exists and is not a zombie (a zombie holds nothing any more)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


class Server:
    """A server process, our child, in its own temporary folder; `with Redis() as rd:` starts and stops it."""

    prefix = "gaas-"
    stop_signal = signal.SIGTERM

    def __init__(self):
        self.port = free_port()
        self.folder = None
        self.proc = None
        self.numbers = itertools.count(1)

    def start(self):
        """Start the server and wait until it answers; return self."""
        try:
            # Not under pytest's tmp_path: its folders are 0700 root's, closed to the postgres user.
            self.folder = Path(tempfile.mkdtemp(prefix=self.prefix))
            self.setup()
        except BaseException:
            self.stop()
            raise
        return self

    def launch(self, argv, ready, **popen):
        """Start argv, logging into the folder, and call ready() until it succeeds."""
        self.launched = (argv, ready, popen)
        log = self.folder / "server.log"
        with open(log, "ab") as out:
            # A session of its own, so that Ctrl-C in the terminal leaves it to stop().
            self.proc = subprocess.Popen(argv, cwd=self.folder, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True, **popen)
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                return ready()
            except Exception:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{argv[0]} did not start:\n{log.read_text(errors='replace')[-3000:]}")
                time.sleep(0.1)

    def halt(self, sig=None):
        """Stop the server with sig (default its own stop signal) and wait until it has ended;
        its folder stays, for start_again()."""
        self.proc.send_signal(sig or self.stop_signal)
        self.proc.wait(TIMEOUT)

    def start_again(self):
        """Start a halted server again on the same port and data; return when it answers."""
        argv, ready, popen = self.launched
        self.launch(argv, ready, **popen)

    def stop(self):
        """Stop the server by its PID (SIGKILL after 30 s) and remove its folder; safe to repeat."""
        if self.proc:
            if self.proc.poll() is None:
                self.proc.send_signal(self.stop_signal)
                try:
                    self.proc.wait(30)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None
        if self.folder:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class Postgres(Server):
    """A fresh PostgreSQL cluster with a superuser `gaas_admin` and a plain login role `gaas`."""

    prefix = "gaas-pg-"
    stop_signal = signal.SIGINT  # PostgreSQL's fast shutdown

    def __init__(self, durable=False):
        super().__init__()
        # Tests skip the disk flushes; the benchmark measures PostgreSQL as it is deployed.
        self.durable = durable
        self.bindir = find_postgres()
        self.admin_password = secrets.token_hex(16)
        self.password = secrets.token_hex(16)
        # PostgreSQL refuses to run as root, so root runs its programs as the postgres user.
        self.as_user = dict(user="postgres", group="postgres", extra_groups=[]) if os.geteuid() == 0 else {}

    def bin(self, name):
        """Return the path of a PostgreSQL program (pg_dump, pg_restore, psql...)."""
        return str(self.bindir / name)

    def setup(self):
        if self.bindir is None:
            raise RuntimeError("PostgreSQL is not installed (Debian package postgresql)")
        pwfile = self.folder / "pwfile"
        pwfile.write_text(self.admin_password + "\n")
        if self.as_user:
            shutil.chown(self.folder, "postgres", "postgres")
            shutil.chown(pwfile, "postgres", "postgres")
        data = str(self.folder / "data")
        result = subprocess.run(
            [self.bin("initdb"), "-D", data, "-U", "gaas_admin", f"--pwfile={pwfile}", "--auth-local=trust",
             "--auth-host=scram-sha-256", "--encoding=UTF8", "--locale=C"],
            cwd=self.folder, capture_output=True, text=True, **self.as_user)
        pwfile.unlink()
        if result.returncode:
            raise RuntimeError(f"initdb failed:\n{result.stdout}{result.stderr}")
        # The postgres binary itself rather than pg_ctl, so the postmaster is our child: its PID is
        # proc.pid, and proc.wait() reaps it.
        self.launch([self.bin("postgres"), "-D", data, "-p", str(self.port), "-k", str(self.folder),
                     "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=300",
                     "-c", "shared_buffers=128MB",
                     *([] if self.durable else ["-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off"])],
                    lambda: psycopg.connect(self.admin_url(), connect_timeout=2).close(), **self.as_user)
        self.execute(sql.SQL("CREATE ROLE gaas LOGIN CREATEDB PASSWORD {}").format(sql.Literal(self.password)))

    def execute(self, statement):
        """Run one statement as the superuser (autocommit, as CREATE DATABASE needs)."""
        with psycopg.connect(self.admin_url(), autocommit=True) as conn:
            conn.execute(statement)

    def url(self, dbname):
        """Return the URL of database dbname for the `gaas` role."""
        return f"postgresql://gaas:{self.password}@127.0.0.1:{self.port}/{dbname}"

    def admin_url(self, dbname="postgres"):
        """Return the URL of database dbname for the superuser."""
        return f"postgresql://gaas_admin:{self.admin_password}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name=None):
        """Create an empty database owned by `gaas` (gaas_1, gaas_2... by default); return its URL."""
        name = name or f"gaas_{next(self.numbers)}"
        self.execute(sql.SQL("CREATE DATABASE {} OWNER gaas").format(sql.Identifier(name)))
        return self.url(name)


class Redis(Server):
    """A redis-server with 1024 databases (one per test service), without persistence unless
    appendonly (its append-only file, as deployed: then a killed server restarts with its data)."""

    prefix = "gaas-redis-"

    def __init__(self, appendonly=False):
        super().__init__()
        self.appendonly = appendonly

    def setup(self):
        program = find_redis()
        if program is None:
            raise RuntimeError("redis-server is not installed (Debian package redis-server)")
        self.launch([program, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                     "--appendonly", "yes" if self.appendonly else "no", "--databases", "1024",
                     "--dir", str(self.folder), "--daemonize", "no"],
                    lambda: redis.Redis.from_url(self.url(), socket_connect_timeout=1).ping())

    def url(self, db=0):
        """Return the URL of database db."""
        return f"redis://127.0.0.1:{self.port}/{db}"

    def next_url(self):
        """Return the URL of a database no one has been given yet."""
        db = next(self.numbers)
        if db >= 1024:
            raise RuntimeError("all 1024 Redis databases are given out")
        return self.url(db)


class Host:
    """A simulated machine: a process tree with its own hostname and PID namespace.

    It shares loopback and the filesystem with us. `unshare --kill-child` kills the namespace's
    first process when unshare dies, and the kernel then kills the rest of the namespace, so
    SIGKILL to unshare's PID ends the whole host at once.
    """

    def __init__(self, name):
        self.name = name
        self.proc = None

    def start(self, argv, env=None, log_path=None, cwd=None):
        """Run argv as the host's main program (PID 1 inside), its output into log_path; return self."""
        command = ["unshare", "--uts", "--pid", "--fork", "--mount-proc", "--kill-child"]
        if os.geteuid() != 0:
            command.append("--map-root-user")  # a user namespace gives a plain user the right to the others
        command += ["sh", "-c", 'hostname "$0" && exec "$@"', self.name, *argv]
        out = open(log_path, "ab") if log_path else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(command, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            if log_path:
                out.close()
        return self

    def pids(self):
        """Return the outside PIDs of unshare and of every process below it."""
        if not self.alive():
            return []
        tree = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                parent = int(stat.read_text().rpartition(")")[2].split()[1])
            except (FileNotFoundError, ProcessLookupError):
                continue
            tree.setdefault(parent, []).append(int(stat.parent.name))
        found = [self.proc.pid]
        for pid in found:
            found.extend(tree.get(pid, []))
        return found

    def main_pid(self):
        """Return the outside PID of the main program (unshare's child), or None once it is gone."""
        deadline = time.monotonic() + 5
        while self.alive() and time.monotonic() < deadline:
            pids = self.pids()
            if len(pids) > 1:
                return pids[1]
            time.sleep(0.01)  # unshare has not forked yet
        return None

    def alive(self):
        """Whether the host is still running."""
        return self.proc is not None and self.proc.poll() is None

    def wait(self, timeout=TIMEOUT):
        """Wait for the main program to end by itself; return its exit code."""
        return self.proc.wait(timeout)

    def stop(self, sig=signal.SIGINT, timeout=TIMEOUT):
        """Send sig to the main program and wait for the host to end; return its exit code.

        unshare forwards no signal, and PID 1 of a namespace ignores those it has no handler for,
        so sig goes to the program itself and must be one it handles. After timeout seconds the
        host is killed and TimeoutError raised.
        """
        if self.proc is None:
            return None
        pid = self.main_pid()
        if pid:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise TimeoutError(f"host {self.name} ignored {signal.Signals(sig).name} for {timeout} s") from None

    def kill(self):
        """Kill the whole host at once and wait until none of its processes is left; safe to repeat."""
        if self.proc is None:
            return
        pids = self.pids()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        deadline = time.monotonic() + TIMEOUT
        while any(running(pid) for pid in pids):
            if time.monotonic() > deadline:
                raise RuntimeError(f"host {self.name} left processes: {[pid for pid in pids if running(pid)]}")
            time.sleep(0.01)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()


class Backends:
    """Settings for services on a store backend: "sqlite", "postgresql+redis" or "postgresql".

    The PostgreSQL and Redis servers start the first time a backend needs them; each call gives
    a new empty database (and Redis database), so services never share a store.
    """

    def __init__(self, durable=False):
        self.durable = durable
        self.postgres = self.redis = None

    def settings(self, backend):
        if backend == "sqlite":
            return {}
        if self.postgres is None:
            self.postgres = Postgres(durable=self.durable).start()
        found = {"GEMSEO_HTTP_DATABASE_URL": self.postgres.create_database()}
        if backend == "postgresql+redis":
            if self.redis is None:
                self.redis = Redis().start()
            found["GEMSEO_HTTP_REDIS_URL"] = self.redis.next_url()
        return found

    def close(self):
        for server in (self.redis, self.postgres):
            if server is not None:
                server.stop()


def find_slapd():
    """Return the path of slapd, or None when it is not installed."""
    found = shutil.which("slapd") or "/usr/sbin/slapd"
    return found if os.access(found, os.X_OK) else None


class Slapd(Server):
    """An OpenLDAP server with a temporary database under dc=example,dc=org, plain LDAP and LDAPS
    on loopback, its certificate signed by a CA of its own (`ca_file`). `entries` is LDIF text
    loaded before it starts; `cn=admin,dc=example,dc=org` with `admin_password` writes."""

    prefix = "gaas-ldap-"
    base = "dc=example,dc=org"

    def __init__(self, entries=""):
        super().__init__()
        self.tls_port = free_port()
        self.entries = entries
        self.admin_dn = f"cn=admin,{self.base}"
        self.admin_password = secrets.token_hex(16)

    def setup(self):
        program = find_slapd()
        if program is None:
            raise RuntimeError("slapd is not installed (Debian package slapd)")
        self._certificates()
        (self.folder / "db").mkdir()
        conf = self.folder / "slapd.conf"
        schemas = "".join(f"include /etc/ldap/schema/{name}.schema\n" for name in ("core", "cosine", "nis", "inetorgperson"))
        conf.write_text(
            f"{schemas}modulepath /usr/lib/ldap\nmoduleload back_mdb\npidfile {self.folder}/slapd.pid\n"
            f"TLSCACertificateFile {self.ca_file}\nTLSCertificateFile {self.folder}/server.crt\n"
            f"TLSCertificateKeyFile {self.folder}/server.key\n"
            f"database mdb\nmaxsize 67108864\nsuffix \"{self.base}\"\nrootdn \"{self.admin_dn}\"\n"
            f"rootpw {self.admin_password}\ndirectory {self.folder}/db\n"
        )
        root = f"dn: {self.base}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n"
        loaded = subprocess.run([str(Path(program).with_name("slapadd")), "-f", str(conf)], input=root + self.entries,
                                capture_output=True, text=True)
        if loaded.returncode:
            raise RuntimeError(f"slapadd failed:\n{loaded.stderr}")
        # -d keeps slapd in the foreground, our child, so its PID is proc.pid.
        self.launch([program, "-f", str(conf), "-d", "0",
                     "-h", f"ldap://127.0.0.1:{self.port}/ ldaps://127.0.0.1:{self.tls_port}/"],
                    lambda: socket.create_connection(("127.0.0.1", self.port), timeout=1).close())

    def _certificates(self):
        """A CA and a server certificate for 127.0.0.1 and localhost, made with openssl."""
        folder = self.folder
        self.ca_file = folder / "ca.crt"
        for argv in (
            ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=gaas test CA",
             "-keyout", "ca.key", "-out", "ca.crt"],
            ["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key", "-out", "server.csr"],
            ["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
             "-extfile", "san.cnf", "-out", "server.crt"],
        ):
            (folder / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
            made = subprocess.run(["openssl", *argv], cwd=folder, capture_output=True, text=True)
            if made.returncode:
                raise RuntimeError(f"openssl {argv[0]} failed:\n{made.stderr}")

    def url(self, tls=False):
        return f"ldaps://127.0.0.1:{self.tls_port}" if tls else f"ldap://127.0.0.1:{self.port}"


def ldap_password(password):
    """An {SSHA} userPassword value, as slappasswd makes it."""
    salt = secrets.token_bytes(8)
    return "{SSHA}" + base64.b64encode(hashlib.sha1(password.encode() + salt).digest() + salt).decode()
