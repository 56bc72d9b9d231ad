"""The walk of one image (bench/walk.py, issue 11) reaches every milestone and stays as short
as it was made: a new hop on the spine, a new SQL statement or transaction fails here, and
the one who adds it decides whether to raise the bound (and says why) or find another way."""

from __future__ import annotations

from bench.walk import MILESTONES, measure

# Measured when the walk was shortened (bench/walk.py's output; issue 11's closing note): 35.
# Raised to 37 by two guards issue 9 put on every upload: BodyTimeout.__call__ (a stalled body
# is cut with 408) and the upload slot's per-key check (429 UPLOADS_PER_KEY).
SPINE_MAX = 37
REQUEST_TRANSACTIONS = 3  # the caller's key, the model's check, the job's rows
# 20 and 14 then; a transaction's later audit appends reuse the head it wrote (db/audit.py).
REQUEST_STATEMENTS_MAX = 18
COLLECTOR_STATEMENTS_MAX = 13


def test_one_image_walks_from_upload_to_result_row_no_longer_than_measured() -> None:
    traced, status = measure()
    assert status == "completed"
    assert list(dict.fromkeys(traced.reached)) == list(MILESTONES.values())
    assert len(traced.spine) <= SPINE_MAX, traced.spine
    assert traced.statements["request transactions"] == REQUEST_TRANSACTIONS
    assert traced.statements["request"] <= REQUEST_STATEMENTS_MAX
    assert traced.statements["collector"] <= COLLECTOR_STATEMENTS_MAX
    assert traced.statements["collector transactions"] == 1
