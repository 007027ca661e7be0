"""Model thresholds per paranoia level (inspector.MODEL_BLOCK), chosen on the dev fold with
scripts/web_dev_eval.py (docs/web.md, "How rules and model combine"): PL1 0.85, PL2 0.7, PL3 0.6, PL4 0.5.
A value the model scores between two thresholds is blocked from the level whose threshold it reaches."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from fsbrain.domains.web import ml
from fsbrain.domains.web.inspector import MODEL_BLOCK, WebInspector

TUNED = {1: 0.85, 2: 0.7, 3: 0.6, 4: 0.5}


def test_thresholds_are_the_dev_fold_choice():
    assert MODEL_BLOCK == TUNED
    for pl, mb in TUNED.items():
        assert WebInspector(paranoia=pl, model=ml.WebModel.load_default()).model_block == mb


class _FixedModel(ml.WebModel):
    """The shipped model's vocabulary, with every value scored at one fixed probability."""

    def __init__(self, p: float) -> None:
        base = ml.WebModel.load_default()
        super().__init__(vocab=base.vocab, weights=base.weights, bias=base.bias, binary=base.binary,
                         binary_bias=base.binary_bias, classes=base.classes)
        self.p = p

    def score_value(self, value, *, explain=True, top=5):
        return ml.ValueScore(p_attack=self.p, attack_class="sqli")


@pytest.mark.parametrize("p", [0.55, 0.65, 0.75, 0.9])
def test_a_model_only_verdict_blocks_from_the_level_whose_threshold_it_reaches(p):
    req = {"method": "GET", "uri": "/search?q=" + quote("kx7 zq!w"), "headers": {"Host": "bank.example.com"}}
    blocked = {pl: WebInspector(paranoia=pl, model=_FixedModel(p)).inspect(req)["attack"] for pl in TUNED}
    assert blocked == {pl: p >= TUNED[pl] for pl in TUNED}, (p, blocked)
