"""Run go-ftw regression YAML (the OWASP CRS test format) in-process against a :class:`WebRuleEngine`.

Each test's stages are turned into :class:`HttpRequest` s (``method``, ``uri``, ``version``, ``headers``,
``data``, ``encoded_request``/``raw_request``, ``autocomplete_headers``), inspected, and the matched rule
ids compared with ``output.log.expect_ids`` / ``no_expect_ids`` (and the older ``log_contains`` /
``no_log_contains`` forms, whose ``id "N"`` patterns are read as ids). Tests that check only what an
in-process engine has no notion of (HTTP status, response bodies, server errors) and tests listed in the
overrides file are counted as not applicable or as known failures, never silently dropped.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fsbrain.core.errors import PolicyError
from fsbrain.domains.web.request import HttpRequest, parse_raw_request, text_lossless

DEFAULT_OVERRIDES = Path(__file__).resolve().parent.parent / "crs_overrides.yaml"
_ID_RX = re.compile(r'id "(\d+)"')
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(slots=True)
class FtwCase:
    """One go-ftw test: ``<rule_id>-<test_id>``, its file and stages."""

    name: str
    file: str
    group: str
    stages: list[dict[str, Any]]


@dataclass(slots=True)
class FtwResult:
    """Outcome of one test: ``passed``, ``failed``, ``known_failure`` or ``not_applicable``."""

    name: str
    group: str
    status: str
    reason: str = ""
    missing: list[int] = field(default_factory=list)
    unexpected: list[int] = field(default_factory=list)


@dataclass
class Overrides:
    """The overrides file: engine setup for the suite and every known difference with its reason."""

    setup: dict[str, Any] = field(default_factory=dict)
    groups: dict[str, str] = field(default_factory=dict)
    not_applicable: dict[str, str] = field(default_factory=dict)
    known_failures: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path = DEFAULT_OVERRIDES) -> Overrides:
        """Load the overrides YAML.

        Raises:
            PolicyError: malformed file.
        """
        try:
            data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise PolicyError(f"cannot read CRS overrides: {exc}", source=str(path)) from exc
        if not isinstance(data, dict):
            raise PolicyError("overrides file must be a mapping", source=str(path))
        return cls(setup=dict(data.get("setup") or {}), groups=dict(data.get("groups") or {}),
                   not_applicable={str(k): str(v) for k, v in (data.get("not_applicable") or {}).items()},
                   known_failures={str(k): str(v) for k, v in (data.get("known_failures") or {}).items()})


def load_cases(tests_dir: Path) -> Iterator[FtwCase | FtwResult]:
    """Yield every test case under ``tests_dir`` (a YAML file that cannot be read yields a failed result)."""
    for path in sorted(tests_dir.rglob("*.yaml")):
        group = path.parent.name
        try:
            doc = yaml.load(path.read_bytes(), Loader=_Loader)
        except yaml.YAMLError as exc:
            yield FtwResult(path.stem, group, "failed", f"YAML error: {str(exc)[:120]}")
            continue
        if not isinstance(doc, dict):
            continue
        rule_id = doc.get("rule_id") or path.stem
        for i, test in enumerate(doc.get("tests") or [], 1):
            tid = test.get("test_id", i) if isinstance(test, dict) else i
            stages = [s.get("stage", s) for s in (test.get("stages") or [])] if isinstance(test, dict) else []
            yield FtwCase(f"{rule_id}-{tid}", str(path), group, stages)


def stage_request(inp: dict[str, Any]) -> HttpRequest:
    """Translate a go-ftw stage ``input`` into an :class:`HttpRequest`."""
    if inp.get("encoded_request"):
        raw = base64.b64decode(str(inp["encoded_request"]))
        return parse_raw_request(raw, remote_addr="127.0.0.1")
    if inp.get("raw_request"):
        raw_text = inp["raw_request"]
        raw = raw_text.encode("utf-8", "surrogateescape") if isinstance(raw_text, str) else bytes(raw_text)
        return parse_raw_request(raw, remote_addr="127.0.0.1")
    headers_in = inp.get("headers") or {}
    headers: list[tuple[str, str]] = []
    if isinstance(headers_in, dict):
        headers = [(str(k), "" if v is None else str(v)) for k, v in headers_in.items()]
    elif isinstance(headers_in, list):
        for h in headers_in:
            if isinstance(h, dict):
                headers.append((str(h.get("name", "")), str(h.get("value", ""))))
    data = inp.get("data")
    if isinstance(data, list):
        data = "\r\n".join(str(x) for x in data)
    body = b"" if data is None else (data if isinstance(data, bytes) else str(data).encode("utf-8"))
    if inp.get("autocomplete_headers", True):
        names = {k.lower() for k, _ in headers}
        if body and "content-length" not in names and "transfer-encoding" not in names:
            headers.append(("Content-Length", str(len(body))))
    uri = inp.get("uri", "/")
    uri = "/" if uri is None else str(uri)
    return HttpRequest(method=str(inp.get("method") or "GET"), uri=text_lossless(uri.encode("utf-8")),
                       protocol=str(inp.get("version") or "HTTP/1.1"), headers=headers, body=body,
                       remote_addr="127.0.0.1")


def _expectations(out: dict[str, Any]) -> tuple[set[int], set[int], str | None]:
    """(expected ids, forbidden ids, why not applicable) of a stage's ``output``."""
    log = out.get("log") or {}
    expect = {int(x) for x in (log.get("expect_ids") or [])}
    forbid = {int(x) for x in (log.get("no_expect_ids") or [])}
    for key, target in (("log_contains", expect), ("no_log_contains", forbid)):
        val = out.get(key) or log.get(key)
        if val:
            ids = _ID_RX.findall(str(val))
            if not ids:
                return expect, forbid, f"{key} without a rule id"
            target.update(int(i) for i in ids)
    for key in ("match_regex", "no_match_regex"):
        val = log.get(key) or out.get(key)
        if val:
            ids = _ID_RX.findall(str(val).replace("\\", ""))
            if not ids:
                return expect, forbid, f"log {key} without a rule id"
            (expect if key == "match_regex" else forbid).update(int(i) for i in ids)
    if not expect and not forbid:
        if out.get("expect_error"):
            return expect, forbid, "expects a server/transport error"
        if out.get("status") is not None or out.get("response_contains"):
            return expect, forbid, "checks only the HTTP status or response"
        return expect, forbid, "no log expectation"
    return expect, forbid, None


