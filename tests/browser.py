"""Drive Debian's headless Chromium from tests, through the DevTools protocol over a pipe.

``Chromium`` starts ``/usr/bin/chromium --headless --remote-debugging-pipe`` (``make browser``
installs it) with a throw-away profile and every background-network feature off, opens one tab,
and offers what a page test needs: navigate, wait until a JavaScript condition holds, evaluate
expressions, dump the DOM, take a screenshot, and the list of every request the page made and
every uncaught error it threw.

Why a pipe rather than ``--dump-dom``: a page that fetches its data needs a *wait for this
selector*, not a guessed virtual-time budget, and the request log proves that the page never
reaches outside.  Why a pipe rather than ``--remote-debugging-port``: no port to pick, no
websocket client to depend on.  The protocol on the pipe is JSON messages separated by NUL
bytes, commands read on fd 3 and replies written on fd 4 (the way Puppeteer's ``pipe: true``
works).

Run by hand: ``python tests/browser.py URL [shot.png]`` prints the DOM after JS has run.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

CHROMIUM = "/usr/bin/chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-quic",
    "--mute-audio",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
)


class BrowserError(Exception):
    """Chromium is missing, died, timed out, or a protocol command failed."""


class Chromium:
    """One headless Chromium with one tab; use as a context manager.

    Args:
        window: viewport width and height in CSS pixels.
        timeout_s: the default deadline of every command and wait.
    """

    def __init__(self, *, window: tuple[int, int] = (1400, 1000), timeout_s: float = 15.0) -> None:
        if not os.access(CHROMIUM, os.X_OK):
            raise BrowserError(f"{CHROMIUM} not found: run `make browser`")
        self.timeout_s = timeout_s
        self.requests: list[str] = []  # every URL the tab asked for, in order
        # Uncaught exceptions, console.error messages and browser errors (failed loads, CSP).
        self.errors: list[str] = []
        self._window = window
        self._profile = tempfile.mkdtemp(prefix="podtrace-chromium-")
        self._log = Path(self._profile) / "chromium.log"
        self._next_id = 0
        self._buffer = b""
        self._session = ""
        self._pid = self._spawn()

    def __enter__(self) -> Chromium:
        try:
            self._open_tab()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- what tests call ----------------------------------------------------------------------

    def navigate(self, url: str) -> None:
        """Load ``url`` in the tab and wait for its load event."""
        self.send("Page.navigate", {"url": url})
        self.wait_for("document.readyState === 'complete'")

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression evaluated in the page (promises awaited)."""
        reply = self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in reply:
            raise BrowserError(f"{expression!r} threw: {_describe(reply['exceptionDetails'])}")
        return reply["result"].get("value")

    def wait_for(self, condition: str, *, timeout_s: float | None = None) -> Any:
        """Poll until the JavaScript ``condition`` is truthy; returns its value.

        A CSS selector can be waited for with ``document.querySelector('…')`` (a DOM node found
        counts as ``True``).
        """
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        expression = f"(v => v instanceof Node ? true : v)({condition})"
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(f"timed out waiting for {condition!r}; errors: {self.errors}")
            self._pump(0.05)

    def idle(self, seconds: float) -> None:
        """Let the page run for ``seconds`` while events are recorded."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self._pump(left)

    def dom(self) -> str:
        """The serialised DOM as it is now (after scripts have run)."""
        html: str = self.evaluate("document.documentElement.outerHTML")
        return "<!DOCTYPE html>\n" + html

    def screenshot(self, path: Path, *, full_page: bool = True) -> Path:
        """Save a PNG of the viewport, or of the whole page when ``full_page``."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = self.send("Page.getLayoutMetrics")["cssContentSize"]
            width, height = max(size["width"], self._window[0]), size["height"]
            params["clip"] = {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}
            params["captureBeyondViewport"] = True
        data = self.send("Page.captureScreenshot", params)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        """Ask Chromium to quit, then make sure it and its helpers are gone."""
        if self._pid:
            try:
                self.send("Browser.close", session=False, timeout_s=2.0)
            except (BrowserError, OSError):
                pass
            self._reap(timeout_s=3.0)
            self._pid = 0
        for fd in (self._to, self._from):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self._profile, ignore_errors=True)

    # -- the protocol -------------------------------------------------------------------------

    def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        session: bool = True,
        timeout_s: float | None = None,
    ) -> dict[str, Any]:
        """Send one DevTools command (to the tab unless ``session=False``); return its result."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session and self._session:
            message["sessionId"] = self._session
        os.write(self._to, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        while True:
            for reply in self._pump(max(0.0, deadline - time.monotonic())):
                if reply.get("id") == message["id"]:
                    if "error" in reply:
                        raise BrowserError(f"{method}: {reply['error'].get('message')}")
                    result: dict[str, Any] = reply.get("result", {})
                    return result
            if time.monotonic() > deadline:
                raise BrowserError(f"{method}: no reply within the timeout; see {self._log}")

    def _pump(self, wait_s: float) -> list[dict[str, Any]]:
        """Read what Chromium has written (waiting up to ``wait_s``); record events."""
        ready, _, _ = select.select([self._from], [], [], wait_s)
        if not ready:
            return []
        chunk = os.read(self._from, 1 << 20)
        if not chunk:
            raise BrowserError(f"chromium exited; see {self._log}: {self._log_tail()}")
        self._buffer += chunk
        *messages, self._buffer = self._buffer.split(b"\0")
        replies = [json.loads(m) for m in messages if m]
        for reply in replies:
            self._record(reply)
        return replies

    def _record(self, event: dict[str, Any]) -> None:
        method, params = event.get("method"), event.get("params", {})
        if method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])
        elif method == "Runtime.exceptionThrown":
            self.errors.append(_describe(params["exceptionDetails"]))
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            # Failed loads, refused connections, Content-Security-Policy violations.
            self.errors.append(f"{params['entry'].get('text')} ({params['entry'].get('url', '')})")
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            self.errors.append(" ".join(str(a.get("value", "")) for a in params.get("args", [])))

    # -- process ------------------------------------------------------------------------------

    def _spawn(self) -> int:
        to_r, self._to = os.pipe()
        self._from, from_w = os.pipe()
        argv = [
            CHROMIUM,
            *FLAGS,
            f"--user-data-dir={self._profile}",
            f"--window-size={self._window[0]},{self._window[1]}",
            "about:blank",
        ]
        log = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        actions = [
            (os.POSIX_SPAWN_DUP2, to_r, 3),
            (os.POSIX_SPAWN_DUP2, from_w, 4),
            (os.POSIX_SPAWN_OPEN, 1, str(self._log), log, 0o600),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ]
        # setsid: Chromium's zygote and renderers share our child's process group, which
        # lets close() remove all of them by that one id if the browser does not quit.
        pid = os.posix_spawn(CHROMIUM, argv, dict(os.environ), file_actions=actions, setsid=True)
        os.close(to_r)
        os.close(from_w)
        return pid

    def _open_tab(self) -> None:
        target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)
        attached = self.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        self._session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Network", "Log"):
            self.send(f"{domain}.enable")
        width, height = self._window
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )

    def _reap(self, *, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if os.waitpid(self._pid, os.WNOHANG) != (0, 0):
                break
            time.sleep(0.05)
        else:
            os.killpg(self._pid, signal.SIGKILL)
            os.waitpid(self._pid, 0)
        try:  # helpers that outlived the browser process
            os.killpg(self._pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def _log_tail(self) -> str:
        try:
            return self._log.read_text(errors="replace")[-2000:]
        except OSError:
            return ""


def _describe(details: dict[str, Any]) -> str:
    exception = details.get("exception", {})
    text: str = exception.get("description") or details.get("text", "")
    return text


def main(argv: list[str]) -> int:
    """Print the DOM of ``argv[0]`` after its scripts ran; save a screenshot to ``argv[1]``."""
    with Chromium() as page:
        page.navigate(argv[0])
        page.idle(1.0)  # let the page's first fetches land
        print(page.dom())
        if len(argv) > 1:
            page.screenshot(Path(argv[1]))
        for error in page.errors:
            print("page error:", error, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
