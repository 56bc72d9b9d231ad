"""The client's streamed multipart body parses as the form the API reads, in bounded batches."""

from __future__ import annotations

import io
from pathlib import Path

from werkzeug.formparser import parse_form_data

from api.client import MultipartBody, batches


def test_multipart_body_parses_and_has_the_announced_length(tmp_path: Path) -> None:
    first, second = tmp_path / "a.png", tmp_path / 'odd "name".dcm'
    first.write_bytes(b"\x89PNG" + bytes(range(256)) * 10)
    second.write_bytes(b"\r\n--not-a-boundary\r\n" * 3)
    body = MultipartBody([first, second])
    data = b"".join(body)
    assert len(data) == body.length == int(body.headers()["Content-Length"])

    environ = {
        "REQUEST_METHOD": "POST",
        "CONTENT_TYPE": body.headers()["Content-Type"],
        "CONTENT_LENGTH": str(len(data)),
        "wsgi.input": io.BytesIO(data),
    }
    _, _, files = parse_form_data(environ)
    parts = files.getlist("files")
    assert [part.read() for part in parts] == [first.read_bytes(), second.read_bytes()]
    assert parts[1].filename.endswith('odd "name".dcm')


def test_batches_are_bounded_and_keep_order(tmp_path: Path) -> None:
    paths = []
    for index, size in enumerate([40, 40, 30, 100, 10]):
        path = tmp_path / f"{index}.bin"
        path.write_bytes(b"x" * size)
        paths.append(path)
    groups = list(batches(paths, batch_bytes=80, first_bytes=80))
    assert [[p.name for p in group] for group in groups] == [
        ["0.bin", "1.bin"],
        ["2.bin"],
        ["3.bin"],
        ["4.bin"],
    ]


def test_batches_start_small_and_grow_so_work_starts_early(tmp_path: Path) -> None:
    paths = []
    for index in range(40):
        path = tmp_path / f"{index}.bin"
        path.write_bytes(b"x" * 10)
        paths.append(path)
    groups = list(batches(paths, batch_bytes=100, first_bytes=10))
    # 10 bytes, then 40, then the 100-byte cap.
    assert [len(group) for group in groups] == [1, 4, 10, 10, 10, 5]
    assert [p for group in groups for p in group] == paths


def test_batches_hold_at_most_max_files_so_the_parts_cap_is_never_hit(tmp_path: Path) -> None:
    paths = []
    for index in range(25):
        path = tmp_path / f"{index}.bin"
        path.write_bytes(b"x")
        paths.append(path)
    groups = list(batches(paths, batch_bytes=10**6, first_bytes=10**6, max_files=10))
    assert [len(group) for group in groups] == [10, 10, 5]
