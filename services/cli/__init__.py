"""The ``herald`` command line (installed with the package; see ``services.cli.commands``)."""

from .commands import main

__all__ = ["main"]
