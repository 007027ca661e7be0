"""The ban list: addresses and networks banned until a time (or for ever), with an allow-list guard.

Bans are kept in-process (:class:`BanList`) and persisted in one of two places:

* the platform store (:class:`fsbrain.store.Store`, SQLite/PostgreSQL): entries on the ``black`` list
  with ``entity_type="ip"`` (or ``"subnet"``), source ``host.bruteforce[:jail]`` and ``expires_at``, so
  the decision engine and the console see them too (the default when the store is importable);
* a JSON file ``$FSBRAIN_HOME/host/bans.json`` (``backend="json"``), for hosts without the store.

Allow-listed addresses (:class:`~fsbrain.domains.host.bruteforce.AllowList`) can never be banned.
"""

from __future__ import annotations

import ipaddress
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fsbrain.core.errors import ConflictError, InputError, NotFoundError
from fsbrain.core.model import Alert
from fsbrain.domains.host.bruteforce import AllowList

SOURCE = "host.bruteforce"
FILE_VERSION = 1


@dataclass(slots=True, kw_only=True)
class Ban:
    """One ban.

    Args:
        target: an IP address or CIDR network (normalised).
        until: epoch seconds when it ends, or ``None`` for a permanent ban.
        reason: why (alert title or operator note).
        jail: jail that caused it (``manual`` for hand-made bans).
        created: epoch seconds.
        entry_id: store entry id when persisted in the store.
    """

    target: str
    until: float | None
    reason: str = ""
    jail: str = "manual"
    created: float = 0.0
    entry_id: str | None = None

    @property
    def kind(self) -> str:
        return "subnet" if "/" in self.target else "ip"

    def active(self, now: float) -> bool:
        return self.until is None or self.until > now

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "kind": self.kind}


def normalise_target(value: str) -> str:
    """``"192.0.2.1"`` → ``"192.0.2.1"``; ``"192.0.2.7/24"`` → ``"192.0.2.0/24"``; junk → InputError."""
    v = str(value).strip()
    try:
        if "/" in v:
            net = ipaddress.ip_network(v, strict=False)
            if net.num_addresses == 1:
                return str(net.network_address)
            return str(net)
        ip = ipaddress.ip_address(v)
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ip)
    except ValueError as exc:
        raise InputError(f"not an IP address or network: {v[:80]!r}") from exc


def _home() -> Path:
    return Path(os.environ.get("FSBRAIN_HOME") or ".fsbrain")


