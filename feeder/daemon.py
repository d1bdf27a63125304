"""``feeder run``: watcher + scheduler + builder + server + pings in one process.

Start-up: take the store's lock, start watching (so nothing is missed), start serving the
last good outputs, then reconcile the folder with the store in a first full build. From then
on the watcher's change sets drive debounced rebuilds; a periodic rescan catches what the
watcher missed. SIGTERM/SIGINT stop it cleanly within seconds; SIGHUP reloads the config.

Both folders are followed by path (``follow.py``): a seeds folder that is replaced, made
again or re-pointed gets a full pass at once, and an output folder that goes is made again
and completely re-written. Under systemd (``Type=notify``) it says when it is ready, what its
last build did, and that it is alive, while it is (``systemd.py``).
"""

from __future__ import annotations

import datetime as dt
import gc
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import apart, language, output, pool, recover, search, systemd, websub
from . import config as config_mod
from .builder import BuildCancelled, Builder, BuildReport, utcnow
from .config import Config
from .errors import OutputError
from .follow import Outputs, Poller, identity
from .scheduler import Scheduler, backoff
from .store import PingStore, Store
from .watcher import Watcher

log = logging.getLogger("feeder")
HEALTH_REJECTED = 50  # rejected seeds listed by /healthz, which stays small for pollers

# A pass asked for starts, and a running pass shows progress, within this (plus debounce and
# settle) or the systemd watchdog is left unfed.
STALL_AFTER = 60.0
SIGNAL_POLL = 0.5  # longest delay before the main thread runs a signal's handler
IDLE_AFTER = 5.0  # seconds without a pass before the daemon gives back what passes need


