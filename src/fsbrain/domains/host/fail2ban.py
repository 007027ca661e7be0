"""Load fail2ban filter definitions as they are: INI sections, includes, interpolation and tags.

A filter file (``name.conf``, optionally overridden by ``name.local``) has the sections:

* ``[INCLUDES]`` with ``before =`` / ``after =`` file names, read from the same directory (before: this
  file's values win; after: the included file's values win);
* ``[DEFAULT]`` and ``[Definition]`` with ``failregex``, ``ignoreregex``, ``prefregex``, ``datepattern``,
  ``maxlines``, ``journalmatch`` and any helper variables; ``[Init]`` with parameters that callers may
  override (``sshd[mode=aggressive]``); other sections (``[lt_file]``) referenced as ``section/option``.

Values are expanded in two passes: ``%(name)s`` (ConfigParser style, also ``%(section/name)s``), then
``<name>`` tags naming any known option (innermost first, so ``<mdre-<mode>>`` works;
``<known/name>`` is the value before an override). Tags that name no option (``<HOST>``,
``<F-USER>``) are left for :mod:`fsbrain.domains.host.fail2ban_regex`. Multi-line values are split into
one regex per line. ``journalmatch`` is kept but not used: fsbrain reads journal *exports*
(``journalctl -o short``), which the ``logtype = journal`` prefix handles.

fsbrain adds one optional key: ``successregex`` (successful logins, used to raise ``compromise``
alerts after failures); fail2ban ignores it.
"""

from __future__ import annotations

import configparser
import re
from dataclasses import dataclass, field
from pathlib import Path

from fsbrain.core.errors import InputError, PolicyError

SHIPPED_DIR = Path(__file__).resolve().parent / "filters"
MAX_INCLUDE_DEPTH = 10
MAX_FILE_BYTES = 1 << 20
_NAME_RE = re.compile(r"^[A-Za-z0-9][\w.\-]*$")
_PCT_RE = re.compile(r"%\(([^)]+)\)s")
_TAG_RE = re.compile(r"<([\w\-./]+)>")
_SPEC_RE = re.compile(r"^\s*([\w.\-]+)\s*(?:\[(.*)\])?\s*$", re.S)


@dataclass(slots=True, kw_only=True)
class FilterDefinition:
    """A filter after includes and interpolation: regex texts still carry fail2ban tags.

    Args:
        name: filter name (file stem).
        source: the main file read.
        failregex: one regex per failure shape, in priority order.
        ignoreregex: lines matching one of these are never failures.
        prefregex: optional prefix regex; failregex then applies to its ``<F-CONTENT>`` group.
        successregex: fsbrain extension: successful logins.
        datepattern: fail2ban datepattern or ``None`` for the built-in templates.
        maxlines: lines kept in the multi-line buffer (1: single-line filter).
        options: every resolved option of ``[Definition]`` (helpers included).
        notes: things the loader noticed (ignored keys, fallbacks).
    """

    name: str
    source: str
    failregex: list[str]
    ignoreregex: list[str] = field(default_factory=list)
    prefregex: str | None = None
    successregex: list[str] = field(default_factory=list)
    datepattern: str | None = None
    maxlines: int = 1
    options: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def parse_filter_spec(spec: str) -> tuple[str, dict[str, str]]:
    """Split ``"sshd[mode=aggressive, publickey=invalid]"`` into a name and options."""
    m = _SPEC_RE.match(spec)
    if not m:
        raise InputError(f"bad filter name {spec!r} (expected NAME or NAME[key=value, ...])")
    opts: dict[str, str] = {}
    if m.group(2):
        for part in re.split(r",\s*(?=[\w.\-]+\s*=)", m.group(2)):
            if not part.strip():
                continue
            key, sep, val = part.partition("=")
            if not sep:
                raise InputError(f"bad filter option {part!r} in {spec!r} (expected key=value)")
            opts[key.strip()] = val.strip().strip("\"'")
    return m.group(1), opts


