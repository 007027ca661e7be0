"""Per-request state of the rule engine: variables, TX collection, macros, runtime ``ctl`` changes.

A :class:`Transaction` resolves SecLang variables against one :class:`HttpRequest` (collections as
``(key, value)`` lists built once per phase), expands ``%{...}`` macros and caches transformed values per
(variable, transformation chain) so no transformation runs twice on the same value within a request.
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING

from fsbrain.domains.web.request import HttpRequest, text_lossless, to_bytes
from fsbrain.domains.web.seclang.model import Rule, Target
from fsbrain.domains.web.seclang.parser import parse_target
from fsbrain.domains.web.speedups import load as _load_speedups

_fast = _load_speedups()  # compiled collection helpers (same results), or None
# The compiled module's ``TxState`` holds a transaction's fields as C fields (the compiled loop reads them
# without dictionary lookups); it is the base whenever the extension is built, even with the compiled
# paths turned off, since it only lays out the same attributes.
_TxBase: type = getattr(_load_speedups(True), "TxState", object)

if TYPE_CHECKING:
    from fsbrain.domains.web.seclang.engine import WebRuleEngine

Entries = list[tuple[str, bytes]]
_MACRO = re.compile(r"%\{([^}]{1,200})\}")
# text -> its bytes when it has no macro, else a tuple of literal bytes and macros ``(True, tx key)`` or
# ``(False, macro name)`` (:meth:`Transaction.expand`); texts are rule parameters, messages and log data
_PARTS: dict[str, bytes | tuple[bytes | tuple[bool, str], ...]] = {}
_PARTS_MAX = 4096


def _expansion_parts(text: str) -> bytes | tuple[bytes | tuple[bool, str], ...]:
    """``text`` split for :meth:`Transaction.expand` (cached): the literal runs between ``_MACRO`` matches as
    bytes, each macro as ``(True, key)`` for ``tx.key`` (read from TX, key lowercased as ``_macro`` does) or
    ``(False, name)`` (given to ``_macro``). The UTF-8 encoding of a concatenation is the concatenation of the
    encodings, so joining the parts' bytes equals encoding the substituted text."""
    if "%{" not in text:
        got: bytes | tuple[bytes | tuple[bool, str], ...] = to_bytes(text)
    else:
        parts: list[bytes | tuple[bool, str]] = []
        pos = 0
        for m in _MACRO.finditer(text):
            if m.start() > pos:
                parts.append(to_bytes(text[pos:m.start()]))
            name = m.group(1)
            coll, dot, key = name.partition(".")
            parts.append((True, key.lower()) if dot and coll.upper() == "TX" else (False, name))
            pos = m.end()
        if pos < len(text):
            parts.append(to_bytes(text[pos:]))
        got = tuple(parts)
    if len(_PARTS) >= _PARTS_MAX:
        _PARTS.clear()
    _PARTS[text] = got
    return got
_STATIC = frozenset({"ARGS", "ARGS_GET", "ARGS_POST", "ARGS_NAMES", "ARGS_GET_NAMES", "ARGS_POST_NAMES",
                     "REQUEST_HEADERS", "REQUEST_HEADERS_NAMES", "REQUEST_COOKIES", "REQUEST_COOKIES_NAMES",
                     "FILES", "FILES_NAMES", "FILES_SIZES", "MULTIPART_PART_HEADERS", "XML", "REQUEST_METHOD",
                     "REQUEST_URI", "REQUEST_URI_RAW", "REQUEST_FILENAME", "REQUEST_BASENAME", "REQUEST_LINE",
                     "REQUEST_PROTOCOL", "QUERY_STRING", "REQUEST_BODY", "REMOTE_ADDR"})


#: scalar variables whose value depends on the request alone (the compiled loop reads each once per request)
REQUEST_SCALARS = frozenset({"REQUEST_METHOD", "REQUEST_URI", "REQUEST_URI_RAW", "REQUEST_FILENAME",
                             "REQUEST_BASENAME", "REQUEST_LINE", "REQUEST_PROTOCOL", "QUERY_STRING",
                             "REQUEST_BODY_LENGTH", "REMOTE_ADDR", "REMOTE_HOST", "HTTP_HOST",
                             "FULL_REQUEST_LENGTH"})

# collections that depend on the request line and headers only (kept when the body phase starts)
_HEAD_ONLY = frozenset({"ARGS_GET", "ARGS_GET_NAMES", "REQUEST_HEADERS", "REQUEST_HEADERS_NAMES", "REQUEST_COOKIES",
                        "REQUEST_COOKIES_NAMES"})

