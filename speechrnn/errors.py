"""Errors a user can cause. Each prints as one line: what, where, what to do."""


class UserError(Exception):
    """A problem with the user's input, config or files (never a bug in speechrnn)."""


class AudioError(UserError):
    """An audio file that cannot be read or used."""


class ManifestError(UserError):
    """A manifest line that is not JSON or lacks a field."""


class ConfigError(UserError):
    """A config file or override that does not fit the schema."""


class BundleError(UserError):
    """A file that is not a speechrnn model bundle, or from an incompatible version."""
