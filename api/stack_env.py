"""Settings -> MEDFLOW_* variables: how `medflow up` hands its settings to child processes.

The inverse of ``Settings.from_env``; a unit test checks the round trip.
"""

from __future__ import annotations

import os

from config.settings import LIMIT_VARS, NUMBER_VARS, TEXT_VARS, Settings

# Raised glibc thresholds keep the big per-image buffers (a 2048x2048 pixel array is 8-16 MB) in
# the heap instead of a fresh mmap + page faults each time (DESIGN.md: 25 ms -> 10 ms per
# DICOM). 32 MiB is glibc's maximum mmap threshold on 64-bit.
WORKER_MALLOC_ENV = {
    "MALLOC_MMAP_THRESHOLD_": str(32 * 1024 * 1024),
    "MALLOC_TRIM_THRESHOLD_": str(128 * 1024 * 1024),
}

# Every setting that `Settings.from_env` reads, under the same variable names.
_TEXT = {
    **TEXT_VARS,
    **NUMBER_VARS,
    "model_root": "MEDFLOW_MODEL_ROOT",
    "model_cache_dir": "MEDFLOW_MODEL_CACHE",
}


def settings_to_env(settings: Settings) -> dict[str, str]:
    # An unset optional setting is left out, not written as the text "None".
    values = {var: getattr(settings, attr) for attr, var in _TEXT.items()}
    env = {var: str(value) for var, value in values.items() if value is not None}
    env["MEDFLOW_MODELS"] = ",".join(settings.models)
    env["MEDFLOW_IMPORT_ROOTS"] = os.pathsep.join(str(p) for p in settings.import_roots)
    env["MEDFLOW_S3_IMPORT_ROOTS"] = ",".join(settings.s3_import_roots)
    env["MEDFLOW_IMPORT_ALLOW_HARDLINKS"] = "1" if settings.import_allow_hardlinks else "0"
    env["MEDFLOW_ALLOW_NONCLINICAL_MODELS"] = "1" if settings.allow_nonclinical_models else "0"
    env.update({var: str(getattr(settings.limits, attr)) for attr, var in LIMIT_VARS.items()})
    return env
