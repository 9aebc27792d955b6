"""The wire format of jobs and files: store rows as the JSON of the API contract (API.md)."""

from datetime import datetime, timezone

import orjson

from store import DATA_FIELDS, JSON_FIELDS


def iso(timestamp):
    """Format a POSIX timestamp as ISO 8601 UTC, or None."""
    if timestamp is None:
        return None
    moment = datetime.fromtimestamp(timestamp, timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def job_entry(row):
    """Return a job row as the JSON-ready dict of the wire contract, without data fields."""
    job = {key: row[key] for key in row.keys() if key not in DATA_FIELDS}
    for key in JSON_FIELDS:
        if key in job:
            job[key] = orjson.loads(job[key])
    for key in ("created_at", "started_at", "ended_at"):
        job[key] = iso(job[key])
    for key in ("owner", "pid", "cancel_requested", "attempts", "cache_key", "waits_for"):
        job.pop(key, None)
    if "provenance" in job:
        job["provenance"] = orjson.loads(job["provenance"]) if job["provenance"] else None
    # `owner` above is the process that claimed it; on the wire, the user who submitted it.
    job["owner"], job["group"] = job.pop("owner_name", None), job.pop("group_name", None)
    end = job.pop("traceback_end", None)
    job.setdefault("traceback", "")
    job["message"] = failure_message(job["traceback"] or end or "") if job["job_status"] == "failed" else ""
    return job


def failure_message(text):
    """The line of a failure that matters: the exception's own line, last in a traceback."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def job_json(row):
    """Serialize a full job row, splicing the stored data fields in without parsing them."""
    head = orjson.dumps(job_entry(row))[:-1]
    data = "".join(f', "{key}": {row[key]}' for key in DATA_FIELDS)
    return head + data.encode() + b"}"


def file_entry(row):
    """A file row as the File of the wire contract."""
    return {key: row[key] for key in ("id", "filename", "unique_filename", "sha256sum", "user_id")} | {
        "size": row["size"],
        "created_at": iso(row["created_at"]),
    }
