"""The error every check of the plugin raises on input it cannot process."""


class InputError(ValueError):
    """Raised when a dataset cannot be processed as asked.

    The message always names the offending field or samples and says how to
    fix it. Raised before anything is written.
    """
