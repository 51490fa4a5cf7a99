"""The package version: one place, imported by the modules that write it into model folders."""

__version__ = "0.2.0"
