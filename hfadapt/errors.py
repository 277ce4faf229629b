"""The one exception type that means "the user's input is wrong"."""


class HfadaptError(Exception):
    """A problem with what the user asked for, worded as the problem and its fix.

    The CLI prints the message and exits with status 2, without a traceback. Anything else
    that escapes is a bug in hfadapt, and keeps its traceback.
    """
