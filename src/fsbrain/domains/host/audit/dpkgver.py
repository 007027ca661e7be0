"""Debian version comparison, exactly as ``dpkg --compare-versions`` does it (Debian Policy §5.6.12).

A version is ``[epoch:]upstream[-revision]``. Epochs compare numerically. Upstream and revision compare
with dpkg's ``verrevcmp``: alternate runs of non-digits and digits; in non-digit runs ``~`` sorts before
everything (even the end of the string), then the end of the string, then letters, then other characters
(by ASCII value); digit runs compare numerically.

>>> compare("1:1.0", "2.0") > 0
True
>>> compare("1.0~rc1", "1.0") < 0
True
>>> compare("1.0", "1.0-0")
0
>>> sorted(["1.0-1", "1.0~b1", "1.0+dfsg", "1.0"], key=Version.parse)
['1.0~b1', '1.0', '1.0-1', '1.0+dfsg']
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

from fsbrain.core.errors import InputError

_VALID = re.compile(r"^[A-Za-z0-9.+~:-]+$")


@total_ordering
@dataclass(frozen=True, slots=True)
class Version:
    """A parsed Debian version. Compare instances with ``<``, ``==`` etc.

    Args:
        epoch: integer epoch (0 when absent).
        upstream: upstream version.
        revision: Debian revision ("" when absent, which compares equal to "0").
    """

    epoch: int
    upstream: str
    revision: str

    @classmethod
    def parse(cls, text: str) -> Version:
        """Parse ``[epoch:]upstream[-revision]``.

        Raises:
            InputError: empty, with spaces or characters dpkg rejects, or a non-numeric epoch.
        """
        s = text.strip() if isinstance(text, str) else ""
        if not s or not _VALID.match(s):
            raise InputError(f"invalid Debian version {text!r}")
        epoch = 0
        if ":" in s:
            e, _, s = s.partition(":")
            if not e.isdigit():
                raise InputError(f"invalid Debian version {text!r}: epoch {e!r} is not a number")
            epoch = int(e)
        upstream, sep, revision = s.rpartition("-")
        if not sep:
            upstream, revision = s, ""
        if not upstream:
            raise InputError(f"invalid Debian version {text!r}: empty upstream version")
        return cls(epoch, upstream, revision)

    def _cmp(self, other: Version) -> int:
        if self.epoch != other.epoch:
            return -1 if self.epoch < other.epoch else 1
        return verrevcmp(self.upstream, other.upstream) or verrevcmp(self.revision, other.revision)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._cmp(other) < 0

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._cmp(other) == 0

    def __hash__(self) -> int:
        return hash((self.epoch, _canon(self.upstream), _canon(self.revision)))

    def __str__(self) -> str:
        out = f"{self.epoch}:" if self.epoch else ""
        return out + self.upstream + (f"-{self.revision}" if self.revision else "")


def _canon(part: str) -> str:
    """A form equal for versions that compare equal: digit runs by value, zero runs dropped ("a0" == "a")."""
    return re.sub(r"\d+", lambda m: str(int(m.group())) if int(m.group()) else "", part)


def _order(c: str) -> int:
    if c.isascii() and c.isalpha():
        return ord(c)
    if c == "~":
        return -1
    return ord(c) + 256


def verrevcmp(a: str, b: str) -> int:
    """dpkg's comparison of an upstream version or a revision: negative, zero or positive."""
    i = j = 0
    la, lb = len(a), len(b)
    while i < la or j < lb:
        while (i < la and not _isdigit(a[i])) or (j < lb and not _isdigit(b[j])):
            ac = _order(a[i]) if i < la and not _isdigit(a[i]) else 0
            bc = _order(b[j]) if j < lb and not _isdigit(b[j]) else 0
            if ac != bc:
                return ac - bc
            i += 1
            j += 1
        while i < la and a[i] == "0":
            i += 1
        while j < lb and b[j] == "0":
            j += 1
        first_diff = 0
        while i < la and _isdigit(a[i]) and j < lb and _isdigit(b[j]):
            if not first_diff:
                first_diff = ord(a[i]) - ord(b[j])
            i += 1
            j += 1
        if i < la and _isdigit(a[i]):
            return 1
        if j < lb and _isdigit(b[j]):
            return -1
        if first_diff:
            return first_diff
    return 0


def _isdigit(c: str) -> bool:
    return "0" <= c <= "9"


def compare(a: str, b: str) -> int:
    """-1, 0 or 1 as ``a`` sorts before, equal to or after ``b``."""
    c = Version.parse(a)._cmp(Version.parse(b))
    return (c > 0) - (c < 0)
