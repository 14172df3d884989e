"""Errors a user can fix: the command line prints them as one line, no traceback."""


def first_line(exc: BaseException, limit: int = 0) -> str:
    """An exception's message cut to its first line (and first sentence, within `limit`
    characters when given), or its type's name when it has none: a library's error as
    one line of ours."""
    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    line = text.splitlines()[0]
    return line.split(". ")[0][:limit] if limit else line


class UserError(Exception):
    """A bad file, argument or setting. The message says what and where."""

    exit_code = 2
