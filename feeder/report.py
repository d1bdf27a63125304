"""What one pass did (``BuildReport``), and how a pass stops early (``BuildCancelled``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class BuildCancelled(Exception):
    """The daemon is stopping: the seeds synced so far are committed, the rest wait."""


@dataclass
class BuildReport:
    # the seeds (folder.py, sync.py)
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    # newly rejected, or rejected for a new reason
    rejected: list[tuple[str, str]] = field(default_factory=list)
    converted: list[tuple[str, str]] = field(default_factory=list)  # (name, encoding)
    unchanged: int = 0
    deferred: set[str] = field(default_factory=set)  # not ready yet: look again after settle
    # the outputs (publish.py; new entry pages may be written while reading)
    written: list[str] = field(default_factory=list)
    deleted_outputs: list[str] = field(default_factory=list)
    changed_feeds: list[str] = field(default_factory=list)  # new versions, announced
    pings_released: int = 0  # pings of the outbox that may be sent now
    # (path, reason) of outputs something was in the way of (a folder where a language's
    # feed goes): left as they were, unannounced, while the rest went out (``feeder build``
    # exits 1; the daemon says so on /healthz and tries them again after a backoff)
    blocked: list[tuple[str, str]] = field(default_factory=list)
    entries: int = 0
    scheduled: list[tuple[str, dt.datetime]] = field(default_factory=list)
    started: dt.datetime = field(default_factory=utcnow)
    seconds: float = 0.0

    @property
    def seed_changes(self) -> int:
        return len(self.added) + len(self.changed) + len(self.removed)

    def summary(self) -> str:
        parts = [f"{self.entries} entries"]
        for label, items in (("added", self.added), ("changed", self.changed),
                             ("removed", self.removed), ("rejected", self.rejected)):
            if items:
                parts.append(f"{len(items)} {label}")
        parts.append(f"{len(self.written)} files written")
        if self.scheduled:
            parts.append(f"{len(self.scheduled)} scheduled")
        return f"built in {self.seconds * 1000:.0f} ms: " + ", ".join(parts)
