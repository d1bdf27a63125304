"""The exceptions feeder raises on purpose.

    FeederError
    ├── ConfigError    a setting has a bad value (names the key, the value, where it was set)
    ├── SeedError      a seed file cannot become an entry (names the file and the reason)
    ├── StoreError     the state file cannot be used, and is left as it is: a newer schema,
    │   │              permissions, I/O, a read-only file system (names the file and the cause)
    │   ├── StoreCorruptError  SQLite says it is not a database, or its integrity check fails
    │   ├── StoreInUseError    another feeder process holds the state file's lock
    │   └── StoreBusyError     another process holds SQLite's write lock right now
    ├── OutputError    an output file could not be written
    ├── ServeError     the HTTP server cannot listen on its address (names it and the reason)
    ├── SearchError    Pagefind did not build the search index (names its exit and last line)
    ├── WorkerError    a worker process of a big pass ended abruptly (killed, out of memory)
    └── PublishError   a WebSub hub did not accept a publish ping

Library code raises these; only ``feeder.cli`` turns them into exit codes.
"""

from __future__ import annotations


class FeederError(Exception):
    """Base class of every error feeder raises deliberately."""


class ConfigError(FeederError):
    """``source`` says where the value came from (a file and section, an environment variable)."""

    def __init__(self, key: str, value: object, reason: str, source: str | None = None) -> None:
        self.key, self.value, self.reason, self.source = key, value, reason, source
        where = f" (from {source})" if source else ""
        super().__init__(f"Config {key!r} has value {value!r}{where}: {reason}")


class SeedError(FeederError):
    def __init__(self, name: str, reason: str) -> None:
        self.name, self.reason = name, reason
        super().__init__(f"{name}: {reason}")


class StoreError(FeederError):
    def __init__(self, path: object, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"state file {path}: {reason}")


class StoreCorruptError(StoreError):
    pass


class StoreInUseError(StoreError):
    def __init__(self, path: object, holder: str) -> None:
        self.holder = holder
        super().__init__(path, f"in use by another feeder process ({holder}); "
                               "stop it first or use another --state file")


class StoreBusyError(StoreError):
    pass


class OutputError(FeederError):
    def __init__(self, path: object, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"cannot write {path}: {reason}")


class ServeError(FeederError):
    def __init__(self, host: str, port: int, reason: str) -> None:
        self.host, self.port, self.reason = host, port, reason
        where = f"[{host}]" if ":" in host else host
        super().__init__(f"cannot listen on {where}:{port}: {reason}")


class PublishError(FeederError):
    def __init__(self, hub: str, reason: str) -> None:
        self.hub, self.reason = hub, reason
        super().__init__(f"hub {hub}: {reason}")


class SearchError(FeederError):
    """Pagefind failed; the index it was building is dropped and the old one stays."""


class WorkerError(FeederError):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"a worker process ended abruptly ({reason}): the pass stopped; "
                         "what it put in place stays, and the next pass does the rest")
