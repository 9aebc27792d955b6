"""Administration commands, run as `bin/gaas-admin COMMAND` (see `bin/gaas-admin --help`)."""

import argparse
import getpass
import math
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import auth
import jobs
import retention
import settings
import store
import store_postgres
import store_sqlite
import wire

worker = None  # imported in main(), once the command is known

USER_NAME = auth.USER_NAME
BACKUP_FILES = ("gaas.db", "huey.db", "secret_key")


def read_password(args):
    """Read a password from standard input (--password-stdin) or a prompt, never from argv."""
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Password again: ") != password:
            raise SystemExit("error: the passwords differ")
    if not password:
        raise SystemExit("error: the password is empty")
    return password


def audit(action, target, detail=""):
    """Record a change made here in the audit log; the actor names the account that ran it."""
    try:
        account = getpass.getuser()
    except (KeyError, OSError):  # a container's user with no name
        account = str(os.getuid())
    store.add_audit(f"gaas-admin:{account}", action, target, "", detail)


def usable_name(name, what="user"):
    if not USER_NAME.fullmatch(name):
        raise SystemExit(f"error: {name!r} is not a usable {what} name: 1 to 64 letters, digits or . _ @ -")
    return name


def create_user(args):
    usable_name(args.name)
    hashed = auth.DIRECTORY_USER if args.directory else auth.hash_password(read_password(args))
    try:
        user_id = store.add_user(args.name, hashed)
    except store.NameTaken:
        raise SystemExit(f"error: user {args.name!r} exists") from None
    audit("user_created", args.name, "directory" if args.directory else "password")
    if args.admin:
        store.set_admin(args.name, True)
        audit("admin_set", args.name, "on")
    print(f"created {'admin' if args.admin else 'user'} {args.name!r} (id {user_id})")


def set_password(args):
    if store.user_by_name(args.name) is None:
        raise SystemExit(f"error: no user {args.name!r}")
    store.set_password(args.name, auth.hash_password(read_password(args)))
    audit("password_set", args.name)
    print(f"password of {args.name!r} changed; the sessions it had are ended")


def delete_user(args):
    user = store.user_by_name(args.name)
    if user is None:
        raise SystemExit(f"error: no user {args.name!r}")
    removed = jobs.delete_user(user)
    audit("user_deleted", args.name, f"{removed['jobs']} jobs, {removed['files']} files")
    print(
        f"deleted user {args.name!r} with {removed['jobs']} jobs, {removed['files']} uploaded files"
        f" and {removed['partial_uploads']} unfinished uploads; the sessions it had are ended"
    )


def list_users(args):
    for row in store.list_users():
        kind = "admin" if row["is_admin"] else "user"
        print(f"{row['id']}\t{row['username']}\t{wire.iso(row['created_at'])}\t{kind}{' (directory)' * bool(row['directory'])}")


def set_admin(args):
    if not store.set_admin(args.name, not args.off):
        raise SystemExit(f"error: no user {args.name!r}")
    audit("admin_set", args.name, "off" if args.off else "on")
    print(f"{args.name!r} is {'no longer ' * args.off}an admin")


def create_group(args):
    try:
        store.add_group(usable_name(args.name, "group"))
    except store.NameTaken:
        raise SystemExit(f"error: group {args.name!r} exists") from None
    audit("group_created", args.name)
    print(f"created group {args.name!r}")


def delete_group(args):
    if not store.delete_group(args.name):
        raise SystemExit(f"error: no group {args.name!r}")
    audit("group_deleted", args.name)
    print(f"deleted group {args.name!r}")


def add_member(args):
    before = store.set_member(args.group, args.user, args.role)
    if before is None:
        raise SystemExit(f"error: no group {args.group!r} or no user {args.user!r}")
    audit("member_set", f"{args.group}/{args.user}", f"{before or 'none'} -> {args.role}")
    print(f"{args.user!r} is {args.role} of {args.group!r}")


def remove_member(args):
    if not store.remove_member(args.group, args.user):
        raise SystemExit(f"error: {args.user!r} is not in group {args.group!r}")
    audit("member_removed", f"{args.group}/{args.user}")
    print(f"{args.user!r} left {args.group!r}")


