"""A failed command's answer on stdout, beside the human message on stderr.

The plugin turns it into a Pants error: `bad-input` is the user's to fix and its message says
how; `crash` is a bug in ocibuild (`detail` holds the traceback); `interrupted` a stop signal.
"""

from __future__ import annotations

from dataclasses import dataclass

from ocibuild.protocol.document import Document

BAD_INPUT, CRASH, INTERRUPTED = "bad-input", "crash", "interrupted"


@dataclass(frozen=True)
class ErrorResult(Document):
    KIND = "error"

    error: str  # BAD_INPUT, CRASH or INTERRUPTED
    message: str
    exit_code: int
    detail: str = ""
