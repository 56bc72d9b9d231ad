"""api.multipart: the upload reader gives back exactly the bytes sent, whatever the read size,
and refuses a body it cannot follow with an error that names the rule."""

from __future__ import annotations

import hashlib
import io
import os
import random
from pathlib import Path

import pytest

import api.multipart as multipart
from api.client import MultipartBody
from api.multipart import Form, FormLimits, FormTooLarge, MultipartError, read_form

BOUNDARY = b"medflow-test-boundary"
LIMITS = FormLimits(max_parts=100, max_field_bytes=1000)


class Collect(io.BytesIO):
    """A sink that keeps what it is given (a spool hashes and writes it instead)."""

    ended = False

    def end(self) -> None:
        self.ended = True


def body(
    *parts: tuple[str, str | None, bytes], preamble: bytes = b"", epilogue: bytes = b""
) -> bytes:
    out = [preamble]
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out.append(b"--" + BOUNDARY + b"\r\n")
        out.append(f"Content-Disposition: {disposition}\r\n\r\n".encode())
        out += [data, b"\r\n"]
    out.append(b"--" + BOUNDARY + b"--\r\n" + epilogue)
    return b"".join(out)


def parse(data: bytes, limits: FormLimits = LIMITS) -> Form:
    return read_form(io.BytesIO(data), BOUNDARY, Collect, limits)


def contents(form: Form) -> list[bytes]:
    return [part.sink.getvalue() for part in form.files]  # type: ignore[attr-defined]


TRICKY = [
    b"",
    b"\r",
    b"\r\n",
    b"\r\n--",
    b"--" + BOUNDARY,  # the boundary without its CRLF is data
    b"\r\n--" + BOUNDARY[:-1] + b"X",
    os.urandom(5000) + b"\r\n--" + BOUNDARY[:10],
    random.Random(3).randbytes(70_000),
]


@pytest.mark.parametrize("read_size", [1, 7, 64, 4096, 1 << 20])
def test_every_byte_comes_back_at_any_read_size(
    read_size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(multipart, "READ_SIZE", read_size)
    parts = [("files", f"{i}.dcm", data) for i, data in enumerate(TRICKY)]
    form = parse(body(("model", None, b"tiny"), *parts, ("seal", None, b"false")))
    assert contents(form) == TRICKY
    assert [(p.name, p.filename) for p in form.files] == [(n, f) for n, f, _ in parts]
    assert form.fields == [("model", "tiny"), ("seal", "false")]


def test_the_client_body_reads_back_with_names_and_types(tmp_path: Path) -> None:
    paths = []
    for index, data in enumerate(TRICKY):
        paths.append(tmp_path / f'scan "{index}".png')
        paths[-1].write_bytes(data)
    client_body = MultipartBody(paths)
    boundary = client_body.boundary.encode()
    form = read_form(io.BytesIO(b"".join(client_body)), boundary, Collect, LIMITS)
    assert [hashlib.sha256(c).digest() for c in contents(form)] == [
        hashlib.sha256(p.read_bytes()).digest() for p in paths
    ]
    assert form.files[1].filename == str(paths[1])
    assert {p.content_type for p in form.files} == {"application/octet-stream"}


def test_preamble_padding_and_epilogue_are_skipped() -> None:
    data = body(("files", "a.png", b"pixels"), preamble=b"ignore me\r\n", epilogue=b"and me")
    data = data.replace(BOUNDARY + b"\r\nContent", BOUNDARY + b"  \t\r\nContent", 1)
    assert contents(parse(data)) == [b"pixels"]


@pytest.mark.parametrize(
    ("data", "rule"),
    [
        (b"no boundary at all", "no multipart boundary"),
        (body(("files", "a.png", b"x"))[:-30], "ends inside a part"),
        (b"--" + BOUNDARY + b"\r\nContent-Disposition: form-data", "headers are too long or cut"),
        (b"--" + BOUNDARY + b"\r\nno colon here\r\n\r\nx", "no colon"),
        (b"--" + BOUNDARY + b"\r\n\r\nx\r\n--" + BOUNDARY + b"--", "no Content-Disposition"),
        (b"--" + BOUNDARY + b"\r\nContent-Disposition: inline\r\n\r\nx", "form-data"),
        (b"--" + BOUNDARY + b"junk\r\n", "after a multipart boundary"),
        (b"--" + BOUNDARY + b"\r\nX: " + b"y" * 9000 + b"\r\n\r\n", "too long"),
        (b"--" + BOUNDARY, "ends inside a boundary"),
    ],
)
def test_a_body_it_cannot_follow_names_the_rule(data: bytes, rule: str) -> None:
    with pytest.raises(MultipartError, match=rule):
        parse(data)


def test_a_long_boundary_is_read_and_an_absurd_one_refused() -> None:
    # Over RFC 2046's 70 characters, as Werkzeug's own test client sometimes sends.
    long = b"-" * 15 + b"WerkzeugFormPart_1764788400.123456" + b"0.8" * 10
    data = body(("files", "a.png", b"pixels")).replace(BOUNDARY, long)
    form = read_form(io.BytesIO(data), long, Collect, LIMITS)
    assert contents(form) == [b"pixels"]
    with pytest.raises(MultipartError, match="256"):
        read_form(io.BytesIO(b""), b"b" * 257, Collect, LIMITS)


def test_parts_and_field_text_are_limited() -> None:
    files = [("files", f"{i}.png", b"x") for i in range(3)]
    with pytest.raises(FormTooLarge, match="more than 2 parts"):
        parse(body(*files), FormLimits(max_parts=2, max_field_bytes=1000))
    fields = [("note", None, b"y" * 600), ("more", None, b"z" * 600)]
    with pytest.raises(FormTooLarge, match="text fields over 1000 bytes"):
        parse(body(*fields))
    assert len(parse(body(*files), FormLimits(max_parts=3, max_field_bytes=0)).files) == 3


def test_many_small_parts_in_one_read() -> None:
    parts = [("files", f"{i}.png", i.to_bytes(4, "big")) for i in range(100)]
    assert contents(parse(body(*parts))) == [data for _, _, data in parts]


def test_each_sink_is_ended_before_the_next_one_is_made() -> None:
    made: list[Collect] = []

    def new_sink() -> Collect:
        assert all(sink.ended for sink in made)  # one open spool at a time (issue 9)
        made.append(Collect())
        return made[-1]

    parts = [("files", f"{i}.png", b"x" * i) for i in range(20)]
    form = read_form(io.BytesIO(body(*parts)), BOUNDARY, new_sink, LIMITS)
    assert len(form.files) == 20 and all(sink.ended for sink in made)
