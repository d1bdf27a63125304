"""Settings: a TOML file, then ``FEEDER_<KEY>`` environment variables, then CLI options.

Every setting lives in one section of the file (``[feed]``, ``[paths]``, ...) and has a
unique key, so the environment and the CLI can name it by key alone. Relative paths are
taken from the current directory.

A Config is validated when it is made: every number finite and inside its range in
``RANGES`` (the README and config/feeder.toml state the same ranges; tests/test_docs.py
checks), required text not blank, codes, zones, dates and URLs well formed. A bad value is a
ConfigError naming the key, the value and, from ``load``, the file section or variable.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import tomllib
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigError
from .normalizer import DETECTABLE_LANGUAGES

SECTIONS: dict[str, tuple[str, ...]] = {
    "feed": (
        "title", "subtitle", "author", "base_url", "language", "default_language",
        "languages", "tag_authority", "tag_date", "timezone", "max_entries",
        "archive_size", "max_feed_bytes", "title_length", "summary_length",
    ),
    "paths": ("seeds", "out", "state", "extensions", "max_seed_bytes"),
    "serve": ("host", "port", "max_age", "revalidate"),
    "websub": ("hubs", "ping_timeout", "ping_max_attempts", "ping_backoff"),
    "daemon": ("debounce", "settle", "rescan_interval", "max_future_days",
               "max_delete_fraction"),
    "site": ("search", "search_interval"),
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
    max_feed_bytes: int = 1024 * 1024
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
    revalidate: float = 0.1  # feeder.server.REVALIDATE
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
    max_delete_fraction: float = 0.5  # a pass removing more of the entries is held
    # [site]
    search: bool = False  # a Pagefind index of the entry pages (search.py)
    search_interval: float = 60.0  # the daemon rebuilds it at most this often

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


@dataclass(frozen=True)
class Range:
    """The values a numeric setting may take, bounds included (whole numbers if they are)."""

    low: int | float
    high: int | float
    unit: str = ""

    @property
    def text(self) -> str:
        """``low to high``, as the README and config/feeder.toml state it."""
        return f"{_number(self.low)} to {_number(self.high)}"

    def check(self, key: str, value: Any) -> None:
        whole = isinstance(self.low, int)
        number = not isinstance(value, bool) and isinstance(value, int if whole else (int, float))
        if number and self.low <= value <= self.high:  # NaN compares false: refused below
            return
        kind = "a whole number" if whole else "a finite number"
        unit = f" ({self.unit})" if self.unit else ""
        raise ConfigError(key, value, f"must be {kind} between {_number(self.low)} and "
                                      f"{_number(self.high)}{unit}")


def _number(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


# Wide enough for any real site, narrow enough that a typo (an hour of debounce, a year of
# settle, a number past what the clock or a C int holds) is refused with its key, not met
# later as a wedged daemon or an OverflowError.
RANGES: dict[str, Range] = {
    "max_entries": Range(1, 1000, "entries"),
    "archive_size": Range(1, 1000, "entries"),
    "max_feed_bytes": Range(64 * 1024, 64 * 1024 * 1024, "bytes"),
    "title_length": Range(10, 1000, "characters"),
    "summary_length": Range(10, 10_000, "characters"),
    "max_seed_bytes": Range(1, 256 * 1024 * 1024, "bytes"),
    "port": Range(1, 65535),
    "max_age": Range(0, 31_536_000, "seconds"),
    "revalidate": Range(0.0, 60.0, "seconds"),
    "ping_timeout": Range(0.5, 120.0, "seconds"),
    "ping_max_attempts": Range(1, 100),
    "ping_backoff": Range(0.1, 3600.0, "seconds"),
    "debounce": Range(0.0, 10.0, "seconds"),
    "settle": Range(0.05, 60.0, "seconds"),
    "rescan_interval": Range(1.0, 86400.0, "seconds"),
    "max_future_days": Range(0, 3660, "days"),
    "max_delete_fraction": Range(0.0, 1.0, "of the entries"),
    "search_interval": Range(1.0, 86400.0, "seconds"),
}
assert set(RANGES) == {k for k, f in _FIELDS.items() if type(f.default) in (int, float)}

_REQUIRED_TEXT = ("title", "subtitle", "author")  # feedgen refuses a feed without them
_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*")  # BCP 47, loosely
# default_language also names entries' folder lang/<code>/ (langfeeds.CODE): lowercase, and
# short enough for a file name (35 characters: what RFC 5646 asks every tag to fit in)
_ENTRY_LANGUAGE = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{1,8})*")
_ENTRY_LANGUAGE_MAX = 35
_DNS_NAME = r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*"
_TAG_AUTHORITY = re.compile(rf"([A-Za-z0-9._-]+@)?{_DNS_NAME}")  # RFC 4151 authorityName
_TAG_DATE = re.compile(r"\d{4}(-\d\d){0,2}", re.ASCII)
# as the environment spells a boolean (TOML has its own true and false)
_BOOLEAN = {"true": True, "1": True, "yes": True, "on": True,
            "false": False, "0": False, "no": False, "off": False}


def _coerce(key: str, value: Any) -> Any:
    """Turn a TOML or environment value into the field's type, or raise ConfigError."""
    default = _FIELDS[key].default
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        word = value.strip().lower() if isinstance(value, str) else None
        if word in _BOOLEAN:
            return _BOOLEAN[word]
        raise ConfigError(key, value, "not true or false")
    if isinstance(default, int):
        try:
            if isinstance(value, (float, bool)):
                raise ValueError
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(key, value, "not a valid integer") from None
    if isinstance(default, float):
        try:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(key, value, "not a valid number") from None
    if isinstance(default, Path):
        if not isinstance(value, (str, Path)) or not str(value):
            raise ConfigError(key, value, "not a valid path")
        return Path(value)
    if isinstance(default, tuple):
        if isinstance(value, str):
            value = [v for v in (p.strip() for p in value.split(",")) if v]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(key, value, "not a list of strings")
        return tuple(value)
    if not isinstance(value, str):
        raise ConfigError(key, value, "not a string")
    return value


