"""Password hashes for dashboard users: scrypt from the standard library (OpenSSL's), salted.

A stored hash reads ``scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>``, so it carries its own cost and
stays verifiable after the defaults change. The default cost is one of OWASP's scrypt settings
(N=2^14, r=8, p=5: 16 MiB and about 0.1 s of one core); tests pass a cheap ``PasswordHasher``.

Under gevent the hash runs in gevent's thread pool: OpenSSL releases the GIL while it works, so a
login does not stall every other browser on the worker for that long.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

SCHEME = "scrypt"
SALT_BYTES = 16
KEY_BYTES = 32
PASSWORD_MIN = 8
PASSWORD_MAX = 1024  # characters; a longer one is a mistake (or an attempt to burn CPU)

T = TypeVar("T")


class PasswordProblem(ValueError):
    """A password that cannot be used; the message says why, in words."""


def check_new_password(password: object) -> str:
    """A password someone chose: text of PASSWORD_MIN to PASSWORD_MAX characters."""
    if not isinstance(password, str):
        raise PasswordProblem("password must be a string")
    if len(password) < PASSWORD_MIN:
        raise PasswordProblem(f"a password needs at least {PASSWORD_MIN} characters")
    if len(password) > PASSWORD_MAX:
        raise PasswordProblem(f"a password has at most {PASSWORD_MAX} characters")
    if password.strip() != password:
        # A stray space or newline copied along would make a password nobody can type again.
        raise PasswordProblem("a password may not start or end with spaces or a line break")
    return password


def _off_the_loop(work: Callable[[], T]) -> T:
    """Run CPU-heavy work in a real thread when this process runs gevent, else here."""
    try:
        from gevent import get_hub, monkey
    except ImportError:  # pragma: no cover - gevent is a dependency, but the CLI needs none of it
        return work()
    if not monkey.is_module_patched("socket"):
        return work()
    result: T = get_hub().threadpool.apply(work)
    return result


@dataclass(frozen=True)
class PasswordHasher:
    n: int = 2**14
    r: int = 8
    p: int = 5

    def _derive(self, password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
        maxmem = 128 * r * (n + p + 2) + 1024 * 1024  # what scrypt needs, plus room
        return _off_the_loop(
            lambda: hashlib.scrypt(
                password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=KEY_BYTES
            )
        )

    def hash(self, password: str) -> str:
        salt = secrets.token_bytes(SALT_BYTES)
        key = self._derive(password, salt, self.n, self.r, self.p)
        return "$".join((SCHEME, str(self.n), str(self.r), str(self.p), _b64(salt), _b64(key)))

    def verify(self, password: object, stored: object) -> bool:
        """True when ``password`` is the one ``stored`` was made from; False for anything else,
        a damaged hash included."""
        parsed = _parse(stored)
        if parsed is None or not isinstance(password, str) or len(password) > PASSWORD_MAX:
            # Still spend the time of one check, so a reply's speed does not tell what was wrong.
            self.burn()
            return False
        n, r, p, salt, key = parsed
        try:
            found = self._derive(password, salt, n, r, p)
        except (ValueError, MemoryError, UnicodeEncodeError):
            return False
        return hmac.compare_digest(found, key)

    def burn(self) -> None:
        """The work of one verification, for a user that does not exist."""
        self._derive("x" * PASSWORD_MIN, b"\0" * SALT_BYTES, self.n, self.r, self.p)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _parse(stored: object) -> tuple[int, int, int, bytes, bytes] | None:
    if not isinstance(stored, str):
        return None
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != SCHEME:
        return None
    try:
        n, r, p = (int(x) for x in parts[1:4])
        salt, key = base64.b64decode(parts[4], validate=True), base64.b64decode(parts[5], validate=True)
    except ValueError:
        return None
    # Bounds, so a hash written by hand into Redis cannot make a login allocate gigabytes.
    if not (2 <= n <= 2**20 and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16 and salt and key):
        return None
    return n, r, p, salt, key
