"""One HTTP request, parsed the way ModSecurity / CRS see it.

:class:`HttpRequest` holds what arrived (method, URI, protocol, ordered headers with duplicates, body
bytes, client address) and derives, lazily and once, everything rules inspect: path, query string,
cookies, ``ARGS_GET`` / ``ARGS_POST`` / ``ARGS``, ``FILES`` and multipart part headers, and the body
flattened by its processor (URL-encoded, multipart, JSON as ``json.a.b`` names, XML text and attributes).
Nothing here raises on malformed input: invalid percent-encoding is kept as is, broken JSON / XML /
multipart set :attr:`ParsedBody.error` (ModSecurity's ``REQBODY_ERROR``), and every limit exceeded is
named in :attr:`HttpRequest.limits_hit`.

Derived values are ``bytes`` (the engine matches bytes, as ModSecurity does); use :func:`text` for a
display string.

>>> r = HttpRequest.from_dict({"method": "POST", "uri": "/login?next=%2Fhome",
...     "headers": {"Content-Type": "application/json"}, "body": '{"user": {"name": "bob"}}'})
>>> r.args_get, r.body_args()
([(b'next', b'/home')], [(b'json.user.name', b'bob')])
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from fsbrain.core.errors import InputError
from fsbrain.domains.web.speedups import load as _load_speedups
from fsbrain.domains.web.transforms import url_decode

_fast = _load_speedups()  # compiled parsing helpers (same results), or None

__all__ = ["HttpRequest", "ParsedBody", "RequestLimits", "UploadedFile", "parse_raw_request", "text"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestLimits:
    """Inspection limits; what lies beyond a limit is not inspected and the limit is named in the verdict.

    Args:
        max_uri_bytes: longest request URI inspected.
        max_header_bytes: total size of all header names and values.
        max_headers: number of header lines.
        max_body_bytes: request body bytes inspected (ModSecurity's ProcessPartial).
        max_args: number of arguments (query + body) kept.
        max_json_depth: deepest JSON nesting flattened.
        max_parts: multipart parts parsed.
    """

    max_uri_bytes: int = 16384
    max_header_bytes: int = 65536
    max_headers: int = 200
    max_body_bytes: int = 1_048_576
    max_args: int = 1000
    max_json_depth: int = 64
    max_parts: int = 256


DEFAULT_LIMITS = RequestLimits()


class cached_property:  # noqa: N801 - drop-in for functools.cached_property
    """``functools.cached_property`` without its lock (Python 3.11 takes an RLock on every first access,
    several microseconds per request here): values are pure functions of the request, so two threads
    racing on a first access at worst compute the same value twice."""

    def __init__(self, func: Any) -> None:
        self.func = func
        self.attrname = func.__name__
        self.__doc__ = func.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.attrname = name

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        value = instance.__dict__[self.attrname] = self.func(instance)
        return value


if _fast is not None and hasattr(_fast, "cached_property"):
    cached_property = _fast.cached_property  # type: ignore[misc,assignment]  # same, with __get__ compiled


def to_bytes_py(value: str | bytes) -> bytes:
    """Bytes of a str, losslessly for strings made by :func:`text` of arbitrary bytes."""
    if isinstance(value, bytes):
        return value
    try:
        return value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace")


# the compiled twin when built (the same bytes; an ASCII str without a codec lookup): request parsing calls it
# several times per request (request line, JSON leaves and their names, TX scalars)
to_bytes = _fast.to_bytes if _fast is not None and hasattr(_fast, "to_bytes") else to_bytes_py


def text(value: bytes) -> str:
    """A display / JSON-safe string of bytes (UTF-8, invalid bytes replaced)."""
    return value.decode("utf-8", "replace")


@dataclass(kw_only=True)
class HttpRequest:
    """An HTTP request as received.

    Args:
        method: request method, e.g. ``GET``.
        uri: request target as sent (origin form ``/p?q`` or absolute form ``http://h/p?q``).
        protocol: e.g. ``HTTP/1.1``.
        headers: (name, value) pairs in arrival order, duplicates kept.
        body: the request body.
        remote_addr: client IP address.
        limits: inspection limits.
        body_truncated: set by parsers when the body was cut at ``limits.max_body_bytes``.
        malformed: problems found while parsing raw text (bad request line, header without colon...).
    """

    method: str = "GET"
    uri: str = "/"
    protocol: str = "HTTP/1.1"
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    remote_addr: str = ""
    limits: RequestLimits = DEFAULT_LIMITS
    malformed: list[str] = field(default_factory=list)

    # ---- construction -------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any], *, limits: RequestLimits = DEFAULT_LIMITS) -> HttpRequest:
        """Build from ``{"method", "uri", "headers", "body", "protocol", "remote_addr", "body_b64"}``.

        ``headers`` is a mapping or a list of ``[name, value]`` pairs; ``body`` a string (UTF-8) or
        bytes; ``body_b64`` a base64 body for binary content.

        Raises:
            InputError: a field has the wrong type.
        """
        if not isinstance(data, dict):
            raise InputError(f"an HTTP request must be a JSON object, got {type(data).__name__}")
        raw_headers = data.get("headers") or []
        if isinstance(raw_headers, dict):
            pairs: Any = raw_headers.items()
        elif isinstance(raw_headers, list):
            pairs = raw_headers
        else:
            raise InputError("request 'headers' must be an object or a list of [name, value] pairs")
        headers = []
        for h in pairs:  # one pass: check the pair, then keep it (a dict's items always pass the check)
            if not isinstance(h, (list, tuple)) or len(h) != 2:
                raise InputError(f"request header must be a [name, value] pair, got {h!r:.80}")
            k, v = h
            if type(k) is str and type(v) is str:  # the common case: text name and value, kept as they are
                headers.append((k, v))
            elif isinstance(v, list):
                headers.extend((str(k), str(x)) for x in v)
            else:
                headers.append((str(k), "" if v is None else str(v)))
        body: Any = data.get("body") or b""
        if data.get("body_b64"):
            try:
                body = base64.b64decode(str(data["body_b64"]), validate=False)
            except (ValueError, TypeError) as exc:
                raise InputError(f"request 'body_b64' is not base64: {exc}") from exc
        if isinstance(body, dict | list):
            import json

            body = json.dumps(body)
        if not isinstance(body, str | bytes):
            raise InputError(f"request 'body' must be a string, got {type(body).__name__}")
        return cls(method=str(data.get("method") or "GET"), uri=str(data.get("uri") or "/"),
                   protocol=str(data.get("protocol") or data.get("version") or "HTTP/1.1"),
                   headers=headers, body=to_bytes(body), remote_addr=str(data.get("remote_addr") or ""),
                   limits=limits)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-lines form accepted by :meth:`from_dict`."""
        out: dict[str, Any] = {"method": self.method, "uri": self.uri, "protocol": self.protocol,
                               "headers": [list(h) for h in self.headers], "remote_addr": self.remote_addr}
        try:
            out["body"] = self.body.decode("utf-8")
        except UnicodeDecodeError:
            out["body_b64"] = base64.b64encode(self.body).decode("ascii")
        return out

    # ---- request line and URI -----------------------------------------------------------------------
    @cached_property
    def uri_bytes(self) -> bytes:
        """The URI as bytes, cut at ``max_uri_bytes`` (the cut is named in :attr:`limits_hit`)."""
        u = to_bytes(self.uri)
        if len(u) > self.limits.max_uri_bytes:
            self._hit("max_uri_bytes")
            return u[: self.limits.max_uri_bytes]
        return u

    @cached_property
    def _split_uri(self) -> tuple[bytes, bytes]:
        u = self.uri_bytes
        if u[:7].lower() == b"http://" or u[:8].lower() == b"https://":
            rest = u.split(b"://", 1)[1]
            slash = rest.find(b"/")
            u = rest[slash:] if slash >= 0 else b"/"
        path, _, query = u.partition(b"?")
        return path.partition(b"#")[0], query.partition(b"#")[0]

    @property
    def path(self) -> bytes:
        """Raw path (percent-encoding kept)."""
        return self._split_uri[0]

    @property
    def query_string(self) -> bytes:
        """Raw query string, without ``?``."""
        return self._split_uri[1]

    @cached_property
    def filename(self) -> bytes:
        """``REQUEST_FILENAME``: the percent-decoded path."""
        p = self.path
        return url_decode(p.replace(b"+", b"%2B")) if 37 in p else p

    @property
    def basename(self) -> bytes:
        """``REQUEST_BASENAME``: the last path segment."""
        return self.filename.rpartition(b"/")[2]

    @property
    def request_line(self) -> bytes:
        """``METHOD URI PROTOCOL``, with the URI cut at ``max_uri_bytes`` as in every other variable."""
        return b"%s %s %s" % (to_bytes(self.method), self.uri_bytes, to_bytes(self.protocol))

    # ---- headers and cookies ------------------------------------------------------------------------
    @cached_property
    def header_pairs(self) -> list[tuple[bytes, bytes]]:
        """Headers as bytes, cut at the header limits."""
        if _fast is not None and type(self.headers) is list:
            pairs, hit = _fast.header_pairs(self.headers, self.limits.max_headers, self.limits.max_header_bytes)
            if hit is not None:
                self._hit(hit)
            return pairs  # type: ignore[no-any-return]
        return self._header_pairs_py()

    def _header_pairs_py(self) -> list[tuple[bytes, bytes]]:
        """:attr:`header_pairs` in Python (the reference of the compiled one)."""
        out: list[tuple[bytes, bytes]] = []
        total = 0
        for i, (k, v) in enumerate(self.headers):
            if i >= self.limits.max_headers:
                self._hit("max_headers")
                break
            kb, vb = to_bytes(k), to_bytes(v)
            total += len(kb) + len(vb)
            if total > self.limits.max_header_bytes:
                self._hit("max_header_bytes")
                break
            out.append((kb, vb))
        return out

    def header(self, name: str) -> str | None:
        """The first value of a header (case-insensitive name), or None."""
        n = name.lower()
        for k, v in self.headers:
            if k.lower() == n:
                return v
        return None

    @cached_property
    def content_type(self) -> bytes:
        for k, v in self.header_pairs:
            if len(k) == 12 and k.lower() == b"content-type":  # (the length first: most names are not lowered)
                return v
        return b""

    @cached_property
    def cookies(self) -> list[tuple[bytes, bytes]]:
        """``REQUEST_COOKIES`` from every Cookie header (values not decoded, as ModSecurity)."""
        if _fast is not None:
            return _fast.cookies(self.header_pairs)  # type: ignore[no-any-return]
        return _cookies_py(self.header_pairs)

    # ---- arguments and body -------------------------------------------------------------------------
    @cached_property
    def args_get(self) -> list[tuple[bytes, bytes]]:
        """``ARGS_GET``: decoded query-string arguments."""
        args, over = parse_urlencoded(self.query_string, self.limits.max_args)
        if over:
            self._hit("max_args")
        return args

    @cached_property
    def inspected_body(self) -> bytes:
        """The body cut at ``limits.max_body_bytes``."""
        if len(self.body) > self.limits.max_body_bytes:
            self._hit("max_body_bytes")
            return self.body[: self.limits.max_body_bytes]
        return self.body

    @cached_property
    def default_processor(self) -> str | None:
        """Body processor chosen from Content-Type (ModSecurity's recommended configuration)."""
        ct = self.content_type.lower()
        if not ct:  # (most requests: a GET without a body)
            return None
        if ct.startswith(b"multipart/form-data"):
            return "MULTIPART"
        media = ct.partition(b";")[0]
        if b"json" in media:
            return "JSON"
        if ct.startswith((b"text/xml", b"application/xml")) or b"+xml" in media:
            return "XML"
        if ct.startswith(b"application/x-www-form-urlencoded"):
            return "URLENCODED"
        return None

    def parsed_body(self, processor: str | None = None) -> ParsedBody:
        """The body parsed by ``processor`` (default: chosen from Content-Type); cached per processor."""
        proc = processor or self.default_processor
        cache = self.__dict__.setdefault("_bodies", {})
        if proc not in cache:
            pb = parse_body(self.inspected_body, proc, self.content_type, self.limits,
                            max_args=max(0, self.limits.max_args - len(self.args_get)))
            for lim in pb.limits_hit:
                self._hit(lim)
            cache[proc] = pb
        return cache[proc]  # type: ignore[no-any-return]

    def body_args(self, processor: str | None = None) -> list[tuple[bytes, bytes]]:
        """``ARGS_POST`` for a processor."""
        return self.parsed_body(processor).args

    @property
    def args_post(self) -> list[tuple[bytes, bytes]]:
        """``ARGS_POST`` with the default processor."""
        return self.body_args()

    @property
    def args(self) -> list[tuple[bytes, bytes]]:
        """``ARGS``: query arguments then body arguments."""
        return self.args_get + self.args_post

    @property
    def files(self) -> list[UploadedFile]:
        """Uploaded files (multipart parts with a filename)."""
        return self.parsed_body().files

    # ---- limits -------------------------------------------------------------------------------------
    @cached_property
    def limits_hit(self) -> list[str]:
        """Names of the :class:`RequestLimits` fields exceeded (and parse problems such as ``malformed``)."""
        return []

    def _hit(self, name: str) -> None:
        if name not in self.limits_hit:
            self.limits_hit.append(name)


def _cookies_py(header_pairs: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """:attr:`HttpRequest.cookies` in Python (the reference of the compiled one)."""
    out: list[tuple[bytes, bytes]] = []
    for k, v in header_pairs:
        if k.lower() != b"cookie":
            continue
        for part in v.split(b";"):
            part = part.strip(b" \t")
            if not part:
                continue
            name, _, value = part.partition(b"=")
            out.append((name, value))
    return out


def _dechunk(data: bytes) -> tuple[bytes, bool]:
    out = bytearray()
    pos = 0
    while pos < len(data):
        eol = data.find(b"\n", pos)
        if eol < 0:
            return bytes(out), False
        size_txt = data[pos:eol].split(b";")[0].strip()
        try:
            size = int(size_txt, 16)
        except ValueError:
            return bytes(out), False
        if size == 0:
            return bytes(out), True
        out += data[eol + 1: eol + 1 + size]
        pos = eol + 1 + size
        if data[pos:pos + 2] == b"\r\n":
            pos += 2
        elif data[pos:pos + 1] == b"\n":
            pos += 1
    return bytes(out), False


def parse_raw_request(data: bytes, *, remote_addr: str = "",
                      limits: RequestLimits = DEFAULT_LIMITS) -> HttpRequest:
    """Parse raw HTTP/1.x request text. Never raises: problems go to ``HttpRequest.malformed``.

    >>> r = parse_raw_request(b"GET /a?x=1 HTTP/1.1\\r\\nHost: h\\r\\nCookie: s=2\\r\\n\\r\\n")
    >>> r.method, r.path, r.cookies
    ('GET', b'/a', [(b's', b'2')])
    """
    malformed: list[str] = []
    sep = data.find(b"\r\n\r\n")
    if sep >= 0:
        head, body = data[:sep], data[sep + 4:]
    else:
        sep = data.find(b"\n\n")
        head, body = (data[:sep], data[sep + 2:]) if sep >= 0 else (data, b"")
    lines = head.replace(b"\r\n", b"\n").split(b"\n")
    request_line = lines[0] if lines else b""
    parts = request_line.split(b" ")
    parts = [p for p in parts if p]
    if len(parts) == 3:
        method, uri, protocol = parts
    elif len(parts) == 2:
        (method, uri), protocol = parts, b""
        malformed.append("request line has no protocol")
    else:
        method, uri, protocol = (parts[0] if parts else b""), b"", b""
        malformed.append(f"request line has {len(parts)} fields")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t") and headers:
            k, v = headers[-1]
            headers[-1] = (k, v + " " + text_lossless(line.strip()))
            continue
        name, colon, value = line.partition(b":")
        if not colon:
            if line.strip():
                malformed.append("header line without a colon")
            continue
        headers.append((text_lossless(name), text_lossless(value.strip(b" \t"))))
    te = next((v for k, v in headers if k.lower() == "transfer-encoding"), "")
    cl = next((v for k, v in headers if k.lower() == "content-length"), None)
    if "chunked" in te.lower():
        body, complete = _dechunk(body)
        if not complete:
            malformed.append("incomplete chunked body")
    elif cl is not None:
        try:
            n = int(cl)
            body = body[:n] if n >= 0 else body
        except ValueError:
            malformed.append("invalid Content-Length")
    return HttpRequest(method=text_lossless(method), uri=text_lossless(uri), protocol=text_lossless(protocol),
                       headers=headers, body=body, remote_addr=remote_addr, limits=limits, malformed=malformed)


def text_lossless(value: bytes) -> str:
    """A str that :func:`to_bytes` turns back into exactly ``value``."""
    return value.decode("utf-8", "surrogateescape")


# ---- body processors (ModSecurity's URLENCODED, MULTIPART, JSON, XML) ----------------------------------
@dataclass(frozen=True, slots=True)
class UploadedFile:
    """One multipart part with a filename.

    Args:
        field: form field name.
        filename: the client-supplied file name.
        content_type: the part's Content-Type.
        size: bytes of content.
    """

    field: bytes
    filename: bytes
    content_type: bytes
    size: int


@dataclass(slots=True)
class ParsedBody:
    """A body after its processor ran.

    Args:
        processor: ``URLENCODED``, ``MULTIPART``, ``JSON``, ``XML`` or None (not parsed).
        args: ``ARGS_POST`` (name, value) pairs.
        files: uploaded files.
        part_headers: ``MULTIPART_PART_HEADERS`` as (field name, header line).
        xml_text: text nodes of an XML body, in order.
        xml_attrs: attribute values of an XML body.
        error: why the processor failed (``REQBODY_ERROR``), or None.
        limits_hit: limits exceeded while parsing.
        doc: the decoded JSON document of a JSON body (the web model reads it instead of decoding the body
            again), else None.
    """

    processor: str | None
    args: list[tuple[bytes, bytes]] = field(default_factory=list)
    files: list[UploadedFile] = field(default_factory=list)
    part_headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    xml_text: list[bytes] = field(default_factory=list)
    xml_attrs: list[bytes] = field(default_factory=list)
    error: str | None = None
    limits_hit: list[str] = field(default_factory=list)
    doc: Any = None


def parse_urlencoded(data: bytes, max_args: int) -> tuple[list[tuple[bytes, bytes]], bool]:
    """Split ``a=1&b=2`` and percent/plus-decode names and values; returns (args, limit exceeded)."""
    if _fast is not None and type(data) is bytes:
        return _fast.parse_urlencoded(data, max_args)  # type: ignore[no-any-return]
    return _parse_urlencoded_py(data, max_args)


def _parse_urlencoded_py(data: bytes, max_args: int) -> tuple[list[tuple[bytes, bytes]], bool]:
    """:func:`parse_urlencoded` in Python (the reference of the compiled one)."""
    out: list[tuple[bytes, bytes]] = []
    if not data:
        return out, False
    for part in data.split(b"&"):
        if not part:
            continue
        if len(out) >= max_args:
            return out, True
        name, _, value = part.partition(b"=")
        out.append((url_decode(name), url_decode(value)))
    return out, False


def _header_param(header: bytes, name: bytes) -> bytes | None:
    """A parameter of a header value (``boundary``, ``name``, ``filename``), quoted or not."""
    low = header.lower()
    pos = 0
    while True:
        i = low.find(name, pos)
        if i < 0:
            return None
        pos = i + len(name)
        before = low[:i].rstrip(b" \t")
        if before and before[-1:] not in (b";", b","):
            continue
        rest = header[pos:].lstrip(b" \t")
        if not rest.startswith(b"="):
            continue
        rest = rest[1:].lstrip(b" \t")
        if rest.startswith(b'"'):
            out = bytearray()
            j = 1
            while j < len(rest) and rest[j:j + 1] != b'"':
                if rest[j:j + 1] == b"\\" and rest[j + 1:j + 2] in (b'"', b"\\"):
                    j += 1
                out += rest[j:j + 1]
                j += 1
            return bytes(out)
        return rest.split(b";")[0].strip(b" \t")


def _parse_multipart(body: bytes, content_type: bytes, limits: RequestLimits, max_args: int) -> ParsedBody:
    pb = ParsedBody("MULTIPART")
    boundary = _header_param(content_type, b"boundary")
    if not boundary:
        pb.error = "multipart: no boundary in Content-Type"
        return pb
    chunks = body.split(b"--" + boundary)
    if len(chunks) < 2:
        pb.error = "multipart: boundary not found in body"
        return pb
    closed = False
    for n, chunk in enumerate(chunks[1:]):
        if chunk.startswith(b"--"):
            closed = True
            break
        if n >= limits.max_parts:
            pb.limits_hit.append("max_parts")
            break
        chunk = chunk[2:] if chunk.startswith(b"\r\n") else chunk[1:] if chunk.startswith(b"\n") else chunk
        sep = chunk.find(b"\r\n\r\n")
        if sep >= 0:
            head, content = chunk[:sep], chunk[sep + 4:]
        else:
            sep = chunk.find(b"\n\n")
            if sep < 0:
                pb.error = "multipart: part without a header/body separator"
                continue
            head, content = chunk[:sep], chunk[sep + 2:]
        if content.endswith(b"\r\n"):
            content = content[:-2]
        elif content.endswith(b"\n"):
            content = content[:-1]
        lines = [ln for ln in head.replace(b"\r\n", b"\n").split(b"\n") if ln]
        disp = next((ln for ln in lines if ln.lower().startswith(b"content-disposition:")), None)
        if disp is None:
            pb.error = "multipart: part without Content-Disposition"
            continue
        name = _header_param(disp, b"name") or b""
        filename = _header_param(disp, b"filename")
        for ln in lines:
            pb.part_headers.append((name, ln))
        if filename is not None:
            ctype = next((ln.split(b":", 1)[1].strip() for ln in lines
                          if ln.lower().startswith(b"content-type:")), b"")
            pb.files.append(UploadedFile(name, filename, ctype, len(content)))
        elif len(pb.args) >= max_args:
            if "max_args" not in pb.limits_hit:
                pb.limits_hit.append("max_args")
        else:
            pb.args.append((name, content))
    if not closed and pb.error is None:
        pb.error = "multipart: final boundary missing"
    return pb


def _flatten_json(value: Any, prefix: str, depth: int, pb: ParsedBody, limits: RequestLimits,
                  max_args: int) -> None:
    if len(pb.args) >= max_args:
        if "max_args" not in pb.limits_hit:
            pb.limits_hit.append("max_args")
        return
    if isinstance(value, dict | list):
        if depth >= limits.max_json_depth:
            if "max_json_depth" not in pb.limits_hit:
                pb.limits_hit.append("max_json_depth")
            return
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for k, v in items:
            _flatten_json(v, f"{prefix}.{k}", depth + 1, pb, limits, max_args)
        return
    if value is None:
        out = b""
    elif value is True or value is False:
        out = b"true" if value else b"false"
    else:
        out = to_bytes(value) if isinstance(value, str) else str(value).encode("ascii", "replace")
    pb.args.append((to_bytes(prefix), out))


def _parse_json(body: bytes, limits: RequestLimits, max_args: int) -> ParsedBody:
    import json

    pb = ParsedBody("JSON")
    try:
        doc = json.loads(body.decode("utf-8", "surrogateescape"))
    except RecursionError:
        pb.error = "json: nesting too deep"
        pb.limits_hit.append("max_json_depth")
        return pb
    except ValueError as exc:
        pb.error = f"json: {exc}"
        return pb
    _flatten_json(doc, "json", 0, pb, limits, max_args)
    pb.doc = doc
    return pb


class _NoEntities(Exception):
    pass


def _parse_xml(body: bytes) -> ParsedBody:
    from xml.parsers import expat

    pb = ParsedBody("XML")
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    texts: list[str] = []

    def start(_name: str, attrs: dict[str, str]) -> None:
        pb.xml_attrs.extend(to_bytes(v) for v in attrs.values())

    def entity_decl(*_a: Any) -> None:
        raise _NoEntities()

    parser.StartElementHandler = start
    parser.CharacterDataHandler = texts.append
    parser.EntityDeclHandler = entity_decl
    try:
        parser.Parse(body, True)
    except _NoEntities:
        pb.error = "xml: entity declarations are not allowed"
    except (expat.ExpatError, ValueError) as exc:
        pb.error = f"xml: {exc}"
    pb.xml_text = [to_bytes(t) for t in texts]
    return pb


def parse_body(body: bytes, processor: str | None, content_type: bytes, limits: RequestLimits,
               *, max_args: int) -> ParsedBody:
    """Run one body processor. Never raises; problems are in ``ParsedBody.error``."""
    if not body or processor is None:
        return ParsedBody(processor)
    if processor == "URLENCODED":
        args, over = parse_urlencoded(body, max_args)
        return ParsedBody(processor, args=args, limits_hit=["max_args"] if over else [])
    if processor == "MULTIPART":
        return _parse_multipart(body, content_type, limits, max_args)
    if processor == "JSON":
        return _parse_json(body, limits, max_args)
    if processor == "XML":
        return _parse_xml(body)
    return ParsedBody(processor, error=f"unknown body processor {processor!r}")
