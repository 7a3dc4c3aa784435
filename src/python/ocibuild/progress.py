"""What `ocibuild build` and `lock` are doing, on stderr: a live line on a terminal, a few
plain lines in CI.

`step` is a stage (fetching packages, building a layer, pushing): one line each when stderr
is not a terminal (CI logs stay short and greppable), the live line's text on a terminal.
`detail` is finer progress (each package fetched): shown only on a terminal, overwriting
the live line. Nothing is printed with `quiet` (`--quiet`, or `--json` for scripts that
parse stdout and keep stderr for errors).
"""

from __future__ import annotations

import shutil
import sys
from typing import TextIO

from ocibuild.errors import escaped


class Progress:
    def __init__(self, stream: TextIO = sys.stderr, *, quiet: bool = False,
                 live: bool = False) -> None:
        self.stream = stream
        self.quiet = quiet
        self.live = live
        self._shown = False

    @classmethod
    def for_terminal(cls, quiet: bool) -> "Progress":
        return cls(sys.stderr, quiet=quiet, live=sys.stderr.isatty())

    def step(self, text: str) -> None:
        if self.quiet:
            return
        if self.live:
            self._overwrite(text)
        else:
            # Steps name packages and hosts a mirror or registry chose: no escape sequences.
            print(f"ocibuild: {escaped(text)}", file=self.stream, flush=True)

    def detail(self, text: str) -> None:
        if self.live and not self.quiet:
            self._overwrite(text)

    def done(self) -> None:
        """Clear the live line (before the summary, or an error, is printed)."""
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False

    def _overwrite(self, text: str) -> None:
        width = max(20, shutil.get_terminal_size((80, 24)).columns - 1)
        text = "".join(c if c.isprintable() else "?" for c in text)
        self.stream.write("\r\x1b[K" + (text if len(text) <= width else text[:width - 3] + "..."))
        self.stream.flush()
        self._shown = True
