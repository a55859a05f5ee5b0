"""Exceptions that carry a one-line message for the user."""


class KickgenError(Exception):
    """Base class: the message says what was wrong and what to do, naming the file or value."""


class CommandError(KickgenError):
    """Bad command-line input: printed as one line, exit code 2, nothing written."""


class PipelineError(KickgenError):
    """Generation could not run with the given arguments; the message says what to do."""
