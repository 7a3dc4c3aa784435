"""Progress on stderr: one plain line per stage without a terminal; a live line on one."""

from __future__ import annotations

import io

from ocibuild.progress import Progress


def test_without_a_terminal_stages_are_lines_and_details_are_dropped() -> None:
    out = io.StringIO()
    progress = Progress(out)
    progress.step("fetching 3 Debian packages")
    progress.detail("fetching libc6: 1.0 MB of 3.0 MB")
    progress.step("pushing to r/x:1")
    progress.done()
    assert out.getvalue() == "ocibuild: fetching 3 Debian packages\nocibuild: pushing to r/x:1\n"


def test_on_a_terminal_one_line_is_rewritten_then_cleared() -> None:
    out = io.StringIO()
    progress = Progress(out, live=True)
    progress.step("fetching")
    progress.detail("libc6\x1b[31m: 1.0 MB")  # a name from a file: no escape reaches the tty
    progress.done()
    assert out.getvalue() == ("\r\x1b[Kfetching" "\r\x1b[Klibc6?[31m: 1.0 MB" "\r\x1b[K")


def test_quiet_says_nothing() -> None:
    out = io.StringIO()
    progress = Progress(out, quiet=True, live=True)
    progress.step("a")
    progress.detail("b")
    progress.done()
    assert out.getvalue() == ""
