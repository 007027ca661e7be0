"""The :class:`Store`: one object giving the engine, API and CLI every persistence operation."""

from __future__ import annotations

from types import TracebackType

from fsbrain.store.alerts import AlertRepository
from fsbrain.store.audit import AuditRepository
from fsbrain.store.cases import CaseRepository
from fsbrain.store.db import Database
from fsbrain.store.decisions import DecisionRepository
from fsbrain.store.keys import ApiKeyRepository
from fsbrain.store.lists import ListRepository


class Store(DecisionRepository, AlertRepository, ListRepository, AuditRepository, ApiKeyRepository,
            CaseRepository):
    """Decisions, alerts, lists, audit log, API keys, cases and policy versions in one SQL database.

    SQLite by default (``{FSBRAIN_HOME or .fsbrain}/fsbrain.db``), PostgreSQL by URL
    (``postgresql+psycopg://user@host:5432/db``). Safe to share between threads: each call runs in its own
    session and transaction. Call :meth:`migrate` once before use (it is a no-op at the newest schema).

    Args:
        url: SQLAlchemy database URL, or ``None`` for the default SQLite file.

    Raises:
        InputError: the URL is malformed or names an unsupported database.

    Example:
        >>> from fsbrain.core.model import Decision
        >>> store = Store("sqlite://")
        >>> store.migrate()
        >>> d = Decision(event_id="e1", event_type="loan_application", outcome="review", score=640,
        ...              policy="credit-default@3")
        >>> store.save_decision(d, {"amount": 5000}).decision_id == d.decision_id
        True
        >>> store.get_decision_by_event("loan_application", "e1").outcome
        'review'
        >>> store.close()
    """

    def __init__(self, url: str | None = None) -> None:
        self._db = Database(url)

    @property
    def url(self) -> str:
        """The database URL, password hidden."""
        return self._db.url.render_as_string(hide_password=True)

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._db.dialect

    def migrate(self, revision: str = "head") -> None:
        """Upgrade the schema to the newest packaged revision (or ``revision``); no-op when already there.

        Raises:
            BackendError: the database failed or a migration could not be applied.
        """
        self._db.migrate(revision)

    def schema_revision(self) -> str | None:
        """The schema revision the database is at (``None`` before the first :meth:`migrate`)."""
        return self._db.current_revision()

    @staticmethod
    def head_revision() -> str | None:
        """The newest schema revision this package ships."""
        return Database.head_revision()

    def ping(self) -> bool:
        """``True`` when the database answers and the schema is at the newest revision (for ``/readyz``)."""
        try:
            return self._db.current_revision() == Database.head_revision()
        except Exception:  # noqa: BLE001 - readiness probes report, never raise
            return False

    def close(self) -> None:
        """Release the database connections."""
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.url!r})"