class Daemon:
    def __init__(self, config: Config, reload: Callable[[], Config] | None = None) -> None:
        self.config = config
        self._reload = reload
        self._stop = threading.Event()
        self._hup = threading.Event()
        self._health_lock = threading.Lock()
        self.last_build: dict[str, Any] = {}
        self.last_error: str | None = None
        self._seeds_missing = False
        self._blocked = 0  # passes in a row that left an output in the way of something
        self._state_gone = False  # deleted under us: restored before the next pass
        self._warm = False
        self._stopping = False
        self._passing = threading.Lock()  # held by a pass; idle clean-up waits for none
        self._idle: threading.Timer | None = None
        self._idle_lock = threading.Lock()
        self.server = None
        self._server_thread: threading.Thread | None = None

    # wiring ---------------------------------------------------------------------------------
    def start(self) -> None:
        from .server import listen

        c = self.config
        self._sockets = listen(c.host, c.port)  # first: a port in use stops nothing half-started
        self._prepare_following(c)
        self.store = Store.open_locked(c.state, output=c.out)
        self._state_identity = identity(c.state)
        self.ping_store = PingStore(c.state)  # the ping thread's; the builder queues in self.store
        self.read_store = Store(c.state)
        self.read_pings = PingStore(c.state)
        c.out.mkdir(parents=True, exist_ok=True)
        output.sweep_temp_files(c.out)
        self.watcher = Watcher(c.seeds, c.extensions, self._on_seeds, settle=c.settle,
                               on_replaced=self._on_seeds_replaced)
        self.builder = self._make_builder(c)
        self.indexer = search.Indexer()
        self.client = websub.make_client(c.ping_timeout)
        self.pinger = websub.Pinger(self.ping_store, self.client,
                                    max_attempts=c.ping_max_attempts, backoff=c.ping_backoff)
        self.pinger.hubs = frozenset(c.hubs)
        self.scheduler = Scheduler(self._pass, self._ping, debounce=c.debounce,
                                   rescan_interval=c.rescan_interval)
        self._request_pass(None)  # the first pass reconciles the folder with the store
        self._start_watcher()
        self._start_server()
        self.scheduler.start()
        self._start_following()
        if self.ping_store.pending_pings():
            self.scheduler.ping_soon()
        log.info("serving %s on http://%s:%d/ (feeds: %satom.xml, rss.xml, feed.json)",
                 c.out, c.host, c.port, c.base_url)

    def _start_watcher(self) -> None:
        try:
            self.watcher.start()
            self._seeds_missing = False
        except OSError as exc:
            if not self._seeds_missing:
                log.error("cannot watch seeds folder %s: %s; retrying at each rescan",
                          self.config.seeds, exc.strerror or exc)
            self._seeds_missing = True

    def _make_builder(self, c: Config) -> Builder:
        builder = Builder(c, self.store, busy=self.watcher.busy, settle=c.settle,
                          progress=False)
        builder.cancel = self._cancel  # its checks between batches are the watchdog's beat
        builder.on_feeds = self._feeds_out
        return builder

    def _feeds_out(self) -> None:
        """A pass has put its feeds in place: serve them now, not once its archive pages
        and sitemap are written too."""
        self.app.refresh()

    def _make_app(self, c: Config):  # noqa: ANN202
        from .server import create_app

        return create_app(c.out, base_url=c.base_url, hubs=c.hubs, max_age=c.max_age,
                          health=self.health, revalidate=c.revalidate)

    def _start_server(self) -> None:
        from .server import make_server

        c = self.config
        self.app = self._make_app(c)

        async def app(scope: dict, receive: Any, send: Any) -> None:  # swapped on reload
            await self.app(scope, receive, send)

        def answer(path: str, head: bool, headers: Any) -> Any:  # the server's direct path
            return self.app.answer(path, head, headers)

        app.answer = answer  # type: ignore[attr-defined]

        self.server = make_server(app, c.host, c.port, sockets=self._sockets)
        self._server_thread = threading.Thread(target=self.server.run, name="feeder-http",
                                               daemon=True)
        self._server_thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self._server_thread.is_alive() or time.monotonic() > deadline:
                raise OSError(f"HTTP server did not start on {c.host}:{c.port}")
            time.sleep(0.01)  # poll-with-timeout: uvicorn offers no start event

    # jobs -----------------------------------------------------------------------------------
    def _on_seeds(self, names: set[str]) -> None:
        # A name that is not UTF-8 cannot be looked up in the store: only a full pass rejects
        # it (by its shown name), so such a change is looked at by one.
        self._request_pass(names if all(_utf8(n) for n in names) else None)

    def _rebuild(self, names: set[str] | None) -> None:
        c = self.config
        if self._stopping:
            return
        if self.builder.config is not c:  # reloaded: swapped here, between passes
            self.builder = self._make_builder(c)
        if not os.path.isdir(c.seeds):
            if not self._seeds_missing:
                log.error("seeds folder %s is missing or unreadable; retrying at each rescan",
                          c.seeds)
            self._seeds_missing = True
            self.last_error = f"seeds folder {c.seeds} is missing or unreadable"
            return
        if not self.watcher.alive:
            log.info("watching %s again", c.seeds)
            self.watcher.restart()
            self._seeds_missing = False
            names = None
        try:
            report = self._build(names, force=self.outputs.pass_starts())
        except BuildCancelled:
            log.info("build interrupted by shutdown; the rest is picked up at the next start")
            return
        except Exception as exc:
            self.last_error = str(exc)
            with self._health_lock:
                self.last_build = {"time": utcnow().isoformat(), "ok": False, "error": str(exc)}
            self.scheduler.ping_soon()  # feeds replaced before the failure are announced
            raise
        finally:
            self.app.refresh()  # what the pass wrote is served from now on, before any ping
        # an output something was in the way of (logged): the rest went out
        blocked = OutputError(*report.blocked[0]) if report.blocked else None
        self.last_error = None if blocked is None else str(blocked)
        self._published(report)
        self.indexer.poke(c, report)  # the search index, rebuilt in the background
        if report.deferred:
            self.scheduler.notify(report.deferred, delay=c.settle)
        with self._health_lock:
            self.last_build = {"time": report.started.isoformat(), "ok": blocked is None,
                               "seconds": round(report.seconds, 4), "entries": report.entries}
            if blocked is not None:
                self.last_build["error"] = str(blocked)
        if report.seed_changes or report.written or report.rejected:
            log.info("%s%s", report.summary(),
                     f"; feeds changed: {', '.join(report.changed_feeds)}"
                     if report.changed_feeds else "")
        for name, when in report.scheduled:
            if name in report.added or name in report.changed:
                log.info("scheduled %s: appears at %s", name, when.isoformat())
        if report.pings_released and c.hubs:  # the publisher queued them in the store
            self.scheduler.ping_soon()
        self.scheduler.publish_at(self.store.next_scheduled(utcnow()))
        self._retry_blocked(blocked)

    def _retry_blocked(self, blocked: OutputError | None) -> None:
        """A pass that left an output as it was (something in the way: report.blocked) is
        not a failed pass, whose backoff would hold every new seed back too: a pass of no
        name is asked for after the same backoff (5 s, doubling up to 60 s), which renders
        the outputs left to render, while changes go on starting passes at once."""
        if blocked is None:
            if self._blocked:
                log.info("outputs in the way written after %d %s", self._blocked,
                         "pass" if self._blocked == 1 else "passes")
            self._blocked = 0
            return
        self._blocked += 1
        delay = backoff(self._blocked)
        log.warning("%s; trying again in %.0f s", blocked, delay)
        self.scheduler.notify(set(), delay=delay)

    def _build(self, names: set[str] | None, force: bool) -> BuildReport:
        """A cold build in a child process (``apart.py``: its fragmented heap goes with it),
        any other pass here."""
        builder = self.builder
        if names is None and builder.first_big_pass():
            report = apart.build(builder.config, cancel=builder.cancel, beat=self.progress.beat,
                                 busy=self.watcher.busy, on_feeds=builder.on_feeds, force=force)
            builder.pinned = recover.pin(builder.config, self.store)  # the child pinned them
            self._warm_up()  # after: the child has unpacked the model, if it was not yet
            # A pass of no names renders the current feeds here (unchanged: none is written),
            # so the first seed's pass finds their entries rendered, as after a restart.
            builder.build(set())
            return report
        self._warm_up()  # before the first seed needs the model
        return builder.build(names, force=force)

    def _warm_up(self) -> None:
        """Once, on the build thread: what the first pass of named changes would otherwise
        load while a reader waits for its seed (the language model, the page templates)."""
        if not self._warm:
            _warm_up(self.builder.rules)
            self._warm = True

    def _ping(self) -> float | None:
        return self.pinger.run_due()

    # following the folders, and telling systemd ---------------------------------------------
    def _prepare_following(self, c: Config) -> None:
        self.progress = systemd.Progress(STALL_AFTER + c.debounce + c.settle)
        self._cancel = systemd.BeatingEvent(self.progress.beat)  # every builder's
        self.outputs = Outputs(c.out, self._on_outputs_lost)
        self._outputs_poller = Poller("feeder-outputs", self._look)
        self.notifier = systemd.Notifier(self._alive)

    def _start_following(self) -> None:
        self._outputs_poller.start()
        self.notifier.start()

    def _stop_following(self) -> None:
        self.notifier.stop()
        self._outputs_poller.stop()
        self.outputs.close()

    def _request_pass(self, names: set[str] | None, delay: float | None = None) -> None:
        self.progress.asked()
        self.scheduler.notify(names, delay=delay)

    def _pass(self, names: set[str] | None) -> None:
        """One rebuild, watched by the watchdog."""
        self.progress.began()
        try:
            with self._passing:
                if self._state_gone:
                    self._restore_state()
                self._rebuild(names)
        finally:
            self.progress.ended()
            self._idle_soon()

    def _idle_soon(self) -> None:
        """Give back what only passes need once none has run for ``IDLE_AFTER`` seconds: a
        burst of passes keeps the language model mapped, an idle daemon does not."""
        with self._idle_lock:
            if self._idle is not None:
                self._idle.cancel()
            if self._stopping:
                return
            self._idle = threading.Timer(IDLE_AFTER, self._when_idle)
            self._idle.name, self._idle.daemon = "feeder-idle", True
            self._idle.start()

    def _when_idle(self) -> None:
        if self._passing.acquire(blocking=False):  # else the running pass asks again
            try:
                _give_back_memory()
            finally:
                self._passing.release()

    def _published(self, report: BuildReport) -> None:
        self.outputs.published()
        self.notifier.ready(report.summary())

    def _on_seeds_replaced(self) -> None:
        """The seeds path leads to another folder now, or to none: look at all of it."""
        if os.path.isdir(self.config.seeds):
            self._seeds_missing = False
        self._request_pass(None, delay=0)

    def _look(self) -> None:
        """The output folder's look, and the state file's: one deleted under this daemon
        (which writes on in the file it opened) is written again by the next pass."""
        if not self._state_gone and identity(self.config.state) is None:
            self._state_gone = True
            self._request_pass(set(), delay=0)
        self.outputs.look()

    def _restore_state(self) -> None:
        """Write the deleted state file again from the open connections: the lock, the
        entries, the ids and the pending pings are all back at the path. A failure (a full
        disk) is logged, and the next pass tries again; passes go on meanwhile."""
        try:
            with self._health_lock, self.read_pings.held() as reads, \
                    self.ping_store.held() as pings:
                self.store.restore_file([self.read_store, reads, pings])
                self._state_identity = identity(self.config.state)
                self._state_gone = False
        except Exception as exc:  # noqa: BLE001 - publishing goes on in the deleted file
            log.error("state file %s was deleted while running and cannot be written again:"
                      " %s; trying again at the next pass", self.config.state, exc)
            return
        log.warning("state file %s was deleted while running: written again from the open"
                    " database", self.config.state)

    def _on_outputs_lost(self) -> None:
        self._request_pass(None, delay=0)

    def _alive(self) -> str | None:
        """None while the rebuild machinery and the HTTP server make progress, else why not."""
        c = self.config
        stalled = self.progress.stalled()
        if stalled is not None:
            return stalled
        if not systemd.http_answers(c.host, c.port):
            return f"the HTTP server on {c.host}:{c.port} does not answer"
        return None

    # health -----------------------------------------------------------------------------------
    def health(self) -> tuple[bool, dict]:
        with self._health_lock:
            build = dict(self.last_build)
            store = self.read_store
            with store.snapshot():  # the list and the count from one commit of the writer
                rejected = [{"file": n, "reason": r}
                            for n, r in store.rejected(HEALTH_REJECTED)]
                rejected_count = store.rejected_count()
            pending = [{"hub": p.hub, "topic": p.topic, "attempts": p.attempts,
                        "next_try": dt.datetime.fromtimestamp(p.next_try, dt.UTC).isoformat(),
                        "last_error": p.last_error} for p in self.read_pings.pending_pings()]
            hubs = self.read_pings.hub_results()
            entries = store.count(utcnow())
            held = store.get_meta("held_deletions", 0)
            state = self._state_problem()  # not halfway through _restore_state
        error = self.last_error or self.outputs.problem() or state
        ok = build.get("ok", True) and error is None
        body = {
            "status": _status(ok, bool(build), held),
            "error": error,
            "last_build": build,
            "entries": entries,
            "held_deletions": held,  # a mass deletion waiting for the operator (sync.py)
            "rejected_count": rejected_count,
            "rejected": rejected,  # the first HEALTH_REJECTED by name; `feeder check` lists all
            "hubs": {h: hubs.get(h) for h in self.config.hubs},
            "pending_pings": pending,
        }
        return ok, body

    def _state_problem(self) -> str | None:
        """Why the state file at the path is not the one this daemon holds, if it is not.

        The lock and every write go to the file opened at start. A deleted one is written
        again within a moment (_restore_state); a replaced one is left to the operator.
        """
        now = identity(self.config.state)
        if now == self._state_identity:
            return None
        if now is None or self._state_gone:
            return f"state file {self.config.state} was deleted while running; restoring it"
        return (f"state file {self.config.state} was replaced while running; "
                "restart feeder")

    # lifecycle ----------------------------------------------------------------------------------
    def reload(self) -> None:
        if self._reload is None:
            return
        try:
            new = self._reload()
        except Exception as exc:  # noqa: BLE001 - a bad reload keeps the running config
            log.error("config reload failed, keeping the old config: %s", exc)
            return
        for key in ("host", "port", "seeds", "out", "state"):
            if getattr(new, key) != getattr(self.config, key):
                log.warning("config reload: %s changed; restart feeder to apply it", key)
        new = new.replace(host=self.config.host, port=self.config.port, seeds=self.config.seeds,
                          out=self.config.out, state=self.config.state)
        self.config = new  # the build thread makes its builder anew before its next pass
        self.pinger.max_attempts, self.pinger.backoff = new.ping_max_attempts, new.ping_backoff
        self.pinger.hubs = frozenset(new.hubs)  # pings queued for removed hubs are dropped
        self.app = self._make_app(new)
        self.scheduler.debounce = new.debounce
        log.info("config reloaded")
        self.scheduler.notify(None, delay=0)

    def stop(self) -> None:
        log.info("stopping")
        self._stop_following()
        self._stopping = True
        with self._idle_lock:
            if self._idle is not None:
                self._idle.cancel()
        self.watcher.stop()
        self.builder.cancel.set()
        self.pinger.stopping.set()  # a ping in flight is left behind (still pending)
        self.scheduler.shutdown()
        self.indexer.stop()  # after the last pass: none pokes it again
        if self.server is not None:
            self.server.should_exit = True
        if self._server_thread is not None:
            self._server_thread.join(timeout=5)
        self.client.close()
        if identity(self.config.state) is None:  # deleted just before the stop
            self._restore_state()
        for store in (self.ping_store, self.read_pings, self.read_store, self.store):
            store.close()
        log.info("stopped")

    def run_forever(self) -> None:
        """Run until SIGTERM or SIGINT (main thread only)."""
        def on_stop(signum: int, _frame: object) -> None:
            log.info("received %s", signal.Signals(signum).name)
            self._stop.set()

        def on_hup(_signum: int, _frame: object) -> None:
            self._hup.set()
            self._stop.set()

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_hup)
        self.start()
        try:
            while True:
                # With a timeout: a signal the kernel hands to another thread does not
                # interrupt the main thread's wait, and Python runs handlers only there.
                while not self._stop.wait(SIGNAL_POLL):
                    pass
                if self._hup.is_set():
                    self._hup.clear()
                    self._stop.clear()
                    try:
                        self.reload()
                    except Exception:  # a reload never takes the daemon down
                        log.exception("config reload failed; keeping the running config")
                    continue
                break
        finally:
            self.stop()


