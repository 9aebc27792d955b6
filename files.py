"""Files on disk: uploads in chunks, job directories, and the rules that keep paths inside them."""

import contextlib
import fcntl
import hashlib
import os
import shutil
import stat
import threading
import uuid
from pathlib import Path

import settings
import store
import wire
from errors import Rejected

LOG_NAME = "gaas-job.log"  # what a job printed, in its directory (written by jobproc.py)
MAX_CHUNKS = 1_000_000
# Uploads hash to this many lock files: no lock file to remove when an upload ends.
LOCK_STRIPES = 64
_stripe_locks = [threading.Lock() for _ in range(LOCK_STRIPES)]


def job_directory(user_id, job_id):
    return settings.WORKSPACE_EXECUTION / f"user-{user_id}" / f"job-{job_id}"


def safe_name(name):
    """Reduce a client's file name to a plain base name, or '' if nothing safe remains."""
    base = (name or "").replace("\\", "/").split("/")[-1]
    base = "".join(char for char in base if char.isprintable()).strip()
    base = base.encode()[:255].decode(errors="ignore")  # file names are limited in bytes
    return "" if base in ("", ".", "..") else base


def inside(path, root):
    """Whether a path, symlinks resolved, stays within root."""
    return Path(path).resolve().is_relative_to(Path(root).resolve())


def lay_out(workdir, sources):
    """Create a job directory with copies of its uploaded input files (file rows)."""
    workdir.mkdir(parents=True, exist_ok=True)
    for row in sources:
        shutil.copyfile(settings.FILE_DIRECTORY / row["unique_filename"], workdir / row["filename"])


def result_files(source):
    """The paths of what a job's directory holds but its log: what a job that takes its results
    (the cache) gets a copy of, from its path or its text. None when there is nothing (most
    models write no file)."""
    try:
        with os.scandir(source) if source is not None else contextlib.nullcontext(()) as entries:
            if not any(entry.name != LOG_NAME for entry in entries):
                return None  # scandir first, of the text: a thousand hits of a batch each look at their source
    except OSError:
        return None
    source = Path(source)
    return [path for path in source.rglob("*") if not (path.name == LOG_NAME and path.parent == source)] or None


def copy_results(source, found, workdir, note):
    """Give a job that took another's results its own directory: the source's files `found`
    (result_files) hard-linked, copied across file systems, and its own log, `note` (where its
    results came from). Links are safe: a job's files are never written once it ended. A job
    whose source wrote no file gets no directory: the log route gives it the note."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / LOG_NAME).write_text(note)
    for path in found:
        target = workdir / path.relative_to(source)
        if path.is_symlink():
            continue
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        try:
            os.link(path, target)
        except (FileExistsError, FileNotFoundError):  # the source deleted meanwhile: its files go
            pass
        except OSError:
            with contextlib.suppress(FileNotFoundError):
                shutil.copyfile(path, target)


def cache_note(source_id):
    """The log of a job that took the results of job source_id instead of running."""
    return f"Results from the cache: job {source_id} computed them; this job did not run.\n"


def file_tree(folder, root=None):
    """The folder as {file: None, subfolder: {...}}, files first at each level."""
    root = root or folder
    files, folders = {}, {}
    if not os.path.isdir(folder):
        return {}
    for entry in sorted(os.scandir(folder), key=lambda item: item.name):
        path = Path(entry.path)
        if entry.is_symlink() and not inside(path, root):
            continue
        if entry.is_dir(follow_symlinks=False):
            folders[entry.name] = file_tree(path, root)
        elif entry.is_dir():
            continue  # a symlinked folder could loop; its files are not offered
        else:
            files[entry.name] = None
    return files | folders


def relative_path(name):
    """Check a client's path inside a job directory; return it as a relative Path."""
    relative = Path(name)
    if relative.is_absolute() or ".." in relative.parts or "\0" in name:
        raise Rejected(400, "Query 'filename' must be a relative path inside the job directory.")
    return relative


def open_in(workdir, name):
    """Open a regular file of a job directory for reading; raise Rejected(404) if it is absent
    or outside. The check is made on the file opened (its real path), so a symlink swapped in
    between a check and the open cannot lead elsewhere; one that stays inside is followed, as
    file_tree lists it."""
    path = Path(workdir) / relative_path(name)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO must not block the open
    except OSError:
        fd = None
    if fd is not None:
        opened = os.readlink(f"/proc/self/fd/{fd}")
        if stat.S_ISREG(os.fstat(fd).st_mode) and inside(opened, workdir):
            os.set_blocking(fd, True)
            return os.fdopen(fd, "rb")
        os.close(fd)
    raise Rejected(404, f"File {name!r} not found in the job directory.")


def tail_start(handle, tail):
    """Where the last `tail` bytes of an open file begin, moved on to the next line start."""
    size = os.fstat(handle.fileno()).st_size
    if not tail or tail >= size:
        return 0
    # From the byte before the tail: if the tail begins a line, that byte is the newline before it.
    handle.seek(size - tail - 1)
    skipped = handle.readline()
    return size - tail - 1 + len(skipped) if skipped.endswith(b"\n") else size - tail


def read_chunks(handle, start=0, size=1024 * 1024):
    """Yield the bytes of an open file from `start`, then close it."""
    with handle:
        handle.seek(start)
        while block := handle.read(size):
            yield block


