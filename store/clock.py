"""The current time, as FiftyOne stores it: naive UTC (``datetime.utcnow()``
is deprecated since Python 3.12; this is its replacement, in one place)."""

import datetime


def utc_now():
    """Now, as a naive UTC datetime (what MongoDB and FiftyOne store)."""
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def utc_now_iso():
    """Now, naive UTC, ISO 8601 (for run results, which are JSON)."""
    return utc_now().isoformat()
