"""The package version, in a module of its own (as timm and open_clip keep it) so that the
engine can record it and the CLI print it without importing the package's API."""

__version__ = "0.1.0"
