"""The ``feeder`` command: build, check, run, serve, ping.

The only place where FeederError becomes an exit status and a message for a person.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import signal
import sqlite3
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from . import __version__, output, search
from . import config as config_mod
from .builder import BuildCancelled, Builder, utcnow
from .errors import FeederError, OutputError
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
        # config.load and _prepare_folders check the paths, in one line each (click's
        # checks print a usage message and miss paths set in the file or the environment).
        click.option("--config", "config_path", type=click.Path(path_type=Path),
                     help="TOML config file (see config/feeder.toml)."),
        click.option("--seeds", type=click.Path(path_type=Path), help="Folder of seed files."),
        click.option("--out", type=click.Path(path_type=Path),
                     help="Output folder for the feeds and pages."),
        click.option("--state", type=click.Path(path_type=Path), help="SQLite state file."),
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


def _prepare_folders(cfg: config_mod.Config, *, writes: bool = True) -> None:
    """Refuse a missing seeds folder; make the output and state folders if ``writes``.

    Each problem is one line naming the path, not a traceback from deep inside a build.
    """
    if not cfg.seeds.is_dir():
        state = "is not a folder" if cfg.seeds.exists() else "does not exist"
        raise click.ClickException(f"seeds folder {cfg.seeds} {state} (set by --seeds, "
                                   "FEEDER_SEEDS or [paths] seeds)")
    if not writes:
        return
    _make_folder("state file's folder", cfg.state.parent)


def _make_folder(what: str, folder: Path) -> None:
    """Make ``folder`` or fail in one line. The output folder is made only once the state
    file's lock is held, so a refused second process leaves no trace."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.ClickException(f"cannot make the {what} {folder}: "
                                   f"{exc.strerror or exc}") from None


@click.group()
@click.version_option(__version__, prog_name="feeder")
def main() -> None:
    """Publish a folder of plain-text articles as Atom, RSS and JSON Feed."""


@main.command()
@path_options
@click.option("--force", is_flag=True, help="Re-render every output, even unchanged ones.")
@click.option("--allow-mass-delete", is_flag=True,
              help="Remove the entries of gone seeds even when more than max_delete_fraction "
                   "of them are gone.")
@click.option("--no-ping", is_flag=True,
              help="Do not ping the hubs now; the next `feeder run` announces the changes.")
@handle_errors
def build(config_path: Path | None, seeds: Path | None, out: Path | None, state: Path | None,
          base_url: str | None, verbose: bool, force: bool, allow_mass_delete: bool,
          no_ping: bool) -> None:
    """Rebuild the feeds and pages once, ping the hubs for the feeds that changed, exit."""
    _setup_logging(verbose)
    cfg = load_config(config_path, seeds=seeds, out=out, state=state, base_url=base_url)
    _prepare_folders(cfg)
    try:
        with Store.open_locked(cfg.state, output=cfg.out) as store:
            if base_url is None and not config_mod.sets(config_path, "base_url"):
                cfg = _stored_base_url(cfg, store)
            _make_folder("output folder", cfg.out)
            output.sweep_temp_files(cfg.out)
            builder = Builder(cfg, store, allow_mass_delete=allow_mass_delete)
            with _sigterm_cancels(builder.cancel):
                report = builder.build(force=force)
            left = _announce(cfg) if cfg.hubs and not no_ping else 0
            indexed = search.update(cfg, report, force=force)
    except sqlite3.Error as exc:  # a full disk, an I/O error: what was committed stays
        raise click.ClickException(f"state file {cfg.state}: {exc}") from exc
    click.echo(report.summary())
    if indexed:
        click.echo(indexed)
    if left:
        click.echo(f"{left} pings not delivered yet: the next `feeder run` sends them")
    for name, when in report.scheduled:
        click.echo(f"scheduled {name}: appears at {when.isoformat()}")
    click.echo(f"feeds: {cfg.out / 'atom.xml'}, {cfg.out / 'rss.xml'}, {cfg.out / 'feed.json'}")
    if report.blocked:  # each was logged; the rest went out and was announced
        raise OutputError(*report.blocked[0])


