"""The whole book builds with warnings as errors, executing every notebook; then a real browser reads it.

The build runs once (the ``built_book`` fixture); set ``BOOK_HTML`` to the
``_build/html`` folder of an existing build to check that instead. The
browser checks open every page of the table of contents in headless Chromium
(Debian's ``chromium``; ``.ci/run`` installs it) from disk, with name
resolution switched off, and read the page as a reader's browser shows it:
maths typeset by the MathJax the book serves itself, no request to another
host, alt text that says something on every image, no ``NaN``/``<NA>`` in a
table. Screenshots of the landing page and of a notebook page's tables are
saved in ``_build/screenshots`` (or ``BOOK_SCREENSHOTS``) for a person to look at.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = Path(os.environ.get("BOOK_SCREENSHOTS", ROOT / "_build" / "screenshots"))


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        for chapter in part["chapters"]:
            files.append(chapter["file"])
            files += [s["file"] for s in chapter.get("sections", [])]
    return files


@pytest.fixture(scope="module")
def built_book(tmp_path_factory) -> Path:
    """The built book's ``_build/html`` folder: built once for this module (or ``BOOK_HTML``)."""
    if os.environ.get("BOOK_HTML"):
        return Path(os.environ["BOOK_HTML"])
    out = tmp_path_factory.mktemp("book")
    jb = Path(sys.executable).with_name("jupyter-book")
    result = subprocess.run(
        [str(jb), "build", str(ROOT), "-W", "-n", "--keep-going", "--path-output", str(out)],
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return out / "_build" / "html"


def test_book_builds_with_warnings_as_errors(built_book):
    for page in toc_files():
        assert (built_book / f"{page}.html").is_file(), page


def test_book_serves_its_own_mathjax(built_book):
    spc = (built_book / "book" / "spc.html").read_text(encoding="utf-8")
    assert 'src="../_static/mathjax/tex-mml-chtml.js"' in spc
    assert (built_book / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").is_dir()


# --------------------------------------------------------------------------- a real browser
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND",  # no network: no host name resolves
    "--remote-debugging-port=0",
    "--remote-allow-origins=*",
    "--window-size=1280,1400",
]


class Browser:
    """Headless Chromium driven over the DevTools protocol (websocket-client; no browser download)."""

    def __init__(self, executable: str, profile: Path):
        import websocket

        self.process = subprocess.Popen(
            [executable, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.is_file() and port_file.read_text().strip()):
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.close()
                raise RuntimeError("Chromium did not start (no DevToolsActivePort)")
            time.sleep(0.2)
        port = port_file.read_text().split()[0]
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30))
        page = next(t for t in targets if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=120, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []
        for domain in ("Page", "Network", "Runtime"):
            self.call(f"{domain}.enable")

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, event: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == event for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(event)
            self.events.append(json.loads(self.ws.recv()))

    def evaluate(self, script: str) -> Any:
        result = self.call("Runtime.evaluate", expression=script, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"])
        return result["result"].get("value")

    def open(self, url: str) -> list[str]:
        """Load ``url``, wait for it and for MathJax; return the URLs the page requested."""
        self.events = []
        self.call("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired")
        self.evaluate(
            "(async () => { if (window.MathJax && MathJax.startup && MathJax.startup.promise)"
            " { await MathJax.startup.promise; } return true; })()"
        )
        time.sleep(0.2)  # late requests (fonts) are reported after load
        self.call("Runtime.evaluate", expression="1")  # drain pending events
        return [
            e["params"]["request"]["url"]
            for e in self.events
            if e.get("method") == "Network.requestWillBeSent"
        ]

    def screenshot(self, path: Path, scroll_to: str | None = None) -> None:
        if scroll_to:
            self.evaluate(f"(() => {{ const e = {scroll_to}; if (e) e.scrollIntoView(); return !!e; }})()")
            time.sleep(0.3)
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            if getattr(self, "ws", None):
                self.ws.close()
        finally:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if not executable:
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is not installed: .ci/run installs it (apt-get install chromium)")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); CI installs it")
    # Chromium may still write its profile as it exits: a leftover file is not a test failure
    with tempfile.TemporaryDirectory(prefix="book-browser-", ignore_cleanup_errors=True) as profile:
        b = Browser(executable, Path(profile))
        try:
            yield b
        finally:
            b.close()


#: What the browser reads from each page: typeset maths, raw TeX left in the text, images, tables.
READ_PAGE = """(() => {
  const text = document.querySelector('main') ? document.querySelector('main').innerText : document.body.innerText;
  return {
    mathjax: document.querySelectorAll('mjx-container').length,
    tex: document.querySelectorAll('.math').length,
    raw_tex: (text.match(/\\\\\\(|\\\\\\[/g) || []).length,
    images: Array.from(document.images).map(i => ({alt: i.getAttribute('alt') || '', src: i.getAttribute('src') || ''})),
    tables: Array.from(document.querySelectorAll('table')).map(t => t.innerText),
  };
})()"""
FILE_NAME = re.compile(r"(^|[/\\])[\w.-]+\.(png|svg|jpe?g|gif|webp)$|_images/", re.I)
RAW_MISSING = re.compile(r"(?<![\w-])(NaN|nan|NaT|<NA>)(?![\w-])")


@pytest.fixture(scope="module")
def pages(built_book, browser) -> dict[str, dict[str, Any]]:
    """Every page of the table of contents as the browser shows it, with the requests it made."""
    seen = {}
    for page in toc_files():
        url = (built_book / f"{page}.html").resolve().as_uri()
        requests = browser.open(url)
        seen[page] = {"requests": requests, **browser.evaluate(READ_PAGE)}
        if page == toc_files()[0]:
            browser.screenshot(SCREENSHOTS / "landing.png")
    browser.open((built_book / "notebooks" / "virtual_ward.html").resolve().as_uri())
    browser.screenshot(
        SCREENSHOTS / "notebook_tables.png",
        scroll_to="Array.from(document.querySelectorAll('table')).slice(-1)[0]",
    )
    return seen


def test_pages_request_nothing_from_other_hosts(pages):
    elsewhere = {
        page: [u for u in p["requests"] if not u.startswith(("file:", "data:", "blob:", "about:"))]
        for page, p in pages.items()
    }
    assert not {k: v for k, v in elsewhere.items() if v}
    assert all(p["requests"] for p in pages.values())  # the check saw the pages' own requests


def test_maths_is_typeset_offline(pages):
    with_maths = {page: p for page, p in pages.items() if p["tex"]}
    assert {"book/spc", "book/variation"} <= set(with_maths)
    for page, p in with_maths.items():
        assert p["mathjax"] >= p["tex"] > 0, f"{page}: {p['mathjax']} of {p['tex']} formulas typeset"
        assert p["raw_tex"] == 0, f"{page}: raw TeX left in the text"


def test_every_image_has_alt_text_that_is_not_a_file_name(pages):
    bad = [
        (page, i["src"], i["alt"])
        for page, p in pages.items()
        for i in p["images"]
        if len(i["alt"].strip()) < 15 or FILE_NAME.search(i["alt"].strip())
    ]
    assert not bad, bad
    assert sum(len(p["images"]) for p in pages.values()) >= 20  # the figures were there to check


def test_no_raw_missing_values_in_tables(pages):
    bad = [
        (page, RAW_MISSING.search(t).group(0), t[:200])
        for page, p in pages.items()
        for t in p["tables"]
        if RAW_MISSING.search(t)
    ]
    assert not bad, bad
    assert (SCREENSHOTS / "landing.png").stat().st_size > 10_000
    assert (SCREENSHOTS / "notebook_tables.png").stat().st_size > 10_000
