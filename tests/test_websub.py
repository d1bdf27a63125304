"""websub: publish pings through an injected ``httpx.Client`` (``MockTransport``), and the
Pinger's queue in a real SQLite store with an injected clock and jitter.

Hubs cannot run in these tests; ``tests/e2e/test_websub.py`` runs a real one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest

from feeder import websub
from feeder.errors import PublishError
from feeder.store import PingStore

HUB = "http://hub.test/hub"
OTHER_HUB = "http://other.test/"
TOPIC = "http://127.0.0.1:8080/atom.xml"
RSS_TOPIC = "http://127.0.0.1:8080/rss.xml"

Handler = Callable[[httpx.Request], httpx.Response]


def form(request: httpx.Request) -> dict[str, list[str]]:
    return parse_qs(request.content.decode(), strict_parsing=True)


def client_for(handler: Handler) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler))


def accept(request: httpx.Request) -> httpx.Response:
    return httpx.Response(202)


def refuse_connection(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("[Errno 111] Connection refused", request=request)


class Clock:
    """A wall clock that moves only when told to."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def feeder_log(caplog: pytest.LogCaptureFixture,
               monkeypatch: pytest.MonkeyPatch) -> pytest.LogCaptureFixture:
    # `feeder run` (cli._setup_logging) turns propagation off; a CLI test in this process
    # may have done so, which would hide the records from caplog.
    monkeypatch.setattr(logging.getLogger("feeder"), "propagate", True)
    caplog.set_level(logging.INFO, logger="feeder")
    return caplog


@pytest.fixture
def store(tmp_path: Path) -> Iterator[PingStore]:
    s = PingStore(tmp_path / "state.sqlite3")
    yield s
    s.close()


# -- ping() -------------------------------------------------------------------------------------

def test_ping_posts_publish_form_with_hub_url_and_hub_topic() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    with client_for(handler) as client:
        websub.ping(client, HUB, TOPIC)
    [request] = seen
    assert request.method == "POST"
    assert str(request.url) == HUB
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert form(request) == {"hub.mode": ["publish"], "hub.url": [TOPIC], "hub.topic": [TOPIC]}


def test_make_client_names_feeder_and_does_not_follow_redirects() -> None:
    with websub.make_client(5.0) as client:
        assert client.headers["user-agent"] == websub.USER_AGENT
        assert client.timeout == httpx.Timeout(5.0)
        assert client.follow_redirects is False


@pytest.mark.parametrize("status", [200, 202, 204, 299])
def test_any_2xx_is_success(status: int) -> None:
    with client_for(lambda r: httpx.Response(status)) as client:
        websub.ping(client, HUB, TOPIC)


@pytest.mark.parametrize(("status", "body", "reason"), [
    (400, "hub.topic required\n", "HTTP 400 hub.topic required"),
    (404, "", "HTTP 404"),
    (500, "boom\nsecond line", "HTTP 500 boom second line"),
    (503, "x" * 500, "HTTP 503 " + "x" * 200),
    (302, "", "HTTP 302"),  # redirects are not followed: a publish ping is not re-POSTed
])
def test_non_2xx_raises_publish_error_with_status_and_body(status: int, body: str,
                                                           reason: str) -> None:
    refuse = client_for(lambda r: httpx.Response(status, text=body))
    with refuse as client, pytest.raises(PublishError) as info:
        websub.ping(client, HUB, TOPIC)
    assert info.value.hub == HUB
    assert info.value.reason == reason
    assert str(info.value) == f"hub {HUB}: {reason}"


def test_connection_error_raises_publish_error_naming_it() -> None:
    with client_for(refuse_connection) as client, pytest.raises(PublishError) as info:
        websub.ping(client, HUB, TOPIC)
    assert info.value.hub == HUB
    assert info.value.reason == "ConnectError: [Errno 111] Connection refused"


@pytest.mark.parametrize("timeout", [httpx.ConnectTimeout, httpx.ReadTimeout,
                                     httpx.WriteTimeout, httpx.PoolTimeout])
