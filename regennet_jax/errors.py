"""The one error type for problems a user can fix: a setting, an input file, a run directory.

The entry points (run.py and the data_prep commands) catch `UserError`, print its message as one
line and exit with status 1; with REGENNET_DEBUG=1 they show the traceback instead. Any other
exception is a bug and keeps its traceback. Messages name the setting or file, the value found and
what is allowed.

The subclasses say where the problem is; they also derive from the builtin type a caller would
expect (a bad value is a ValueError, a missing file a FileNotFoundError), so `except ValueError`
keeps working.
"""


class UserError(Exception):
  """A problem with the user's settings or files (see the module docstring)."""


class ConfigError(UserError, ValueError):
  """A configuration field has a value that is not allowed."""


class DataError(UserError, ValueError):
  """An input file or dataset directory is missing, unreadable or malformed."""


class RunError(UserError, RuntimeError):
  """A run cannot go on: it diverged, or its directory does not fit this configuration."""


class MissingFileError(UserError, FileNotFoundError):
  """Something a mode needs has not been made yet (a checkpoint, a recognizer, a file)."""


class OutputExistsError(UserError, FileExistsError):
  """The output would replace something complete that the user did not ask to overwrite."""
