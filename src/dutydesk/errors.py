"""Errors the `dutydesk` command turns into a one-line message.

They live apart from the code that raises them so that catching them costs no import: the
command's entry point catches a wrong setting without loading pydantic.
"""


class SettingsError(Exception):
    """A setting is wrong; the message names the variable and what to do."""
