"""YAML loading that remembers where every value came from, so errors point at file:line."""

from __future__ import annotations

from typing import Any

import yaml

from fsbrain.core.errors import PolicyError

MAX_POLICY_BYTES = 2_000_000


def _walk(node: yaml.Node, path: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = k.value if isinstance(k, yaml.ScalarNode) else str(k.value)
            lines[path + (key,)] = k.start_mark.line + 1
            _walk(v, path + (key,), lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _walk(v, path + (i,), lines)


def load_yaml_with_lines(text: str, source: str) -> tuple[Any, dict[tuple[Any, ...], int]]:
    """Parse YAML safely; return the data and a map from key path to 1-based line number.

    Raises:
        PolicyError: on syntax errors (with the line), oversize input, or aliases used as bombs.
    """
    if len(text.encode("utf-8", "replace")) > MAX_POLICY_BYTES:
        raise PolicyError(f"file is larger than {MAX_POLICY_BYTES} bytes", source=source)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise PolicyError(f"YAML syntax error: {exc.problem}", source=source, line=line) from exc
    except yaml.YAMLError as exc:
        raise PolicyError(f"YAML error: {exc}", source=source) from exc
    lines: dict[tuple[Any, ...], int] = {}
    if node is not None:
        _walk(node, (), lines)
    return data, lines


def line_for(lines: dict[tuple[Any, ...], int], loc: tuple[Any, ...]) -> int | None:
    """The line of the longest prefix of ``loc`` known in ``lines``."""
    loc = tuple(loc)
    while loc:
        if loc in lines:
            return lines[loc]
        loc = loc[:-1]
    return lines.get(())