def list_groups(args):
    for group in store.list_groups():
        members = ", ".join(f"{row['username']}:{row['role']}" for row in store.group_members(group["name"]))
        print(f"{group['name']}\t{members}")


def purge(args):
    if not (math.isfinite(args.older_than) and args.older_than > 0):
        raise SystemExit("error: --older-than must be a positive number of days")
    removed = retention.purge(args.older_than, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    print(
        f"{verb} {removed['jobs']} jobs, {removed['batches']} batches, {removed['files']} files,"
        f" {removed['partial_uploads']} partial uploads, {removed['audit']} audit entries"
    )


def clear_cache(args):
    cleared = store.clear_cache(args.class_name)
    audit("cache.clear", args.class_name or "*", f"{cleared} results")
    what = f"of {args.class_name} " if args.class_name else ""
    print(f"forgot {cleared} cached results {what}(their jobs stay); identical jobs run again")


def pg_program(name):
    """A PostgreSQL client program: GEMSEO_HTTP_PG_BIN's, Debian's newest, or the one on PATH."""
    folders = [os.environ.get("GEMSEO_HTTP_PG_BIN", "")]
    folders += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda path: int(path.parent.name), reverse=True)
    for folder in filter(None, folders):
        if (Path(folder) / name).is_file():
            return str(Path(folder) / name)
    found = shutil.which(name)
    if found is None:
        raise SystemExit(
            f"error: {name} not found: install PostgreSQL's client programs (Debian: postgresql-client,"
            f" of the server's version or newer) or set GEMSEO_HTTP_PG_BIN to their folder"
        )
    return found


def pg_target(url):
    """(conninfo without the password, environment with PGPASSWORD) of a URL, for a PostgreSQL
    client program: its command line is visible to every user of the machine (ps), its
    environment only to its own user."""
    import psycopg  # only with a PostgreSQL store

    params = psycopg.conninfo.conninfo_to_dict(url)
    env = dict(os.environ)
    if params.get("password") is not None:
        env["PGPASSWORD"] = params.pop("password")
    return psycopg.conninfo.make_conninfo(**params), env


def backup(args):
    """Consistent copies of the store and the queue, and the token key, in a private folder."""
    folder = Path(args.folder)
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    if settings.DATABASE_URL:
        # pg_dump reads one snapshot: the store (and the queue when it is there) as of one moment.
        target = folder / "gaas.pgdump"
        partial = target.with_suffix(".partial")
        conninfo, env = pg_target(settings.DATABASE_URL)
        subprocess.run([pg_program("pg_dump"), "--format=custom", "--no-owner", f"--file={partial}", f"--dbname={conninfo}"], env=env, check=True)
        os.chmod(partial, store.PRIVATE)
        partial.replace(target)
        print(f"wrote {target}")
        if settings.REDIS_URL:
            print("the queue is in Redis and is not copied: keep Redis's own persistence (RDB or AOF) for it")
    for source in () if settings.DATABASE_URL else (settings.USER_DATABASE_PATH, settings.HUEY_DATABASE_PATH):
        if source.exists():
            target = folder / ("gaas.db" if source == settings.USER_DATABASE_PATH else "huey.db")
            store_sqlite.backup_file(source, target)
            print(f"wrote {target}")
    if settings.SECRET_KEY:
        print("the token key is GEMSEO_HTTP_SECRET_KEY, kept in your environment file: back that up too")
    elif settings.SECRET_KEY_PATH.exists():
        target = folder / "secret_key"
        shutil.copyfile(settings.SECRET_KEY_PATH, target)
        os.chmod(target, store.PRIVATE)
        print(f"wrote {target}")
    print(f"uploaded files and job directories are not copied: copy {settings.FILE_DIRECTORY} and {settings.WORKSPACE_EXECUTION}")


def refuse_if_running(*stores):
    """Stop with a message when a web app or worker beat into one of these stores lately: restoring
    or copying under a running service would lose what it writes meanwhile, or mix two stores."""
    now = time.time()
    for each in stores:
        try:
            live = each.live_processes(now - settings.HEARTBEAT_TIMEOUT)
        except sqlite3.OperationalError:  # a store older than heartbeats
            continue
        if live:
            beats = ", ".join(f"{row[0]} {max(0, now - row[1]):.0f} s ago" for row in live)
            raise SystemExit(
                f"error: the service is running on {each.summary()} (heartbeats: {beats}); stop gaas-server and"
                f" gaas-worker on every host first (a process killed without stopping counts as running until"
                f" its heartbeat is {settings.HEARTBEAT_TIMEOUT:g} s old)"
            )


