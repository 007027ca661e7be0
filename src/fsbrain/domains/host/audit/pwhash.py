"""Password-hash verification through the system's libxcrypt (``libcrypt.so.1``), via ctypes.

Why libxcrypt: it is the library that wrote the hashes in ``/etc/shadow`` on Debian, Ubuntu, Fedora and
RHEL, it is maintained, and it supports every scheme found there — yescrypt (``$y$``), gost-yescrypt
(``$gy$``), scrypt (``$7$``), bcrypt (``$2b$``/``$2y$``/``$2a$``), sha512crypt (``$6$``), sha256crypt
(``$5$``), md5crypt (``$1$``), sunmd5, bsdicrypt and traditional DES. passlib is unmaintained and has no
yescrypt; the stdlib ``crypt`` module was removed in Python 3.13. ``crypt_rn`` is the re-entrant entry
point, so verification is thread-safe.

>>> h = crypt_hash("woaini", "$6$fsbrain$")
>>> verify("woaini", h), verify("123456", h)
(True, False)
>>> scheme_of(h)
'sha512crypt'
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hmac
import threading

from fsbrain.core.errors import BackendError

_CRYPT_DATA_SIZE = 32768  # sizeof(struct crypt_data) in libxcrypt
_lib: ctypes.CDLL | None = None
_lock = threading.Lock()
_local = threading.local()

SCHEMES = [
    ("$y$", "yescrypt"),
    ("$gy$", "gost-yescrypt"),
    ("$7$", "scrypt"),
    ("$2b$", "bcrypt"),
    ("$2y$", "bcrypt"),
    ("$2a$", "bcrypt"),
    ("$6$", "sha512crypt"),
    ("$5$", "sha256crypt"),
    ("$md5", "sunmd5"),
    ("$1$", "md5crypt"),
    ("_", "bsdicrypt"),
]
OBSOLETE = {"descrypt", "bsdicrypt", "md5crypt", "sunmd5"}


def _load() -> ctypes.CDLL:
    global _lib
    with _lock:
        if _lib is None:
            name = ctypes.util.find_library("crypt") or "libcrypt.so.1"
            try:
                lib = ctypes.CDLL(name)
                fn = lib.crypt_rn
            except (OSError, AttributeError) as exc:
                raise BackendError(f"libxcrypt (libcrypt.so.1 with crypt_rn) is not available: {exc}") from exc
            fn.restype = ctypes.c_char_p
            fn.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int]
            _lib = lib
        return _lib


def available() -> bool:
    """True when libxcrypt can be loaded."""
    try:
        _load()
    except BackendError:
        return False
    return True


def scheme_of(hash_: str) -> str | None:
    """Name of the crypt scheme of a hash, or None when the field is not a hash (``*``, ``!``, empty)."""
    for prefix, name in SCHEMES:
        if hash_.startswith(prefix):
            return name
    if len(hash_) == 13 and all(c.isalnum() or c in "./" for c in hash_):
        return "descrypt"
    return None


def crypt_hash(password: str, setting: str) -> str | None:
    """Hash ``password`` with ``setting`` (a full hash or a salt prefix); None when libxcrypt refuses it."""
    lib = _load()
    buf = getattr(_local, "buf", None)
    if buf is None:
        buf = _local.buf = ctypes.create_string_buffer(_CRYPT_DATA_SIZE)
    ctypes.memset(buf, 0, _CRYPT_DATA_SIZE)
    out = lib.crypt_rn(password.encode("utf-8"), setting.encode("ascii", "replace"), buf, _CRYPT_DATA_SIZE)
    if out is None or out.startswith(b"*"):
        return None
    return out.decode("ascii", "replace")


def verify(password: str, hash_: str) -> bool:
    """True when ``password`` produces ``hash_`` (constant-time comparison)."""
    got = crypt_hash(password, hash_)
    return got is not None and hmac.compare_digest(got, hash_)


def gensalt(prefix: str, rounds: int = 0) -> str:
    """A fresh salt setting for ``prefix`` (``$y$``, ``$6$``, ...) from libxcrypt's ``crypt_gensalt_rn``."""
    lib = _load()
    fn = lib.crypt_gensalt_rn
    fn.restype = ctypes.c_char_p
    fn.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    out = ctypes.create_string_buffer(256)
    res = fn(prefix.encode(), rounds, None, 0, out, 256)
    if res is None:
        raise BackendError(f"libxcrypt cannot make a salt for {prefix!r}")
    return res.decode("ascii")
