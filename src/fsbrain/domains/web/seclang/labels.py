"""Rule tags -> fsbrain risk labels, loaded from data (``rules/tag_labels.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from fsbrain.core.errors import PolicyError
from fsbrain.core.labels import is_label

DEFAULT_MAP = Path(__file__).resolve().parent.parent / "rules" / "tag_labels.yaml"


@dataclass
class LabelMap:
    """Tag -> label mapping plus a rule-id-range fallback.

    >>> LabelMap.load().labels_for(942100, ["attack-sqli", "paranoia-level/1"])
    ['web_sqli']
    """

    tags: dict[str, str] = field(default_factory=dict)
    id_ranges: list[tuple[int, int, str]] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path = DEFAULT_MAP) -> LabelMap:
        """Load and validate a mapping file.

        Raises:
            PolicyError: the file is malformed or names an unknown label.
        """
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise PolicyError(f"cannot load tag-label map: {exc}", source=str(path)) from exc
        tags = {str(k).lower(): str(v) for k, v in (data.get("tags") or {}).items()}
        ranges = []
        for item in data.get("id_ranges") or []:
            if not (isinstance(item, list) and len(item) == 3):
                raise PolicyError(f"id_ranges entries are [low, high, label], got {item!r}", source=str(path))
            ranges.append((int(item[0]), int(item[1]), str(item[2])))
        for lab in list(tags.values()) + [r[2] for r in ranges]:
            if not is_label(lab):
                raise PolicyError(f"unknown risk label {lab!r}", source=str(path))
        return cls(tags, ranges)

    def labels_for(self, rule_id: int, tags: list[str]) -> list[str]:
        """Labels of a rule: from its tags, else from its id range."""
        out: list[str] = []
        for t in tags:
            lab = self.tags.get(t.lower())
            if lab and lab not in out:
                out.append(lab)
        if not out:
            for lo, hi, lab in self.id_ranges:
                if lo <= rule_id <= hi:
                    out.append(lab)
                    break
        return out
