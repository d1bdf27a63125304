"""The ``feeder`` command: build, check, run, serve, ping.

The only place where FeederError becomes an exit status and a message for a person.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from . import __version__
from . import config as config_mod
from .builder import Builder, utcnow
from .errors import FeederError
from .store import Store

log = logging.getLogger("feeder")


def _setup_logging(verbose: bool, timestamps: bool = False) -> None:
    fmt = "%(asctime)s %(levelname)-7s %(message)s" if timestamps else "%(levelname)s: %(message)s"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(fmt, datefmt="%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger("feeder")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False


def path_options(fn: Callable) -> Callable:
    """--config, --seeds, --out, --state, --base-url: shared by every command."""
    opts = [
        click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
                     help="TOML config file (see config/feeder.toml)."),
        click.option("--seeds", type=click.Path(file_okay=False, path_type=Path),
                     help="Folder of seed files."),
        click.option("--out", type=click.Path(file_okay=False, path_type=Path),
                     help="Output folder for the feeds and pages."),
        click.option("--state", type=click.Path(dir_okay=False, path_type=Path),
                     help="SQLite state file."),
        click.option("--base-url", help="Public URL of the output folder, ending in '/'."),
        click.option("-v", "--verbose", is_flag=True, help="Log debug details."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def handle_errors(fn: Callable) -> Callable:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except FeederError as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper


def load_config(config_path: Path | None, **overrides: Any) -> config_mod.Config:
    return config_mod.load(config_path, **overrides)


@click.group()
@click.version_option(__version__, prog_name="feeder")
def main() -> None:
    """Publish a folder of plain-text articles as Atom, RSS and JSON Feed."""


@main.command()
@path_options
@click.option("--force", is_flag=True, help="Re-render every output, even unchanged ones.")
@handle_errors
def build(config_path: Path | None, seeds: Path | None, out: Path | None, state: Path | None,
          base_url: str | None, verbose: bool, force: bool) -> None:
    """Rebuild the feeds and pages once, then exit."""
    _setup_logging(verbose)
    cfg = load_config(config_path, seeds=seeds, out=out, state=state, base_url=base_url)
    with _open_store(cfg) as store:
        report = Builder(cfg, store).build(force=force)
    click.echo(report.summary())
    for name, when in report.scheduled:
        click.echo(f"scheduled {name}: appears at {when.isoformat()}")
    click.echo(f"feeds: {cfg.out / 'atom.xml'}, {cfg.out / 'rss.xml'}, {cfg.out / 'feed.json'}")


@main.command()
@path_options
@handle_errors
def check(config_path: Path | None, seeds: Path | None, out: Path | None, state: Path | None,
          base_url: str | None, verbose: bool) -> None:
    """List every seed that would be rejected, and why; exit 1 if there is any.

    Uses a scratch copy of nothing: the seeds are read and checked without writing outputs.
    """
    _setup_logging(verbose)
    cfg = load_config(config_path, seeds=seeds, out=out, state=state, base_url=base_url)
    builder = Builder(cfg, Store(":memory:"), progress=False)
    logging.getLogger("feeder").setLevel(logging.ERROR)
    from .builder import BuildReport

    report = BuildReport()
    builder._changed_entries, builder._pending_removals, builder._full = [], [], True
    builder.sync(report)
    rejected = builder.store.rejected()
    for name, reason in rejected:
        click.echo(f"{name}: {reason}")
    for name, when in builder.store.scheduled(utcnow()):
        click.echo(f"{name}: scheduled, appears at {when.isoformat()}")
    ok = builder.store.count(utcnow())
    click.echo(f"{ok} seeds ok, {len(rejected)} rejected")
    if rejected:
        sys.exit(1)


def _open_store(cfg: config_mod.Config) -> Store:
    store = Store.open_or_recreate(cfg.state)
    store.lock()
    if store.recreated:
        log.warning("state file %s was unusable: moved it aside and rebuilt it from the seeds",
                    cfg.state)
    return store
