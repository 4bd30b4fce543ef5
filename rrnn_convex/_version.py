"""The package version, in a module that imports nothing of the package (so any module can use it)."""
__version__ = "0.1.0"
