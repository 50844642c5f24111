"""The inference engine's error type."""


class InferenceError(ValueError):
    """A problem with the user's input, options or files; the CLI prints it without a traceback.

    A ``ValueError``, so that API callers can catch bad values (e.g. a tensor holding NaN) the usual way.
    """
