"""Run ``celery`` as ``python -m celery`` would, and when the worker shuts down write the names of
the modules its process imported to ``$MEDFLOW_TEST_MODULES_DUMP`` (JSON). Used with
``--pool solo``, so that process is the one that ran the tasks."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from celery.signals import worker_shutdown


def _dump(**_: Any) -> None:
    with open(os.environ["MEDFLOW_TEST_MODULES_DUMP"], "w") as out:
        json.dump(sorted(sys.modules), out)


if __name__ == "__main__":
    from celery.__main__ import main

    worker_shutdown.connect(_dump, weak=False)
    sys.argv[0] = "celery"
    sys.exit(main())
