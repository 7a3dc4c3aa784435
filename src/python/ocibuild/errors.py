"""The one error type users see: its message names the bad value and says how to fix it."""


class OciBuildError(Exception):
    pass