_DECODABLE = re.compile(rb"[%+&\\\x00]|/\*")
# Transformations that are the identity on a "plain" value (ASCII, none of % + & \ NUL, no "/*").
_IDENTITY_ON_PLAIN = frozenset(x.lower() for x in (
    "urlDecode", "urlDecodeUni", "htmlEntityDecode", "jsDecode", "cssDecode", "escapeSeqDecode", "removeNulls",
    "replaceNulls", "utf8toUnicode", "replaceComments"))
# Transformations that keep a plain value plain (they cannot create those bytes or a "/*").
_KEEP_PLAIN = frozenset({"none", "lowercase", "uppercase", "trim", "trimleft", "trimright", "compresswhitespace",
                         "length"})
_CREATES_BYTES = frozenset({"base64decode", "base64decodeext", "hexdecode", "sqlhexdecode", "sha1", "md5",
                            "urlencode", "base64encode", "hexencode"})
_REDUCED: dict[tuple[str, ...], tuple[tuple[str, ...], tuple]] = {}  # type: ignore[type-arg]


def reduced_chain(names: tuple[str, ...], funcs: tuple) -> tuple[tuple[str, ...], tuple]:  # type: ignore[type-arg]
    """The chain to apply to a plain value: the decoders that are the identity on it dropped, as long as no
    earlier step could have made the value non-plain (``removeWhitespace`` can join ``/ *`` into ``/*``,
    ``normalizePath`` can turn ``/./*`` into ``/*``...); the chain itself when it may create bytes."""
    got = _REDUCED.get(names)
    if got is None:
        if any(n.lower() in _CREATES_BYTES for n in names):
            got = (names, funcs)
        else:
            keep = []
            tainted = False
            for n, f in zip(names, funcs, strict=True):
                low = n.lower()
                if low in _IDENTITY_ON_PLAIN and not tainted:
                    continue
                keep.append((n, f))
                if low not in _KEEP_PLAIN and low not in _IDENTITY_ON_PLAIN:
                    tainted = True
            got = (tuple(n for n, _ in keep), tuple(f for _, f in keep))
        _REDUCED[names] = got
    return got


def plain_value(value: bytes) -> bool:
    """ASCII without any byte a decoding transformation reacts to: :func:`reduced_chain` applies."""
    return value.isascii() and _DECODABLE.search(value) is None


def _names(entries: Entries) -> Entries:
    if _fast is not None and type(entries) is list:
        return _fast.names(entries)  # type: ignore[no-any-return]
    return [(k, to_bytes(k)) for k, _ in entries]


def _keyed(pairs: list[tuple[bytes, bytes]]) -> Entries:
    if _fast is not None and type(pairs) is list:
        return _fast.keyed(pairs)  # type: ignore[no-any-return]
    return [(text_lossless(k), v) for k, v in pairs]


