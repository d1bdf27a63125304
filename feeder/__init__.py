"""feeder: publish a folder of plain-text articles as Atom, RSS and JSON Feed.

The public names are re-exported here; everything else is private to its module. ``Builder``
is imported on first use: it brings the renderers (feedgen, lxml, Jinja), which the watcher
and the server do not need.
"""

__version__ = "0.1.0"

from .config import Config, load  # noqa: E402
from .errors import (  # noqa: E402
    ConfigError,
    FeederError,
    OutputError,
    PublishError,
    SeedError,
    ServeError,
    StoreBusyError,
    StoreCorruptError,
    StoreError,
    StoreInUseError,
)
from .normalizer import Entry, Rules, normalize  # noqa: E402
from .report import BuildReport  # noqa: E402
from .seed import SeedDocument, parse_seed  # noqa: E402
from .store import PingStore, Store  # noqa: E402

__all__ = [
    "Builder", "BuildReport", "Config", "ConfigError", "Entry", "FeederError", "OutputError",
    "PingStore", "PublishError", "Rules", "SeedDocument", "SeedError", "ServeError", "Store",
    "StoreBusyError", "StoreCorruptError", "StoreError", "StoreInUseError", "__version__",
    "load", "normalize", "parse_seed",
]


def __getattr__(name: str) -> object:
    if name == "Builder":
        from .builder import Builder

        return Builder
    raise AttributeError(f"module 'feeder' has no attribute {name!r}")