def save_upload(user_id, upload_id, parts, chunk, total):
    """Store one chunk of each uploaded part; return the File entries when it was the last chunk.

    Every part is checked (name, chunk order) before anything is written, and the files made by
    this request are removed again if a later part fails: a request succeeds or fails whole.
    """
    if not (0 <= chunk < MAX_CHUNKS and 1 <= total <= MAX_CHUNKS):
        raise Rejected(422, f"Fields need 0 <= chunk_number < total_chunks <= {MAX_CHUNKS}.")
    if chunk >= total:
        raise Rejected(409, f"Chunk {chunk} is past the last chunk ({total - 1}) of this upload.")
    if not parts:
        raise Rejected(422, "The form needs at least one file part named 'files'.")
    planned = []
    for part in parts:
        name = safe_name(part.filename)
        if not name:
            raise Rejected(400, f"File name {str(part.filename)[:100]!r} is not usable.")
        planned.append((part, name, f"{upload_id}/{name}", None))
    if total > 1 and len({key for _, _, key, _ in planned}) != len(planned):
        # Whole files may share a name (each becomes a File); the chunks of one upload may not.
        raise Rejected(409, "Two parts of a chunked upload have the same file name; upload them apart.")
    with upload_locks(user_id, [key for _, _, key, _ in planned]):
        # Read under the locks: another request, maybe of another web process, stores chunks too.
        for place, (part, name, key, _) in enumerate(planned):
            state = store.upload_state(user_id, key)
            if chunk > 0 and (state is None or state["next_chunk"] != chunk or state["total_chunks"] != total):
                expected = 0 if state is None else state["next_chunk"]
                raise Rejected(409, f"Chunk {chunk} of {name!r} is out of order; expected chunk {expected}.")
            planned[place] = (part, name, key, state)
        return _save_parts(user_id, planned, chunk, total)


@contextlib.contextmanager
def upload_locks(user_id, keys):
    """Hold the locks of these uploads against every thread, web process and host: a lock file
    under the shared file directory (flock; on NFS the client maps it to a lock of the server),
    with a thread lock too, since an NFS lock excludes processes but not threads."""
    stripes = sorted({int(hashlib.sha256(f"{user_id}/{key}".encode()).hexdigest()[:8], 16) % LOCK_STRIPES for key in keys})
    with contextlib.ExitStack() as held:
        for stripe in stripes:  # taken in order: two requests never deadlock
            held.enter_context(_stripe_locks[stripe])
            fd = os.open(settings.FILE_DIRECTORY / ".locks" / f"upload-{stripe:02d}", os.O_RDWR | os.O_CREAT, 0o600)
            held.callback(os.close, fd)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield


def _save_parts(user_id, planned, chunk, total):
    done = []
    try:
        for part, name, key, state in planned:
            done.append(_save_chunk(user_id, key, name, state, part.file, chunk, total))
    except BaseException:
        for entry in done:
            if entry is not None:
                store.delete_file(entry["id"])
                (settings.FILE_DIRECTORY / entry["unique_filename"]).unlink(missing_ok=True)
        raise
    return None if chunk + 1 < total else done


def _save_chunk(user_id, key, name, state, source, chunk, total):
    partial_dir = settings.FILE_DIRECTORY / ".partial"
    if chunk == 0:
        if state is not None:
            (partial_dir / state["partial_name"]).unlink(missing_ok=True)
        partial_name, start = uuid.uuid4().hex, 0
    else:
        partial_name, start = state["partial_name"], state["size"]
    partial = partial_dir / partial_name
    with partial.open("wb" if chunk == 0 else "r+b") as target:
        # From the size the chunks before left: the bytes of a failed or killed write of this
        # chunk (a full disk, a client gone mid-body, a crash) are written over, not kept.
        if start is None:  # an upload begun before sizes were kept
            target.seek(0, os.SEEK_END)
        else:
            target.truncate(start)
            target.seek(start)
        shutil.copyfileobj(source, target)
        size = target.tell()
    if chunk + 1 < total:
        store.save_upload_state(user_id, key, partial_name, chunk + 1, total, size)
        return None
    digest, size = hashlib.sha256(), 0
    with partial.open("rb") as handle:
        while block := handle.read(1024 * 1024):
            digest.update(block)
            size += len(block)
    unique = uuid.uuid4().hex
    os.replace(partial, settings.FILE_DIRECTORY / unique)
    store.drop_upload_state(user_id, key)
    file_id = store.add_file(user_id, name, unique, digest.hexdigest(), size)
    return wire.file_entry(store.owned_file(user_id, file_id))


def remove_stored(unique_names=(), partial_names=(), workdirs=()):
    """Remove stored uploads, partial uploads and job directories from disk."""
    for unique in unique_names:
        (settings.FILE_DIRECTORY / unique).unlink(missing_ok=True)
    for name in partial_names:
        (settings.FILE_DIRECTORY / ".partial" / name).unlink(missing_ok=True)
    for workdir in workdirs:
        shutil.rmtree(workdir, ignore_errors=True)


def scratch_directory():
    """Where the web app's temporary files go: on the data disk (a /tmp in memory would hold them
    in RAM), in a folder that store.init() makes; they are unlinked as they are opened."""
    return settings.FILE_DIRECTORY / ".partial"