def _read_ini(path: Path) -> configparser.RawConfigParser:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise PolicyError("filter file larger than 1 MiB", source=str(path))
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise PolicyError(f"cannot read filter file: {exc.strerror or exc}", source=str(path)) from exc
    cp = configparser.RawConfigParser(strict=False, interpolation=None, comment_prefixes=("#", ";"),
                                      inline_comment_prefixes=None, default_section="\x00none")
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        cp.read_string(text, source=str(path))
    except configparser.Error as exc:
        line = getattr(exc, "lineno", None)
        raise PolicyError(f"not a valid filter file: {exc.message if hasattr(exc, 'message') else exc}",
                          source=str(path), line=line) from exc
    return cp


def _merge_file(path: Path, sections: dict[str, dict[str, str]], depth: int, seen: set[Path]) -> None:
    if depth > MAX_INCLUDE_DEPTH:
        raise PolicyError(f"includes nested deeper than {MAX_INCLUDE_DEPTH}", source=str(path))
    real = path.resolve()
    if real in seen:
        raise PolicyError("include cycle", source=str(path))
    seen = seen | {real}
    cp = _read_ini(path)
    includes = dict(cp.items("INCLUDES")) if cp.has_section("INCLUDES") else {}

    def include(key: str) -> None:
        for name in includes.get(key, "").split():
            inc = path.parent / name
            if not inc.exists():
                if inc.suffix == ".local":
                    continue  # optional overrides
                raise PolicyError(f"included file {name!r} not found next to it", source=str(path))
            _merge_file(inc, sections, depth + 1, seen)

    include("before")
    for sec in cp.sections():
        if sec == "INCLUDES":
            continue
        target = sections.setdefault(sec, {})
        for key, val in cp.items(sec):
            if key in target and not key.startswith("known/"):
                target["known/" + key] = target[key]  # the value before this override: <known/key>
            target[key] = val
    include("after")
    local = path.with_suffix(".local")
    if path.suffix == ".conf" and local.exists():
        _merge_file(local, sections, depth + 1, seen)


class _Resolver:
    """Expands ``%(x)s`` and ``<x>`` against the merged sections."""

    def __init__(self, sections: dict[str, dict[str, str]], env: dict[str, str], known: dict[str, str],
                 source: str) -> None:
        self.sections = sections
        self.env = env
        self.known = known
        self.source = source
        self._cache: dict[str, str] = {}

    def raw(self, name: str) -> str | None:
        default = self.sections.get("DEFAULT", {})
        if name.startswith("known/"):  # the value below the current layer
            opt = name[6:]
            for sec in ("Definition", "Init", "DEFAULT"):
                if name in self.sections.get(sec, {}):
                    return self.sections[sec][name]
            if opt in default and any(opt in self.sections.get(s, {}) for s in ("Definition", "Init")):
                return default[opt]
            return self.known.get(opt)
        if "/" in name:
            sec, _, opt = name.partition("/")
            values = self.sections.get(sec, {})
            if opt.startswith("known/"):
                return values.get(opt, default.get(opt[6:]) if sec != "DEFAULT" else None)
            if opt in values:
                return values[opt]
            return default.get(opt)
        return self.env.get(name)

    def value(self, name: str, stack: tuple[str, ...] = ()) -> str | None:
        if name in self._cache:
            return self._cache[name]
        raw = self.raw(name)
        if raw is None:
            return None
        sec = name.partition("/")[0] if "/" in name and not name.startswith("known/") else ""
        if sec:  # inside [sec], names refer to sec's own options first (known/x: its earlier value)
            own = self.sections.get(sec, {})
            raw = re.sub(r"(%\(|<)known/", lambda m: f"{m.group(1)}{sec}/known/", raw)
            raw = _PCT_RE.sub(lambda m: f"%({sec}/{m.group(1)})s" if m.group(1) in own else m.group(0), raw)
        if name in stack:
            raise PolicyError(f"option {name!r} refers to itself (via {' -> '.join(stack)})", source=self.source)
        out = self.expand(raw, stack + (name,))
        self._cache[name] = out
        return out

    def expand(self, text: str, stack: tuple[str, ...] = ()) -> str:
        if len(stack) > 60:
            raise PolicyError("option references nested too deeply", source=self.source)

        def pct(m: re.Match[str]) -> str:
            v = self.value(m.group(1), stack)
            if v is None:
                raise PolicyError(f"%({m.group(1)})s names no option", source=self.source)
            return v

        text = _PCT_RE.sub(pct, text).replace("%%", "%")
        for _ in range(100):
            changed = False

            def tag(m: re.Match[str]) -> str:
                nonlocal changed
                v = self.value(m.group(1), stack)
                if v is None:
                    return m.group(0)
                changed = True
                return v

            text = _TAG_RE.sub(tag, text)
            if not changed:
                return text
        raise PolicyError("tag substitution does not terminate", source=self.source)


