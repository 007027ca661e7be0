"""NetFlow v9 / IPFIX templates: parsing (with the ``netflow`` package), caching and vectorised decoding.

Templates are cached per *(exporter address, source id / observation domain)*, as RFC 3954 and RFC 7011
require: two routers may use the same template id for different layouts. A template of fixed-length
fields becomes a numpy dtype, so a data flowset of any size decodes in a handful of vector operations;
IPFIX templates with variable-length fields fall back to a per-record loop.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Information elements the flow pillar reads (NetFlow v9 and IPFIX share these numbers).
F_BYTES, F_PKTS, F_PROTO, F_FLAGS, F_SPORT, F_SRC, F_DPORT, F_DST = 1, 2, 4, 6, 7, 8, 11, 12
F_LAST, F_FIRST, F_OUT_BYTES, F_OUT_PKTS = 21, 22, 23, 24
F_SRC6, F_DST6, F_SAMPLING_INTERVAL, F_SAMPLER_ID, F_SAMPLER_RANDOM = 27, 28, 34, 48, 50
F_ICMP_TYPE, F_TOTAL_BYTES, F_TOTAL_PKTS = 32, 85, 86
F_START_S, F_END_S, F_START_MS, F_END_MS, F_SYSINIT_MS = 150, 151, 152, 153, 160
F_SELECTOR_ID, F_PKT_INTERVAL, F_SAMPLING_SIZE, F_SAMPLING_POP = 302, 305, 309, 310
F_IPFIX_ICMP_TYPE_CODE = 139

VARIABLE = 65535
MAX_TEMPLATES_PER_KEY = 1024


@dataclass(slots=True)
class Template:
    """One decoded template.

    Args:
        template_id: 256..65535.
        fields: ``(field id, length, enterprise number)`` in wire order (scope fields first).
        options: true for an options template.
    """

    template_id: int
    fields: tuple[tuple[int, int, int], ...]
    options: bool = False
    dtype: np.dtype | None = None
    record_len: int = 0

    def __post_init__(self) -> None:
        self.dtype, self.record_len = _layout(tuple(length for _, length, _ in self.fields))

    def index(self, field_id: int) -> int:
        """Position of the first standard (enterprise 0) field ``field_id``, or -1."""
        for i, (fid, _, ent) in enumerate(self.fields):
            if fid == field_id and ent == 0:
                return i
        return -1


@functools.lru_cache(maxsize=4096)
def _layout(lengths: tuple[int, ...]) -> tuple[np.dtype | None, int]:
    """numpy dtype and record length for fixed field lengths (None, 0 with a variable-length field)."""
    if any(length == VARIABLE for length in lengths):
        return None, 0
    formats = [{1: "u1", 2: ">u2", 4: ">u4", 8: ">u8"}.get(length, f"V{length}") for length in lengths]
    total = sum(lengths)
    if not total:
        return None, 0
    return np.dtype({"names": [f"f{i}" for i in range(len(lengths))], "formats": formats}), total


def _column(arr: np.ndarray, tpl: Template, i: int) -> np.ndarray:
    """Field ``i`` of decoded records as uint64 (big-endian bytes of odd lengths folded)."""
    length = tpl.fields[i][1]
    col = arr[f"f{i}"]
    if length in (1, 2, 4, 8):
        return col.astype(np.uint64)
    raw = np.frombuffer(col.tobytes(), dtype=np.uint8).reshape(len(arr), length)
    if length > 8:
        raw = raw[:, length - 8 :]  # keep the low 64 bits
    out = np.zeros(len(arr), dtype=np.uint64)
    for k in range(raw.shape[1]):
        out = (out << np.uint64(8)) | raw[:, k].astype(np.uint64)
    return out


def decode_fixed(tpl: Template, body: bytes) -> dict[int, np.ndarray]:
    """Decode the records of a data flowset body with a fixed-length template.

    Returns:
        field id -> uint64 column, for every standard field present (first occurrence), plus ``-1`` ->
        the record count as a one-element array. Trailing padding shorter than a record is ignored.
    """
    assert tpl.dtype is not None
    n = len(body) // tpl.record_len
    arr = np.frombuffer(body, dtype=tpl.dtype, count=n)
    cols: dict[int, np.ndarray] = {-1: np.array([n])}
    for i, (fid, length, ent) in enumerate(tpl.fields):
        if ent or fid in cols or fid in (F_SRC6, F_DST6):
            if fid in (F_SRC6, F_DST6) and fid not in cols:
                cols[fid] = np.ones(n, dtype=np.uint64)  # presence marker only
            continue
        if length <= 8 or fid in (F_SRC, F_DST):
            cols[fid] = _column(arr, tpl, i)
    return cols


def decode_variable(tpl: Template, body: bytes) -> dict[int, np.ndarray]:
    """Decode an IPFIX data set whose template has variable-length fields (RFC 7011 §7), record by record.

    Raises:
        ValueError: a record runs past the end of the set.
    """
    wanted: dict[int, list[int]] = {}
    offset, n = 0, 0
    min_len = sum(1 if length == VARIABLE else length for _, length, _ in tpl.fields)
    while len(body) - offset >= max(min_len, 1):
        seen: set[int] = set()
        for fid, length, ent in tpl.fields:
            if length == VARIABLE:
                if offset >= len(body):
                    raise ValueError("variable-length field past end of set")
                length = body[offset]
                offset += 1
                if length == 255:
                    if offset + 2 > len(body):
                        raise ValueError("variable-length field past end of set")
                    length = struct.unpack_from("!H", body, offset)[0]
                    offset += 2
            if offset + length > len(body):
                raise ValueError("field past end of set")
            if not ent and fid not in seen and length <= 8:
                wanted.setdefault(fid, [0] * n).append(int.from_bytes(body[offset : offset + length], "big"))
                seen.add(fid)
            elif not ent and fid in (F_SRC6, F_DST6) and fid not in seen:
                wanted.setdefault(fid, [0] * n).append(1)
                seen.add(fid)
            offset += length
        n += 1
        for vals in wanted.values():
            if len(vals) < n:
                vals.append(0)
    cols = {fid: np.array(vals, dtype=np.uint64) for fid, vals in wanted.items()}
    cols[-1] = np.array([n])
    return cols


def parse_v9_templates(flowset: bytes, options: bool) -> list[Template]:
    """Parse a v9 template (id 0) or options template (id 1) flowset with the ``netflow`` package.

    Raises:
        ValueError: the flowset is malformed (any parser failure is re-raised as ValueError).
    """
    from netflow.v9 import V9OptionsTemplateFlowSet, V9TemplateFlowSet

    try:
        if options:
            ofs = V9OptionsTemplateFlowSet(flowset)
            out = []
            for tid, rec in ofs.templates.items():
                flds = [(t, ln, 0) for t, ln in rec.scope_fields.items()]
                flds += [(t, ln, 0) for t, ln in rec.option_fields.items()]
                out.append(Template(tid, tuple(flds), options=True))
            return _checked(out)
        tfs = V9TemplateFlowSet(flowset)
        # netflow maps unknown field types to 0 but keeps lengths, which is all decoding needs
        return _checked([Template(tid, tuple((f.field_type, f.field_length, 0) for f in rec.fields))
                         for tid, rec in tfs.templates.items()])
    except (struct.error, ValueError, IndexError, KeyError, TypeError) as exc:
        raise ValueError(f"malformed v9 template flowset: {exc!r}") from exc


def parse_ipfix_templates(tset: bytes, options: bool) -> list[Template]:
    """Parse an IPFIX template set (id 2) or options template set (id 3) with the ``netflow`` package.

    Template withdrawals (field count 0) are returned as templates with no fields.

    Raises:
        ValueError: the set is malformed.
    """
    from netflow.ipfix import IPFIXOptionsTemplateRecord, IPFIXTemplateRecord

    out: list[Template] = []
    offset, end = 4, len(tset)
    try:
        while end - offset >= 4:
            tid, count = struct.unpack_from("!HH", tset, offset)
            if tid == 0 and count == 0:  # padding
                break
            if count == 0:
                out.append(Template(tid, (), options=options))
                offset += 4
                continue
            rec: Any = (IPFIXOptionsTemplateRecord if options else IPFIXTemplateRecord)(tset[offset:])
            flds: list[Any] = list(getattr(rec, "scope_fields", [])) + list(rec.fields)
            out.append(Template(tid, tuple((f.id, f.length, getattr(f, "enterprise_number", 0)) for f in flds),
                                options=options))
            offset += rec.get_length()
    except Exception as exc:  # the package raises many private exception types on bad input
        raise ValueError(f"malformed IPFIX template set: {exc!r}") from exc
    return _checked(out, allow_empty=True)


def _checked(templates: list[Template], allow_empty: bool = False) -> list[Template]:
    for t in templates:
        if t.template_id < 256:
            raise ValueError(f"template id {t.template_id} below 256")
        if not t.fields and not allow_empty:
            raise ValueError(f"template {t.template_id} has no fields")
        if t.fields and t.dtype is None and t.record_len == 0 and not any(ln == VARIABLE for _, ln, _ in t.fields):
            raise ValueError(f"template {t.template_id} has zero record length")
    return templates


@dataclass(slots=True)
class ExporterState:
    """What one (exporter, domain) has told us: templates, sampling, system init time."""

    templates: dict[int, Template] = field(default_factory=dict)
    sampling: int = 0  # exporter-wide rate from options data (0 = unknown)
    sampler_rates: dict[int, int] = field(default_factory=dict)
    sysinit_ms: int = 0

    def learn_options(self, cols: dict[int, np.ndarray]) -> None:
        """Pick sampling rates and the system init time out of an options data flowset."""
        n = int(cols[-1][0])
        for i in range(n):
            rate = 0
            for fid in (F_SAMPLING_INTERVAL, F_SAMPLER_RANDOM, F_PKT_INTERVAL):
                if fid in cols and int(cols[fid][i]) > 0:
                    rate = int(cols[fid][i])
                    break
            if not rate and F_SAMPLING_POP in cols and F_SAMPLING_SIZE in cols and int(cols[F_SAMPLING_SIZE][i]):
                rate = max(1, int(cols[F_SAMPLING_POP][i]) // int(cols[F_SAMPLING_SIZE][i]))
            if rate:
                sid = F_SAMPLER_ID if F_SAMPLER_ID in cols else F_SELECTOR_ID
                if sid in cols:
                    self.sampler_rates[int(cols[sid][i])] = rate
                    if len(self.sampler_rates) > 256:
                        self.sampler_rates.pop(next(iter(self.sampler_rates)))
                self.sampling = rate
            if F_SYSINIT_MS in cols:
                self.sysinit_ms = int(cols[F_SYSINIT_MS][i])

    def add(self, tpl: Template) -> bool:
        """Store (or withdraw, when it has no fields) a template; true when it was new or changed."""
        if not tpl.fields:
            return self.templates.pop(tpl.template_id, None) is not None
        old = self.templates.get(tpl.template_id)
        if old is not None and old.fields == tpl.fields and old.options == tpl.options:
            return False  # a periodic refresh: keep the object (batch decoding groups by it)
        if old is None and len(self.templates) >= MAX_TEMPLATES_PER_KEY:
            self.templates.pop(next(iter(self.templates)))
        self.templates[tpl.template_id] = tpl
        return old is None or old.fields != tpl.fields
