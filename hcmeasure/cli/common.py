"""Helpers shared by the subcommands."""
from __future__ import annotations


class CLIError(Exception):
    """A problem that stops the command; the message names the file and the fix."""