def restore(args):
    """Put a backup back in place, with the service stopped."""
    folder = Path(args.folder)
    if settings.DATABASE_URL:
        return restore_postgres(folder, args.force)
    if not (folder / "gaas.db").is_file():
        raise SystemExit(f"error: {folder} holds no gaas.db backup")
    if settings.USER_DATABASE_PATH.is_file():
        refuse_if_running(store.current())
    targets = {
        "gaas.db": settings.USER_DATABASE_PATH,
        "huey.db": settings.HUEY_DATABASE_PATH,
        "secret_key": settings.SECRET_KEY_PATH,
    }
    present = [str(path) for name, path in targets.items() if (folder / name).exists() and path.exists()]
    if present and not args.force:
        raise SystemExit(f"error: {', '.join(present)} exist; stop the service and pass --force to replace them")
    for name, target in targets.items():
        if not (folder / name).exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("-wal", "-shm"):  # journals of the replaced database would corrupt it
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        partial = target.with_name(f".{target.name}.restoring")
        shutil.copyfile(folder / name, partial)
        os.chmod(partial, store.PRIVATE)
        partial.replace(target)
        print(f"restored {target}")


def restore_postgres(folder, force):
    dump = folder / "gaas.pgdump"
    if not dump.is_file():
        raise SystemExit(f"error: {folder} holds no gaas.pgdump backup (made by backup with a PostgreSQL store)")
    worker.init()
    refuse_if_running(store.current())
    if any(store.table_counts().values()) and not force:
        raise SystemExit("error: the PostgreSQL store holds data; stop the service and pass --force to replace it")
    command = [pg_program("pg_restore"), "--clean", "--if-exists", "--no-owner", "--single-transaction"]
    conninfo, env = pg_target(settings.DATABASE_URL)
    subprocess.run([*command, f"--dbname={conninfo}", str(dump)], env=env, check=True)
    if (folder / "secret_key").exists() and not settings.SECRET_KEY:
        shutil.copyfile(folder / "secret_key", settings.SECRET_KEY_PATH)
        os.chmod(settings.SECRET_KEY_PATH, store.PRIVATE)
    print(f"restored the store from {dump}")


def copy_store(args):
    """Copy the SQLite store into an empty PostgreSQL store and queue its pending jobs there."""
    url = args.url or settings.DATABASE_URL
    if not url:
        raise SystemExit("error: set GEMSEO_HTTP_DATABASE_URL (in the environment file) to the target, or name it")
    if not url.startswith(("postgresql://", "postgres://")):
        raise SystemExit("error: the target must be a postgresql:// URL")
    import psycopg

    if args.url and psycopg.conninfo.conninfo_to_dict(args.url).get("password") is not None:
        raise SystemExit(
            "error: a password on the command line is visible to every user (ps) and kept in the shell"
            " history: put the URL in GEMSEO_HTTP_DATABASE_URL (the environment file) and run copy-store"
            " alone, or give the URL without its password and the password in ~/.pgpass or PGPASSWORD"
        )
    if not settings.USER_DATABASE_PATH.is_file():
        raise SystemExit(f"error: no SQLite store at {settings.USER_DATABASE_PATH} to copy")
    source = store_sqlite.SqliteStore(settings.USER_DATABASE_PATH)
    target = store_postgres.PostgresStore(url)
    refuse_if_running(source)
    source.init()  # a store of an older gaas: the tables it lacks, empty
    queue = worker.make_huey(url, settings.REDIS_URL)
    target.init(queue.storage.ddl if not settings.REDIS_URL else ())
    refuse_if_running(target)
    try:
        copied = store_postgres.copy_store(source, target)
    except ValueError as error:
        raise SystemExit(f"error: {error}; copy-store only fills an empty store") from None
    pending = target.unclaimed_jobs(created_before=float("inf"))
    for start in range(0, len(pending), jobs.POINTS_PER_TASK):
        # Serialised by the queue that knows the task, stored in the target's queue.
        task = worker.run_queued_jobs.s(pending[start : start + jobs.POINTS_PER_TASK])
        queue.storage.enqueue(worker.huey.serialize_task(task), 0)
    where = "Redis" if settings.REDIS_URL else "the PostgreSQL queue"
    print(
        f"copied {copied['users']} users, {copied['jobs']} jobs, {copied['batches']} batches, {copied['files']} files"
        f" and {copied['uploads']} unfinished uploads; {len(pending)} pending jobs queued again in {where}."
        f" Now set GEMSEO_HTTP_DATABASE_URL to {target.summary()} on every host."
    )


