"""All configuration, read once from environment variables.

Every path is made absolute here, at start, so nothing later depends on the current directory.
"""

import os
from pathlib import Path

CODE_DIR = Path(__file__).resolve().parent


def _text(name, default="", aliases=()):
    for key in (name, *aliases):
        value = os.environ.get(key)
        if value not in (None, ""):
            return value
    return default


def _path(name, default, aliases=()):
    return Path(_text(name, str(default), aliases)).expanduser().resolve()


def _number(name, default, cast=int):
    raw = _text(name)
    if not raw:
        return default
    try:
        return cast(raw)
    except ValueError:
        raise SystemExit(f"setting {name}={raw!r} is not a valid {cast.__name__}") from None


def _flag(name, default):
    raw = _text(name, default).lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SystemExit(f"setting {name}={raw!r} is not a boolean: use 1/true/yes/on or 0/false/no/off")


def _names(name):
    return frozenset(item.strip() for item in _text(name).split(",") if item.strip())


ROOT_PATH = _path("GEMSEO_HTTP_ROOT_PATH", CODE_DIR / "var")
USER_DATABASE_PATH = _path("GEMSEO_HTTP_USER_DATABASE_PATH", ROOT_PATH / "database" / "gaas.db")
HUEY_DATABASE_PATH = _path("GEMSEO_HTTP_HUEY_DATABASE_PATH", ROOT_PATH / "database" / "huey.db")
FILE_DIRECTORY = _path(
    "GEMSEO_HTTP_FILE_DIRECTORY", ROOT_PATH / "files", aliases=("GEMSEO_HTTP_USER_FILE_DIRECTORY",)
)
WORKSPACE_EXECUTION = _path(
    "GEMSEO_HTTP_WORKSPACE_EXECUTION",
    ROOT_PATH / "workdir",
    aliases=("GEMSEO_HTTP_USER_WORKSPACE_EXECUTION",),
)
SECRET_KEY_PATH = _path("GEMSEO_HTTP_SECRET_KEY_PATH", ROOT_PATH / "secret_key")


def _url(name, schemes):
    value = _text(name)
    if value and value.split("://")[0] not in schemes:
        raise SystemExit(f"setting {name} must start with {' or '.join(s + '://' for s in schemes)}")
    return value


# Several machines: the store (and the queue, unless Redis holds it) in PostgreSQL; unset means
# the SQLite files above.
DATABASE_URL = _url("GEMSEO_HTTP_DATABASE_URL", ("postgresql", "postgres"))
REDIS_URL = _url("GEMSEO_HTTP_REDIS_URL", ("redis", "rediss", "unix"))
# PostgreSQL commits without waiting for the disk, as SQLite's WAL mode with synchronous=NORMAL
# does: a crash of the database machine may lose the last commits (under a second), never
# consistency. 1 waits for the disk at every commit (about 0.6 ms more each, measured).
DATABASE_SYNC_COMMIT = _flag("GEMSEO_HTTP_DATABASE_SYNC_COMMIT", "0")
# Web app processes that bin/run_server.sh starts on one port.
WEB_PROCESSES = _number("GEMSEO_HTTP_WEB_PROCESSES", 1)
# Read by secret_key() only: an unset key means "create one under the root once".
SECRET_KEY = _text("GEMSEO_HTTP_SECRET_KEY")

HOST = _text("GEMSEO_HTTP_HOST", "127.0.0.1")
# Addresses of the proxies whose X-Forwarded-For and X-Forwarded-Proto are believed (uvicorn's
# --forwarded-allow-ips: comma-separated addresses or networks). Behind a load balancer, name
# it: else every client is the balancer, and the sign-in throttle locks out all. Not *: any
# client could then claim any address.
FORWARDED_ALLOW_IPS = _text("GEMSEO_HTTP_FORWARDED_ALLOW_IPS", "127.0.0.1")
# Seconds a stopping web app lets requests in flight (synchronous runs) finish; the runs still
# going then end failed, error lost.
SHUTDOWN_TIMEOUT = _number("GEMSEO_HTTP_SHUTDOWN_TIMEOUT", 30)
PORT = _number("GEMSEO_HTTP_PORT", 8000)
# Consumer threads of the worker, hence asynchronous jobs run at once by it.
WORKER_THREADS = _number("GEMSEO_HTTP_WORKERS", 2)
ACCESS_TOKEN_EXPIRE_MINUTES = _number("GEMSEO_HTTP_ACCESS_TOKEN_EXPIRE_MINUTES", 60 * 12, float)
LOG_LEVEL = _text("GEMSEO_HTTP_LOG_LEVEL", "INFO").upper()

