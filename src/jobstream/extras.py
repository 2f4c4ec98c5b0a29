"""Optional installs: which URL needs which driver, and the one-line error when it is missing.

The default install runs embedded (SQLite, the in-memory bus). Scaling out needs drivers that
come with extras: ``pip install 'jobstream[postgres]'`` (asyncpg) for a ``postgresql://`` store
and ``pip install 'jobstream[redis]'`` (redis) for a ``redis://`` bus. ``create_store`` and
``create_bus`` call ``require_driver`` before anything else, so a missing driver stops the
server at start with a message that names the extra, not with an import error at first use.
"""

from __future__ import annotations

import importlib

# URL scheme -> (module to import, extra that installs it). A URL that names another driver
# (``postgresql+psycopg://``) is the caller's own choice and is not checked here.
DRIVERS: dict[str, tuple[str, str]] = {
    "postgresql": ("asyncpg", "postgres"),
    "postgres": ("asyncpg", "postgres"),
    "postgresql+asyncpg": ("asyncpg", "postgres"),
    "postgres+asyncpg": ("asyncpg", "postgres"),
    "redis": ("redis", "redis"),
    "rediss": ("redis", "redis"),
}


class MissingExtra(RuntimeError):
    """A URL needs a driver that is not installed; the message says which extra to install."""

    def __init__(self, what: str, scheme: str, module: str, extra: str) -> None:
        super().__init__(
            f"the {what} URL {scheme}://… needs the {module} driver, which is not installed: "
            f"pip install 'jobstream[{extra}]'"
        )
        self.module = module
        self.extra = extra


def require_driver(url: str, what: str) -> None:
    """Raise ``MissingExtra`` if ``url``'s scheme needs a driver that cannot be imported.

    ``what`` says what the URL is for (``"store"``, ``"bus"``); the URL itself is not repeated
    in the message, since it may hold a password.
    """
    scheme = url.split("://", 1)[0].lower()
    needed = DRIVERS.get(scheme)
    if needed is None:
        return
    module, extra = needed
    try:
        importlib.import_module(module)
    except ImportError:
        raise MissingExtra(what, scheme, module, extra) from None


__all__ = ["DRIVERS", "MissingExtra", "require_driver"]
