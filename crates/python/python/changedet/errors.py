"""The exceptions changedet raises; every one is a `changedet.Error`, with the CLI's message."""


class Error(Exception):
    """Anything changedet refuses or fails to do."""


class InputError(Error, ValueError):
    """Arguments changedet cannot take: shapes, dtypes, values."""


class ConfigError(Error, ValueError):
    """An unknown model name or a configuration it cannot build."""


class CheckpointError(Error):
    """A checkpoint or weight file that is missing, damaged or of another model."""


class DataError(Error):
    """A dataset or image file that is missing or unreadable."""
