"""Thin, typed wrappers around the operating system's tools.

One module per tool; every command goes through :func:`speicher.system.run.run` (argument lists,
never a shell, a timeout, captured output). Output is parsed into dataclasses by pure functions
that unit tests feed with recorded output. This package imports only the standard library.
"""