def _status(ok: bool, built: bool, held: object) -> str:
    """/healthz's status: a held mass deletion still serves (200), but is ``degraded``."""
    if not ok:
        return "error"
    if not built:
        return "starting"
    return "degraded" if held else "ok"


def _utf8(name: str) -> bool:
    """Whether a file name read with ``os.fsdecode`` was valid UTF-8 (no escaped bytes)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _warm_up(rules: object) -> None:
    """Unpack the language model (about a second, once per machine), compile the page
    templates and start the threads that flush a pass's files now rather than when the
    first seed arrives; mapping the model again for a later pass takes a few ms."""
    from . import render

    language.identifier(rules.languages)  # type: ignore[attr-defined]
    render.load_templates()
    output.FLUSHERS.start(24)  # a one-seed pass flushes ~20 files at once


def _give_back_memory() -> None:
    """Between passes, hold no more than an idle daemon needs: unmap the language model and
    hand the heap's free pages back to the system (glibc keeps them otherwise)."""
    language.release()
    gc.collect()
    gc.freeze()  # what is left is long-lived: later collections (in passes too) skip it
    pool.give_back_heap()


def reloader(config_path: Path | None, overrides: dict[str, Any]) -> Callable[[], Config]:
    return lambda: config_mod.load(config_path, **overrides)
