"""Every setting is documented, in the example config and in the README."""

from __future__ import annotations

import tomllib

import pytest

from feeder import config

from .conftest import REPO

EXAMPLE = (REPO / "config" / "feeder.toml").read_text(encoding="utf-8")
README = (REPO / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("key", config.KEYS)
def test_setting_is_in_example_config(key: str) -> None:
    section = next(s for s, keys in config.SECTIONS.items() if key in keys)
    assert f"\n{key} =" in EXAMPLE or f"\n# {key}" in EXAMPLE, f"[{section}] {key}"


@pytest.mark.parametrize("key", config.KEYS)
def test_setting_is_in_readme(key: str) -> None:
    assert f"`{key}`" in README, key


def test_example_config_loads() -> None:
    tomllib.loads(EXAMPLE)
    assert config.load(REPO / "config" / "feeder.toml", env={}).title == "feeder sample"


@pytest.mark.parametrize("key", sorted(config.RANGES))
def test_range_is_documented(key: str) -> None:
    """The bounds the code enforces are the ones both documents state, as ``low to high``."""
    text = config.RANGES[key].text
    row = next(line for line in README.splitlines() if line.startswith("|")
               and f"| `{key}` |" in line)
    assert text in row, (key, text, row)
    line = next(line for line in EXAMPLE.splitlines() if line.startswith(f"{key} ="))
    assert text in line.partition("#")[2], (key, text, line)
