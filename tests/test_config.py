"""Config: TOML file, then FEEDER_* environment variables, then keyword overrides."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from feeder.config import RANGES, SECTIONS, Config, load
from feeder.errors import ConfigError

TOML = """
[feed]
title = "Notizie"
base_url = "https://news.example.org/feed"
language = "it"
languages = ["it", "en"]
timezone = "Europe/Rome"
summary_length = 250

[paths]
seeds = "articoli"

[serve]
port = 8081

[websub]
hubs = ["https://hub.example.net/"]
ping_timeout = 5
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "feeder.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_file_or_environment() -> None:
    assert load(env={}) == Config()


def test_load_from_toml(tmp_path: Path) -> None:
    config = load(_write(tmp_path, TOML), env={})
    assert config.title == "Notizie"
    assert config.base_url == "https://news.example.org/feed/"  # trailing slash added
    assert config.url("atom.xml") == "https://news.example.org/feed/atom.xml"
    assert config.authority == "news.example.org"
    assert (config.language, config.default_language) == ("it", "it")
    assert config.languages == ("it", "en")
    assert config.summary_length == 250
    assert config.seeds == Path("articoli")
    assert config.port == 8081
    assert config.hubs == ("https://hub.example.net/",)
    assert config.ping_timeout == 5.0 and isinstance(config.ping_timeout, float)
    assert str(config.tz) == "Europe/Rome"


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    env = {
        "FEEDER_PORT": "9000",
        "FEEDER_LANGUAGES": "de, fr,,",
        "FEEDER_BASE_URL": "http://localhost:9000",
        "FEEDER_TAG_AUTHORITY": "example.org",
        "HOME": "/ignored",
    }
    config = load(_write(tmp_path, TOML), env=env)
    assert config.port == 9000
    assert config.languages == ("de", "fr")
    assert config.base_url == "http://localhost:9000/"
    assert config.authority == "example.org"
    assert config.title == "Notizie"  # untouched by the environment


def test_keyword_overrides_win_and_none_is_ignored(tmp_path: Path) -> None:
    config = load(_write(tmp_path, TOML), env={"FEEDER_PORT": "9000"}, port=9100, title=None)
    assert config.port == 9100 and config.title == "Notizie"


def test_process_environment_is_read_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEEDER_MAX_ENTRIES", "7")
    assert load().max_entries == 7


@pytest.mark.parametrize(
    ("toml", "key", "value"),
    [
        ('[serve]\nport = "x"', "port", "x"),
        ("[serve]\nport = 70000", "port", 70000),
        ("[serve]\nport = 80.5", "port", 80.5),
        ('[feed]\nbase_url = "ftp://x"', "base_url", "ftp://x/"),
        ('[feed]\nbase_url = "example.org/"', "base_url", "example.org/"),
        ('[feed]\ncolour = "blue"', "feed.colour", "blue"),
        ('[colours]\nfeed = "blue"', "colours", {"feed": "blue"}),
        ('title = "top level"', "title", "top level"),
        ('[feed]\ntimezone = "Mars/Olympus"', "timezone", "Mars/Olympus"),
        ('[feed]\ntag_date = "25"', "tag_date", "25"),
        ("[feed]\nmax_entries = 0", "max_entries", 0),
        ("[feed]\nlanguages = [1, 2]", "languages", [1, 2]),
        ('[websub]\nhubs = ["not a url"]', "hubs", "not a url"),
        ('[websub]\nping_timeout = "soon"', "ping_timeout", "soon"),
        ('[paths]\nextensions = ["txt"]', "extensions", ["txt"]),
        ('[paths]\nseeds = ""', "seeds", ""),
    ],
)
def test_errors_name_the_key_and_the_value(
    tmp_path: Path, toml: str, key: str, value: object
) -> None:
    with pytest.raises(ConfigError) as info:
        load(_write(tmp_path, toml), env={})
    err = info.value
    assert err.key == key
    assert err.value == value
    assert repr(key) in str(err) and repr(value) in str(err)


def test_a_comma_separated_string_is_a_list(tmp_path: Path) -> None:
    assert load(_write(tmp_path, '[feed]\nlanguages = "it, en"'), env={}).languages == ("it", "en")


def test_bad_environment_value_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"^Config 'port' has value 'x' \(from FEEDER_PORT\): "
                                          r"not a valid integer$"):
        load(env={"FEEDER_PORT": "x"})


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load(tmp_path / "absent.toml", env={})
    with pytest.raises(ConfigError, match="not valid TOML") as info:
        load(_write(tmp_path, "[feed\ntitle = 1"), env={})
    assert info.value.key == "--config"
    with pytest.raises(ConfigError, match="cannot read it: Is a directory"):
        load(tmp_path, env={})


