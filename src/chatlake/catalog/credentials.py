"""Client secrets: generated once, shown once, stored only as a salted scrypt hash."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import uuid

# The secrets are 256 random bits, so the hash only has to make a stolen database
# useless, not slow down guessing; cheap scrypt parameters keep a token request
# (one per SDK stream) at a few milliseconds.
_SCRYPT = {"n": 2**12, "r": 8, "p": 1}
_SCHEME = "scrypt"


def new_client_id() -> str:
    return str(uuid.uuid4())


def new_secret() -> str:
    return "clk" + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """``scrypt$n$r$p$salt$digest`` with a fresh random salt."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(secret, salt, **_SCRYPT)
    fields = [_SCHEME, *(str(_SCRYPT[k]) for k in "nrp"), _b64(salt), _b64(digest)]
    return "$".join(fields)


def verify_secret(secret: str, stored: str) -> bool:
    """True if ``secret`` matches the stored hash (constant-time comparison)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != _SCHEME:
            return False
        actual = _scrypt(secret, _unb64(salt), n=int(n), r=int(r), p=int(p))
    except ValueError:
        return False
    return hmac.compare_digest(actual, _unb64(digest))


def _scrypt(secret: str, salt: bytes, *, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=salt, n=n, r=r, p=p, dklen=32)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class VerifiedSecrets:
    """Remembers secrets that passed scrypt, as keyed digests, so repeats are cheap.

    The SDK asks for a token for every stream it opens. The memory holds only an
    HMAC under a key that never leaves this process, and an entry counts only
    while the stored hash it was checked against is unchanged.
    """

    MAX_ENTRIES = 4096

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self._known: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def check(self, stored_hash: str, secret: str) -> bool:
        digest = hmac.digest(self._key, secret.encode(), "sha256")
        with self._lock:
            known = self._known.get(stored_hash)
        if known is not None:
            return hmac.compare_digest(known, digest)
        if not verify_secret(secret, stored_hash):
            return False
        with self._lock:
            if len(self._known) >= self.MAX_ENTRIES:
                self._known.clear()
            self._known[stored_hash] = digest
        return True