def run_case(engine: Any, case: FtwCase) -> FtwResult:
    """Run all stages of one test."""
    missing: list[int] = []
    unexpected: list[int] = []
    checked = False
    for stage in case.stages:
        inp = stage.get("input") or {}
        out = stage.get("output") or {}
        expect, forbid, na = _expectations(out)
        if na is not None:
            continue
        checked = True
        verdict = engine.inspect(stage_request(inp))
        got = set(verdict.rule_ids)
        missing += sorted(expect - got)
        unexpected += sorted(forbid & got)
    if not checked:
        na = next((_expectations(s.get("output") or {})[2] for s in case.stages), "no stages")
        return FtwResult(case.name, case.group, "not_applicable", na or "no stages")
    status = "passed" if not missing and not unexpected else "failed"
    return FtwResult(case.name, case.group, status, missing=missing, unexpected=unexpected)


def run_suite(engine: Any, tests_dir: Path, overrides: Overrides | None = None) -> list[FtwResult]:
    """Run every test under ``tests_dir``; overrides turn listed tests into not-applicable / known failures."""
    ov = overrides or Overrides()
    results: list[FtwResult] = []
    for item in load_cases(tests_dir):
        if isinstance(item, FtwResult):
            results.append(item)
            continue
        if item.group in ov.groups:
            results.append(FtwResult(item.name, item.group, "not_applicable", ov.groups[item.group]))
            continue
        if item.name in ov.not_applicable:
            results.append(FtwResult(item.name, item.group, "not_applicable", ov.not_applicable[item.name]))
            continue
        res = run_case(engine, item)
        if item.name in ov.known_failures:
            if res.status == "failed":
                res.status, res.reason = "known_failure", ov.known_failures[item.name]
            elif res.status == "passed":
                res.reason = "listed as a known failure but passes (remove it from the overrides)"
        results.append(res)
    return results


def summarize(results: list[FtwResult]) -> dict[str, Any]:
    """Counts and pass rate (passed / applicable, applicable = passed + failed + known failures) per group."""
    groups: dict[str, dict[str, int]] = {}
    for r in results:
        g = groups.setdefault(r.group, {"passed": 0, "failed": 0, "known_failure": 0, "not_applicable": 0})
        g[r.status] += 1
    total = {"passed": 0, "failed": 0, "known_failure": 0, "not_applicable": 0}
    for g in groups.values():
        for k in total:
            total[k] += g[k]
        applicable = g["passed"] + g["failed"] + g["known_failure"]
        g["applicable"] = applicable  # type: ignore[assignment]
        g["pass_rate"] = round(g["passed"] / applicable, 4) if applicable else None  # type: ignore[assignment]
    applicable = total["passed"] + total["failed"] + total["known_failure"]
    return {"groups": dict(sorted(groups.items())), "total": {
        **total, "applicable": applicable,
        "pass_rate": round(total["passed"] / applicable, 4) if applicable else None}}


def engine_for_suite(rules_dir: Path, overrides: Overrides) -> Any:
    """A CRS engine configured as the regression suite expects (paranoia, TX settings from ``setup``)."""
    from fsbrain.domains.web.seclang.engine import WebRuleEngine

    setup = overrides.setup
    return WebRuleEngine.from_crs(rules_dir, paranoia=int(setup.get("paranoia", 4)),
                                  tx=dict(setup.get("tx") or {}),
                                  rule_engine=str(setup.get("rule_engine", "DetectionOnly")))
