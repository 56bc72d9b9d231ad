"""The worker-to-collector MAC: any change to what a chunk says, or the wrong key, fails it."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from kombu.utils.json import dumps, loads

from messages.chunk_results import ChunkResults
from messages.scored_image import ScoredImage
from messages.signing import chunk_authentic, sign_chunk
from workers.refusals import BAD_MAC, MALFORMED, authentic_chunk

KEY = "results-key-" + "k" * 32


def chunk() -> ChunkResults:
    images = (
        ScoredImage(
            7,
            "ok",
            input_sha256="ab" * 32,
            scores={"Nodule": 0.1 + 0.2, "Mass": 1e-7},
            positive=["Nodule"],
            timings_ms={"decode": 3.25},
            facts={"modality": "CR", "bits_stored": 12},
        ),
        ScoredImage.failure(8, "CORRUPT_IMAGE", "broken stream"),
    )
    return ChunkResults("job-1", "task-1", images)


def test_a_signed_chunk_survives_the_broker_round_trip() -> None:
    signed = sign_chunk(chunk(), KEY)
    # What Celery does to the argument: kombu's JSON out and back in.
    received = ChunkResults.from_message(loads(dumps(signed.to_message())))
    assert chunk_authentic(received, KEY)
    assert authentic_chunk(loads(dumps(signed.to_message())), KEY)[0] == received


def forgeries(signed: ChunkResults) -> dict[str, ChunkResults]:
    first, second = signed.images
    return {
        "score": replace(signed, images=(replace(first, scores={"Nodule": 0.99}), second)),
        "status": replace(signed, images=(first, replace(second, status="ok"))),
        "image id": replace(signed, images=(replace(first, image_id=9), second)),
        "input": replace(signed, images=(replace(first, input_sha256="cd" * 32), second)),
        "job id": replace(signed, job_id="job-2"),
        "chunk id": replace(signed, chunk_id="task-2"),
        "dropped image": replace(signed, images=(first,)),
        "unsigned": replace(signed, mac=""),
    }


@pytest.mark.parametrize("what", list(forgeries(sign_chunk(chunk(), KEY))))
def test_any_change_fails_the_mac(what: str) -> None:
    forged = forgeries(sign_chunk(chunk(), KEY))[what]
    assert not chunk_authentic(forged, KEY)


def test_the_wrong_key_fails_the_mac() -> None:
    assert not chunk_authentic(sign_chunk(chunk(), "other-" + "k" * 32), KEY)


@pytest.mark.parametrize(
    "message",
    [None, "text", {}, {"job_id": "j", "chunk_id": "c", "images": [{"bogus": 1}]}, [1, 2]],
)
def test_a_malformed_message_is_refused_not_raised(message: object) -> None:
    assert authentic_chunk(message, KEY) == (None, MALFORMED)


def test_an_unsigned_message_is_refused_as_a_bad_mac() -> None:
    message = json.loads(json.dumps(chunk().to_message()))
    assert authentic_chunk(message, KEY) == (None, BAD_MAC)
