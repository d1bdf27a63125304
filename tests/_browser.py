"""A real headless Chromium for tests, driven over the DevTools protocol on a pipe.

``chromium --dump-dom`` returns before a page's own scripts finish (Pagefind searches in a
worker, with WebAssembly), so a check has to wait in real time for what it looks for:
``Browser.page`` opens a tab at a viewport size, ``Tab.wait_for`` polls an expression
until it is true (or times out), ``Tab.screenshot`` writes a PNG.

``--remote-debugging-pipe`` speaks JSON messages ended by NUL on file descriptors 3 (to
Chromium) and 4 (from it): no port, no WebSocket library.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from ._servers import wait_until

# Puts the two pipe ends at descriptors 3 and 4, then becomes Chromium.
_LAUNCH = ("import os, sys; os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4); "
           "os.execv(sys.argv[3], sys.argv[3:])")

DESKTOP = (1280, 900, 1.0, False)
PHONE = (390, 844, 3.0, True)  # an iPhone 12-14 sized viewport, CSS pixels


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    def __init__(self, executable: str) -> None:
        self._profile = tempfile.mkdtemp(prefix="feeder-chromium-")
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        # above 4: the launcher's dup2 onto 3 and 4 must not overwrite either end
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_chrome_r, from_chrome_w)]
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        args = [executable, "--headless", "--disable-gpu", "--no-sandbox",
                "--remote-debugging-pipe", "--no-first-run", "--no-default-browser-check",
                "--disable-dev-shm-usage", "--disable-extensions", "--mute-audio",
                f"--user-data-dir={self._profile}", "about:blank"]
        self.proc = subprocess.Popen([sys.executable, "-c", _LAUNCH, str(high[0]),
                                      str(high[1]), *args], pass_fds=high,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for fd in high:
            os.close(fd)
        self._buffer = b""
        self._next_id = 0

    def call(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = 30.0) -> dict[str, Any]:
        """Send one command and return its result (events in between are dropped)."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method,
                                   "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_chrome], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer")
            chunk = os.read(self._from_chrome, 1 << 16)
            if not chunk:
                raise EOFError("Chromium closed its pipe")
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message)

    @contextmanager
    def page(self, url: str, viewport: tuple[int, int, float, bool] = DESKTOP) -> Iterator[Tab]:
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget",
                            {"targetId": target, "flatten": True})["sessionId"]
        tab = Tab(self, session)
        width, height, scale, mobile = viewport
        tab.call("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": scale, "mobile": mobile})
        tab.call("Page.enable")
        tab.call("Page.navigate", {"url": url})
        try:
            yield tab
        finally:
            self.call("Target.closeTarget", {"targetId": target})

    def close(self) -> None:
        with suppress(OSError, TimeoutError, EOFError, RuntimeError):  # closing anyway
            self.call("Browser.close", timeout=5)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)
        shutil.rmtree(self._profile, ignore_errors=True)


class Tab:
    def __init__(self, browser: Browser, session: str) -> None:
        self.browser, self.session = browser, session

    def call(self, method: str, params: dict | None = None) -> dict[str, Any]:
        return self.browser.call(method, params, self.session)

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression,
                                                "returnByValue": True})
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 30.0) -> Any:
        """Poll ``expression`` in the page until it gives something true; return that."""
        return wait_until(lambda: self.evaluate(expression), timeout=timeout, interval=0.1,
                          what=expression)

    def screenshot(self, path: Path, full_page: bool = True) -> None:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
        data = self.call("Page.captureScreenshot", params)["data"]
        path.write_bytes(base64.b64decode(data))
