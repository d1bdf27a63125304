"""Settings: a TOML file, then ``FEEDER_<KEY>`` environment variables, then CLI options.

Every setting lives in one section of the file (``[feed]``, ``[paths]``, ...) and has a
unique key, so the environment and the CLI can name it by key alone. Relative paths are
taken from the current directory.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigError

SECTIONS: dict[str, tuple[str, ...]] = {
    "feed": (
        "title", "subtitle", "author", "base_url", "language", "default_language",
        "languages", "tag_authority", "tag_date", "timezone", "max_entries",
        "archive_size", "title_length", "summary_length",
    ),
    "paths": ("seeds", "out", "state", "extensions", "max_seed_bytes"),
    "serve": ("host", "port", "max_age"),
    "websub": ("hubs", "ping_timeout", "ping_max_attempts", "ping_backoff"),
    "daemon": ("debounce", "settle", "rescan_interval", "max_future_days"),
}


@dataclass(frozen=True)
class Config:
    # [feed]
    title: str = "feeder"
    subtitle: str = "Articles published by feeder"
    author: str = "feeder"
    base_url: str = ""  # empty: http://<host>:<port>/
    language: str = "en"
    default_language: str = "en"
    languages: tuple[str, ...] = ()
    tag_authority: str = ""
    tag_date: str = "2025"
    timezone: str = "UTC"
    max_entries: int = 50
    archive_size: int = 50
    title_length: int = 90
    summary_length: int = 300
    # [paths]
    seeds: Path = Path("seeds")
    out: Path = Path("public")
    state: Path = Path("feeder.sqlite3")
    extensions: tuple[str, ...] = (".txt",)
    max_seed_bytes: int = 4 * 1024 * 1024
    # [serve]
    host: str = "127.0.0.1"
    port: int = 8080
    max_age: int = 60
    # [websub]
    hubs: tuple[str, ...] = ()
    ping_timeout: float = 4.0  # short enough that shutdown never waits long on a hung hub
    ping_max_attempts: int = 10
    ping_backoff: float = 2.0
    # [daemon]
    debounce: float = 0.2
    settle: float = 1.0
    rescan_interval: float = 300.0
    max_future_days: int = 366

    def __post_init__(self) -> None:
        if not self.base_url:
            host = f"[{self.host}]" if ":" in self.host else self.host
            object.__setattr__(self, "base_url", f"http://{host}:{self.port}/")
        _validate(self)

    @property
    def authority(self) -> str:
        """The tagging authority of entry ids: configured, or the host of ``base_url``."""
        return self.tag_authority or (urlsplit(self.base_url).hostname or "localhost")

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    def url(self, path: str) -> str:
        return self.base_url + path

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


_FIELDS = {f.name: f for f in dataclasses.fields(Config)}
KEYS = tuple(k for keys in SECTIONS.values() for k in keys)
assert set(KEYS) == set(_FIELDS), set(KEYS) ^ set(_FIELDS)


def _coerce(key: str, value: Any) -> Any:
    """Turn a TOML or environment value into the field's type, or raise ConfigError."""
    default = _FIELDS[key].default
    if isinstance(default, int):
        try:
            if isinstance(value, (float, bool)):
                raise ValueError
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(key, value, "Not a valid integer.") from None
    if isinstance(default, float):
        try:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(key, value, "Not a valid number.") from None
    if isinstance(default, Path):
        if not isinstance(value, (str, Path)) or not str(value):
            raise ConfigError(key, value, "Not a valid path.")
        return Path(value)
    if isinstance(default, tuple):
        if isinstance(value, str):
            value = [v for v in (p.strip() for p in value.split(",")) if v]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(key, value, "Not a list of strings.")
        return tuple(value)
    if not isinstance(value, str):
        raise ConfigError(key, value, "Not a string.")
    return value


def _validate(c: Config) -> None:
    parts = urlsplit(c.base_url)
    if parts.scheme not in {"http", "https"} or not parts.netloc or not c.base_url.endswith("/"):
        raise ConfigError("base_url", c.base_url, "Must be an absolute http(s) URL ending in '/'.")
    for hub in c.hubs:
        hp = urlsplit(hub)
        if hp.scheme not in {"http", "https"} or not hp.netloc:
            raise ConfigError("hubs", hub, "Each hub must be an absolute http(s) URL.")
    try:
        zoneinfo.ZoneInfo(c.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError("timezone", c.timezone, "Not a known IANA time zone.") from None
    if len(c.tag_date) not in (4, 7, 10) or not c.tag_date[:4].isdigit():
        raise ConfigError("tag_date", c.tag_date, "Must be YYYY, YYYY-MM or YYYY-MM-DD (RFC 4151).")
    for key in ("max_entries", "archive_size", "title_length", "summary_length", "max_seed_bytes"):
        if getattr(c, key) < 1:
            raise ConfigError(key, getattr(c, key), "Must be at least 1.")
    if not 0 < c.port < 65536:
        raise ConfigError("port", c.port, "Must be between 1 and 65535.")
    for key in ("debounce", "settle", "ping_timeout", "ping_backoff"):
        if getattr(c, key) < 0:
            raise ConfigError(key, getattr(c, key), "Must not be negative.")
    if c.rescan_interval <= 0:
        raise ConfigError("rescan_interval", c.rescan_interval, "Must be positive.")
    if c.max_age < 0:
        raise ConfigError("max_age", c.max_age, "Must not be negative.")
    if c.ping_max_attempts < 1:
        raise ConfigError("ping_max_attempts", c.ping_max_attempts, "Must be at least 1.")
    if not c.extensions or not all(e.startswith(".") for e in c.extensions):
        raise ConfigError("extensions", list(c.extensions), "Must be suffixes such as '.txt'.")


def load(path: Path | None = None, env: Mapping[str, str] | None = None,
         **overrides: Any) -> Config:
    """Read the TOML file (if any), apply ``FEEDER_*`` variables, then ``overrides`` (not None)."""
    values: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError("--config", str(path), "No such file.") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError("--config", str(path), f"Not valid TOML: {exc}.") from None
        for section, table in data.items():
            if section not in SECTIONS or not isinstance(table, dict):
                raise ConfigError(section, table,
                                  f"Unknown section; expected one of {sorted(SECTIONS)}.")
            for key, value in table.items():
                if key not in SECTIONS[section]:
                    raise ConfigError(f"{section}.{key}", value, "Unknown setting.")
                values[key] = _coerce(key, value)
    env = os.environ if env is None else env
    for key in KEYS:
        name = f"FEEDER_{key.upper()}"
        if name in env:
            values[key] = _coerce(key, env[name])
    for key, value in overrides.items():
        if value is not None:
            values[key] = _coerce(key, value)
    if "language" in values and "default_language" not in values:
        values["default_language"] = values["language"]
    base = values.get("base_url")
    if isinstance(base, str) and base and not base.endswith("/"):
        values["base_url"] = base + "/"
    return Config(**values)
