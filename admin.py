"""Administration commands, run as `bin/gaas-admin COMMAND` (see `bin/gaas-admin --help`)."""

import argparse
import getpass
import sqlite3
import sys

import auth
import retention
import store


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


def create_user(args):
    password = read_password(args)
    try:
        user_id = store.add_user(args.name, auth.hash_password(password))
    except sqlite3.IntegrityError:
        raise SystemExit(f"error: user {args.name!r} exists") from None
    print(f"created user {args.name!r} (id {user_id})")


def set_password(args):
    if store.user_by_name(args.name) is None:
        raise SystemExit(f"error: no user {args.name!r}")
    store.set_password(args.name, auth.hash_password(read_password(args)))
    print(f"password of {args.name!r} changed")


def delete_user(args):
    if not store.delete_user(args.name):
        raise SystemExit(f"error: no user {args.name!r}")
    print(f"deleted user {args.name!r}")


def list_users(args):
    for row in store.list_users():
        print(f"{row['id']}\t{row['username']}\t{store.iso(row['created_at'])}")


def purge(args):
    removed = retention.purge(args.older_than)
    print(f"removed {removed['jobs']} jobs, {removed['files']} files, {removed['partial_uploads']} partial uploads")


def backup(args):
    for path in retention.backup(args.folder):
        print(f"wrote {path}")


def init(args):
    auth.secret_key()
    print("root folders and database schema ready")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="gaas-admin", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("init", help="create the root folders, the schema and the secret key")
    for name, function in (("create-user", create_user), ("set-password", set_password)):
        command = commands.add_parser(name, help=f"{name.replace('-', ' ')} (password from stdin or a prompt)")
        command.add_argument("name")
        command.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
        command.set_defaults(function=function)
    commands.add_parser("delete-user", help="delete a user").add_argument("name")
    commands.add_parser("list-users", help="list the users")
    command = commands.add_parser("purge", help="remove ended jobs and unused uploads older than DAYS")
    command.add_argument("--older-than", type=float, required=True, metavar="DAYS")
    command.set_defaults(function=purge)
    command = commands.add_parser("backup", help="write consistent copies of the databases into FOLDER")
    command.add_argument("folder")
    command.set_defaults(function=backup)
    args = parser.parse_args(argv)
    default = {"init": init, "delete-user": delete_user, "list-users": list_users}
    store.init()
    (getattr(args, "function", None) or default[args.command])(args)


if __name__ == "__main__":
    main()