def init(args):
    auth.secret_key()
    print(f"root folders and schema ready ({store.summary()})")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="gaas-admin", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("init", help="create the root folders, the schema and the secret key")
    for name, function in (("create-user", create_user), ("set-password", set_password)):
        command = commands.add_parser(name, help=f"{name.replace('-', ' ')} (password from stdin or a prompt)")
        command.add_argument("name")
        command.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
        command.set_defaults(function=function)
        if function is create_user:
            command.add_argument("--admin", action="store_true", help="an administrator: reads all work, manages users and groups")
            command.add_argument("--directory", action="store_true", help="no password here: signs in by the directory or a proxy")
    command = commands.add_parser("set-admin", help="make a user an administrator (--off: no longer)")
    command.add_argument("name")
    command.add_argument("--off", action="store_true")
    command.set_defaults(function=set_admin)
    for name, function in (("create-group", create_group), ("delete-group", delete_group)):
        commands.add_parser(name, help=name.replace("-", " ")).add_argument("name")
        commands.choices[name].set_defaults(function=function)
    command = commands.add_parser("add-member", help="add a user to a group, or change their role")
    command.add_argument("group")
    command.add_argument("user")
    command.add_argument("--role", choices=store.ROLES, required=True)
    command.set_defaults(function=add_member)
    command = commands.add_parser("remove-member", help="take a user out of a group")
    command.add_argument("group")
    command.add_argument("user")
    command.set_defaults(function=remove_member)
    commands.add_parser("list-groups", help="list the groups and their members").set_defaults(function=list_groups)
    commands.add_parser("delete-user", help="delete a user with their jobs and files").add_argument("name")
    commands.add_parser("list-users", help="list the users")
    command = commands.add_parser("purge", help="remove ended jobs and unused uploads older than DAYS")
    command.add_argument("--older-than", type=float, required=True, metavar="DAYS")
    command.add_argument("--dry-run", action="store_true", help="only count what would be removed")
    command.set_defaults(function=purge)
    command = commands.add_parser("cache", help="the results cache").add_subparsers(dest="action", required=True)
    command = command.add_parser("clear", help="forget the cached results (of one class): identical jobs run again")
    command.add_argument("--class", dest="class_name", metavar="NAME", help="only the results of this discipline class")
    command.set_defaults(function=clear_cache)
    command = commands.add_parser("backup", help="write consistent copies of the databases and the key into FOLDER")
    command.add_argument("folder")
    command.set_defaults(function=backup)
    command = commands.add_parser("restore", help="put a backup made by `backup` back (service stopped)")
    command.add_argument("folder")
    command.add_argument("--force", action="store_true", help="replace the databases that exist")
    command.set_defaults(function=restore)
    command = commands.add_parser(
        "copy-store",
        help="copy the SQLite store into the empty PostgreSQL store of GEMSEO_HTTP_DATABASE_URL or URL (service stopped)",
    )
    command.add_argument("url", nargs="?", help="postgresql://USER@HOST:PORT/DB, its password in ~/.pgpass or PGPASSWORD")
    command.set_defaults(function=copy_store)
    args = parser.parse_args(argv)
    global worker
    if args.command == "copy-store":
        import psycopg  # noqa: F401 (before worker.py, which keeps the drivers a mode does not use out of Huey)
    import worker
    # Which store, on stderr: a command run without the service's settings says so at once.
    print(f"store: {store.summary()}", file=sys.stderr)
    default = {"init": init, "delete-user": delete_user, "list-users": list_users}
    if args.command != "restore":
        worker.init()
    (getattr(args, "function", None) or default[args.command])(args)


if __name__ == "__main__":
    main()
