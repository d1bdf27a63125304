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
