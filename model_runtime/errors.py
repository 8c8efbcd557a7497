"""Errors the runtime reports to its callers.

A BadInput is the user's to fix (exit code 2, protocol code e.g. "bad_audio"); its message is
one line that names the file and the problem. Anything else is an internal error (exit 1).
"""

ECHO_LIMIT = 200  # characters of a caller's value quoted back in a message


def clip(text, limit=ECHO_LIMIT):
    """`text` cut to `limit` characters, saying how long it was: a 10 MB path must not come back whole."""
    text = str(text)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


class BadInput(Exception):
    def __init__(self, path, problem, code="bad_input"):
        self.path = str(path) if path is not None else None
        self.problem = problem
        self.code = code
        super().__init__(f"{clip(self.path)}: {problem}" if self.path else problem)


class NoModel(Exception):
    """No model file could be found (none shipped yet, or a --model path that does not exist)."""

    code = "no_model"


class Cancelled(Exception):
    """A job was cancelled by its caller; it wrote nothing."""

    code = "cancelled"
