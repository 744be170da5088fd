"""Job uploads: a CSV or NDJSON file of items in a multipart form, read and checked.

The multipart body is read with python-multipart's streaming parser, not Starlette's
`request.form()`, because the checks need to happen while the bytes arrive:

* the body is counted as it is read, whatever its framing claims (chunked, or longer
  than its `Content-Length`), and refused with a 413 past JOB_UPLOAD_MAX_BYTES;
* the file part's declared type is checked as soon as its headers are parsed, so a PDF
  is refused before any of its bytes are buffered;
* the SHA-256 of the file content is computed on the way in (duplicate uploads).

The file is kept in memory, bounded by JOB_UPLOAD_MAX_BYTES: the job's items are held in
memory for the submission anyway, and spooling to disk would only add I/O.

What the file may be, and how its rows become items, is `upload_files.py`; this module
reads the form, checks its fields by the rules of a `POST /v1/jobs` body, and submits.
Checks, in order: request type (415), declared and read size (413), form shape (400/422),
file part type (415, before its bytes are buffered), sniffed content (415), options
(422), empty file, CSV columns, rows by line number, the tier's cap (422).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import ValidationError
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from gateway.core.errors import BadRequest, InvalidInput, PayloadTooLarge, UnsupportedMediaType
from gateway.jobs.items import ItemErrors, validate_items
from gateway.jobs.models import JobIn, JobOut
from gateway.jobs.owner import Owner
from gateway.jobs.service import JobService
from gateway.jobs.spec import JobSpec
from gateway.jobs.upload_files import (
    FILE_FIELD,
    FileFormat,
    UploadedFile,
    check_part_type,
    csv_rows,
    file_text,
    line_location,
    ndjson_rows,
)
from gateway.kit.field_errors import field_errors, invalid_field

if TYPE_CHECKING:
    # Only a typing construct (a TypedDict the module defines under TYPE_CHECKING).
    from python_multipart.multipart import MultipartCallbacks

OPTION_FIELDS = ("kind", "priority", "deadline", "label")
# A form has one file and four short fields; anything beyond is not ours to parse.
MAX_PARTS = 8
MAX_FIELD_BYTES = 1024
_FIELD_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass(frozen=True)
class Upload:
    """A read multipart upload: the file and the other (text) fields."""

    file: UploadedFile
    fields: dict[str, str]


@dataclass(frozen=True)
class UploadOutcome:
    """A new job (`created`), or the open job this same content already made."""

    job: JobOut
    created: bool
    sha256: str


# -- reading the multipart body ------------------------------------------------------


def _too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The upload exceeds {max_bytes} bytes (JOB_UPLOAD_MAX_BYTES)")


def multipart_boundary(content_type: str | None) -> bytes:
    """The boundary of a `multipart/form-data` request (415 for any other type)."""
    media, params = parse_options_header(content_type or "")
    if media.lower() != b"multipart/form-data":
        raise UnsupportedMediaType("An upload is a multipart/form-data request")
    boundary = params.get(b"boundary")
    if not boundary:
        raise BadRequest("The multipart/form-data content type names no boundary")
    return boundary


class _FormReader:
    """Callbacks of the streaming parser: collects the fields and the one file."""

    def __init__(self, boundary: bytes) -> None:
        callbacks: MultipartCallbacks = {
            "on_part_begin": self._on_part_begin,
            "on_part_data": self._on_part_data,
            "on_part_end": self._on_part_end,
            "on_header_field": self._on_header_field,
            "on_header_value": self._on_header_value,
            "on_header_end": self._on_header_end,
            "on_headers_finished": self._on_headers_finished,
            "on_end": self._on_end,
        }
        try:
            self.parser = MultipartParser(boundary, callbacks)
        except FormParserError as exc:
            raise BadRequest("The multipart boundary is invalid") from exc
        self.fields: dict[str, str] = {}
        self.file: UploadedFile | None = None
        self.ended = False
        self._parts = 0
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._headers: dict[bytes, bytes] = {}
        self._name = ""
        self._filename: str | None = None
        self._media_type = ""
        self._is_file = False
        self._data = bytearray()
        self._hash = hashlib.sha256()

    def write(self, chunk: bytes) -> None:
        """Feed a chunk of the body."""
        try:
            self.parser.write(chunk)
        except FormParserError as exc:
            raise BadRequest("The multipart body is malformed") from exc

    def finish(self) -> Upload:
        """The upload, once the whole body was fed."""
        if not self.ended:
            raise BadRequest("The multipart body ended before its closing boundary")
        if self.file is None:
            raise invalid_field("body", FILE_FIELD, msg="a file is required", type="missing")
        return Upload(self.file, self.fields)

    def _on_part_begin(self) -> None:
        self._parts += 1
        if self._parts > MAX_PARTS:
            raise BadRequest(f"An upload has at most {MAX_PARTS} parts")
        self._headers = {}
        self._data = bytearray()

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        self._headers[bytes(self._header_name).lower()] = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def _on_headers_finished(self) -> None:
        disposition, options = parse_options_header(self._headers.get(b"content-disposition"))
        raw_name = options.get(b"name")
        if disposition.lower() != b"form-data" or raw_name is None:
            raise BadRequest("Every part needs Content-Disposition: form-data with a name")
        name = raw_name.decode("utf-8", "replace")
        self._name = name
        self._is_file = name == FILE_FIELD
        if self._is_file:
            if self.file is not None:
                raise invalid_field("body", FILE_FIELD, msg="one file per upload")
            raw_filename = options.get(b"filename")
            self._filename = (
                None if raw_filename is None else raw_filename.decode("utf-8", "replace")
            )
            self._media_type = check_part_type(
                self._headers.get(b"content-type", b"").decode("latin-1")
            )
            self._hash = hashlib.sha256()
        elif name not in OPTION_FIELDS:
            shown = name if _FIELD_NAME.match(name) else "?"
            raise invalid_field(
                "body",
                shown,
                msg=f"unknown form field; expected {FILE_FIELD}, {', '.join(OPTION_FIELDS)}",
                type="extra_forbidden",
            )
        elif name in self.fields:
            raise invalid_field("body", name, msg="given more than once")

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self._is_file:
            self._hash.update(chunk)
        elif len(self._data) + len(chunk) > MAX_FIELD_BYTES:
            raise invalid_field("body", self._name, msg=f"longer than {MAX_FIELD_BYTES} bytes")
        self._data += chunk

    def _on_part_end(self) -> None:
        if self._is_file:
            self.file = UploadedFile(
                content=bytes(self._data),
                sha256=self._hash.hexdigest(),
                filename=self._filename,
                media_type=self._media_type,
            )
        else:
            try:
                self.fields[self._name] = self._data.decode("utf-8")
            except UnicodeDecodeError:
                raise invalid_field("body", self._name, msg="not UTF-8 text") from None
        self._data = bytearray()

    def _on_end(self) -> None:
        self.ended = True


async def read_upload(
    content_type: str | None,
    content_length: str | None,
    body: AsyncIterable[bytes],
    *,
    max_bytes: int,
) -> Upload:
    """Read a multipart upload, refusing it (413) as soon as it exceeds `max_bytes`."""
    boundary = multipart_boundary(content_type)
    if content_length is not None and content_length.isdigit() and int(content_length) > max_bytes:
        raise _too_large(max_bytes)
    reader = _FormReader(boundary)
    received = 0
    async for chunk in body:
        # Counted here too, not only by the request-context layer: that layer trusts a
        # Content-Length (the HTTP server enforces it), this one trusts nothing.
        received += len(chunk)
        if received > max_bytes:
            raise _too_large(max_bytes)
        if chunk:
            reader.write(chunk)
    return reader.finish()


# -- the job options ---------------------------------------------------------------


def upload_options(fields: Mapping[str, str]) -> JobIn:
    """The form's job fields, checked by the rules of a `POST /v1/jobs` body (422).

    Empty fields count as absent (an HTML form sends every input, filled or not)."""
    given = {name: value for name, value in fields.items() if value.strip()}
    try:
        return JobIn.model_validate({**given, "items": []})
    except ValidationError as exc:
        errors = field_errors(exc.errors(include_input=False, include_url=False))
        raise InvalidInput([{**e, "loc": ["body", *e["loc"]]} for e in errors]) from None


# -- submission ----------------------------------------------------------------------


async def submit_upload(service: JobService, owner: Owner, upload: Upload) -> UploadOutcome:
    """Submit the upload as a job, or find the owner's open job from the same content
    (same SHA-256 and kind): no second job then."""
    fmt, text = file_text(upload.file)
    options = upload_options(upload.fields)
    sha256 = upload.file.sha256
    existing = await service.find_open_upload(owner, sha256)
    if existing is not None and existing.kind is options.kind:
        return UploadOutcome(existing, created=False, sha256=sha256)
    known = await service.known_platforms(options.kind)
    errors = ItemErrors()
    rows = (
        csv_rows(text, options.kind, errors) if fmt is FileFormat.CSV else ndjson_rows(text, errors)
    )
    items, duplicates = validate_items(
        options.kind,
        rows,
        known,
        max_items=owner.tier.max_job_items,
        locate=line_location,
        errors=errors,
        where=["body", FILE_FIELD],
    )
    spec = JobSpec(
        kind=options.kind,
        items=items,
        duplicates=duplicates,
        priority=options.priority,
        deadline=options.deadline,
        label=options.label,
        upload_sha256=sha256,
    )
    return UploadOutcome(await service.submit(owner, spec), created=True, sha256=sha256)
