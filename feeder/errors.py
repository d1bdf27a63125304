"""The exceptions feeder raises on purpose.

    FeederError
    ├── ConfigError    a setting has a bad value (names the key and the value)
    ├── SeedError      a seed file cannot become an entry (names the file and the reason)
    ├── StoreError     the state database is unusable, or in use by another daemon
    │   └── StoreBusyError   another process holds SQLite's write lock right now
    ├── OutputError    an output file could not be written
    ├── ServeError     the HTTP server cannot listen on its address (names it and the reason)
    └── PublishError   a WebSub hub did not accept a publish ping

Library code raises these; only ``feeder.cli`` turns them into exit codes.
"""

from __future__ import annotations


class FeederError(Exception):
    """Base class of every error feeder raises deliberately."""


class ConfigError(FeederError):
    def __init__(self, key: str, value: object, reason: str) -> None:
        self.key, self.value, self.reason = key, value, reason
        super().__init__(f"Config {key!r} has value {value!r}. {reason}")


class SeedError(FeederError):
    def __init__(self, name: str, reason: str) -> None:
        self.name, self.reason = name, reason
        super().__init__(f"{name}: {reason}")


class StoreError(FeederError):
    pass


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
