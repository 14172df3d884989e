"""Errors a user can fix: the command line prints them as one line, no traceback."""


class UserError(Exception):
    """A bad file, argument or setting. The message says what and where."""

    exit_code = 2
