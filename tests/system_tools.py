"""System tools a test needs and a fresh machine may lack (Orthanc, promtool, ip, DCMTK, GDCM).

Locally such a test skips with the tool's name and how to get it; in CI
(``MEDFLOW_REQUIRE_SERVICES=1``, set by ``.ci/run`` after ``.ci/system-deps`` installed them) a
missing tool fails the test instead, so CI can never go green by skipping.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest

REQUIRE_ENV = "MEDFLOW_REQUIRE_SERVICES"


def require_tool(executable: str, package: str) -> str:
    """The tool's full path; skip (fail in CI) when it is not on PATH."""
    path = shutil.which(executable) or next(
        (p for p in (f"/usr/sbin/{executable}", f"/sbin/{executable}") if os.path.exists(p)), None
    )
    if path:
        return path
    skip_or_fail(f"{executable} not found: install Debian's {package} (bash .ci/system-deps)")


def skip_or_fail(message: str) -> NoReturn:
    """Skip locally; in CI (``MEDFLOW_REQUIRE_SERVICES=1``) fail with the same message."""
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but {message}", pytrace=False)
    pytest.skip(message)


def require_root(reason: str) -> None:
    """Skip (fail in CI) unless running as root, e.g. for network namespaces."""
    if os.geteuid() == 0:
        return
    skip_or_fail(f"needs root: {reason}")
