"""The compiled form of SecLang rules: targets, set-variable actions, control actions and rules."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fsbrain.domains.web.seclang.operators import _UNANCHORED, Operator
from fsbrain.domains.web.transforms import Transform

SEVERITY_NAMES = {"EMERGENCY": 0, "ALERT": 1, "CRITICAL": 2, "ERROR": 3, "WARNING": 4, "NOTICE": 5,
                  "INFO": 6, "DEBUG": 7}

# Collections whose keys are selected with ``:name`` / ``:/regex/``; everything else is a scalar.
COLLECTIONS = frozenset({
    "ARGS", "ARGS_GET", "ARGS_POST", "ARGS_NAMES", "ARGS_GET_NAMES", "ARGS_POST_NAMES",
    "REQUEST_HEADERS", "REQUEST_HEADERS_NAMES", "REQUEST_COOKIES", "REQUEST_COOKIES_NAMES",
    "FILES", "FILES_NAMES", "FILES_SIZES", "FILES_TMPNAMES", "FILES_TMP_CONTENT", "MULTIPART_PART_HEADERS",
    "XML", "TX", "ENV", "IP", "GLOBAL", "SESSION", "USER", "RESOURCE", "GEO", "RULE", "MATCHED_VARS",
    "MATCHED_VARS_NAMES", "RESPONSE_HEADERS", "RESPONSE_HEADERS_NAMES", "REQUEST_BODY_ARGS",
})
SCALARS = frozenset({
    "REQUEST_METHOD", "REQUEST_URI", "REQUEST_URI_RAW", "REQUEST_FILENAME", "REQUEST_BASENAME",
    "REQUEST_LINE", "REQUEST_PROTOCOL", "QUERY_STRING", "REQUEST_BODY", "REQUEST_BODY_LENGTH",
    "REMOTE_ADDR", "REMOTE_HOST", "REMOTE_PORT", "REMOTE_USER", "SERVER_NAME", "SERVER_PORT", "SERVER_ADDR",
    "AUTH_TYPE", "PATH_INFO", "REQBODY_PROCESSOR", "REQBODY_ERROR", "REQBODY_ERROR_MSG",
    "REQBODY_PROCESSOR_ERROR", "UNIQUE_ID", "DURATION", "ARGS_COMBINED_SIZE", "FILES_COMBINED_SIZE",
    "FULL_REQUEST", "FULL_REQUEST_LENGTH", "MATCHED_VAR", "MATCHED_VAR_NAME", "MULTIPART_STRICT_ERROR",
    "MULTIPART_UNMATCHED_BOUNDARY", "MULTIPART_BOUNDARY_QUOTED", "MULTIPART_BOUNDARY_WHITESPACE",
    "MULTIPART_DATA_AFTER", "MULTIPART_DATA_BEFORE", "MULTIPART_HEADER_FOLDING", "MULTIPART_LF_LINE",
    "MULTIPART_MISSING_SEMICOLON", "MULTIPART_INVALID_QUOTING", "MULTIPART_INVALID_PART",
    "MULTIPART_INVALID_HEADER_FOLDING", "MULTIPART_FILE_LIMIT_EXCEEDED", "MULTIPART_CRLF_LF_LINES",
    "MULTIPART_NAME", "MULTIPART_FILENAME", "INBOUND_DATA_ERROR", "OUTBOUND_DATA_ERROR", "HIGHEST_SEVERITY",
    "STATUS_LINE", "RESPONSE_BODY", "RESPONSE_STATUS", "RESPONSE_PROTOCOL", "RESPONSE_CONTENT_TYPE",
    "RESPONSE_CONTENT_LENGTH", "TIME", "TIME_DAY", "TIME_EPOCH", "TIME_HOUR", "TIME_MIN", "TIME_MON",
    "TIME_SEC", "TIME_WDAY", "TIME_YEAR", "USERID", "SESSIONID", "WEBAPPID", "WEBSERVER_ERROR_LOG",
    "HTTP_HOST", "URLENCODED_ERROR", "REQUEST_BODY_ERROR", "SCRIPT_FILENAME", "SCRIPT_BASENAME",
})


@dataclass(slots=True)
class Target:
    """One variable of a rule: ``ARGS``, ``ARGS:id``, ``ARGS:/^id_/``, ``&TX:x``, ``!REQUEST_COOKIES:s``.

    Args:
        collection: upper-case variable name.
        key: lower-cased literal selector (None for the whole collection).
        key_rx: compiled RE2 selector (``:/regex/``).
        count: ``&`` — the value is the number of selected entries.
        exclude: ``!`` — remove the selected entries from the rule's other targets.
        raw: the text as written (for messages).
    """

    collection: str
    key: str | None = None
    key_rx: Any = None
    count: bool = False
    exclude: bool = False
    raw: str = ""
    selected: dict[str, bool] = field(default_factory=dict, compare=False, repr=False)

    def selects(self, key: str) -> bool:
        """Whether this target's selector picks ``key`` (case-insensitive); regex selections are memoised
        per key (TX and header names repeat from request to request)."""
        if self.key_rx is not None:
            got = self.selected.get(key)
            if got is None:
                kb = key.encode("utf-8", "surrogateescape")
                raw = getattr(self.key_rx, "_regexp", None)
                if raw is not None and _UNANCHORED is not None:
                    got = bool(raw.Match(_UNANCHORED, kb, 0, len(kb))[0][0] >= 0)
                else:
                    got = self.key_rx.search(kb) is not None
                if len(self.selected) >= 4096:
                    self.selected.clear()
                if len(key) <= 256:
                    self.selected[key] = got
            return got
        return self.key is None or self.key == key.lower()


@dataclass(slots=True)
class SetVar:
    """``setvar:tx.name=value`` (op ``=``), ``=+``, ``=-``, ``!tx.name`` (op ``del``)."""

    collection: str
    name: str
    op: str
    value: str = ""


@dataclass(slots=True, eq=False)
class Rule:
    """One compiled SecRule / SecAction / SecMarker (a chain link when ``chain_parent`` is set).

    ``targets`` excludes ``!`` targets, which are in ``exclusions``. ``tfuncs`` is the transformation
    chain after ``t:none`` resets; ``transforms`` their names.
    """

    kind: str
    source: str
    line: int
    id: int = 0
    phase: int = 2
    targets: list[Target] = field(default_factory=list)
    exclusions: list[Target] = field(default_factory=list)
    op_name: str = ""
    op_param: str = ""
    op_negated: bool = False
    operator: Operator | None = None
    transforms: tuple[str, ...] = ()
    tfuncs: tuple[Transform, ...] = ()
    multi_match: bool = False
    capture: bool = False
    setvars: list[SetVar] = field(default_factory=list)
    ctls: list[tuple[str, str]] = field(default_factory=list)
    skip_after: str | None = None
    skip: int = 0
    chain: Rule | None = None
    chained: bool = False
    msg: str | None = None
    logdata: str | None = None
    tags: list[str] = field(default_factory=list)
    severity: int | None = None
    disruptive: str | None = None
    log: bool = True
    ver: str | None = None
    marker: str | None = None
    paranoia: int = 0
    disabled: str | None = None
    fast_tx: tuple[str, bool, str] | None = None
    const: bool | None = None

    def links(self) -> list[Rule]:
        """This rule and the rules chained after it."""
        out: list[Rule] = []
        r: Rule | None = self
        while r is not None:
            out.append(r)
            r = r.chain
        return out

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"