def test_config_is_frozen_and_validated_on_replace() -> None:
    config = load(env={})
    with pytest.raises(AttributeError):
        config.port = 1  # type: ignore[misc]
    assert config.replace(port=None).port == 8080
    with pytest.raises(ConfigError):
        config.replace(timezone="Nowhere/Else")


# Values that feeder 7de1734 accepted and that then wedged the daemon, failed every ping or
# build, or ended a build in an OverflowError or a feedgen traceback (issue 11).
ACCEPTED_BEFORE = [
    ("debounce", math.nan), ("debounce", math.inf), ("debounce", 1e300), ("debounce", 3600.0),
    ("settle", math.nan), ("settle", math.inf), ("settle", 0.0),
    ("rescan_interval", math.nan), ("rescan_interval", math.inf), ("rescan_interval", 1e-9),
    ("ping_timeout", math.nan), ("ping_timeout", math.inf), ("ping_timeout", 0.0),
    ("ping_backoff", math.nan), ("ping_backoff", math.inf), ("ping_backoff", 1e300),
    ("ping_max_attempts", 10**30),
    ("max_future_days", 10**10), ("max_future_days", -1),
    ("max_seed_bytes", 10**20),
    ("max_entries", 10**12), ("archive_size", 10**12),
    ("title_length", 10**12), ("summary_length", 10**12),
    ("max_age", 10**20),
    ("title", ""), ("title", "   "), ("author", ""), ("language", ""), ("subtitle", ""),
    ("default_language", ""), ("language", "not a language"), ("host", ""),
    ("default_language", "EN"), ("default_language", "en" + "-abcdefgh" * 40),
    ("title", "bell\x07"), ("languages", ["xx"]), ("tag_authority", "a b"),
    ("tag_date", "2025-13"), ("tag_date", "2025-02-30"), ("extensions", ["."]),
]


def _toml_value(value: object) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # nan, inf: TOML's own spelling
    return json.dumps(value)


def _env_value(value: object) -> str:
    return ",".join(value) if isinstance(value, list) else str(value)


def _section(key: str) -> str:
    return next(s for s, keys in SECTIONS.items() if key in keys)


@pytest.mark.parametrize(("key", "value"), ACCEPTED_BEFORE, ids=repr)
def test_bad_value_in_the_file_names_key_value_and_place(
    tmp_path: Path, key: str, value: object
) -> None:
    path = _write(tmp_path, f"[{_section(key)}]\n{key} = {_toml_value(value)}\n")
    with pytest.raises(ConfigError) as info:
        load(path, env={})
    err = info.value
    assert (err.key, err.source) == (key, f"{path} [{_section(key)}]")
    message = str(err)
    assert message.startswith(f"Config {key!r} has value ") and "\n" not in message
    assert f"(from {path} [{_section(key)}]): " in message


@pytest.mark.parametrize(("key", "value"), ACCEPTED_BEFORE, ids=repr)
def test_bad_value_in_the_environment_names_key_value_and_variable(
    key: str, value: object
) -> None:
    name = f"FEEDER_{key.upper()}"
    with pytest.raises(ConfigError) as info:
        load(env={name: _env_value(value)})
    err = info.value
    assert (err.key, err.source) == (key, name)
    assert f"(from {name}): " in str(err)


def test_a_range_error_reads_like_the_docs() -> None:
    with pytest.raises(ConfigError) as info:
        load(env={"FEEDER_DEBOUNCE": "nan"})
    assert str(info.value) == ("Config 'debounce' has value nan (from FEEDER_DEBOUNCE): "
                               "must be a finite number between 0 and 10 (seconds)")


@pytest.mark.parametrize("key", sorted(RANGES))
def test_each_range_holds_its_bounds_and_nothing_past_them(key: str) -> None:
    bounds = RANGES[key]
    assert bounds.low <= getattr(Config(), key) <= bounds.high  # the default is allowed
    for value in (bounds.low, bounds.high):
        assert getattr(load(env={}, **{key: value}), key) == value
    step = 1 if isinstance(bounds.low, int) else bounds.low * 0.01 + 0.01
    for value in (bounds.low - step, bounds.high + step):
        with pytest.raises(ConfigError, match="between") as info:
            load(env={}, **{key: value})
        assert info.value.key == key and info.value.source is None


def test_a_number_too_large_for_a_float_is_not_an_overflow(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a valid number"):
        load(_write(tmp_path, f"[daemon]\ndebounce = {10**400}\n"), env={})


@pytest.mark.parametrize(("key", "value"), [
    ("language", "pt-BR"), ("language", "zh-Hant-TW"), ("languages", ("it", "en", "zh")),
    ("tag_authority", "news.example.org"), ("tag_authority", "editor@example.org"),
    ("tag_date", "2025-02"), ("tag_date", "2024-02-29"), ("extensions", (".txt", ".md")),
])
def test_valid_text_settings_are_kept(key: str, value: object) -> None:
    assert getattr(load(env={}, **{key: value}), key) == value
