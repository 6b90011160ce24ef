"""The one place that imports `audioop`: the stdlib module on 3.11/3.12 (which warns that it
is deprecated) and the `audioop-lts` package of the same name on 3.13+."""

import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

__all__ = ["audioop"]
