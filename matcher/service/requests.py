"""Reading a request: its images (multipart ``image`` fields or a raw image body) and its listing fields, within
the body limit; upload names are labels only, never paths."""
from __future__ import annotations

import re

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request

from ..inputs import parse_price
from .limits import BodyTooLarge

LISTING_FIELDS = ("listing_id", "title", "price")
MAX_FIELD_CHARS = 2000
_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")


class ApiError(Exception):
    """An answer other than 200: HTTP status, a machine-readable code and a one-line message."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def label(filename: str | None) -> str:
    """A printable label for an upload: the last part of its file name, control characters dropped, at most 200
    characters; 'image' when it has none."""
    name = _UNSAFE.sub("", (filename or "").replace("\\", "/").rsplit("/", 1)[-1]).strip()
    return name[:200] or "image"


async def read_uploads(request: Request, max_images: int) -> tuple[list[tuple[str, bytes]], dict[str, str]]:
    """(label, bytes) of each image of the request, in order, and its text fields (multipart form fields, or the
    query string for a raw image body). Raises ApiError: 413 body too large or too many images, 415 another
    content type, 422 no image."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if content_type == "multipart/form-data":
            uploads, fields = await _read_form(request, max_images)
        elif content_type.startswith("image/"):
            uploads, fields = [("image", await request.body())], dict(request.query_params)
        else:
            raise ApiError(415, "unsupported_media_type",
                           f"send multipart/form-data with 'image' fields, or an image body with an image/* content "
                           f"type (got {content_type or 'none'!r})")
    except BodyTooLarge as exc:
        raise ApiError(413, "body_too_large", str(exc)) from None
    if not uploads:
        raise ApiError(422, "missing_image", "no 'image' field in the request")
    if len(uploads) > max_images:
        raise ApiError(413, "too_many_images", f"{len(uploads)} images in one request; at most {max_images}")
    return uploads, fields


async def _read_form(request: Request, max_images: int) -> tuple[list[tuple[str, bytes]], dict[str, str]]:
    try:
        form = await request.form(max_files=max_images, max_fields=50)
    except StarletteHTTPException as exc:  # malformed multipart, or too many parts
        if "too many files" in str(exc.detail).lower():
            raise ApiError(413, "too_many_images", f"more than {max_images} images in one request") from None
        raise ApiError(400, "bad_multipart", str(exc.detail)) from None
    uploads, fields = [], {}
    for key, value in form.multi_items():
        if key == "image":
            if isinstance(value, UploadFile):
                uploads.append((label(value.filename), await value.read()))
            else:
                uploads.append(("image", value.encode("utf-8", "replace")))
        elif isinstance(value, str):
            fields[key] = value
    await form.close()
    return uploads, fields


def listing_fields(fields: dict[str, str]) -> dict[str, str]:
    """The listing's ``listing_id``, ``title`` and ``price`` (as given; at most MAX_FIELD_CHARS each). A price
    that is not a number is refused (422)."""
    out = {name: str(fields.get(name, ""))[:MAX_FIELD_CHARS] for name in LISTING_FIELDS}
    if out["price"].strip():
        try:
            parse_price(out["price"])
        except ValueError:
            raise ApiError(422, "invalid_price", f"price {out['price']!r} is not a number") from None
    return out


def top_k_of(fields: dict[str, str], default: int, most: int) -> int:
    """The request's ``top_k`` (1..most), or ``default`` when it gives none (422 when it is not such a number)."""
    text = str(fields.get("top_k", "")).strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= most:
        raise ApiError(422, "invalid_top_k", f"top_k must be a whole number from 1 to {most}, not {text[:40]!r}")
    return value