@contextlib.contextmanager
def _sigterm_cancels(cancel: threading.Event) -> Any:
    """SIGTERM (systemd, ``timeout``, ``kill``) stops a build at its next batch, as the
    daemon's child stops (``BuildCancelled``: the workers finish the job in hand, the temp
    files go, what was committed stays), where SIGTERM's default ended it at once, silently,
    its temp files left behind. Only a flag is set: an exception raised by the handler
    itself can hang the process pool if it lands while the workers start."""
    previous = signal.signal(signal.SIGTERM, lambda _signum, _frame: cancel.set())
    try:
        yield
    except BuildCancelled:
        raise click.ClickException("stopped by SIGTERM: what was put in place stays, and "
                                   "the next build does the rest") from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stored_base_url(cfg: config_mod.Config, store: Store) -> config_mod.Config:
    """The base URL the output was built with, for a build that sets none: its default
    (http://host:port/) would differ from a daemon's on another port, and each would render
    every output again."""
    stored = store.get_meta("base_url")
    if not isinstance(stored, str) or stored == cfg.base_url:
        return cfg
    log.info("base_url: %s, as the output was built (set base_url or --base-url to change it)",
             stored)
    return cfg.replace(base_url=stored)


def _held_deletions(cfg: config_mod.Config) -> str | None:
    """What the mass-deletion guard would hold in the next build of the state file, if any."""
    from .sync import mass_deletion, missing_entries

    if not cfg.state.is_file():
        return None
    with Store(cfg.state, read_only=True) as store:  # beside a running daemon, too
        missing, total = missing_entries(store, cfg.seeds), store.total()
    if not mass_deletion(missing, total, cfg.max_delete_fraction):
        return None
    return (f"{missing} of {total} entries have no seed in {cfg.seeds} (more than "
            f"max_delete_fraction = {cfg.max_delete_fraction:g}): their removal is held; "
            "confirm with `feeder build --allow-mass-delete`, or put the seeds back")


def _announce(cfg: config_mod.Config) -> int:
    """Send the pending pings once, within about two ``ping_timeout``; returns how many
    are left for ``feeder run``."""
    from . import websub
    from .store import PingStore

    with PingStore(cfg.state) as pings, websub.make_client(cfg.ping_timeout) as client:
        pinger = websub.Pinger(pings, client, max_attempts=cfg.ping_max_attempts,
                               backoff=cfg.ping_backoff)
        pinger.hubs = frozenset(cfg.hubs)
        return pinger.run_once(cfg.ping_timeout)


@main.command()
@path_options
@handle_errors
def check(config_path: Path | None, seeds: Path | None, out: Path | None, state: Path | None,
          base_url: str | None, verbose: bool) -> None:
    """List every seed that would be rejected, and why, and a mass deletion the next build
    would hold; exit 1 if there is any.

    Uses a scratch copy of nothing: the seeds are read and checked without writing outputs.
    """
    _setup_logging(verbose)
    cfg = load_config(config_path, seeds=seeds, out=out, state=state, base_url=base_url)
    _prepare_folders(cfg, writes=False)
    builder = Builder(cfg, Store(":memory:"), progress=False)
    logging.getLogger("feeder").setLevel(logging.ERROR)
    builder.sync()
    rejected = builder.store.rejected()
    for name, reason in rejected:
        click.echo(f"{name}: {reason}")
    for name, when in builder.store.scheduled(utcnow()):
        click.echo(f"{name}: scheduled, appears at {when.isoformat()}")
    ok = builder.store.count(utcnow())
    click.echo(f"{ok} seeds ok, {len(rejected)} rejected")
    held = _held_deletions(cfg)
    if held:
        click.echo(held)
    if rejected or held:
        sys.exit(1)


