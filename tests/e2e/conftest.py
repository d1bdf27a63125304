"""Fixtures of the end-to-end tests: a started daemon, a real WebSub hub and a subscriber.

The daemons are :class:`tests._daemon.FeederDaemon` (``python -m feeder run`` as a real
subprocess on temp folders, datasette-style), made by the ``daemon_factory`` fixture of
``tests/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .._daemon import FeederDaemon
from .subscriber import Subscriber
from .websub_hub import Hub, run_hub


@pytest.fixture
def daemon(daemon_factory: Callable[..., FeederDaemon]) -> FeederDaemon:
    """A started daemon on empty folders under tmp_path."""
    return daemon_factory().start()


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    with run_hub(tmp_path) as hub:
        yield hub


@pytest.fixture
def subscriber() -> Iterator[Subscriber]:
    with Subscriber() as sub:
        yield sub
