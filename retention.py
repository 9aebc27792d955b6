"""Retention: old jobs and unused uploads removed, by the worker's periodic task or by
`gaas-admin purge`."""

import logging
import time

import files
import jobs
import store

logger = logging.getLogger("gaas")


def purge(older_than_days, now=None, dry_run=False):
    """Remove ended jobs older than the cutoff with their directories, the batches whose points
    are all among them, then the uploads that no remaining job uses and that are older than the
    cutoff, stale partial uploads, and the audit log's entries older than the cutoff.

    Return the counts removed (or that would be, with dry_run).
    """
    if not older_than_days > 0:  # also refuses NaN
        raise ValueError("the age must be a positive number of days")
    cutoff = (now or time.time()) - older_than_days * 86400
    old = store.ended_jobs(cutoff)
    batches = store.ended_batches(cutoff)
    used = store.files_in_use(leaving=[job_id for job_id, _ in old])
    unused = [(file_id, unique) for file_id, unique in store.old_files(cutoff) if unique not in used]
    partial = store.stale_uploads(cutoff)
    counts = {"jobs": len(old), "batches": len(batches), "files": len(unused), "partial_uploads": len(partial)}
    counts["audit"] = store.purge_audit(cutoff, dry_run)
    if dry_run:
        return counts
    jobs.delete_ended(old, batches)
    for file_id, unique in unused:
        store.delete_file(file_id)
        files.remove_stored([unique])
    for user_id, key, name in partial:
        store.drop_upload_state(user_id, key)
        files.remove_stored(partial_names=[name])
    if any(counts.values()):
        logger.info(
            "retention: removed %(jobs)s jobs, %(batches)s batches, %(files)s files, %(partial_uploads)s partial uploads,"
            " %(audit)s audit entries",
            counts,
        )
    return counts
