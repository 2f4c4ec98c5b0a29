"""Outside services some tests need (PostgreSQL, Redis, nginx, a browser).

A test that cannot reach its service is skipped, with the reason shown in the summary (``-ra``),
so a laptop without PostgreSQL still runs everything else. In CI (``CI=true``) a missing service
is a broken environment, not a reason to go green: the same call fails the test instead.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def running_in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def require_service(name: str, reason: str) -> NoReturn:
    """Skip the current test because ``name`` is unavailable, or fail it when ``CI=true``."""
    message = f"{name} unavailable: {reason}"
    if running_in_ci():
        pytest.fail(f"{message} (CI=true: required services must be up)", pytrace=False)
    pytest.skip(message)


def env_url(variable: str, default: str) -> str:
    """A service URL from the environment, with the local default."""
    return os.environ.get(variable) or default
