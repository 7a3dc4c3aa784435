"""The one error type users see, and the rule that keeps its text harmless on a terminal."""


def escaped(text: str) -> str:
    """`text` with every character a terminal would act on written as an escape (`\\x1b`,
    `\\u202e`): C0 and C1 controls, DEL, bidi overrides and other format characters, lone
    surrogates (they would not even encode). Only newlines stay: a message's own lines."""
    if text.isprintable():
        return text
    return "".join(c if c == "\n" or c.isprintable() else repr(c)[1:-1] for c in text)


class EscapedError(Exception):
    """An error whose message is `escaped` where it is made: for the plugin's own errors too,
    which quote what Pants' downloader or a process said."""

    def __init__(self, *args: object) -> None:
        super().__init__(*(escaped(a) if isinstance(a, str) else a for a in args))


class OciBuildError(EscapedError):
    """Bad input: the message names the path, field or value that is wrong and says how to fix it.

    The CLI prints it as `ocibuild: error: <message>` without a traceback (exit code 2);
    any other exception escaping is a bug in ocibuild (exit code 1).

    Messages quote what servers and files say (a platform's `os`, a token realm, a Location),
    so the text is `escaped` here, where every message is made: no call site can forget, and
    an escape sequence a server chose never reaches stderr, the JSON error or Pants' output.
    Server strings should still be quoted with `untrusted.shown`, which escapes newlines too.
    """
