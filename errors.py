"""The one domain error: a request the service refuses, with the HTTP status that says why.

Domain modules (jobs, files, auth) raise it; gaas.py turns it into {"detail": ...}.
"""

import sys

# Seconds a client should wait when the store or the queue is down: a restarted PostgreSQL or
# Redis answers again within about a second.
RETRY_AFTER = 1


class Rejected(Exception):
    """A request that cannot be served as asked."""

    def __init__(self, status, detail, headers=None):
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers


def no_warm_process(wait):
    """503 for a request that found no warm process free within `wait` seconds."""
    return Rejected(
        503, f"No warm process was free within {wait:g} s (GEMSEO_HTTP_POOL_WAIT_TIMEOUT); try again.", {"Retry-After": "5"}
    )


def unavailable(error):
    """The backend that a driver's error says is out of reach ("the store (PostgreSQL)", "the
    queue (Redis)", "the directory (LDAP)"), or None. Only drivers already loaded are looked at:
    none is imported here."""
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None and isinstance(error, psycopg.OperationalError):
        return "the store (PostgreSQL)"
    redis = sys.modules.get("redis")
    if redis is not None and isinstance(error, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
        return "the queue (Redis)"
    ldap3 = sys.modules.get("ldap3")
    # A user's refused bind never gets here (directory.sign_in answers None): what does is the
    # directory out of reach, its TLS refused or the service account refused, none the user's fault.
    if ldap3 is not None and isinstance(error, ldap3.core.exceptions.LDAPException):
        return "the directory (LDAP)"
    return None
