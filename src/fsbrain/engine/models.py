"""Model slots: a policy names a model file and its inputs; rules read its score as ``m.NAME``.

Models are LightGBM text files (never pickles): loading one cannot run code.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from fsbrain.core.errors import InputError, PolicyError

if TYPE_CHECKING:
    from fsbrain.engine.policy import CompiledPolicy
    from fsbrain.engine.spec import ModelDef


class ModelSlot:
    """One loaded model and the recipe for its input row.

    Args:
        definition: the policy's model slot.
        base_dir: folder the model path is relative to (the policy file's folder).
    """

    def __init__(self, definition: ModelDef, base_dir: Path) -> None:
        import lightgbm as lgb
        import numpy as np

        self.definition = definition
        self.name = definition.name
        path = Path(definition.path)
        if not path.is_absolute():
            path = base_dir / path
        if not path.is_file():
            raise PolicyError(f"model {definition.name!r}: file {path} not found")
        try:
            self.booster = lgb.Booster(model_str=path.read_text(encoding="utf-8"))
        except Exception as exc:  # LightGBM raises its own error types for malformed files
            raise PolicyError(f"model {definition.name!r}: {path} is not a LightGBM text model: {exc}") from exc
        n = self.booster.num_feature()
        if n != len(definition.inputs):
            raise PolicyError(f"model {definition.name!r} expects {n} inputs, the policy lists "
                              f"{len(definition.inputs)}")
        self._np = np
        self._inputs = [(i.split(".", 1)[0], i.split(".", 1)[1]) for i in definition.inputs]

    def row(self, f: dict[str, Any], data: dict[str, Any]) -> list[float]:
        out = []
        for root, name in self._inputs:
            v: Any
            if root == "f":
                v = f.get(name)
            else:
                v = data
                for p in name.split("."):
                    v = v.get(p) if isinstance(v, dict) else None
            if v is None:
                out.append(float("nan"))
            elif isinstance(v, bool):
                out.append(1.0 if v else 0.0)
            elif isinstance(v, int | float):
                out.append(float(v))
            else:
                raise InputError(f"model {self.name}: input {root}.{name} is {type(v).__name__}, not a number")
        return out

    def score(self, f: dict[str, Any], data: dict[str, Any]) -> float:
        x = self._np.asarray([self.row(f, data)], dtype=float)
        return float(self.booster.predict(x, num_threads=1)[0])


def load_model_slots(policy: CompiledPolicy) -> dict[str, ModelSlot]:
    if not policy.models:
        return {}
    base = Path(policy.source).resolve().parent if policy.source and not policy.source.startswith("<") else Path.cwd()
    return {m.name: ModelSlot(m, base) for m in policy.models}
