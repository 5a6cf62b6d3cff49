"""Every error the registry raises derives from :class:`RegistryError`.

Messages are built from arguments so they name what is wrong; tests assert the exact text.
"""

from __future__ import annotations


class RegistryError(Exception):
    """Base class of the registry's errors."""


class ManifestError(RegistryError):
    """A manifest (or a row checked against its input schema) is not valid."""
