"""The WebSub test harness works on its own: real hub, real subscriber, tiny topic server.

These tests do not use the feeder package. They pin down what the hub needs
from a topic server (``Link`` headers with quoted ``rel="hub"`` and
``rel="self"``, ``hub.topic`` in the publish ping) so that feeder's own
end-to-end tests can rely on the harness.
"""

from __future__ import annotations

import hashlib
import hmac
import statistics
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from .subscriber import Delivery, Subscriber, Subscription, signature_matches
from .websub_hub import Hub

ATOM = "application/atom+xml; charset=utf-8"


def atom_document(topic_url: str, title: str) -> bytes:
    return f"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <id>{topic_url}</id>
  <title>harness topic</title>
  <updated>2024-01-01T00:00:00Z</updated>
  <link rel="self" href="{topic_url}"/>
  <entry>
    <id>urn:harness:{title}</id>
    <title>{title}</title>
    <updated>2024-01-01T00:00:00Z</updated>
  </entry>
</feed>
""".encode()


class TopicServer:
    """Serves one Atom document at /atom.xml with the Link headers hubs need."""

    def __init__(self, hub_url: str) -> None:
        self.hub_url = hub_url
        self.fetches: list[dict[str, str]] = []
        server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        server.daemon_threads = True
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_port}/atom.xml"
        self.body = atom_document(self.url, "first")
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def publish(self, title: str) -> bytes:
        self.body = atom_document(self.url, title)
        return self.body

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        topic = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                topic.fetches.append(dict(self.headers.items()))
                body = topic.body
                self.send_response(200)
                self.send_header("Content-Type", ATOM)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Link", f'<{topic.hub_url}>; rel="hub"')
                self.send_header("Link", f'<{topic.url}>; rel="self"')
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                """Keep the test output quiet."""

        return Handler


def ping(hub: Hub, topic_url: str) -> httpx.Response:
    """A publish ping as feeder sends it: hub.url and hub.topic both set."""
    return httpx.post(
        hub.url,
        data={"hub.mode": "publish", "hub.url": topic_url, "hub.topic": topic_url},
        timeout=5,
    )


def wait_for_body(sub: Subscriber, hub: Hub, body: bytes, timeout: float = 10) -> Delivery:
    try:
        return sub.wait_for(lambda d: d.body == body, timeout=timeout)
    except TimeoutError as e:
        details = f"hub subscriptions: {hub.subscriptions()}\n{hub.log_text()}"
        raise AssertionError(f"{e}\n{details}") from None


@pytest.fixture
def topic(hub: Hub) -> Iterator[TopicServer]:
    server = TopicServer(hub.url)
    yield server
    server.close()


@pytest.mark.slow
def test_publish_ping_delivers_new_content_signed(
    hub: Hub, subscriber: Subscriber, topic: TopicServer
) -> None:
    subscription = subscriber.subscribe(hub.url, topic.url)
    hub.wait_for_subscription(topic.url, subscription.callback)
    assert hub.subscriptions() == [(topic.url, subscription.callback)]

    body = topic.publish("second")
    assert ping(hub, topic.url).status_code == 202

    delivery = wait_for_body(subscriber, hub, body)
    assert delivery.signature_valid is True
    assert delivery.headers["X-Hub-Signature"].startswith("sha512=")
    assert delivery.content_type == ATOM
    assert any('rel="self"' in link for link in delivery.header_values("Link"))
    assert subscriber.invalid_deliveries == []
    assert subscriber.unknown_requests == []
    # The hub fetches with requests' default "Accept-Encoding: gzip, deflate" and
    # forwards a gzip topic's Content-Encoding with the decoded body, so a topic
    # server that honours it breaks deliveries: feeder must not gzip its feeds.
    assert "gzip" in topic.fetches[-1]["Accept-Encoding"]
    assert "Content-Encoding" not in delivery.headers


@pytest.mark.slow
def test_pings_fail_while_hub_is_down_and_work_after_restart(
    hub: Hub, subscriber: Subscriber, topic: TopicServer
) -> None:
    subscriber.subscribe(hub.url, topic.url)
    hub_url = hub.url

    hub.stop()
    body = topic.publish("while the hub was down")
    with pytest.raises(httpx.ConnectError):
        ping(hub, topic.url)

    hub.start()
    assert hub.url == hub_url, "a restarted hub keeps its port"
    assert ping(hub, topic.url).status_code == 202
    delivery = wait_for_body(subscriber, hub, body)
    assert delivery.signature_valid is True


@pytest.mark.slow
def test_latency_from_ping_to_delivery(
    hub: Hub, subscriber: Subscriber, topic: TopicServer
) -> None:
    subscriber.subscribe(hub.url, topic.url)
    latencies = []
    for n in range(10):
        body = topic.publish(f"entry {n}")
        sent = time.monotonic()
        assert ping(hub, topic.url).status_code == 202
        latencies.append(wait_for_body(subscriber, hub, body).received_at - sent)
    median = statistics.median(latencies)
    print(f"ping -> delivery: median {median:.3f} s, max {max(latencies):.3f} s")
    # The product targets p99 < 2 s from file drop to delivery; the hub's share must be small.
    assert median < 0.5
    assert max(latencies) < 1.5


@pytest.mark.parametrize("method", ["sha1", "sha256", "sha384", "sha512"])
def test_signature_methods_of_the_spec(method: str) -> None:
    body = b"<feed/>"
    digest = hmac.new(b"s3cret", body, getattr(hashlib, method)).hexdigest()
    assert signature_matches("s3cret", body, f"{method}={digest}")
    assert not signature_matches("other", body, f"{method}={digest}")
    assert not signature_matches("s3cret", body + b" ", f"{method}={digest}")


@pytest.mark.parametrize("header", [None, "", "sha512", "md5=abc", "sha256=zz"])
def test_malformed_signatures_are_invalid(header: str | None) -> None:
    assert not signature_matches("s3cret", b"<feed/>", header)


def test_subscriber_records_bad_signatures_apart_and_acknowledges_them() -> None:
    with Subscriber() as sub:
        path = "/callback/1"
        subscription = Subscription("http://127.0.0.1:9/t", sub.base_url + path, "s3cret")
        sub._subscriptions[path] = subscription  # as if subscribe() had been verified
        good = "sha256=" + hmac.new(b"s3cret", b"good", hashlib.sha256).hexdigest()
        bad = "sha256=" + hmac.new(b"wrong", b"bad", hashlib.sha256).hexdigest()

        for body, signature in ((b"bad", bad), (b"good", good)):
            response = httpx.post(
                subscription.callback, content=body, headers={"X-Hub-Signature": signature}
            )
            assert response.status_code == 204
        assert sub.wait_for(timeout=5).body == b"good"
        assert [d.body for d in sub.invalid_deliveries] == [b"bad"]


def test_subscriber_refuses_verification_it_did_not_ask_for() -> None:
    with Subscriber() as sub:
        response = httpx.get(
            sub.base_url + "/callback/1",
            params={"hub.mode": "subscribe", "hub.topic": "http://x/", "hub.challenge": "c"},
        )
        assert response.status_code == 404
        assert sub.unknown_requests
