"""``report.pdf`` for board packs: the same ``report.html``, printed by headless Chromium.

Chromium's print to PDF keeps the page's text as text (a screen reader and a
search can follow it) and honours the report's print style sheet
(``helpers.report._REPORT_LAYOUT``: A4, "Page N of M" at the foot of each
page, figures and table rows not split across pages). The browser is the
Debian package ``chromium`` found on the ``PATH``, or the one named by
``handbook run --chromium PATH`` or the environment variable
:data:`CHROMIUM_VARIABLE`. It runs with a fresh, throw-away profile and with
networking features off; the report fetches nothing anyway (its content
security policy forbids it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

#: Environment variable that may name the Chromium executable.
CHROMIUM_VARIABLE = "HANDBOOK_CHROMIUM"
#: Executable names tried on the PATH, in order.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: What to tell a user who has no Chromium.
INSTALL_HINT = (
    "--pdf needs the Chromium browser to print report.html. Install it with your package manager "
    "(Debian or Ubuntu: `sudo apt-get install chromium`), or name the browser with "
    f"--chromium PATH (or the {CHROMIUM_VARIABLE} environment variable)."
)
#: Seconds the browser may take to print one report.
TIMEOUT_SECONDS = 180

#: Headless, no sandbox (it fails as root and in containers), no GPU, and none of
#: the browser's own network traffic (QUIC, sync, updates, background fetches).
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--no-pdf-header-footer",  # the page numbers come from the report's @page rule, not the browser's header
)


class ChromiumMissing(RuntimeError):
    """No Chromium could be found: the message says what to install."""


def find_chromium(named: str | os.PathLike | None = None) -> Path:
    """The Chromium executable: ``named`` (a path or a name on the PATH), else $HANDBOOK_CHROMIUM, else the PATH.

    Raises :class:`ChromiumMissing` with :data:`INSTALL_HINT` when there is none.
    """
    wanted = named or os.environ.get(CHROMIUM_VARIABLE)
    if wanted:
        path = Path(wanted).expanduser()
        found = str(path) if path.is_file() and os.access(path, os.X_OK) else shutil.which(str(wanted))
        if not found:
            raise ChromiumMissing(
                f"Cannot run the browser {str(wanted)!r}: it is not an executable file. " + INSTALL_HINT
            )
        return Path(found)
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return Path(found)
    raise ChromiumMissing(INSTALL_HINT)


def write_pdf(html_path: Path, pdf_path: Path, chromium: str | os.PathLike | None = None) -> Path:
    """Print ``html_path`` to ``pdf_path`` (A4, page numbers) with headless Chromium; return ``pdf_path``.

    Raises :class:`ChromiumMissing` when no browser is found and
    ``RuntimeError`` (with the browser's last words) when it writes no PDF.
    """
    browser = find_chromium(chromium)
    html_path, pdf_path = Path(html_path).resolve(), Path(pdf_path).resolve()
    pdf_path.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="handbook-chromium-") as profile:
        command = [
            str(browser),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--print-to-pdf={pdf_path}",
            html_path.as_uri(),
        ]
        try:
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=TIMEOUT_SECONDS,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise RuntimeError(
                f"Chromium did not finish printing {html_path.name} within {TIMEOUT_SECONDS} s."
            ) from None
        except OSError as exc:
            raise ChromiumMissing(f"Cannot start {browser}: {exc}. " + INSTALL_HINT) from None
    if not pdf_path.is_file() or pdf_path.stat().st_size == 0:
        said = "\n  ".join((done.stderr or "").strip().splitlines()[-5:])
        raise RuntimeError(
            f"Chromium wrote no PDF of {html_path.name} (exit status {done.returncode}).\n  {said}"
        )
    return pdf_path