def serve_options(fn: Callable) -> Callable:
    fn = click.option("--port", type=int, help="Port to listen on (default 8080).")(fn)
    fn = click.option("--host", help="Address to bind (default 127.0.0.1).")(fn)
    return fn


@main.command()
@path_options
@serve_options
@click.option("--hub", "hubs", multiple=True, help="WebSub hub URL to ping (repeatable).")
@handle_errors
def run(config_path: Path | None, seeds: Path | None, out: Path | None, state: Path | None,
        base_url: str | None, verbose: bool, host: str | None, port: int | None,
        hubs: tuple[str, ...]) -> None:
    """Watch the seeds folder, rebuild on change, serve the feeds, ping hubs."""
    from .daemon import Daemon, reloader

    _setup_logging(verbose, timestamps=True)
    overrides = dict(seeds=seeds, out=out, state=state, base_url=base_url, host=host, port=port,
                     hubs=list(hubs) or None)
    cfg = load_config(config_path, **overrides)
    _prepare_folders(cfg)  # a folder that goes missing later is waited for, not fatal
    Daemon(cfg, reload=reloader(config_path, overrides)).run_forever()


@main.command()
@path_options
@serve_options
@click.option("--hub", "hubs", multiple=True, help="WebSub hub URL to advertise (repeatable).")
@handle_errors
def serve(config_path: Path | None, seeds: Path | None, out: Path | None, state: Path | None,
          base_url: str | None, verbose: bool, host: str | None, port: int | None,
          hubs: tuple[str, ...]) -> None:
    """Serve an output folder over HTTP without watching or building."""
    from .server import create_app, make_server

    _setup_logging(verbose, timestamps=True)
    cfg = load_config(config_path, seeds=seeds, out=out, state=state, base_url=base_url,
                      host=host, port=port, hubs=list(hubs) or None)
    if not cfg.out.is_dir():
        raise click.ClickException(f"output folder {cfg.out} does not exist: run feeder build")
    app = create_app(cfg.out, base_url=cfg.base_url, hubs=cfg.hubs, max_age=cfg.max_age,
                     revalidate=cfg.revalidate)
    server = make_server(app, cfg.host, cfg.port)
    log.info("serving %s on http://%s:%d/", cfg.out, cfg.host, cfg.port)
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises Ctrl-C after shutdown
        server.run()


@main.command()
@path_options
@click.option("--hub", "hubs", multiple=True, help="Hub URL (repeatable; default: config).")
@handle_errors
def ping(config_path: Path | None, seeds: Path | None, out: Path | None, state: Path | None,
         base_url: str | None, verbose: bool, hubs: tuple[str, ...]) -> None:
    """Ping every hub for every feed now (the language feeds too); exit 1 if any hub
    refused."""
    import httpx  # noqa: F401 - fail early if missing

    from . import langfeeds, websub
    from .errors import PublishError

    _setup_logging(verbose)
    cfg = load_config(config_path, seeds=seeds, out=out, state=state, base_url=base_url,
                      hubs=list(hubs) or None)
    if not cfg.hubs:
        raise click.ClickException("no hubs configured: set [websub] hubs or pass --hub")
    if base_url is None and not config_mod.sets(config_path, "base_url") and cfg.state.is_file():
        with Store(cfg.state, read_only=True) as store:  # the topics the output names
            cfg = _stored_base_url(cfg, store)
    failed = 0
    with websub.make_client(cfg.ping_timeout) as client:
        for hub in cfg.hubs:
            for feed in ("atom.xml", "rss.xml", "feed.json", *langfeeds.feeds_in(cfg.out)):
                topic = cfg.base_url + feed
                try:
                    websub.ping(client, hub, topic)
                    click.echo(f"pinged {hub} for {topic}")
                except PublishError as exc:
                    failed += 1
                    click.echo(f"FAILED {hub} for {topic}: {exc.reason}", err=True)
    if failed:
        sys.exit(1)
