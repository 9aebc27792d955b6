"""Passwords (salted scrypt), bearer tokens (HMAC-SHA256, JWT layout) and the sign-in guard,
standard library only."""

import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import time

from starlette.concurrency import run_in_threadpool

import directory
import settings
import store

# scrypt cost: about 50 ms and 16 MiB per login on a small server; tokens make it once per session.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
_HEADER = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=")
_secret = None


def hash_password(password):
    """Return 'scrypt$n$r$p$salt$hash' for a password."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def check_password(password, stored):
    """Tell whether a password matches a stored hash, in constant time."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        computed = hashlib.scrypt(
            password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p)
        )
    except ValueError:
        return False
    return hmac.compare_digest(computed.hex(), digest)


_dummy_hash = None


def check_login(password, user):
    """Check a password against a user row; an unknown user costs the same time as a known one."""
    global _dummy_hash
    if user is None:
        _dummy_hash = _dummy_hash or hash_password(secrets.token_hex(8))
        check_password(password, _dummy_hash)
        return False
    return check_password(password, user["password_hash"])


DIRECTORY_USER = store.DIRECTORY_USER
# Letters, digits and . _ @ -: a name that prints, quotes and logs unambiguously.
USER_NAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")


def sign_in(username, password):
    """The user row that this password signs in, or None. Local users check their own password;
    with a directory, any other name is checked by it, and its user created here at the first
    sign-in (a local user's name is never taken over by a directory account)."""
    user = store.user_by_name(username)
    if not directory.configured() or (user is not None and user["password_hash"] != DIRECTORY_USER):
        return user if check_login(password, user) else None
    identity = directory.sign_in(username, password)
    if identity is None:
        return None
    if identity.username != username:  # " Alice" typed for alice: the directory's name is the user
        user = store.user_by_name(identity.username)
        if user is not None and user["password_hash"] != DIRECTORY_USER:
            return None
    user = user or outside_user(identity.username)
    if settings.LDAP_GROUPS:
        managed = {group for group, _ in directory.parse_group_map(settings.LDAP_GROUPS).values()}
        changed = store.set_directory_roles(user["id"], directory.group_roles(identity.groups), managed)
        for group, (old, new) in changed.items():
            store.add_audit("directory", "member_set" if new else "member_removed", f"{group}/{user['username']}", "", f"{old or 'none'} -> {new or 'none'}")
    return user


def check_group_map():
    """Stop the start on a malformed GEMSEO_HTTP_LDAP_GROUPS, rather than fail every sign-in."""
    try:
        directory.parse_group_map(settings.LDAP_GROUPS)
    except ValueError as error:
        raise SystemExit(str(error)) from None


def outside_user(username, actor="directory", address=""):
    """The user row of a name that the directory or a trusted proxy (the actor) vouches for,
    created at first sight with no password here."""
    user = store.user_by_name(username)
    if user is None:
        try:
            store.add_user(username, DIRECTORY_USER)
            store.add_audit(actor, "user_created", username, address)
        except store.NameTaken:  # signed in twice at once: the other request created it
            pass
        user = store.user_by_name(username)
    return user


# Personal access tokens: a prefix tells them from passwords and signed tokens at a glance (and
# lets secret scanners find leaked ones).
PAT_PREFIX = "gaas_pat_"
# A token's last use is written at most this often, in seconds: not a write per request.
TOKEN_USE_STEP = 60.0


def new_access_token():
    """A new personal access token: (secret, its hash); 256 random bits."""
    secret = PAT_PREFIX + secrets.token_urlsafe(32)
    return secret, token_hash(secret)


def token_hash(secret):
    return hashlib.sha256(secret.encode()).hexdigest()


def live_access_token(hashed=None, token_id=None):
    """The row of an unexpired personal access token found by hash or id, or None; its use recorded."""
    row = store.access_token(hashed, token_id)
    now = time.time()
    if row is None or (row["expires_at"] is not None and row["expires_at"] <= now):
        return None
    if row["last_used_at"] is None or row["last_used_at"] < now - TOKEN_USE_STEP:
        store.touch_access_token(row["id"], now)
    return row


def sign_in_with_token(username, secret):
    """(user row, token row) when the secret is a live access token of that user, else None."""
    row = live_access_token(token_hash(secret))
    user = row and store.user_by_id(row["user_id"])
    if not user or user["username"] != username:
        return None
    return user, row