class BanList:
    """Bans with expiry, persisted in the store or a JSON file.

    Args:
        allowlist: networks that may never be banned.
        backend: ``store``, ``json`` or ``memory`` (nothing persisted); default: ``store`` when
            :mod:`fsbrain.store` imports, else ``json``.
        path: JSON file (``json`` backend); default ``$FSBRAIN_HOME/host/bans.json``.
        store: an open :class:`fsbrain.store.Store` (``store`` backend); default: one on the default URL.
    """

    def __init__(self, *, allowlist: list[str] | None = None, backend: str | None = None,
                 path: Path | None = None, store: Any = None) -> None:
        self.allow = AllowList(allowlist or [])
        if backend is None:
            try:
                import fsbrain.store  # noqa: F401

                backend = "store"
            except ImportError:
                backend = "json"
        if backend not in ("store", "json", "memory"):
            raise InputError(f"unknown ban backend {backend!r} (store, json or memory)")
        self.backend = backend
        self.path = path or _home() / "host" / "bans.json"
        self._store = store
        if backend == "store" and store is None:
            from fsbrain.store import Store

            self._store = Store()
            self._store.migrate()
        self._bans: dict[str, Ban] = {}
        self._load()

    # -- persistence -----------------------------------------------------------------------------
    def _load(self) -> None:
        if self.backend == "json" and self.path.exists():
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                items = data["bans"] if isinstance(data, dict) else []
                for item in items:
                    b = Ban(**{k: item[k] for k in ("target", "until", "reason", "jail", "created") if k in item})
                    self._bans[b.target] = b
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise InputError(f"{self.path}: unreadable ban file ({exc})") from exc
        elif self.backend == "store":
            for kind in ("ip", "subnet"):
                for e in self._store_entries(kind):
                    if not str(e.get("source", "")).startswith(SOURCE):
                        continue
                    jail = str(e["source"]).partition(":")[2] or "manual"
                    self._bans[e["value_hash"]] = Ban(target=e["value_hash"], until=e["expires_at"],
                                                      reason=e["reason"], jail=jail, created=e["created_at"],
                                                      entry_id=e["entry_id"])

    def _store_entries(self, kind: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            page = self._store.list_entries(list_type="black", entity_type=kind, include_expired=True,
                                            limit=1000, offset=len(out))
            out += page
            if len(page) < 1000:
                return out

    def _save(self) -> None:
        if self.backend != "json":
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"version": FILE_VERSION, "bans": [b.to_dict() for b in self._bans.values()]},
                                  indent=1), encoding="utf-8")
        os.replace(tmp, self.path)

    # -- operations ------------------------------------------------------------------------------
    def add(self, target: str, *, seconds: float | None = None, until: float | None = None, reason: str = "",
            jail: str = "manual", now: float | None = None) -> Ban:
        """Ban ``target`` for ``seconds`` (or until ``until``; neither: for ever).

        Raises:
            InputError: not an address/network, or a negative duration.
            ConflictError: the target is allow-listed.
        """
        t = normalise_target(target)
        at = time.time() if now is None else now
        probe = t.split("/", 1)[0]
        if self.allow.contains(probe):
            raise ConflictError(f"{t} is on the allow-list and cannot be banned")
        if seconds is not None:
            if seconds <= 0:
                raise InputError(f"ban duration must be positive, got {seconds}")
            until = at + seconds
        old = self._bans.get(t)
        if old is not None and (old.until is None or (until is not None and old.until >= until)):
            return old  # already banned at least as long
        ban = Ban(target=t, until=until, reason=reason[:500], jail=jail, created=at)
        if self.backend == "store":
            entry = self._store.add_list_entry(list_type="black", entity_type=ban.kind, value_hash=t, masked=t,
                                               reason=ban.reason, source=f"{SOURCE}:{jail}", expires_at=until,
                                               actor=SOURCE)
            ban.entry_id = entry["entry_id"]
        self._bans[t] = ban
        self._save()
        return ban

    def remove(self, target: str) -> Ban:
        """Lift a ban.

        Raises:
            NotFoundError: the target is not banned.
        """
        t = normalise_target(target)
        ban = self._bans.pop(t, None)
        if ban is None:
            raise NotFoundError(f"{t} is not banned")
        if self.backend == "store" and ban.entry_id:
            try:
                self._store.remove_list_entry(ban.entry_id, actor=SOURCE)
            except NotFoundError:
                pass
        self._save()
        return ban

    def active(self, now: float | None = None) -> list[Ban]:
        """Bans in force at ``now``, soonest-ending last (permanent ones last of all)."""
        at = time.time() if now is None else now
        return sorted((b for b in self._bans.values() if b.active(at)),
                      key=lambda b: (b.until is None, b.until or 0.0, b.target))

    def is_banned(self, host: str, now: float | None = None) -> bool:
        at = time.time() if now is None else now
        try:
            ip = ipaddress.ip_address(normalise_target(host))
        except InputError:
            return False
        for b in self._bans.values():
            if not b.active(at):
                continue
            if "/" in b.target:
                net = ipaddress.ip_network(b.target)
                if net.version == ip.version and ip in net:
                    return True
            elif b.target == str(ip):
                return True
        return False

    def purge(self, now: float | None = None) -> int:
        """Forget expired bans; return how many."""
        at = time.time() if now is None else now
        gone = [t for t, b in self._bans.items() if not b.active(at)]
        for t in gone:
            del self._bans[t]
        if gone:
            self._save()
        return len(gone)

    def apply_alerts(self, alerts: list[Alert]) -> list[Ban]:
        """Ban the entity of every ``action="ban"`` alert about an ip or subnet; skip allow-listed ones."""
        out = []
        for a in alerts:
            if a.action != "ban" or a.entity_type not in ("ip", "subnet") or not a.entity:
                continue
            until = a.details.get("ban_until")
            try:
                out.append(self.add(a.entity, until=until, reason=a.title, jail=str(a.details.get("jail", "auto")),
                                    now=a.end))
            except (ConflictError, InputError):
                continue
        return out
