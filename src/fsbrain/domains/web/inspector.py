"""The web inspector: the rule engine and the learned model deciding together, with an explanation.

Verdict (a dict; the first five keys are the contract of ``fsbrain web inspect`` and the API)::

    {"attack": bool, "score": int, "labels": [...], "rules": [rule ids], "reasons": [Reason dicts],
     "rule_score": int, "model_score": int, "threshold": int, "paranoia": int,
     "model": [{"param", "p_attack", "class", "top_ngrams"}], "suppressed_rules": [...],
     "limits_hit": [...], "errors": [...], "latency_ms": float}

How the two engines combine (``score`` is the rules' anomaly score adjusted by the model):

* **Model adds points.** A parameter the model calls an attack with probability ``p >= 0.5`` adds
  ``int(threshold * p / model_block)`` points: alone it reaches the threshold only at ``p >= model_block``
  (default 0.85, tuned on the training split of the CRS tests and the benign corpus), but it tips a
  borderline rule match (a warning, or one PL2 rule) over. This is how obfuscated payloads that slip
  past the patterns are caught. The model scores the path, arguments, cookie values and free-form headers.
* **Model clears weak rule hits.** When the rules' score is below ``strong_score`` (default 10: a single
  critical rule) and every scoring rule matched a parameter that the model is confident is benign
  (``p < model_clear``, default 0.2), those rules' points are taken back and listed in
  ``suppressed_rules``. This cuts false positives on natural-language and JSON input. Protocol, scanner
  and header rules are never cleared: the model only judges parameter values. Nor are rules tagged
  ``fsbrain/model-cannot-clear`` (the OS-file list: ``/etc/passwd`` is a path the model may call benign) or a
  hit on a value whose only SQL is a ``--`` comment or ``@@`` variable (``1--``: digits to the model).

``attack`` is ``score >= threshold``. A rule-engine failure never drops a request: the verdict carries the
error in ``errors`` and the model decides alone (fail-open; ``strict=True`` makes it an attack instead).

>>> insp = WebInspector(paranoia=1)
>>> v = insp.inspect({"method": "GET", "uri": "/search?q=1%27%20union%20select%20password%20from%20users--"})
>>> v["attack"], "web_sqli" in v["labels"]
(True, True)
>>> insp.inspect({"method": "GET", "uri": "/search?q=%E4%BF%A1%E7%94%A8%E5%8D%A1%20%E8%BF%98%E6%AC%BE"})["attack"]
False
"""

from __future__ import annotations

import itertools
import marshal
import time
from pathlib import Path
from typing import Any

from fsbrain.core.errors import InputError
from fsbrain.domains.web import ml
from fsbrain.domains.web.request import DEFAULT_LIMITS, HttpRequest, RequestLimits

VERDICT_KEYS = ("attack", "score", "labels", "rules", "reasons")


def public_verdict(v: dict[str, Any]) -> dict[str, Any]:
    """The verdict as ``fsbrain web inspect`` and ``POST /v1/web/inspect`` give it without ``explain``: the
    five contract keys, plus ``limits_hit`` when a limit was exceeded (part of the request was then not
    inspected, so ``attack: false`` does not clear all of it; the proxy and middleware refuse such requests)."""
    out = {k: v[k] for k in VERDICT_KEYS}
    if v.get("limits_hit"):
        out["limits_hit"] = list(v["limits_hit"])
    return out

