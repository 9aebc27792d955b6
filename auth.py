"""Passwords (salted scrypt) and bearer tokens (HMAC-SHA256, JWT layout), standard library only."""

import base64
import hashlib
import hmac
import json
import os
import secrets
import time

import settings

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


def secret_key():
    """Return the token key: the setting, or a random key created once under the root."""
    global _secret
    if _secret is None:
        if settings.SECRET_KEY:
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


def make_token(user_id, minutes=None):
    """Return a signed token for a user id that expires after the configured minutes."""
    minutes = settings.ACCESS_TOKEN_EXPIRE_MINUTES if minutes is None else minutes
    claims = {"sub": str(user_id), "exp": int(time.time() + minutes * 60)}
    signed = _HEADER + b"." + _b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(secret_key(), signed, hashlib.sha256).digest()
    return (signed + b"." + _b64(signature)).decode()


def read_token(token):
    """Return the user id of a valid, unexpired token, or None."""
    claims = token_claims(token)
    return None if claims is None else claims[0]


def token_claims(token):
    """Return (user id, expiry time) of a valid, unexpired token, or None."""
    try:
        signed, _, signature = token.encode("ascii").rpartition(b".")
        expected = _b64(hmac.new(secret_key(), signed, hashlib.sha256).digest())
        if not signed or not hmac.compare_digest(expected, signature):
            return None
        payload = signed.split(b".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))
        if claims["exp"] < time.time():
            return None
        return int(claims["sub"]), claims["exp"]
    except (ValueError, KeyError, IndexError, TypeError, UnicodeError):
        return None
