"""A WebSub subscriber for end-to-end tests: a callback server on 127.0.0.1.

It subscribes to topics at a hub, answers the hub's verification of intent only
for the (mode, topic) it asked for, and records every content distribution
POST with whether its ``X-Hub-Signature`` matched the subscription's secret.
Waiting uses a ``threading.Condition`` with a timeout, never a fixed sleep::

    with Subscriber() as sub:
        sub.subscribe(hub.url, topic_url)
        ...  # change the topic, ping the hub
        delivery = sub.wait_for(lambda d: b"new entry" in d.body, timeout=10)
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import httpx

#: The signature methods of WebSub (W3C Recommendation, section 7.1).
SIGNATURE_METHODS = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
}


class SubscriptionError(AssertionError):
    """The hub refused, denied or never verified a subscription."""


@dataclass(frozen=True)
class Subscription:
    topic: str
    callback: str
    secret: str | None


@dataclass(frozen=True)
class Delivery:
    """One content distribution request received at a callback."""

    subscription: Subscription
    body: bytes
    headers: Message = field(repr=False)
    #: True if signed with the subscription's secret; None if it has no secret.
    signature_valid: bool | None
    #: ``time.monotonic()`` when the request was fully read.
    received_at: float

    @property
    def content_type(self) -> str | None:
        return self.headers.get("Content-Type")

    def header_values(self, name: str) -> list[str]:
        """All values of a header that may repeat, such as ``Link``."""
        return self.headers.get_all(name) or []


def signature_matches(secret: str, body: bytes, header: str | None) -> bool:
    """Check an ``X-Hub-Signature: method=hexdigest`` header against ``body``."""
    if not header or "=" not in header:
        return False
    method, _, digest = header.partition("=")
    hash_function = SIGNATURE_METHODS.get(method.strip().lower())
    if hash_function is None:
        return False
    expected = hmac.new(secret.encode(), body, hash_function).hexdigest()
    return hmac.compare_digest(expected, digest.strip().lower())


class Subscriber:
    """Threaded callback server; use as a context manager or call ``close()``."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._condition = threading.Condition()
        self._subscriptions: dict[str, Subscription] = {}  # callback path -> subscription
        self._pending: dict[tuple[str, str], str] = {}  # (path, mode) -> topic awaiting check
        self._verified: set[tuple[str, str]] = set()  # (path, mode)
        self._denied: dict[str, str] = {}  # path -> hub.reason
        self._ids = itertools.count(1)
        self.deliveries: list[Delivery] = []
        """Deliveries whose signature was valid (or which had no secret to check)."""
        self.invalid_deliveries: list[Delivery] = []
        """Deliveries with a missing or wrong signature: acknowledged, then ignored."""
        self.unknown_requests: list[str] = []
        """Requests for callbacks or topics this subscriber never asked for."""

        self._server = ThreadingHTTPServer((host, 0), _make_handler(self))
        self._server.daemon_threads = True
        self.base_url = f"http://{host}:{self._server.server_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="websub-subscriber",
            daemon=True,
        )
        self._thread.start()

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # --- subscribing -------------------------------------------------------------------------

    def subscribe(
        self,
        hub_url: str,
        topic_url: str,
        *,
        timeout: float = 10.0,
        secret: str | None = "",
        lease_seconds: int = 3600,
    ) -> Subscription:
        """Ask the hub for a subscription and wait until it has verified our intent.

        ``secret=""`` makes a random secret; ``None`` subscribes without one.
        """
        if secret == "":
            secret = secrets.token_hex(16)
        path = f"/callback/{next(self._ids)}"
        subscription = Subscription(topic_url, self.base_url + path, secret)
        with self._condition:
            self._subscriptions[path] = subscription
            self._pending[path, "subscribe"] = topic_url
        form = {
            "hub.mode": "subscribe",
            "hub.topic": topic_url,
            "hub.callback": subscription.callback,
            "hub.lease_seconds": str(lease_seconds),
        }
        if secret is not None:
            form["hub.secret"] = secret
        self._request_and_wait(hub_url, form, path, "subscribe", timeout)
        return subscription

    def unsubscribe(
        self, hub_url: str, subscription: Subscription, *, timeout: float = 10.0
    ) -> None:
        path = urlsplit(subscription.callback).path
        with self._condition:
            self._pending[path, "unsubscribe"] = subscription.topic
        form = {
            "hub.mode": "unsubscribe",
            "hub.topic": subscription.topic,
            "hub.callback": subscription.callback,
        }
        self._request_and_wait(hub_url, form, path, "unsubscribe", timeout)

    def _request_and_wait(
        self, hub_url: str, form: dict[str, str], path: str, mode: str, timeout: float
    ) -> None:
        response = httpx.post(hub_url, data=form, timeout=timeout)
        if not response.is_success:
            raise SubscriptionError(
                f"hub answered {response.status_code} to {mode}: {response.text!r}"
            )
        with self._condition:
            done = self._condition.wait_for(
                lambda: (path, mode) in self._verified or path in self._denied, timeout
            )
            if path in self._denied:
                raise SubscriptionError(f"hub denied {form['hub.topic']}: {self._denied[path]}")
            if not done:
                raise SubscriptionError(
                    f"hub did not verify {mode} of {form['hub.topic']} within {timeout} s"
                )

    # --- waiting for content -----------------------------------------------------------------

    def wait_for(
        self, predicate: Callable[[Delivery], bool] = lambda _: True, timeout: float = 10.0
    ) -> Delivery:
        """The first validly signed delivery (received so far or later) matching ``predicate``."""
        found: list[Delivery] = []

        def match() -> bool:
            found.extend(d for d in self.deliveries if predicate(d))
            return bool(found)

        with self._condition:
            if not self._condition.wait_for(match, timeout):
                raise TimeoutError(
                    f"no matching delivery within {timeout} s; received {len(self.deliveries)} "
                    f"valid and {len(self.invalid_deliveries)} invalid deliveries, "
                    f"{len(self.unknown_requests)} unknown requests"
                )
            return found[0]

    # --- called from the server threads ------------------------------------------------------

    def _on_verify(self, path: str, query: dict[str, list[str]]) -> str | None:
        """The challenge to echo, or None to refuse the verification request."""
        mode = query.get("hub.mode", [""])[0]
        topic = query.get("hub.topic", [""])[0]
        with self._condition:
            if mode == "denied" and path in self._subscriptions:
                self._denied[path] = query.get("hub.reason", [""])[0]
                self._condition.notify_all()
                return ""
            challenge = query.get("hub.challenge", [None])[0]
            if self._pending.get((path, mode)) != topic or challenge is None:
                self.unknown_requests.append(f"GET {path} mode={mode!r} topic={topic!r}")
                return None
            del self._pending[path, mode]
            self._verified.add((path, mode))
            self._condition.notify_all()
            return challenge

    def _on_delivery(self, path: str, body: bytes, headers: Message) -> bool:
        """Record a content distribution; False if the callback is unknown."""
        with self._condition:
            subscription = self._subscriptions.get(path)
            if subscription is None:
                self.unknown_requests.append(f"POST {path}")
                return False
            valid = None
            if subscription.secret is not None:
                valid = signature_matches(subscription.secret, body, headers.get("X-Hub-Signature"))
            delivery = Delivery(subscription, body, headers, valid, time.monotonic())
            (self.invalid_deliveries if valid is False else self.deliveries).append(delivery)
            self._condition.notify_all()
            return True


def _make_handler(subscriber: Subscriber) -> type[BaseHTTPRequestHandler]:
    class CallbackHandler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            url = urlsplit(self.path)
            challenge = subscriber._on_verify(url.path, parse_qs(url.query))
            if challenge is None:
                self._reply(404, b"not a pending subscription\n")
            else:
                self._reply(200, challenge.encode())

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            known = subscriber._on_delivery(urlsplit(self.path).path, body, self.headers)
            # Spec 7.1: a bad signature is still acknowledged with 2xx, then ignored.
            self._reply(204 if known else 410, b"")

        def _reply(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass  # keep pytest's output clean; deliveries are recorded instead

    return CallbackHandler
