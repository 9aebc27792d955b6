"""The one domain error: a request the service refuses, with the HTTP status that says why.

Domain modules (jobs, files, auth) raise it; gaas.py turns it into {"detail": ...}.
"""


class Rejected(Exception):
    """A request that cannot be served as asked."""

    def __init__(self, status, detail, headers=None):
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers
