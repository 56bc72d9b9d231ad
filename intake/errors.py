"""What intake refuses, with the error code the caller reports (docs/error-codes.md)."""

from __future__ import annotations

from typing import Any


class IntakeRefused(Exception):
    """An image the intake will not take; ``details`` names it by index, never by ref or URI."""

    def __init__(self, code: str, message: str, details: dict[str, Any]) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = details


class FileTooLarge(IntakeRefused):
    """An uploaded file over ``limits.max_bytes`` (FILE_TOO_LARGE)."""

    def __init__(self, index: int, max_bytes: int) -> None:
        details = {"index": index, "max_bytes": max_bytes}
        super().__init__("FILE_TOO_LARGE", f"file {index} exceeds {max_bytes} bytes", details)


class ImageNotImported(IntakeRefused):
    """A URI that could not be imported (its own code: IMPORT_REFUSED, IMPORT_FAILED, ...)."""

    def __init__(self, index: int, code: str, message: str, refused: bool) -> None:
        # The message names the rule, never the URI (a path or key can name a patient).
        super().__init__(code, f"image {index}: {message}", {"index": index, "refused": refused})
