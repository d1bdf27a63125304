"""Config: TOML file, then FEEDER_* environment variables, then keyword overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from feeder.config import Config, load
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
    with pytest.raises(ConfigError, match=r"Config 'port' has value 'x'\. Not a valid integer\."):
        load(env={"FEEDER_PORT": "x"})


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="No such file"):
        load(tmp_path / "absent.toml", env={})
    with pytest.raises(ConfigError, match="Not valid TOML") as info:
        load(_write(tmp_path, "[feed\ntitle = 1"), env={})
    assert info.value.key == "--config"


def test_config_is_frozen_and_validated_on_replace() -> None:
    config = load(env={})
    with pytest.raises(AttributeError):
        config.port = 1  # type: ignore[misc]
    assert config.replace(port=None).port == 8080
    with pytest.raises(ConfigError):
        config.replace(timezone="Nowhere/Else")
