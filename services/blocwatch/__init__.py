"""blocwatch: an event-streaming alert service for geopolitical news."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("blocwatch")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
