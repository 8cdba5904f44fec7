"""Project exceptions: every failure a user can cause has a readable type and message."""


class SOPError(Exception):
    """Base class for errors raised by the SOP library."""


class InputError(SOPError, ValueError):
    """A tensor or argument passed to the API is unusable (shape, dtype, NaN, device...)."""


class ImageError(SOPError, ValueError):
    """An image file could not be read or is refused (corrupt, too large, not an image)."""


class CheckpointError(SOPError, ValueError):
    """A checkpoint is missing, truncated, unsafe, or does not match its config."""


class ExplanationError(SOPError, ValueError):
    """An attribution method cannot explain this model or input, or returned an unusable map."""


class ConfigError(SOPError, ValueError):
    """A configuration value is unusable: an unknown name (adapter, task, dataset), a head count
    that does not divide the group count, a missing folder...  `field` names the setting."""

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field
