"""The one clock. Everything that needs "now" asks here, so tests can set it."""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

_frozen: datetime | None = None


def now() -> datetime:
    """The current time, timezone-aware UTC."""
    return _frozen if _frozen is not None else datetime.now(UTC)


def freeze(moment: datetime | None) -> None:
    """Set the clock (tests); None lets it run again."""
    global _frozen
    if moment is not None and moment.tzinfo is None:
        raise ValueError("freeze() needs a timezone-aware datetime")
    _frozen = moment


@contextmanager
def at(moment: datetime) -> Iterator[None]:
    """Run the block as if it were `moment` (the demo dates what it creates), then put the
    clock back as it was (frozen or running)."""
    global _frozen
    before = _frozen
    freeze(moment)
    try:
        yield
    finally:
        _frozen = before