# Disciplines that run code taken from the request; off unless named here (see README).
ENABLED_DISCIPLINES = _names("GEMSEO_HTTP_ENABLED_DISCIPLINES")
# Processes kept warm in each web process for synchronous executions and discipline
# descriptions. By default two in all, shared out among the web processes: each warm process
# costs its memory, and more of them than cores only wait for the CPU.
SYNC_PROCESSES = _number("GEMSEO_HTTP_SYNC_PROCESSES", max(1, 2 // WEB_PROCESSES))
# A warm job process is replaced after this many jobs, to bound what one run can leave behind.
PROCESS_MAX_JOBS = _number("GEMSEO_HTTP_PROCESS_MAX_JOBS", 500)
# Seconds a new warm process may take to import GEMSEO and the plugins of GEMSEO_PATH.
PROCESS_STARTUP_TIMEOUT = _number("GEMSEO_HTTP_PROCESS_STARTUP_TIMEOUT", 300.0, float)
# Time limit in seconds for building a discipline to describe it (schemas, defaults); its
# memory is limited as a job's is, or to 2048 MiB when jobs have no limit.
DESCRIBE_TIMEOUT = _number("GEMSEO_HTTP_DESCRIBE_TIMEOUT", 30.0, float)
# Time limit in seconds for computing the points of a batch's DOE; a warm process of the web
# app does it, so it is kept shorter than a description's.
DOE_TIMEOUT = _number("GEMSEO_HTTP_DOE_TIMEOUT", 10.0, float)
# How long a synchronous run or a description waits for a free warm process before 503.
POOL_WAIT_TIMEOUT = _number("GEMSEO_HTTP_POOL_WAIT_TIMEOUT", 60.0, float)
# Longest long poll a client may ask for, in seconds.
MAX_LONG_POLLING_TIMEOUT = _number("GEMSEO_HTTP_MAX_LONG_POLLING_TIMEOUT", 300.0, float)
# Most processes a DOE study may evaluate its points on (its algorithm's n_processes).
STUDY_MAX_PROCESSES = _number("GEMSEO_HTTP_STUDY_MAX_PROCESSES", 1)
# Most points in one batch, and most jobs a user may have pending or running at once.
MAX_BATCH_SAMPLES = _number("GEMSEO_HTTP_MAX_BATCH_SAMPLES", 10_000)
MAX_PENDING_JOBS = _number("GEMSEO_HTTP_MAX_PENDING_JOBS", 20_000)
# Largest accepted request body for JSON routes and for one upload chunk, in MiB.
MAX_BODY_MB = _number("GEMSEO_HTTP_MAX_BODY_MB", 512, float)
# Time limit of a job in seconds (0: none); a request may ask for less, never for more.
JOB_TIMEOUT = _number("GEMSEO_HTTP_JOB_TIMEOUT", 0.0, float)
# Address-space limit of a job process in MiB (0: none).
JOB_MEMORY_LIMIT_MB = _number("GEMSEO_HTTP_JOB_MEMORY_LIMIT_MB", 0.0, float)
# Seconds between heartbeats of the worker and the web app, and how old a heartbeat may get
# before the jobs of its owner count as lost.
HEARTBEAT_INTERVAL = _number("GEMSEO_HTTP_HEARTBEAT_INTERVAL", 2.0, float)
HEARTBEAT_TIMEOUT = _number("GEMSEO_HTTP_HEARTBEAT_TIMEOUT", 30.0, float)
# Queue a job again, once, when its worker vanished, instead of failing it as lost.
REQUEUE_LOST_JOBS = _flag("GEMSEO_HTTP_REQUEUE_LOST_JOBS", "0")
# An asynchronous job still unclaimed after this many seconds is looked for in the queue, and
# queued again if its task is in none (the web app died between recording and queueing it).
REQUEUE_PENDING_AFTER = _number("GEMSEO_HTTP_REQUEUE_PENDING_AFTER", 30.0, float)
# Reuse a discipline instance for the same user, class and options (GEMSEO's cache stays off).
REUSE_DISCIPLINES = _flag("GEMSEO_HTTP_REUSE_DISCIPLINES", "1")
# The results cache (API.md Part 5): a job equal to an earlier finished one takes its results
# instead of running. "user": a user's own results only; "shared": anyone's (for teams whose
# models are public); "off".
CACHE = _text("GEMSEO_HTTP_CACHE", "user").lower()
if CACHE not in ("user", "shared", "off"):
    raise SystemExit(f"setting GEMSEO_HTTP_CACHE={CACHE!r} is not one of user, shared, off")
# Classes never cached: random or time-dependent models.
UNCACHED_DISCIPLINES = _names("GEMSEO_HTTP_UNCACHED_DISCIPLINES")
# Ended jobs older than this many days are removed with their directories (0: keep forever).
JOB_RETENTION_DAYS = _number("GEMSEO_HTTP_JOB_RETENTION_DAYS", 0.0, float)

# Directory sign-in (LDAP or Active Directory; ldap3 is imported only when the URL is set): a
# user with no password here signs in by a bind to the directory, and is created here at the
# first sign-in. TLS by an ldaps:// URL or START_TLS, certificates always checked (CA_FILE for a
# private CA).
LDAP_URL = _url("GEMSEO_HTTP_LDAP_URL", ("ldap", "ldaps"))
# The user's DN, {username} replaced (escaped), e.g. uid={username},ou=people,dc=example,dc=org;
# or, left empty, a search bind (Active Directory): the service account finds the user's DN
# under SEARCH_BASE with USER_FILTER, e.g. (sAMAccountName={username}).
LDAP_USER_DN = _text("GEMSEO_HTTP_LDAP_USER_DN")
LDAP_BIND_DN = _text("GEMSEO_HTTP_LDAP_BIND_DN")
LDAP_BIND_PASSWORD = _text("GEMSEO_HTTP_LDAP_BIND_PASSWORD")
LDAP_SEARCH_BASE = _text("GEMSEO_HTTP_LDAP_SEARCH_BASE")
LDAP_USER_FILTER = _text("GEMSEO_HTTP_LDAP_USER_FILTER", "(uid={username})")
LDAP_START_TLS = _flag("GEMSEO_HTTP_LDAP_START_TLS", "0")
LDAP_CA_FILE = _text("GEMSEO_HTTP_LDAP_CA_FILE")
# Seconds to connect and to wait for each answer: a directory that does not answer is a 503.
LDAP_TIMEOUT = _number("GEMSEO_HTTP_LDAP_TIMEOUT", 5.0, float)
# The groups a user is in: looked for under GROUP_SEARCH_BASE (default SEARCH_BASE) with
# GROUP_FILTER ({dn} and {username} replaced, escaped); GROUPS maps them to gaas groups and
# roles: "cn=mdo,ou=groups,dc=example,dc=org=mdo:member;leads=mdo:owner" (a group's DN or cn).
LDAP_GROUP_SEARCH_BASE = _text("GEMSEO_HTTP_LDAP_GROUP_SEARCH_BASE", LDAP_SEARCH_BASE)
LDAP_GROUP_FILTER = _text("GEMSEO_HTTP_LDAP_GROUP_FILTER", "(|(member={dn})(uniqueMember={dn})(memberUid={username}))")
LDAP_GROUPS = _text("GEMSEO_HTTP_LDAP_GROUPS")
if LDAP_URL and "{username}" not in (LDAP_USER_DN or (LDAP_SEARCH_BASE and LDAP_USER_FILTER)):
    raise SystemExit(
        "GEMSEO_HTTP_LDAP_URL is set: set GEMSEO_HTTP_LDAP_USER_DN (with {username}), or "
        "GEMSEO_HTTP_LDAP_SEARCH_BASE and GEMSEO_HTTP_LDAP_USER_FILTER (with {username}) for a search bind"
    )


# Single sign-on through a proxy (oauth2-proxy, mod_auth_openidc): a request whose own peer (not
# what X-Forwarded-For claims) is one of TRUSTED_PROXIES (comma-separated addresses or networks)
# and that carries the header AUTH_HEADER (e.g. X-Forwarded-User) is that user, created at first
# sight; the header from any other peer is ignored, and logged.
def _networks(name):
    import ipaddress

    try:
        return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in _text(name).split(",") if item.strip())
    except ValueError as error:
        raise SystemExit(f"setting {name}: {error}") from None


TRUSTED_PROXIES = _networks("GEMSEO_HTTP_TRUSTED_PROXIES")
AUTH_HEADER = _text("GEMSEO_HTTP_AUTH_HEADER").lower()
if AUTH_HEADER and not TRUSTED_PROXIES:
    raise SystemExit("GEMSEO_HTTP_AUTH_HEADER is set: name the proxies it is believed from in GEMSEO_HTTP_TRUSTED_PROXIES")


if __name__ == "__main__":
    # `python settings.py HOST PORT` prints shell assignments: the scripts take their defaults
    # from here, so each default is written once.
    import shlex
    import sys

    for key in sys.argv[1:]:
        print(f"{key}={shlex.quote(str(globals()[key]))}")
