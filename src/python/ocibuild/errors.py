"""The one error type users see."""


class OciBuildError(Exception):
    """Bad input: the message names the path, field or value that is wrong and says how to fix it.

    The CLI prints it as `ocibuild: error: <message>` without a traceback (exit code 2);
    any other exception escaping is a bug in ocibuild (exit code 1).
    """