def may(user, row, action):
    """Whether the user (with its `groups`) may `action` ("read", "cancel" or "delete") a job,
    batch or study row: its owner and admins may do all; when it is shared with a group, the
    group's viewers and members read it, its owners may do all."""
    if row["user_id"] == user["id"] or user["is_admin"]:
        return True
    group = row["group_id"]
    return group is not None and any(
        member.group_id == group and (action == "read" or member.role == "owner") for member in user.get("groups", ())
    )


def secret_key():
    """Return the token key: the setting, or a random key created once under the root."""
    global _secret
    if _secret is None:
        if settings.SECRET_KEY:
            if len(settings.SECRET_KEY) < 32:
                # A short key can be guessed, and every token forged with it.
                raise SystemExit("GEMSEO_HTTP_SECRET_KEY is shorter than 32 characters: make a longer one")
            _secret = settings.SECRET_KEY.encode()
        else:
            _secret = _load_or_create_key(settings.SECRET_KEY_PATH)
    return _secret


def _load_or_create_key(path):
    """Read the key file, or create it atomically (written in full, then linked into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(partial, path)  # fails if another process won the race: its key is used
        except FileExistsError:
            pass
        finally:
            partial.unlink()
    key = path.read_bytes().strip()
    if len(key) < 32:
        raise SystemExit(f"the secret key in {path} is shorter than 32 characters: replace it")
    return key


def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def make_token(user, minutes=None, access_token=None):
    """Return a signed token for a user row that expires after the configured minutes; it stays
    valid while the user's token_version is unchanged, or, made from a personal access token
    row, while that token lives (never past its expiry)."""
    minutes = settings.ACCESS_TOKEN_EXPIRE_MINUTES if minutes is None else minutes
    claims = {"sub": str(user["id"]), "exp": int(time.time() + minutes * 60), "ver": user["token_version"]}
    if access_token is not None:
        claims["pat"] = access_token["id"]
        if access_token["expires_at"] is not None:
            claims["exp"] = min(claims["exp"], int(access_token["expires_at"]))
    signed = _HEADER + b"." + _b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(secret_key(), signed, hashlib.sha256).digest()
    return (signed + b"." + _b64(signature)).decode()


def token_claims(token, expired_too=False):
    """Return (user id, expiry time, token version, access token id or None) of a valid,
    unexpired token (or an expired one with expired_too), or None."""
    try:
        signed, _, signature = token.encode("ascii").rpartition(b".")
        expected = _b64(hmac.new(secret_key(), signed, hashlib.sha256).digest())
        if not signed or not hmac.compare_digest(expected, signature):
            return None
        payload = signed.split(b".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))
        if claims["exp"] < time.time() and not expired_too:
            return None
        pat = claims.get("pat")
        return int(claims["sub"]), claims["exp"], int(claims.get("ver", 0)), None if pat is None else int(pat)
    except (ValueError, KeyError, IndexError, TypeError, UnicodeError):
        return None


class SignInGuard:
    """Slows password guessing: at most ATTEMPTS password checks per user name and address
    within WINDOW seconds, counted when a check starts (a burst sent at once cannot pass more),
    then 429 until the window has passed; a right password clears the count. The counts are in
    the store, so they hold across web processes and hosts. Each check is 50 ms of scrypt, so at
    most SLOTS run at once in a process and each pair at most one at a time: a flood for one name
    waits its own turn instead of taking every thread."""

    ATTEMPTS, WINDOW, SLOTS = 10, 60.0, 2

    def __init__(self):
        self.turns = {}  # (address, user name) -> [lock, holders]
        self.slots = asyncio.Semaphore(self.SLOTS)

    @staticmethod
    def _text(key):
        address, name = key
        return f"{address} {name[:200]}"

    async def reserve(self, key):
        """Count one check for the key; return 0, or the seconds to wait when over the limit."""
        return await run_in_threadpool(store.reserve_sign_in, self._text(key), self.ATTEMPTS, self.WINDOW)

    async def succeeded(self, key):
        await run_in_threadpool(store.clear_sign_ins, self._text(key))

    def forget_old(self):
        """Drop the checks older than the window (the housekeeping calls it)."""
        store.clear_sign_ins(before=time.time() - self.WINDOW)

    async def check(self, key, function):
        """Run function() (the password check) in a thread, one per key and SLOTS in all."""
        turn = self.turns.setdefault(key, [asyncio.Lock(), 0])
        turn[1] += 1
        try:
            async with turn[0], self.slots:
                return await run_in_threadpool(function)
        finally:
            turn[1] -= 1
            if turn[1] == 0:
                self.turns.pop(key, None)
