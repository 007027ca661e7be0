"""Platform configuration: a YAML file (``--config``) and ``FSBRAIN_*`` environment variables.

Precedence: command-line options > environment > config file > defaults.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fsbrain.core.errors import InputError


class StateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["memory", "redis"] = Field(default="memory", description="Where windowed features live.")
    url: str = Field(default="redis://127.0.0.1:6379/0", description="Redis URL (type redis only).")
    prefix: str = Field(default="fsb", description="Key prefix in Redis.")
    allowed_lateness: float = Field(default=60.0, ge=0, le=86400,
                                    description="How late (seconds behind the newest event) an event may arrive and "
                                                "still count everywhere; the same for every worker.")
    socket_timeout: float = Field(default=2.0, gt=0, le=60, description="Redis socket timeout (seconds).")
    ttl_grace: float = Field(default=0.0, ge=0, description="Extra seconds Redis keeps keys past their window.")


class Settings(BaseModel):
    """Everything the server needs. Each field can be set as ``FSBRAIN_<NAME>`` (upper case)."""

    model_config = ConfigDict(extra="forbid")

    home: Path = Field(default=Path(".fsbrain"), description="Folder for the SQLite database, keys, demo data.")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default SQLite under home.")
    state: StateConfig = Field(default_factory=StateConfig)
    policies: list[Path] = Field(default_factory=list,
                                 description="Live policy files (one per event type); default: the shipped ones.")
    shadow_policies: list[Path] = Field(default_factory=list,
                                        description="Candidate policies run in shadow: stored and compared, never returned.")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    auth: bool | None = Field(default=None, description="Require API keys; forced on when host is not loopback.")
    max_body_bytes: int = Field(default=1_048_576, ge=1024, le=64 * 1_048_576)
    max_clock_skew: float = Field(default=300.0, ge=0, le=86400,
                                  description="Event times further than this in the future are counted in windows at "
                                              "server time + skew (the decision keeps the event's own time).")
    policy_reload_seconds: float = Field(default=2.0, ge=0.0, description="0 disables hot reload.")
    list_refresh_seconds: float = Field(default=2.0, ge=0.1)
    log_level: str = "info"
    decision_writer: Literal["thread", "process", "loop", "auto"] = Field(
        default="thread", description="Where decisions are committed: a thread of the request process, a "
                                      "child process (its own core), the event loop itself (SQLite files: "
                                      "no hand-over at all), or auto: loop for a SQLite file, process for "
                                      "PostgreSQL (what `fsbrain serve` uses).")

    @property
    def auth_required(self) -> bool:
        loopback = self.host in ("127.0.0.1", "localhost", "::1")
        return True if not loopback else bool(self.auth)

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'fsbrain.db').as_posix()}"


_ENV_SIMPLE = ("home", "database_url", "host", "port", "workers", "auth", "max_body_bytes",
               "policy_reload_seconds", "list_refresh_seconds", "log_level", "decision_writer")


def load_settings(config_file: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Build settings from a YAML file, the environment and explicit overrides.

    Raises:
        InputError: naming the file or variable and the invalid field.
    """
    data: dict[str, Any] = {}
    if config_file:
        p = Path(config_file)
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise InputError(f"config file {p} not found") from None
        except (OSError, yaml.YAMLError) as exc:
            raise InputError(f"config file {p}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise InputError(f"config file {p}: must be a YAML mapping")
        data.update(loaded)
    if "FSBRAIN_HOME" in os.environ:
        data["home"] = os.environ["FSBRAIN_HOME"]
    for name in _ENV_SIMPLE:
        env = os.environ.get(f"FSBRAIN_{name.upper()}")
        if env is not None and name != "home":
            data[name] = env
    if os.environ.get("FSBRAIN_STATE"):
        data.setdefault("state", {})["type"] = os.environ["FSBRAIN_STATE"]
    if os.environ.get("FSBRAIN_REDIS_URL"):
        data.setdefault("state", {})["url"] = os.environ["FSBRAIN_REDIS_URL"]
    for k, v in overrides.items():
        if v is None:
            continue
        if k in ("state_type", "redis_url", "state_prefix"):
            data.setdefault("state", {})[{"state_type": "type", "redis_url": "url", "state_prefix": "prefix"}[k]] = v
        else:
            data[k] = v
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise InputError(f"configuration {where}: {first['msg']}", detail=exc.errors(include_url=False)) from exc
