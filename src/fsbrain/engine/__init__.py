"""The decision engine: policies (features, lists, rules, models) compiled and evaluated per event."""

from fsbrain.engine.evaluator import Engine
from fsbrain.engine.lists import ListIndex
from fsbrain.engine.policy import CompiledPolicy, compile_policy, default_policy_path, load_policy

__all__ = ["CompiledPolicy", "Engine", "ListIndex", "compile_policy", "default_policy_path", "load_policy"]