def test_timeout_raises_publish_error_timed_out(timeout: type[httpx.TimeoutException]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise timeout("timed out", request=request)

    with client_for(handler) as client, pytest.raises(PublishError) as info:
        websub.ping(client, HUB, TOPIC)
    assert info.value.reason == "timed out"


def test_other_transport_errors_raise_publish_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("Server disconnected without sending a response.",
                                        request=request)

    expected = "RemoteProtocolError: Server disconnected"
    with client_for(handler) as client, pytest.raises(PublishError, match=expected):
        websub.ping(client, HUB, TOPIC)


# -- Pinger: retries, backoff, collapsing, persistence -----------------------------------------

class ScriptedHub:
    """A MockTransport handler answering from a list of outcomes; records every ping."""

    def __init__(self, *outcomes: int | Exception) -> None:
        self.outcomes = list(outcomes)
        self.pings: list[tuple[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.pings.append((str(request.url), form(request)["hub.topic"][0]))
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, Exception):
            raise outcome
        return httpx.Response(outcome)


def make_pinger(store: PingStore, hub: ScriptedHub | Handler, clock: Clock, *,
                jitter: float = 0.5, **kw: object) -> websub.Pinger:
    return websub.Pinger(store, client_for(hub), clock=clock, jitter=lambda: jitter,
                         **kw)  # type: ignore[arg-type]


def test_success_removes_the_ping_and_records_the_hub_result(store: PingStore,
                                                             feeder_log) -> None:
    clock = Clock()
    hub = ScriptedHub(202)
    store.add_pings([HUB], [TOPIC], clock.now)
    pinger = make_pinger(store, hub, clock)
    with pinger.client:
        assert pinger.run_due() is None
    assert hub.pings == [(HUB, TOPIC)]
    assert store.pending_pings() == []
    result = store.hub_results()[HUB]
    assert result["ok"] is True and result["detail"] == "accepted"
    assert f"pinged {HUB} for {TOPIC}" in feeder_log.messages


@pytest.mark.parametrize("jitter", [0.0, 0.5, 0.999999])
def test_failures_back_off_exponentially_within_jitter_bounds(store: PingStore, jitter: float,
                                                              feeder_log) -> None:
    clock = Clock()
    hub = ScriptedHub(503)
    store.add_pings([HUB], [TOPIC], clock.now)
    pinger = make_pinger(store, hub, clock, jitter=jitter, backoff=2.0, max_attempts=10)
    waits = []
    with pinger.client:
        for attempt in range(1, 6):
            next_try = pinger.run_due()
            [pending] = store.pending_pings()
            assert pending.attempts == attempt
            assert pending.last_error == "HTTP 503"
            assert next_try == pending.next_try
            wait = next_try - clock.now
            base = 2.0 * 2 ** (attempt - 1)
            assert 0.5 * base <= wait < 1.5 * base
            assert wait == pytest.approx(base * (0.5 + jitter))
            waits.append(wait)
            # not due yet: nothing is sent
            clock.now = next_try - 0.001
            assert pinger.run_due() == next_try
            assert len(hub.pings) == attempt
            clock.now = next_try
    assert waits == sorted(waits)
    assert store.hub_results()[HUB]["ok"] is False
    assert store.hub_results()[HUB]["detail"] == "HTTP 503"
    warnings = [r.getMessage() for r in feeder_log.records if r.levelno == logging.WARNING]
    assert len(warnings) == 5
    assert warnings[0] == (f"ping {HUB} for {TOPIC} failed (attempt 1): HTTP 503; "
                           f"retrying in {waits[0]:.1f} s")


def test_backoff_is_capped(store: PingStore) -> None:
    pinger = websub.Pinger(store, httpx.Client(), backoff=2.0, jitter=lambda: 0.5)
    with pinger.client:
        assert pinger.delay(1) == 2.0
        assert pinger.delay(2) == 4.0
        assert pinger.delay(40) == websub.MAX_BACKOFF


def test_retry_after_failure_succeeds_and_clears(store: PingStore) -> None:
    clock = Clock()
    hub = ScriptedHub(httpx.ConnectError("refused"), 202)
    store.add_pings([HUB], [TOPIC], clock.now)
    pinger = make_pinger(store, hub, clock)
    with pinger.client:
        next_try = pinger.run_due()
        assert next_try is not None
        [pending] = store.pending_pings()
        assert pending.attempts == 1 and pending.last_error == "ConnectError: refused"
        assert store.hub_results()[HUB]["ok"] is False
        clock.now = next_try
        assert pinger.run_due() is None
    assert store.pending_pings() == []
    assert store.hub_results()[HUB]["ok"] is True
    assert len(hub.pings) == 2


def test_add_pings_for_a_pending_hub_and_topic_collapse_into_one(store: PingStore) -> None:
    clock = Clock()
    for _ in range(5):
        store.add_pings([HUB], [TOPIC, RSS_TOPIC], clock.now)
        clock.now += 0.1
    assert [(p.hub, p.topic) for p in store.pending_pings()] == [(HUB, TOPIC), (HUB, RSS_TOPIC)]
    hub = ScriptedHub(202)
    pinger = make_pinger(store, hub, clock)
    with pinger.client:
        assert pinger.run_due() is None
    assert sorted(hub.pings) == [(HUB, TOPIC), (HUB, RSS_TOPIC)]


def test_a_change_while_a_ping_waits_to_retry_keeps_one_ping(store: PingStore) -> None:
    clock = Clock()
    hub = ScriptedHub(500)
    store.add_pings([HUB], [TOPIC], clock.now)
    pinger = make_pinger(store, hub, clock)
    with pinger.client:
        pinger.run_due()
        store.add_pings([HUB], [TOPIC], clock.now + 0.1)
    [pending] = store.pending_pings()
    assert pending.attempts == 0, "a new change starts a fresh attempt budget"
    assert pending.next_try == clock.now + 0.1, "a new change is announced without waiting"
    assert pending.last_error == "HTTP 500"


def test_a_new_change_during_a_hub_outage_gets_all_its_attempts(store: PingStore,
                                                               feeder_log) -> None:
    """Failures of an older change do not count against a newer one: each change of the
    feed gets ``max_attempts`` tries of its own, the first one straight away."""
    clock = Clock()
    hub = ScriptedHub(503)
    pinger = make_pinger(store, hub, clock, max_attempts=3)
    store.add_pings([HUB], [TOPIC], clock.now)
    with pinger.client:
        for _ in range(2):
            clock.now = pinger.run_due()  # type: ignore[assignment]
        assert store.pending_pings()[0].attempts == 2

        clock.now -= 1.0  # a second before the third try is due, the feed changes again
        store.add_pings([HUB], [TOPIC], clock.now)
        [pending] = store.pending_pings()
        assert (pending.attempts, pending.next_try) == (0, clock.now)
        for attempt in range(1, 3):
            clock.now = pinger.run_due()  # type: ignore[assignment]
            assert store.pending_pings()[0].attempts == attempt
        assert pinger.run_due() is None  # third try of the new change: given up
        assert len(hub.pings) == 2 + 3
        assert store.pending_pings() == []
        # nothing changes any more, so nothing is sent any more
        clock.now += 10 * websub.MAX_BACKOFF
        assert pinger.run_due() is None
    assert len(hub.pings) == 5
    errors = [r.getMessage() for r in feeder_log.records if r.levelno == logging.ERROR]
    assert errors == [f"gave up pinging {HUB} for {TOPIC} after 3 attempts: HTTP 503"]


def test_each_hub_is_pinged_and_retried_on_its_own(store: PingStore) -> None:
    clock = Clock()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(202 if request.url.host == "hub.test" else 500)

    store.add_pings([HUB, OTHER_HUB], [TOPIC], clock.now)
    pinger = make_pinger(store, handler, clock)
    with pinger.client:
        pinger.run_due()
    assert [(p.hub, p.attempts) for p in store.pending_pings()] == [(OTHER_HUB, 1)]
    results = store.hub_results()
    assert results[HUB]["ok"] is True and results[OTHER_HUB]["ok"] is False


def test_max_attempts_drops_the_ping_and_logs_an_error(store: PingStore, feeder_log) -> None:
    clock = Clock()
    hub = ScriptedHub(httpx.ConnectError("refused"))
    store.add_pings([HUB], [TOPIC], clock.now)
    pinger = make_pinger(store, hub, clock, max_attempts=3)
    with pinger.client:
        for _ in range(2):
            clock.now = pinger.run_due()  # type: ignore[assignment]
        assert store.pending_pings()[0].attempts == 2
        assert pinger.run_due() is None
    assert len(hub.pings) == 3
    assert store.pending_pings() == []
    errors = [r for r in feeder_log.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        f"gave up pinging {HUB} for {TOPIC} after 3 attempts: ConnectError: refused"]


def test_pending_pings_survive_reopening_the_store(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    clock = Clock()
    first = PingStore(path)
    try:
        first.add_pings([HUB], [TOPIC], clock.now)
        pinger = make_pinger(first, ScriptedHub(503), clock)
        with pinger.client:
            next_try = pinger.run_due()
    finally:
        first.close()

    again = PingStore(path)
    try:
        [pending] = again.pending_pings()
        assert (pending.hub, pending.topic, pending.attempts) == (HUB, TOPIC, 1)
        assert pending.next_try == next_try
        assert pending.last_error == "HTTP 503"
        hub = ScriptedHub(202)
        clock.now = pending.next_try
        pinger = make_pinger(again, hub, clock)
        with pinger.client:
            assert pinger.run_due() is None
        assert hub.pings == [(HUB, TOPIC)]
        assert again.pending_pings() == []
    finally:
        again.close()


@pytest.fixture
def two_stores(tmp_path: Path) -> Iterator[tuple[PingStore, PingStore]]:
    """The pinger's and the rebuild thread's connections to one state file."""
    path = tmp_path / "state.sqlite3"
    pinger_store, rebuild_store = PingStore(path), PingStore(path)
    yield pinger_store, rebuild_store
    pinger_store.close()
    rebuild_store.close()


def test_a_change_during_an_in_flight_ping_is_not_lost(
        two_stores: tuple[PingStore, PingStore]) -> None:
    """The rebuild thread queues a ping (its own connection) while the pinger's request to
    the same hub and topic is in flight: the hub may already have fetched the old feed, so
    the new change needs a ping of its own after this one."""
    pinger_store, rebuild_store = two_stores
    clock = Clock()
    rebuild_store.add_pings([HUB], [TOPIC], clock.now)
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            rebuild_store.add_pings([HUB], [TOPIC], clock.now + 0.5)
        return httpx.Response(202)

    pinger = make_pinger(pinger_store, handler, clock)
    with pinger.client:
        next_try = pinger.run_due()
        assert [(p.hub, p.topic) for p in pinger_store.pending_pings()] == [(HUB, TOPIC)]
        assert next_try is not None
        clock.now = next_try
        assert pinger.run_due() is None
    assert len(calls) == 2
    assert pinger_store.pending_pings() == []


@pytest.mark.parametrize("max_attempts", [2, 10], ids=["last-try", "tries-left"])
def test_a_change_during_a_failing_in_flight_ping_is_tried_at_once_with_a_fresh_budget(
        two_stores: tuple[PingStore, PingStore], max_attempts: int) -> None:
    """The rebuild thread queues a new change while the pinger's request for the old one is
    in flight and then fails: that failure (even a last one, which gives the old change up)
    neither counts against the new change nor postpones it."""
    pinger_store, rebuild_store = two_stores
    clock = Clock()
    rebuild_store.add_pings([HUB], [TOPIC], clock.now)
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 2:  # the old change's second try is in flight
            rebuild_store.add_pings([HUB], [TOPIC], clock.now)
        return httpx.Response(202 if len(calls) == 4 else 503)

    pinger = make_pinger(pinger_store, handler, clock, max_attempts=max_attempts)
    with pinger.client:
        clock.now = pinger.run_due()  # type: ignore[assignment]
        assert pinger_store.pending_pings()[0].attempts == 1
        changed_at = clock.now
        assert pinger.run_due() == changed_at, "the new change is due at once"
        [pending] = pinger_store.pending_pings()
        assert (pending.attempts, pending.next_try) == (0, changed_at)
        assert pending.last_error == "HTTP 503"
        clock.now = pinger.run_due()  # type: ignore[assignment]
        assert pinger_store.pending_pings()[0].attempts == 1
        assert pinger.run_due() is None
    assert len(calls) == 4
    assert pinger_store.pending_pings() == []