def _validate(c: Config) -> None:
    for key, bounds in RANGES.items():
        bounds.check(key, getattr(c, key))
    for key in _REQUIRED_TEXT:
        value = getattr(c, key)
        if not value.strip():
            raise ConfigError(key, value, "must not be empty")
        if _NOT_XML.search(value):
            raise ConfigError(key, value, "must not hold control characters")
    if not isinstance(c.search, bool):
        raise ConfigError("search", c.search, "not true or false")
    if not c.host.strip():
        raise ConfigError("host", c.host, "must not be empty")
    parts = urlsplit(c.base_url)
    if parts.scheme not in {"http", "https"} or not parts.netloc or not c.base_url.endswith("/"):
        raise ConfigError("base_url", c.base_url, "must be an absolute http(s) URL ending in '/'")
    for hub in c.hubs:
        hp = urlsplit(hub)
        if hp.scheme not in {"http", "https"} or not hp.netloc:
            raise ConfigError("hubs", hub, "each hub must be an absolute http(s) URL")
    for key in ("language", "default_language"):
        if not _LANGUAGE_TAG.fullmatch(getattr(c, key)):
            raise ConfigError(key, getattr(c, key),
                              "must be a language code such as 'en' or 'pt-BR'")
    if (not _ENTRY_LANGUAGE.fullmatch(c.default_language)
            or len(c.default_language) > _ENTRY_LANGUAGE_MAX):
        raise ConfigError("default_language", c.default_language,
                          f"must be a lowercase language code of at most {_ENTRY_LANGUAGE_MAX}"
                          " characters such as 'en' or 'pt-BR' (it names lang/<code>/)")
    for code in c.languages:
        if code not in DETECTABLE_LANGUAGES:
            raise ConfigError("languages", code, "not a code the language detector knows, "
                                                 "such as 'en', 'it' or 'de'")
    try:
        zoneinfo.ZoneInfo(c.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError("timezone", c.timezone, "not a known IANA time zone") from None
    if c.tag_authority and not _TAG_AUTHORITY.fullmatch(c.tag_authority):
        raise ConfigError("tag_authority", c.tag_authority,
                          "must be a domain name or an email address (RFC 4151)")
    if not _is_tag_date(c.tag_date):
        raise ConfigError("tag_date", c.tag_date, "must be YYYY, YYYY-MM or YYYY-MM-DD (RFC 4151)")
    if not c.extensions or not all(len(e) > 1 and e.startswith(".") and "/" not in e
                                   for e in c.extensions):
        raise ConfigError("extensions", list(c.extensions), "must be suffixes such as '.txt'")


def _is_tag_date(text: str) -> bool:
    """YYYY, YYYY-MM or YYYY-MM-DD, and a real date."""
    if not _TAG_DATE.fullmatch(text):
        return False
    try:
        dt.date.fromisoformat(text + {4: "-01-01", 7: "-01", 10: ""}[len(text)])
    except ValueError:
        return False
    return True


def sets(path: Path | None, key: str, env: Mapping[str, str] | None = None) -> bool:
    """Does the TOML file or the environment set ``key`` (rather than leave its default)?"""
    env = os.environ if env is None else env
    if f"FEEDER_{key.upper()}" in env:
        return True
    return path is not None and any(k == key for _s, k, _v in _read_file(Path(path)))


def load(path: Path | None = None, env: Mapping[str, str] | None = None,
         **overrides: Any) -> Config:
    """Read the TOML file (if any), apply ``FEEDER_*`` variables, then ``overrides`` (not None).

    An error names the key, the value and, for the file and the environment, where it was set.
    """
    given: dict[str, tuple[Any, str | None]] = {}  # key -> (value, where it was set)
    if path is not None:
        for section, key, value in _read_file(Path(path)):
            given[key] = (value, f"{path} [{section}]")
    env = os.environ if env is None else env
    for key in KEYS:
        name = f"FEEDER_{key.upper()}"
        if name in env:
            given[key] = (env[name], name)
    for key, value in overrides.items():
        if value is not None:
            given[key] = (value, None)
    try:
        values = {key: _coerce(key, value) for key, (value, _) in given.items()}
        if "language" in values and "default_language" not in values:
            values["default_language"] = values["language"]
        base = values.get("base_url")
        if isinstance(base, str) and base and not base.endswith("/"):
            values["base_url"] = base + "/"
        return Config(**values)
    except ConfigError as exc:
        if exc.key not in given:
            raise
        raise ConfigError(exc.key, exc.value, exc.reason, given[exc.key][1]) from None


def _read_file(path: Path) -> list[tuple[str, str, Any]]:
    """(section, key, value) of every setting in the TOML file, each key checked as known."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("--config", str(path), "no such file") from None
    except OSError as exc:
        raise ConfigError("--config", str(path), f"cannot read it: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError("--config", str(path), f"not valid TOML: {exc}") from None
    settings = []
    for section, table in data.items():
        if section not in SECTIONS or not isinstance(table, dict):
            raise ConfigError(section, table,
                              f"unknown section; expected one of {sorted(SECTIONS)}", str(path))
        for key, value in table.items():
            if key not in SECTIONS[section]:
                raise ConfigError(f"{section}.{key}", value, "unknown setting", str(path))
            settings.append((section, key, value))
    return settings