OPAQUE_PARAMS = ("password", "passwd", "pwd", "passcode", "secret", "captcha", "csrf", "token")
_NEVER_CLEARED = frozenset({"web_protocol", "web_scanner", "bot", "cc_flood"})
# A rule with this tag names exactly what it found (an OS file, a dotfile, a NoSQL operator, __proto__): the
# model, which judges a value's shape (a path is a path, JSON is JSON), does not clear it.
NO_CLEAR_TAG = "fsbrain/model-cannot-clear"
# Model probability that alone makes an attack, per paranoia level: paranoia is the sensitivity knob (as in CRS).
# PL1 0.85 and PL2 0.7 were chosen on the dev fold of the training split (scripts/web_dev_eval.py).
MODEL_BLOCK = {1: 0.85, 2: 0.7, 3: 0.6, 4: 0.5}
_PARAM_COLLECTIONS = ("ARGS", "ARGS_GET", "ARGS_POST", "ARGS_NAMES", "ARGS_GET_NAMES", "ARGS_POST_NAMES",
                      "REQUEST_FILENAME", "REQUEST_BASENAME", "REQUEST_URI", "REQUEST_BODY", "FILES", "XML",
                      "QUERY_STRING", "REQUEST_LINE", "REQUEST_URI_RAW", "FILES_NAMES")


def _param_key(name: str) -> str:
    """The comparable part of a parameter/variable name: ``ARGS_GET:id`` -> ``id``; ``json.a`` -> ``json.a``."""
    return name.split(":", 1)[1] if ":" in name else name


_NONDETERMINISTIC = ("UNIQUE_ID",)  # the only SecLang variable whose value is not a function of the request


def _rule_strings(rule: Any) -> list[str]:
    out = [t.collection for t in list(rule.targets) + list(rule.exclusions)]
    out += [rule.op_param or "", rule.msg or "", rule.logdata or ""]
    out += [f"{sv.collection}.{sv.name}={sv.value}" for sv in rule.setvars]
    out += [f"{k}:{v}" for k, v in rule.ctls]
    return out


def deterministic_rules(engine: Any) -> bool:
    """Whether the verdict of ``engine`` (a ``WebRuleEngine``) is a function of the request alone: no rule
    (chains included) reads or expands a variable that changes between identical requests (``UNIQUE_ID``).
    The engine keeps no state between requests (only the ``tx`` collection persists, per transaction;
    ``initcol``/``ip``/``session`` collections are accepted and dropped), ``TIME*`` variables are not
    supported (empty) and ``DURATION`` is a constant; ``REMOTE_ADDR`` comes from the request dict.

    Only the rules a request can reach are checked, by the engine's own analysis (the one its prefilter
    relies on): CRS's sampling rule reads ``UNIQUE_ID`` but is always skipped at the default
    ``tx.sampling_percentage=100`` (rule 901400); set a lower percentage and CRS verdicts are not cached."""
    from fsbrain.domains.web.seclang.engine import WebRuleEngine

    if type(engine) is not WebRuleEngine:
        return False
    rules = engine.reachable_rules()
    for rule in rules:
        r = rule
        while r is not None:
            for text in _rule_strings(r):
                up = text.upper()
                if any(v in up for v in _NONDETERMINISTIC):
                    return False
            r = r.chain
    return True


