"""Time ranges given on the command line or picked in the dashboard."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from chatlake.analytics.errors import ReportError

_SPAN = re.compile(r"(\d+)\s*(s|m|h|d|w)\Z")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_span(text: str) -> timedelta:
    """``15m``, ``24h``, ``7d``, ``2w`` -> a timedelta; anything else is refused."""
    match = _SPAN.match(text.strip().lower())
    if not match or int(match.group(1)) == 0:
        raise ReportError(
            f"invalid time span {text!r}: use a positive number and a unit "
            f"s, m, h, d or w (e.g. 15m, 24h, 7d)"
        )
    try:
        return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    except OverflowError:
        raise _too_long(text) from None


def _too_long(text: str) -> ReportError:
    return ReportError(
        f"time span {text!r} is too long: it must start after the year 1"
    )


def parse_moment(text: str, what: str) -> datetime:
    """An ISO 8601 date or time; UTC when it names no zone."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ReportError(
            f"invalid {what} {text!r}: use ISO 8601, e.g. 2026-12-01 or "
            f"2026-12-01T09:30:00+00:00"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def window(
    since: str | None = None,
    until: str | None = None,
    last: str | None = None,
    now: datetime | None = None,
) -> tuple[datetime | None, datetime | None]:
    """(since, until) from options; ``last`` counts back from ``until`` or now."""
    if last and since:
        raise ReportError("give --last or --since, not both")
    end = parse_moment(until, "--until") if until else None
    if last:
        try:
            start = (end or now or datetime.now(UTC)) - parse_span(last)
        except OverflowError:
            raise _too_long(last) from None
        return start, end
    return (parse_moment(since, "--since") if since else None), end
