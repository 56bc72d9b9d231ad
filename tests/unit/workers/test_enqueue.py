"""enqueue_images: chunking, routing, and message bodies that carry ids and hashes only."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from workers.enqueue import chunked, enqueue_images
from workers.queues import infer_queue, model_name_of

PHI_REF = "DOE^JOHN_1970-01-01.dcm"


@dataclass
class FakeImage:
    """What an Image row offers: enqueue_images must use only id and blob_key."""

    id: int
    blob_key: str
    ref: str = PHI_REF


def images(count: int) -> list[FakeImage]:
    return [FakeImage(id=i + 1, blob_key=f"{i + 1:064x}") for i in range(count)]


def test_chunks_of_chunk_size_in_order(celery: Any, published: list[dict[str, Any]]) -> None:
    sent = enqueue_images(celery, "job1", "tiny:1", images(35), chunk_size=16)

    assert sent == 3
    chunks = [message["body"][0][2] for message in published]
    assert [len(chunk) for chunk in chunks] == [16, 16, 3]
    assert [item[0] for chunk in chunks for item in chunk] == list(range(1, 36))
    assert {message["routing_key"] for message in published} == {"infer.tiny"}
    assert {message["headers"]["task"] for message in published} == {"medflow.infer_chunk"}


def test_message_args_are_ids_and_hashes_only(celery: Any, published: list[dict[str, Any]]) -> None:
    enqueue_images(celery, "job1", "tiny:1", images(3), chunk_size=16)

    (message,) = published
    args, kwargs, _ = message["body"]
    assert args == ["job1", "tiny:1", [[1, f"{1:064x}"], [2, f"{2:064x}"], [3, f"{3:064x}"]]]
    assert kwargs == {}
    assert PHI_REF not in json.dumps(message["body"]) + json.dumps(message["headers"], default=str)


def test_accepts_id_key_pairs(celery: Any, published: list[dict[str, Any]]) -> None:
    enqueue_images(celery, "job1", "nodule-detector", [(7, "a" * 64)], chunk_size=4)

    assert published[0]["routing_key"] == "infer.nodule-detector"
    assert published[0]["body"][0][2] == [[7, "a" * 64]]


def test_nothing_to_send(celery: Any, published: list[dict[str, Any]]) -> None:
    assert enqueue_images(celery, "job1", "tiny:1", [], chunk_size=16) == 0
    assert published == []


def test_chunked_rejects_a_zero_size() -> None:
    with pytest.raises(ValueError):
        list(chunked([[1, "k"]], 0))


def test_queue_names() -> None:
    assert infer_queue("tiny") == "infer.tiny"
    assert model_name_of("chest-xray-densenet121:1.0.0") == "chest-xray-densenet121"
    assert model_name_of("tiny") == "tiny"