class VerdictCache:
    """Exact memo of ``inspector.inspect`` for repeated identical requests (static assets, polling, a
    client retrying the same call): many requests give the inspector identical input, and inspection is a
    pure function of that input (see :meth:`WebInspector.cacheable`).

    The key is everything the inspector reads: method, URI, every header pair in order and the body (the
    proxy and the middleware pass exactly these; a dict with any other field, or a value that is not a
    ``str`` — ``bytes`` for the body — is inspected uncached, so that ``1`` and ``True`` can never share a
    key). A hit returns a fresh copy of the stored verdict (callers add ``bot``/``cc``/``limits_hit`` to
    it): verdicts are stored ``marshal``-encoded, which keeps every type exactly (``bool`` stays ``bool``,
    a tuple stays a tuple) and refuses anything else (such a verdict is simply not stored); only
    ``latency_ms`` differs: it is the time of the look-up. Per-client state (bot behaviour, CC
    rates) is never cached: the middleware and the proxy run it on every request after inspection.
    Exceptions (bad input) are not cached. A verdict is stored the second time its request is seen (the
    first sighting only records the key's hash, at most ``4 × max_entries`` of them), so traffic where every
    request differs costs one hash and a set look-up, not an encoded verdict that is never used again.
    Bounded: at most ``max_entries`` verdicts (when full, the oldest quarter is dropped) and only requests of at most ``max_key_bytes`` (URI + headers + body) are stored.
    The cache is bound to the inspector's configuration when created: call :meth:`clear` after changing
    the inspector (rules, model, thresholds) in place.
    """

    def __init__(self, inspector: Any, *, max_entries: int = 4096, max_key_bytes: int = 4096) -> None:
        self.inspector = inspector
        self.max_entries, self.max_key_bytes = int(max_entries), int(max_key_bytes)
        self._verdicts: dict[Any, bytes] = {}  # key -> marshal-encoded verdict
        self._seen: set[int] = set()  # hashes of keys seen once (admission: a verdict is stored when seen twice)
        self.hits = self.misses = self.uncached = 0

    def __len__(self) -> int:
        return len(self._verdicts)

    def clear(self) -> None:
        self._verdicts.clear()
        self._seen.clear()

    def _key(self, req: Any) -> Any:
        if type(req) is not dict or len(req) > 4:
            return None
        method, uri, headers, body = req.get("method"), req.get("uri"), req.get("headers", ()), req.get("body", b"")
        if type(method) is not str or type(uri) is not str or type(body) not in (bytes, str):
            return None
        if len(req) != 2 + ("headers" in req) + ("body" in req):
            return None  # a field the key does not cover
        size = len(uri) + len(body)
        if type(headers) is dict:
            headers = tuple(headers.items())
        elif type(headers) in (list, tuple):
            headers = tuple(headers)
        else:
            return None
        for h in headers:
            if type(h) is not tuple or len(h) != 2 or type(h[0]) is not str or type(h[1]) is not str:
                return None
            size += len(h[0]) + len(h[1])
        if size > self.max_key_bytes:
            return None
        return (method, uri, headers, body)

    def inspect(self, req: Any) -> dict[str, Any]:
        """``inspector.inspect(req)``, from the cache when this exact request was inspected before."""
        t0 = time.perf_counter()
        key = self._key(req)
        if key is None:
            self.uncached += 1
            return self.inspector.inspect(req)
        hit = self._verdicts.get(key)
        if hit is not None:
            self.hits += 1
            out = marshal.loads(hit)
            out["latency_ms"] = round((time.perf_counter() - t0) * 1000, 3)
            return out
        self.misses += 1
        verdict = self.inspector.inspect(req)
        h = hash(key)
        seen = self._seen
        if h not in seen:  # first sighting: remember that it was seen, store nothing
            if len(seen) >= 4 * self.max_entries:
                seen.clear()
            seen.add(h)
            return verdict
        try:
            blob = marshal.dumps(verdict)
        except ValueError:  # something marshal cannot copy exactly (a custom object): not stored
            return verdict
        d = self._verdicts
        if len(d) >= self.max_entries:
            # drop the oldest quarter at once into a fresh dict: deleting one entry at a time from the
            # front leaves a run of dead slots that every later ``next(iter(d))`` walks (quadratic)
            d = self._verdicts = dict(itertools.islice(d.items(), len(d) // 4 + 1, None))
        d[key] = blob
        return verdict


class WebInspector:
    """Rules + model over one request (see the module docstring).

    Args:
        paranoia: 1..4, passed to the rule engine.
        rules: a ``WebRuleEngine``; a path to a CRS folder (loaded with ``from_crs``); ``None`` for fsbrain's
            own rules (``WebRuleEngine.default``).
        model: a :class:`~fsbrain.domains.web.ml.WebModel`, a path to a model file, ``None`` for the shipped
            model, or ``False`` for rules only.
        model_block: model probability that alone makes an attack (default: ``MODEL_BLOCK[paranoia]``).
        model_clear: model probability below which a weak rule hit on that parameter is cleared.
        strong_score: rule scores at or above this are never cleared.
        max_params: parameters scored by the model per request (highest-risk first is not known in
            advance: the first ``max_params`` non-plain values are scored; the rest are counted in
            ``limits_hit`` as ``max_model_params``).
        limits: request parsing limits (named in ``limits_hit`` when exceeded).
        strict: treat a rule-engine failure as an attack instead of failing open.
        model_headers: let the model also score cookie values and free-form headers (User-Agent,
            Referer, X-…), not only the path and arguments.
        clear_plain: let the model clear weak rule hits on plain values (letters, digits, ``_.@,:-``), which it
            does not score (default: at paranoia 1 only; from PL2 on, only values it scored are cleared).
        opaque_params: parameter-name fragments (case-insensitive) whose values are random by design
            (passwords, tokens, captchas): the model neither scores nor vouches for them; the rules still do.
    """

    def __init__(self, paranoia: int = 1, *, rules: Any = None, model: Any = None, model_block: float | None = None,
                 model_clear: float = 0.2, strong_score: int = 10, max_params: int = 64,
                 limits: RequestLimits = DEFAULT_LIMITS, strict: bool = False, model_headers: bool = True,
                 opaque_params: tuple[str, ...] = OPAQUE_PARAMS, clear_plain: bool | None = None) -> None:
        from fsbrain.domains.web.seclang.engine import WebRuleEngine

        if not 1 <= int(paranoia) <= 4:
            raise InputError(f"paranoia must be 1..4, got {paranoia}")
        self.paranoia = int(paranoia)
        if rules is None:
            rules = WebRuleEngine.default(paranoia=self.paranoia)
        elif isinstance(rules, str | Path):
            rules = WebRuleEngine.from_crs(rules, paranoia=self.paranoia)
        self.rules = rules
        if model is None:
            model = ml.WebModel.load_default()
        elif isinstance(model, str | Path):
            model = ml.WebModel.load(model)
        self.model: ml.WebModel | None = model or None
        self.model_block = MODEL_BLOCK[self.paranoia] if model_block is None else model_block
        self.model_clear = model_clear
        self.clear_plain = self.paranoia < 2 if clear_plain is None else clear_plain
        self.strong_score, self.max_params = strong_score, max_params
        self.limits, self.strict, self.model_headers = limits, strict, model_headers
        self.opaque_params = tuple(x.lower() for x in opaque_params)
        # parameter name -> (opaque, comparable key): names repeat across requests
        self._names: dict[str, tuple[bool, str]] = {}
        self._rows: dict[tuple[str, float, str], dict[str, Any]] = {}  # see _model_out

    @property
    def cacheable(self) -> bool:
        """Whether a verdict is a function of the request dict alone, so that :class:`VerdictCache` is exact:
        the rules are a ``WebRuleEngine`` with no rule reading ``UNIQUE_ID`` (:func:`deterministic_rules`);
        the model is a pure function of the values (its score cache only memoises it), and this
        inspector's own parameter-name cache likewise."""
        rules = self.rules
        memo = getattr(self, "_cacheable", None)
        if memo is None or memo[0] is not rules:
            memo = (rules, deterministic_rules(rules))
            self._cacheable = memo
        return memo[1] and (self.model is None or isinstance(self.model, ml.WebModel))

    def inspect(self, req: dict[str, Any] | HttpRequest) -> dict[str, Any]:
        """Inspect one request dict ``{"method","uri","headers","body"}`` (or an ``HttpRequest``).

        Raises:
            InputError: the request is not a JSON object or a field has the wrong type.
        """
        t0 = time.perf_counter()
        if isinstance(req, HttpRequest):
            hreq, raw = req, req.to_dict()
        else:
            hreq, raw = HttpRequest.from_dict(req, limits=self.limits), req
        errors: list[str] = []
        threshold, rule_score, matched, rule_reasons, limits_hit = 5, 0, [], [], []
        try:
            rv = self.rules.inspect(hreq)
            threshold, rule_score, matched = rv.threshold, rv.score, rv.matched
            rule_reasons = [r.to_dict() for r in rv.reasons]
            limits_hit = list(rv.limits_hit)
            if rv.interrupted_by is not None and rule_score < threshold:
                rule_score = threshold
        except Exception as exc:  # noqa: BLE001 - an engine bug must not take the site down
            errors.append(f"rule engine failed: {type(exc).__name__}: {exc}")
            if self.strict:
                rule_score = threshold
        scored: list[tuple[str, ml.ValueScore]] = []
        plain: set[str] = set()
        all_params: list[tuple[str, str]] = []
        if self.model is not None:
            params = []
            all_params = ml.request_params(raw, headers=self.model_headers, http=hreq)
            names = self._names
            clear_plain = self.clear_plain
            is_plain = ml.is_plain
            for n, v in all_params:
                nk = names.get(n)
                if nk is None:  # parameter names repeat across requests: opaque or not, and the key, once each
                    key = _param_key(n)
                    nk = (any(x in key.lower() for x in self.opaque_params), key)
                    if len(names) >= 4096:
                        names.clear()
                    names[n] = nk
                if nk[0]:
                    continue
                if v and not is_plain(v):
                    params.append((n, v))
                elif clear_plain:
                    plain.add(nk[1])
            if len(params) > self.max_params:
                limits_hit.append("max_model_params")
                params = params[: self.max_params]
            if params:
                model = self.model
                if type(model) is ml.WebModel:  # score_params without its second plain-value check
                    score = model.score_value
                    scored = [(n, score(v)) for n, v in params]
                    if len(scored) > 1:
                        scored.sort(key=_minus_p)
                else:
                    scored = model.score_params(params, explain=True)
        out = self._combine(threshold, rule_score, matched, rule_reasons, scored, plain, all_params)
        out.update(limits_hit=limits_hit, errors=errors, paranoia=self.paranoia,
                   latency_ms=round((time.perf_counter() - t0) * 1000, 3))
        return out

    def _p_by_value(self, matched: str, params: list[tuple[str, str]]) -> float | None:
        """Highest model probability among parameters whose normalised value contains ``matched``."""
        needle = ml.normalize(matched).strip()
        if len(needle) < 3 or self.model is None:
            return None
        hits = [v for _, v in params if needle in ml.normalize(v)]
        if not hits:
            return None
        return max(0.0 if ml.is_plain(v) else self.model.score_value(v, explain=False).p_attack for v in hits)

    def _combine(self, threshold: int, rule_score: int, matched: list[Any], rule_reasons: list[dict[str, Any]],
                 scored: list[tuple[str, ml.ValueScore]], plain: set[str],
                 all_params: list[tuple[str, str]] | None = None) -> dict[str, Any]:
        top = scored[0] if scored else None
        if not matched and not rule_reasons and (top is None or top[1].p_attack < 0.5):
            # the common case, nothing to combine (the same verdict as below, built directly)
            score = max(0, rule_score)
            return {"attack": score >= threshold, "score": int(score), "labels": [], "rules": [], "reasons": [],
                    "rule_score": int(rule_score), "model_score": 0, "threshold": threshold, "suppressed_rules": [],
                    "model": self._model_out(scored)}
        suppressed: list[int] = []
        clear_points = 0
        scoring = [m for m in matched if m.score > 0]
        if self.model is not None and 0 < rule_score < self.strong_score and scoring:
            by_key: dict[str, float] = dict.fromkeys(plain, 0.0)
            for name, s in scored:
                k = _param_key(name)
                by_key[k] = max(by_key.get(k, 0.0), s.p_attack)
            clearable = []
            for m in scoring:
                var = m.variable
                for prefix in ("MATCHED_VARS:", "MATCHED_VAR:"):
                    if var.startswith(prefix):
                        var = var[len(prefix):]
                coll = var.split(":", 1)[0]
                if _NEVER_CLEARED.intersection(m.labels):
                    continue  # not the model's to judge: the points stay
                if NO_CLEAR_TAG in m.tags or (isinstance(m.value, str) and ml.plain_sql_spelling(m.value)):
                    clearable = []  # a named OS file; `1--`: only digits to the model, it cannot vouch
                    break
                if coll == "TX":  # a chain's capture: find the parameter that contains the matched text
                    p = self._p_by_value(m.value, all_params or [])
                    if p is None:
                        continue
                elif coll not in _PARAM_COLLECTIONS:
                    continue
                key = _param_key(var)
                p = by_key.get(key) if coll != "TX" else p
                if p is None and ":" not in var or coll in ("REQUEST_URI", "REQUEST_LINE", "QUERY_STRING",
                                                            "REQUEST_URI_RAW", "REQUEST_BODY"):
                    p = max(by_key.values(), default=0.0)
                if p is None:
                    p = 0.0 if self.clear_plain and ml.is_plain(m.value) else None
                if p is None or p >= self.model_clear:
                    clearable = []
                    break
                clearable.append(m)
            suppressed = [m.id for m in clearable]
            clear_points = sum(m.score for m in clearable)
        model_points = 0
        model_label = None
        if top is not None and top[1].p_attack >= 0.5:
            model_points = min(2 * threshold, int(threshold * top[1].p_attack / self.model_block))
            model_label = "web_" + top[1].attack_class if top[1].attack_class != "benign" else None
        score = max(0, rule_score - clear_points) + model_points
        attack = score >= threshold
        labels: list[str] = []
        for r in rule_reasons:
            lab = r.get("label")
            if lab and lab not in labels and int(r["id"]) not in suppressed:
                labels.append(lab)
        if model_label and model_points and model_label not in labels:
            labels.append(model_label)
        reasons = [r for r in rule_reasons if int(r["id"]) not in suppressed]
        if model_points and top is not None:
            grams = ", ".join(repr(g) for g, _ in top[1].top_ngrams)
            reasons.append({"source": "model", "id": "web-ngram", "label": model_label, "feature": top[0],
                            "value": round(top[1].p_attack, 4), "threshold": self.model_block,
                            "weight": model_points,
                            "message": f"{top[1].attack_class} n-grams in {top[0]}: {grams}"})
        if suppressed:
            reasons.append({"source": "model", "id": "web-ngram-clear", "feature": "rules",
                            "value": suppressed, "threshold": self.model_clear, "weight": -clear_points,
                            "message": "rule hits cleared: the model scores the matched parameters as benign"})
        return {"attack": attack, "score": int(score), "labels": labels if attack else [],
                "rules": [m.id for m in matched], "reasons": reasons, "rule_score": int(rule_score),
                "model_score": model_points, "threshold": threshold, "suppressed_rules": suppressed,
                "model": self._model_out(scored)}

    def _model_out(self, scored: list[tuple[str, ml.ValueScore]]) -> list[dict[str, Any]]:
        """The verdict's ``model`` field: the five highest-scoring parameters. A parameter without n-grams to
        show (the model calls it benign) repeats across requests: its entry is built once and copied."""
        rows = self._rows
        out = []
        for n, s in scored[:5]:
            if s.top_ngrams:
                out.append({"param": n, "p_attack": round(s.p_attack, 4), "class": s.attack_class,
                            "top_ngrams": [[g, round(w, 3)] for g, w in s.top_ngrams]})
                continue
            key = (n, s.p_attack, s.attack_class)
            row = rows.get(key)
            if row is None:
                if len(rows) >= 4096:
                    rows.clear()
                row = rows[key] = {"param": n, "p_attack": round(s.p_attack, 4), "class": s.attack_class}
            out.append({**row, "top_ngrams": []})
        return out


def _minus_p(item: tuple[str, ml.ValueScore]) -> float:
    return -item[1].p_attack
