"""mamoru (守る): audit agent for the technical safeguards of the MLIT personal-information guideline."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mamoru")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
