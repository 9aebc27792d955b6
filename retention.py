"""Retention (old jobs and unused uploads removed) and online backups of the databases."""

import json
import logging
import shutil
import sqlite3
import time
from pathlib import Path

import settings
import store

logger = logging.getLogger("gaas")


def purge(older_than_days, now=None):
    """Remove ended jobs older than the cutoff with their directories, then the uploads that no
    remaining job uses and that are older than the cutoff, and stale partial uploads.

    Return the counts removed.
    """
    cutoff = (now or time.time()) - older_than_days * 86400
    conn = store.connect()
    old = conn.execute(
        "SELECT id, workdir FROM jobs WHERE job_status IN ('finished', 'failed') AND ended_at < ?",
        (cutoff,),
    ).fetchall()
    for job_id, workdir in old:
        with store.transaction() as tx:
            tx.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        shutil.rmtree(workdir, ignore_errors=True)
    used = set()
    for (text,) in conn.execute("SELECT input_files FROM jobs WHERE input_files != '[]'"):
        used.update(item["unique_filename"] for item in json.loads(text))
    files = 0
    for file_id, unique in conn.execute(
        "SELECT id, unique_filename FROM files WHERE created_at < ?", (cutoff,)
    ).fetchall():
        if unique in used:
            continue
        with store.transaction() as tx:
            tx.execute("DELETE FROM files WHERE id = ?", (file_id,))
        (settings.FILE_DIRECTORY / unique).unlink(missing_ok=True)
        files += 1
    partial = conn.execute(
        "SELECT user_id, upload_key, partial_name FROM uploads WHERE updated_at < ?", (cutoff,)
    ).fetchall()
    for user_id, key, name in partial:
        store.drop_upload_state(user_id, key)
        (settings.FILE_DIRECTORY / ".partial" / name).unlink(missing_ok=True)
    if old or files or partial:
        logger.info("retention: removed %s jobs, %s files, %s partial uploads", len(old), files, len(partial))
    return {"jobs": len(old), "files": files, "partial_uploads": len(partial)}


def backup(folder):
    """Write consistent copies of the store and the queue into folder, while the service runs."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for source in (settings.USER_DATABASE_PATH, settings.HUEY_DATABASE_PATH):
        if not source.exists():
            continue
        target = folder / source.name
        partial = target.with_suffix(".partial")
        src, dst = sqlite3.connect(source, timeout=30), sqlite3.connect(partial)
        try:
            src.backup(dst)  # SQLite's online backup: a snapshot; writers are not stopped
        finally:
            dst.close()
            src.close()
        partial.replace(target)
        written.append(target)
    return written
