"""A small Chrome DevTools Protocol client over ``--remote-debugging-pipe`` (file descriptors 3
and 4, NUL-separated JSON): no websocket, no dependency. Used by tests/test_browser.py to open
archlab's pages in headless Chromium and collect console errors and failed requests."""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from typing import Any


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    def __init__(self, binary: str) -> None:
        self._to_child_r, self._to_child_w = os.pipe()
        self._from_child_r, self._from_child_w = os.pipe()
        self._profile = tempfile.mkdtemp(prefix="archlab-chromium-")
        commands, replies = self._to_child_r, self._from_child_w

        def child_fds() -> None:  # the protocol's fds: 3 is read by chromium, 4 written by it
            a, b = os.dup(commands), os.dup(replies)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self._proc = subprocess.Popen(
            [binary, "--headless=new", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--hide-scrollbars",
             f"--user-data-dir={self._profile}", "about:blank"],
            close_fds=False, preexec_fn=child_fds, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(self._to_child_r)
        os.close(self._from_child_w)
        self._buf = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        os.close(self._to_child_w)
        os.close(self._from_child_r)
        shutil.rmtree(self._profile, ignore_errors=True)

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._from_child_r], [], [], max(0.0, left))
            if not ready:
                raise TimeoutError("no message from chromium")
            chunk = os.read(self._from_child_r, 1 << 20)
            if not chunk:
                raise EOFError("chromium closed the protocol pipe")
            self._buf += chunk
        message, self._buf = self._buf.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
             timeout: float = 30) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_child_w, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            event = self._read(deadline)
            self.events.append(event)
            if event.get("method") == method:
                return event


def open_page(browser: Browser, url: str, javascript: bool = False) -> dict[str, Any]:
    """Load ``url`` in a new tab (scripts off unless ``javascript``) and return what a test checks:
    ``errors`` (console errors, exceptions, failed or 4xx/5xx requests), ``figures`` (each
    ``<figure>``'s svg/img with its rendered width and height), ``broken_images`` and
    ``screenshot`` (PNG bytes)."""
    target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    browser.events.clear()
    for domain in ("Page", "Runtime", "Log", "Network"):
        browser.call(f"{domain}.enable", session=session)
    browser.call("Emulation.setDeviceMetricsOverride",
                 {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session=session)
    if not javascript:
        browser.call("Emulation.setScriptExecutionDisabled", {"value": True}, session=session)
    browser.call("Page.navigate", {"url": url}, session=session)
    browser.wait_for("Page.loadEventFired")
    # the probes run as DevTools evaluations, which work with the page's own scripts disabled
    probe = browser.call("Runtime.evaluate", {"returnByValue": True, "expression": """(() => {
        const figures = [...document.querySelectorAll('figure')].map(f => {
            const e = f.querySelector('svg, img'); const r = e ? e.getBoundingClientRect() : {width: 0, height: 0};
            return {id: f.id, tag: e ? e.tagName : null, width: r.width, height: r.height}; });
        const broken = [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt || i.src.slice(0, 60));
        return {figures, broken, title: document.title, text: document.body.innerText.length};
    })()"""}, session=session)["result"]["value"]
    shot = browser.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": False},
                        session=session)["data"]
    errors = []
    for event in browser.events:
        method, params = event.get("method"), event.get("params", {})
        if event.get("sessionId") not in (None, session):
            continue
        if method == "Runtime.exceptionThrown":
            errors.append(f"exception: {params['exceptionDetails'].get('text')}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            errors.append(f"console.{params['type']}: {params.get('args')}")
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            errors.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
        elif method == "Network.loadingFailed":
            errors.append(f"request failed: {params.get('errorText')} ({params.get('type')})")
        elif method == "Network.responseReceived" and params["response"].get("status", 200) >= 400:
            errors.append(f"HTTP {params['response']['status']}: {params['response'].get('url')}")
        elif method == "Network.requestWillBeSent":
            request_url = params["request"]["url"]
            if not request_url.startswith(("file:", "data:", "about:")):
                errors.append(f"network request: {request_url}")
    browser.call("Target.closeTarget", {"targetId": target})
    return {"errors": errors, "figures": probe["figures"], "broken_images": probe["broken"],
            "title": probe["title"], "text_length": probe["text"], "screenshot": base64.b64decode(shot)}


class Tab:
    """A page kept open (scripts on) to work its controls: ``evaluate`` runs an expression in it and
    returns its value, ``errors`` what went wrong so far (console errors, exceptions, failed or
    outside requests, as ``open_page`` reports them), ``screenshot`` the whole page as PNG bytes."""

    def __init__(self, browser: Browser, url: str, width: int = 1280, height: int = 900) -> None:
        self.browser = browser
        self.target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = browser.call("Target.attachToTarget", {"targetId": self.target, "flatten": True})["sessionId"]
        browser.events.clear()
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.call(f"{domain}.enable", session=self.session)
        browser.call("Emulation.setDeviceMetricsOverride",
                     {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=self.session)
        browser.call("Page.navigate", {"url": url}, session=self.session)
        browser.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        reply = self.browser.call("Runtime.evaluate", {"expression": expression, "returnByValue": True},
                                  session=self.session)
        if "exceptionDetails" in reply:
            raise RuntimeError(f"{expression[:80]}: {reply['exceptionDetails'].get('text')}")
        return reply["result"].get("value")

    def errors(self) -> list[str]:
        errors = []
        for event in self.browser.events:
            method, params = event.get("method"), event.get("params", {})
            if event.get("sessionId") not in (None, self.session):
                continue
            if method == "Runtime.exceptionThrown":
                errors.append(f"exception: {params['exceptionDetails'].get('text')}")
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                errors.append(f"console.{params['type']}: {params.get('args')}")
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                errors.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
            elif method == "Network.loadingFailed":
                errors.append(f"request failed: {params.get('errorText')} ({params.get('type')})")
            elif method == "Network.requestWillBeSent":
                request_url = params["request"]["url"]
                if not request_url.startswith(("file:", "data:", "about:")):
                    errors.append(f"network request: {request_url}")
        return errors

    def screenshot(self) -> bytes:
        shot = self.browser.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": False},
                                 session=self.session)["data"]
        return base64.b64decode(shot)

    def close(self) -> None:
        self.browser.call("Target.closeTarget", {"targetId": self.target})
