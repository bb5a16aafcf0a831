"""The one rule for a server that is not installed: skip on a laptop, fail under CI.

A laptop without Prometheus should still run the rest of the suite, but CI must never go green
by silently skipping the integration tests.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest

INSTALL_HINT = "run scripts/install-system-deps"


def server_missing(reason: str) -> NoReturn:
    """Skip the test locally; fail it when CI=true."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(reason)


def require_binary(*names: str, package: str) -> str:
    """Path of the first of `names` found on PATH, or skip/fail naming the package to install."""
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    server_missing(f"{' / '.join(names)} not found: {INSTALL_HINT} (Debian package {package})")
