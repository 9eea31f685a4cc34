"""The one error every stage may raise for a user's mistake."""


class UsageError(Exception):
    """A user mistake: reported in one line, exit code 2, never a traceback."""