def _lines(value: str | None) -> list[str]:
    if not value:
        return []
    return [ln.strip() for ln in value.splitlines() if ln.strip()]


def find_filter_file(name: str, filter_dirs: list[Path] | None = None) -> Path:
    """Path of ``name.conf`` in ``filter_dirs`` (first hit) or the shipped filters."""
    if not _NAME_RE.match(name):
        raise InputError(f"bad filter name {name!r}: letters, digits, '.', '_' and '-' only")
    for d in [*(filter_dirs or []), SHIPPED_DIR]:
        for cand in (d / f"{name}.conf", d / name):
            if cand.is_file():
                return cand
    where = ", ".join(str(d) for d in [*(filter_dirs or []), SHIPPED_DIR])
    raise InputError(f"no filter named {name!r} (looked in {where})")


def load_filter_file(path: Path, options: dict[str, str] | None = None) -> FilterDefinition:
    """Read one fail2ban filter file (with its includes) and expand it.

    Args:
        path: the ``.conf`` file.
        options: overrides of ``[Init]``/``[Definition]`` values, e.g. ``{"mode": "aggressive"}``.

    Raises:
        PolicyError: unreadable file, bad INI, missing include, unresolvable reference, no failregex.
    """
    sections: dict[str, dict[str, str]] = {}
    _merge_file(Path(path), sections, 0, set())
    if "Definition" not in sections:
        raise PolicyError("no [Definition] section", source=str(path))
    known = {**sections.get("DEFAULT", {}), **sections.get("Definition", {}), **sections.get("Init", {})}
    env = {**known, **(options or {})}
    res = _Resolver(sections, env, known, str(path))
    notes = []
    failregex = _lines(res.value("failregex"))
    if not failregex:
        raise PolicyError("no failregex in [Definition]", source=str(path))
    prefregex = res.value("prefregex")
    datepattern = res.value("datepattern")
    if res.raw("journalmatch"):
        notes.append("journalmatch ignored: fsbrain reads journal exports, not the journal itself")
    try:
        maxlines = int(res.value("maxlines") or 1)
    except ValueError as exc:
        raise PolicyError(f"maxlines must be an integer, got {res.value('maxlines')!r}", source=str(path)) from exc
    resolved = {}
    for k in sections.get("Definition", {}):
        try:
            resolved[k] = res.value(k) or ""
        except PolicyError:
            resolved[k] = sections["Definition"][k]
    return FilterDefinition(
        name=Path(path).stem,
        source=str(path),
        failregex=failregex,
        ignoreregex=_lines(res.value("ignoreregex")),
        prefregex=prefregex.strip() if prefregex and prefregex.strip() else None,
        successregex=_lines(res.value("successregex")),
        datepattern=datepattern.strip() if datepattern and datepattern.strip() else None,
        maxlines=max(1, min(maxlines, 100)),
        options=resolved,
        notes=notes,
    )


def load_filter(spec: str, filter_dirs: list[Path] | None = None,
                options: dict[str, str] | None = None) -> FilterDefinition:
    """Load a filter by name (``sshd``, ``sshd[mode=aggressive]``) or by path to a ``.conf`` file."""
    p = Path(spec)
    if spec.endswith((".conf", ".local")) or p.is_file():
        if not p.is_file():
            raise InputError(f"filter file {spec!r} does not exist")
        return load_filter_file(p, options)
    name, opts = parse_filter_spec(spec)
    return load_filter_file(find_filter_file(name, filter_dirs), {**opts, **(options or {})})


def shipped_filters() -> list[str]:
    """Names of the filters shipped with fsbrain (helper files such as ``common`` excluded)."""
    out = []
    for p in sorted(SHIPPED_DIR.glob("*.conf")):
        cp = _read_ini(p)
        if cp.has_section("Definition") and cp.has_option("Definition", "failregex"):
            out.append(p.stem)
    return out
