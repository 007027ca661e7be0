"""`fsbrain web train` (ml.retrain) trains with the shipped model's sample weights (scripts/build_web_model.py):
libinjection's false positives and the CRS test fixtures weighted 20, benign values once, attack values that are
also benign dropped, the user's own values at ``--weight``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from fsbrain.domains.web import ml

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"

_TEST = """rule_id: {rid}
tests:
  - test_id: {tid}
    stages:
      - input:
          method: GET
          uri: "/post?x={payload}"
          headers:
            User-Agent: OWASP CRS test agent
        output:
          log:
            expect_ids: [{rid}]
"""


def _fake_corpus(root: Path) -> tuple[list[str], list[str]]:
    """A corpus under ``root``: libinjection lists and CRS tests of three rules sharing the /post fixture.
    Returns (false-positive values on the training split, attack values)."""
    data = root / "libinjection" / "data"
    data.mkdir(parents=True)
    fps = [f"WOMEN'S COATS {i}" for i in range(40)]
    (data / "false_positives.txt").write_text("\n".join(fps) + "\n", encoding="utf-8")
    sqli = [f"1' or {i}={i} --" for i in range(40)]
    (data / "sqli-test.txt").write_text("\n".join(sqli) + "\n", encoding="utf-8")
    n = 0
    for fam, rid in (("942", "942100"), ("941", "941100"), ("932", "932100"), ("942", "942190")):
        d = root / "crs-regression" / "tests" / "regression" / "tests" / f"REQUEST-{fam}-X"
        d.mkdir(parents=True, exist_ok=True)
        for tid in range(1, 6):
            n += 1
            (d / f"{rid}-{tid}.yaml").write_text(
                _TEST.format(rid=rid, tid=tid, payload=f"%27%20or%20{n}%3D{n}"), encoding="utf-8")
    return [v for v in fps if not ml.heldout(v)], sqli


@pytest.fixture
def captured(monkeypatch):
    seen: dict = {}
    real = ml.train_model

    def fake_train(samples, *, sample_weight=None, meta=None, **_kw):
        seen["samples"], seen["weights"] = list(samples), list(sample_weight)
        return real([("benign", "hello world"), ("benign", "good day"), ("sqli", "' or 1=1 --"),
                               ("sqli", "' or 2=2 --")], min_df=1, meta=meta)

    monkeypatch.setattr(ml, "train_model", fake_train)
    return seen


def test_retrain_applies_the_shipped_weights(tmp_path, captured):
    fps, _sqli = _fake_corpus(tmp_path / "corpus")
    assert fps
    user = tmp_path / "benign.txt"
    user.write_text("\n".join(f"my own query {i} & more" for i in range(30)) + "\nWOMEN'S COATS 0\n",
                    encoding="utf-8")
    ml.retrain(benign=user, corpus=tmp_path / "corpus", out=tmp_path / "m.json.gz", weight=3.0)
    w = {}
    for (c, v), x in zip(captured["samples"], captured["weights"], strict=True):
        assert (c, v) not in w, f"{c} {v!r} counted twice"
        w[(c, v)] = x
    for v in fps:
        assert w[("benign", v)] == ml.FP_WEIGHT
    assert w[("benign", "/post")] == ml.FIXTURE_WEIGHT
    assert w[("benign", ml._TEST_UA)] == ml.FIXTURE_WEIGHT
    own = [v for (c, v) in w if v.startswith("my own query") and not ml.heldout(v)]
    assert own and all(w[("benign", v)] == 3.0 for v in own)
    attacks = [(k, x) for k, x in w.items() if k[0] != "benign"]
    assert attacks and all(x == 1.0 for _, x in attacks)
    benign_vals = {v for c, v in w if c == "benign"}
    assert not any(v in benign_vals for c, v in w if c != "benign")
    shipped_ben = ml.shipped_training_values()[0][1]
    assert w[("benign", shipped_ben)] == 1.0
    ua = next(v for _, v in ml.shipped_training_values() if v.startswith("Mozilla/5.0"))
    assert w[("benign", ua)] == 1.0  # header values of the shipped corpus are trained on, as in the build


def test_retrain_and_the_shipped_build_weigh_benign_values_alike():
    if not (SHARED / "libinjection").is_dir() or not (SHARED / "crs-regression").is_dir():
        pytest.skip(f"needs the public corpora under {SHARED} (libinjection/, crs-regression/)")
    sys.path.insert(0, str(REPO / "scripts"))
    import build_web_model

    assert build_web_model.FIXTURE_WEIGHT == ml.FIXTURE_WEIGHT
    vals = dict(ml.corpus_benign_values(SHARED))
    fixtures = ml.crs_fixture_values(SHARED)
    assert "/post" in fixtures or "/" in fixtures
    assert all(vals[f] == ml.FIXTURE_WEIGHT for f in fixtures)
    fps = [v for c, v in ml.libinjection_values(SHARED) if c == "benign" and not ml.heldout(v)]
    assert fps and all(vals[v] == ml.FP_WEIGHT for v in fps if v not in fixtures)
    assert not any(ml.heldout(v) for v in fps if v in vals and v not in fixtures)
    # the same benign training set as the shipped model's build (its meta records the count)
    shipped = {v for _, v in ml.shipped_training_values()} | set(vals)
    assert len(shipped) == ml.WebModel.load_default().meta["train_counts"]["benign"]