class Transaction(_TxBase):  # type: ignore[misc,valid-type]
    """State of one request going through the rules.

    Args:
        engine: the compiled engine.
        request: the request.
        tx: TX at the start (default: the engine's ``initial_tx``).
    """

    def __init__(self, engine: WebRuleEngine, request: HttpRequest, tx: dict[str, bytes] | None = None) -> None:
        self.engine = engine
        self.req = request
        self.tx: dict[str, bytes] = dict(engine.initial_tx if tx is None else tx)
        self.pinned = engine.pinned_tx
        self.phase = 1
        self.score_added = 0
        self.body_processor: str | None = request.default_processor
        self.force_body_var = False
        self.rule_engine = engine.rule_engine
        self.removed_ids: set[int] = set()
        self.removed_targets: dict[int, list[Target]] = {}
        self.removed_tag_targets: list[tuple[str, Target]] = []
        self.removed_tags: list[str] = []
        self.matched_var = b""
        self.matched_var_name = ""
        self.matched_vars: Entries = []
        self.rule: Rule | None = None
        self.tcache: dict[tuple[bytes, object], bytes] = {}
        self.plain: dict[bytes, bool] = {}
        self.pf_phase = 0
        self.pf_mask = 0
        self._coll: dict[str, Entries] = {}
        self._idx: dict[str, dict[str, Entries]] = {}
        self.unique_id = ""
        self._body = None
        self._body_proc: str | None = None
        # scalars that depend on the request only (:data:`REQUEST_SCALARS`), as the compiled loop caches them
        self.scal: dict[str, bytes | None] = {}

    # ---- phases ----------------------------------------------------------------------------------------
    def transformed(self, value: bytes, names: tuple[str, ...], funcs: tuple) -> bytes:  # type: ignore[type-arg]
        """Apply a transformation chain, memoised per (value, chain) and per (value, step) in this request.

        Values without any byte that a decoding transformation reacts to (``% + & \\ NUL /*``, non-ASCII)
        skip the decoders entirely: :func:`reduced_chain` drops them, so the many CRS chains that differ
        only in decoders collapse to a handful (often just ``lowercase`` or nothing).
        """
        cache = self.tcache
        full = (value, names)
        out = cache.get(full)  # type: ignore[call-overload]
        if out is not None:
            return out  # type: ignore[no-any-return]
        plain = self.plain.get(value)
        if plain is None:
            plain = self.plain[value] = value.isascii() and _DECODABLE.search(value) is None
        if plain:
            names, funcs = reduced_chain(names, funcs)
        v = value
        for name, f in zip(names, funcs, strict=True):
            key = (v, name)
            nv = cache.get(key)
            if nv is None:
                nv = cache[key] = f(v)
            v = nv
        cache[full] = v  # type: ignore[index]
        return v

    def enter_phase(self, phase: int) -> None:
        """Move to a phase; body variables appear in phase 2."""
        self.phase = phase
        if phase == 2:  # collections fed by the body change; headers, cookies and the query do not
            for cache in (self._coll, self._idx):
                for name in [n for n in cache if n not in _HEAD_ONLY]:
                    del cache[name]

    @property
    def body(self):  # type: ignore[no-untyped-def]
        proc = self.body_processor
        if self._body is None or self._body_proc != proc:  # a ctl may change the processor in phase 1
            self._body, self._body_proc = self.req.parsed_body(proc), proc
        return self._body

    # ---- collections -----------------------------------------------------------------------------------
    def collection(self, name: str) -> Entries:
        """All entries of a collection (cached for the phase, except dynamic ones)."""
        if name == "TX":
            return list(self.tx.items())
        if name == "MATCHED_VARS":
            return list(self.matched_vars)
        if name == "MATCHED_VARS_NAMES":
            return [(k, to_bytes(k)) for k, _ in self.matched_vars]
        got = self._coll.get(name)
        if got is None:
            got = self._coll[name] = self._build(name)
        return got

    def _build(self, name: str) -> Entries:
        req = self.req
        in_body = self.phase >= 2
        if name == "ARGS_GET":
            return _keyed(req.args_get)
        if name == "ARGS_POST":
            return _keyed(self.body.args) if in_body else []
        if name == "ARGS":
            return self.collection("ARGS_GET") + self.collection("ARGS_POST")
        if name.endswith("_NAMES") and name[:-6] in ("ARGS", "ARGS_GET", "ARGS_POST", "REQUEST_HEADERS",
                                                        "REQUEST_COOKIES", "FILES", "RESPONSE_HEADERS"):
            if name == "FILES_NAMES":
                return [(text_lossless(f.field), f.field) for f in self.body.files] if in_body else []
            return _names(self.collection(name[:-6]))
        if name == "REQUEST_HEADERS":
            return _keyed(req.header_pairs)
        if name == "REQUEST_COOKIES":
            return _keyed(req.cookies)
        if name == "FILES":
            return [(text_lossless(f.field), f.filename) for f in self.body.files] if in_body else []
        if name == "FILES_SIZES":
            return [(text_lossless(f.field), b"%d" % f.size) for f in self.body.files] if in_body else []
        if name == "MULTIPART_PART_HEADERS":
            return _keyed(self.body.part_headers) if in_body else []
        if name == "XML":
            return [("/*", b"".join(self.body.xml_text))] if in_body and self.body.processor == "XML" else []
        return []

    def index(self, name: str) -> dict[str, Entries]:
        """Entries of a collection by lower-cased key."""
        idx = self._idx.get(name)
        if idx is None:
            if _fast is not None:
                idx = _fast.index(self.collection(name))
            else:
                idx = {}
                for e in self.collection(name):
                    idx.setdefault(e[0].lower(), []).append(e)
            if name not in ("MATCHED_VARS", "MATCHED_VARS_NAMES"):
                self._idx[name] = idx
        return idx

    def xml(self, key: str | None) -> Entries:
        if self.phase < 2 or self.body.processor != "XML":
            return []
        if key and "@" in key:
            return [(key, v) for v in self.body.xml_attrs]
        return [(key or "/*", b"".join(self.body.xml_text))]

    def scalar(self, name: str) -> bytes | None:
        """A scalar variable's value; None when it has none (the rule then sees no value)."""
        req = self.req
        if name == "REQUEST_METHOD":
            return to_bytes(req.method)
        if name in ("REQUEST_URI", "REQUEST_URI_RAW"):
            return req.uri_bytes
        if name == "REQUEST_FILENAME":
            return req.filename
        if name == "REQUEST_BASENAME":
            return req.basename
        if name == "REQUEST_LINE":
            return req.request_line
        if name == "REQUEST_PROTOCOL":
            return to_bytes(req.protocol)
        if name == "QUERY_STRING":
            return req.query_string
        if name == "REQUEST_BODY":
            if self.phase < 2:
                return None
            if self.body_processor in (None, "URLENCODED", "JSON") or self.force_body_var:
                return req.inspected_body
            return None
        if name == "REQUEST_BODY_LENGTH":
            return b"%d" % len(req.body)
        if name in ("REMOTE_ADDR", "REMOTE_HOST"):
            return to_bytes(req.remote_addr)
        if name == "REQBODY_PROCESSOR":
            return to_bytes(self.body_processor or "")
        if name in ("REQBODY_ERROR", "REQBODY_PROCESSOR_ERROR"):
            return b"1" if self.phase >= 2 and self.body.error else b"0"
        if name == "REQBODY_ERROR_MSG":
            return to_bytes(self.body.error or "") if self.phase >= 2 else b""
        if name == "MULTIPART_STRICT_ERROR":
            return b"1" if self.phase >= 2 and self.body.processor == "MULTIPART" and self.body.error else b"0"
        if name == "UNIQUE_ID":
            if not self.unique_id:
                self.unique_id = uuid.uuid4().hex[:24]
            return to_bytes(self.unique_id)
        if name == "ARGS_COMBINED_SIZE":
            return b"%d" % sum(len(k) + len(v) for k, v in self.collection("ARGS"))
        if name == "FILES_COMBINED_SIZE":
            return b"%d" % sum(f.size for f in self.body.files) if self.phase >= 2 else b"0"
        if name == "FULL_REQUEST_LENGTH":
            return b"%d" % (len(req.request_line) + sum(len(k) + len(v) + 4 for k, v in req.header_pairs)
                            + len(req.body))
        if name == "FULL_REQUEST":
            head = b"\r\n".join([req.request_line] + [k + b": " + v for k, v in req.header_pairs])
            return head + b"\r\n\r\n" + req.inspected_body
        if name == "MATCHED_VAR":
            return self.matched_var
        if name == "MATCHED_VAR_NAME":
            return to_bytes(self.matched_var_name)
        if name == "HTTP_HOST":
            return to_bytes(req.header("host") or "")
        if name == "DURATION":
            return b"0"
        if name in ("INBOUND_DATA_ERROR", "URLENCODED_ERROR", "MULTIPART_UNMATCHED_BOUNDARY"):
            return b"1" if name == "INBOUND_DATA_ERROR" and "max_body_bytes" in req.limits_hit else b"0"
        return b""

    # ---- targets ---------------------------------------------------------------------------------------
    def values(self, rule: Rule) -> list[tuple[str, bytes, bool]]:
        """(variable name, value, cacheable) for every value a rule link inspects."""
        out: list[tuple[str, bytes, bool]] = []
        excl = rule.exclusions
        extra = self.removed_targets.get(rule.id) if self.removed_targets else None
        if self.removed_tag_targets:
            for tag, t in self.removed_tag_targets:
                if tag in rule.tags:
                    extra = (extra or []) + [t]
        for t in rule.targets:
            coll = t.collection
            if coll in self.engine.collections:
                if coll == "TX":
                    if t.key is not None:
                        tv = self.tx.get(t.key)
                        entries = [] if tv is None else [(t.key, tv)]
                    else:
                        entries = [e for e in self.tx.items() if t.key_rx is None or t.selects(e[0])]
                elif coll == "XML":
                    entries = self.xml(t.key)
                elif t.key is not None:
                    entries = self.index(coll).get(t.key, [])
                else:
                    entries = self.collection(coll)
                    if t.key_rx is not None:
                        entries = [e for e in entries if t.selects(e[0])]
                if excl or extra:
                    entries = [e for e in entries if not self._excluded(coll, e[0], excl, extra)]
                if t.count:
                    out.append((f"&{coll}", b"%d" % len(entries), False))
                    continue
                cacheable = coll in _STATIC
                for k, v in entries:
                    out.append((f"{coll}:{k}", v, cacheable))
            else:
                if (excl or extra) and self._excluded(coll, None, excl, extra):
                    continue
                v = self.scalar(coll)
                if v is None:
                    if t.count:
                        out.append((f"&{coll}", b"0", False))
                    continue
                out.append((coll, b"1" if t.count else v, coll in _STATIC))
        return out

    @staticmethod
    def _excluded(coll: str, key: str | None, excl: list[Target], extra: list[Target] | None) -> bool:
        for group in (excl, extra or ()):
            for x in group:
                if x.collection != coll:
                    continue
                if key is None or x.selects(key):
                    return True
        return False

    # ---- runtime control -------------------------------------------------------------------------------
    def ctl(self, name: str, value: str) -> None:
        """Apply a ``ctl:`` action."""
        if name == "ruleremovebyid":
            for part in value.split():
                lo, _, hi = part.partition("-")
                if lo.isdigit() and (hi.isdigit() or not hi):
                    self.removed_ids.update(range(int(lo), int(hi or lo) + 1))
        elif name == "ruleremovebytag":
            self.removed_tags.append(value)
        elif name in ("ruleremovetargetbyid", "ruleremovetargetbytag"):
            ident, _, spec = value.partition(";")
            spec = self.expand(spec).decode("utf-8", "surrogateescape")
            t = _CTL_TARGETS.get(spec, False)
            if t is False:  # parsed once per distinct text (CRS's exclusions repeat on every request)
                try:
                    t = parse_target(spec)
                except ValueError:
                    t = None
                if len(_CTL_TARGETS) >= 4096:
                    _CTL_TARGETS.clear()
                _CTL_TARGETS[spec] = t
            if t is None:
                return
            if name == "ruleremovetargetbyid" and ident.strip().isdigit():
                self.removed_targets.setdefault(int(ident), []).append(t)
            elif name == "ruleremovetargetbytag":
                self.removed_tag_targets.append((ident.strip(), t))
        elif name == "ruleengine":
            self.rule_engine = {"on": "On", "off": "Off", "detectiononly": "DetectionOnly"}.get(value.lower(),
                                                                                           self.rule_engine)
        elif name == "requestbodyprocessor":
            if self.phase == 1:
                self.body_processor = value.upper()
                self.pf_phase = 0  # the prefilter must see the body as this processor parses it
        elif name == "forcerequestbodyvariable":
            self.force_body_var = value.lower() == "on"
            self.pf_phase = 0  # REQUEST_BODY may appear: the prefilter mask is recomputed

    # ---- macros and setvar -----------------------------------------------------------------------------
    def expand(self, text: str) -> bytes:
        """Expand ``%{tx.x}``, ``%{MATCHED_VAR}``, ``%{REQUEST_HEADERS.host}``, ``%{rule.id}`` ...

        The text is split once into literal bytes and macros (:func:`_expansion_parts`, cached per text); a
        ``%{tx.key}`` reads TX directly. The result is the bytes of the text with each macro replaced by its
        value, as ``_MACRO.sub`` would give."""
        parts = _PARTS.get(text)
        if parts is None:
            parts = _expansion_parts(text)
        if type(parts) is bytes:
            return parts
        out = []
        tx = self.tx
        for p in parts:
            if type(p) is bytes:
                out.append(p)
            elif p[0]:
                out.append(tx.get(p[1], b""))
            else:
                out.append(self._macro(p[1]))
        return b"".join(out)

    def _macro(self, name: str) -> bytes:
        coll, dot, key = name.partition(".")
        c = coll.upper()
        if dot:
            if c == "TX":
                return self.tx.get(key.lower(), b"")
            if c == "RULE":
                r = self.rule
                if r is None:
                    return b""
                attr = {"id": str(r.id), "msg": r.msg or "", "severity": str(r.severity or ""),
                        "logdata": r.logdata or "", "ver": r.ver or ""}.get(key.lower(), "")
                return to_bytes(attr)
            if c in self.engine.collections:
                k = key.lower()
                for ek, v in self.collection(c):
                    if ek.lower() == k:
                        return v
                return b""
        return self.scalar(c) or b""

    def setvar(self, coll: str, name: str, op: str, value: str) -> None:
        """Run one ``setvar`` (only the ``tx`` collection persists; others are accepted and dropped)."""
        if coll != "tx":
            return
        key = self.expand(name).decode("utf-8", "surrogateescape").lower() if "%{" in name else name
        if key in self.pinned:
            return
        if op == "del":
            self.tx.pop(key, None)
            return
        val = self.expand(value)
        if op == "=":
            self.tx[key] = val
            return
        cur = _to_int(self.tx.get(key, b"0"))
        delta = _to_int(val) if op == "=+" else -_to_int(val)
        self.tx[key] = b"%d" % (cur + delta)
        if key.startswith("inbound_anomaly_score_pl"):
            self.score_added += delta


_CTL_TARGETS: dict[str, Target | None] = {}


def _to_int(v: bytes) -> int:
    try:
        return int(v.strip() or b"0")
    except ValueError:
        return 0
