"""What an uploaded job file may be, and its items: type checks, sniffing, CSV, NDJSON.

Accepted file part types (anything else is a 415 before the file is read):

* `text/csv`, `application/csv`: CSV;
* `application/x-ndjson`, `application/ndjson`, `application/jsonl`,
  `application/x-jsonlines`: NDJSON;
* `text/plain`, `application/octet-stream`, `application/vnd.ms-excel` or no type (what
  curl, and browsers on Windows, send for a `.csv`): the file name's extension decides
  (`.csv`, `.ndjson`, `.jsonl`), else the content (a first `{` means NDJSON).

`application/json-seq` (RFC 7464) is refused: its records start with a control byte (RS)
that no spreadsheet or line tool writes; `application/json` too (a JSON array of items
belongs in `POST /v1/jobs`). A declared `charset` other than UTF-8 is refused.

Then the content is sniffed, and refused with a 415 unless it is UTF-8 text of the
format decided: known binary signatures (ZIP/xlsx, PDF, gzip, OLE/xls, UTF-16 BOM,
images), any control byte but tab/CR/LF, invalid UTF-8, JSON where CSV was declared, or
NDJSON whose first line is not an object. A leading UTF-8 BOM (Excel writes one) is
dropped. Rows are yielded lazily with their line numbers, so item validation
(`items.validate_items`) stops at the tier's cap without parsing the rest; errors name
line numbers and never carry the row's text.
"""

from __future__ import annotations

import csv
import enum
import io
import json
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from python_multipart.multipart import parse_options_header

from gateway.core.errors import InvalidInput, UnsupportedMediaType
from gateway.jobs.items import ItemErrors
from gateway.jobs.models import JobKind

FILE_FIELD = "file"


class FileFormat(enum.StrEnum):
    """How an uploaded file lists its items."""

    CSV = "csv"
    NDJSON = "ndjson"


# Declared part type -> format; None: decided by the file name, then the content.
_PART_TYPES: dict[str, FileFormat | None] = {
    "text/csv": FileFormat.CSV,
    "application/csv": FileFormat.CSV,
    "application/x-ndjson": FileFormat.NDJSON,
    "application/ndjson": FileFormat.NDJSON,
    "application/jsonl": FileFormat.NDJSON,
    "application/x-jsonlines": FileFormat.NDJSON,
    "text/plain": None,
    "application/octet-stream": None,
    "application/vnd.ms-excel": None,
    "": None,
}
_EXTENSIONS = {".csv": FileFormat.CSV, ".ndjson": FileFormat.NDJSON, ".jsonl": FileFormat.NDJSON}
_UTF8 = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})
_BOM = b"\xef\xbb\xbf"
_SIGNATURES = (
    (b"PK\x03\x04", "a ZIP archive (an .xlsx workbook is one: export it as CSV)"),
    (b"%PDF-", "a PDF document"),
    (b"\x1f\x8b", "gzip-compressed data"),
    (b"\xd0\xcf\x11\xe0", "an Office document (export it as CSV)"),
    (b"\xff\xfe", "UTF-16 text (save it as UTF-8)"),
    (b"\xfe\xff", "UTF-16 text (save it as UTF-8)"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
)
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_FIRST_TEXT = re.compile(r"\S")
_TOKEN = re.compile(r"^[A-Za-z0-9!#$&^_.+-]{1,64}/[A-Za-z0-9!#$&^_.+-]{1,64}$")
_DELIMITERS = (",", ";", "\t")
_ACCEPTED = "text/csv or application/x-ndjson (or text/plain, application/octet-stream)"


@dataclass(frozen=True)
class UploadedFile:
    """The file part: its bytes, their SHA-256 (hex), its name and declared media type."""

    content: bytes
    sha256: str
    filename: str | None
    media_type: str


def check_part_type(content_type: str) -> str:
    """The file part's media type, lowercased (415 unless accepted; see the docstring)."""
    media, params = parse_options_header(content_type)
    name = media.decode("latin-1").lower()
    if name not in _PART_TYPES:
        shown = f" {name!r}" if _TOKEN.match(name) else ""
        hint = "; send a JSON array of items to POST /v1/jobs" if name == "application/json" else ""
        raise UnsupportedMediaType(f"File type{shown} is not accepted: send {_ACCEPTED}{hint}")
    charset = params.get(b"charset")
    if charset is not None and charset.decode("latin-1").lower() not in _UTF8:
        raise UnsupportedMediaType("The file must be UTF-8 text")
    return name


# -- the file's content --------------------------------------------------------------


def _line_of(content: bytes, offset: int) -> int:
    return content.count(b"\n", 0, offset) + 1


def _empty() -> InvalidInput:
    return InvalidInput(
        [{"loc": ["body", FILE_FIELD], "msg": "the file is empty", "type": "too_short"}],
        "The uploaded file is empty",
    )


def file_text(file: UploadedFile) -> tuple[FileFormat, str]:
    """The file's format and text: 415 unless it is UTF-8 text of that format, 422 if empty."""
    content = file.content
    for signature, what in _SIGNATURES:
        if content.startswith(signature):
            raise UnsupportedMediaType(f"The file is {what}, not CSV or NDJSON text")
    if content.startswith(_BOM):
        content = content[len(_BOM) :]
    if not content.strip():
        raise _empty()
    control = _CONTROL.search(content)
    if control is not None:
        line = _line_of(content, control.start())
        raise UnsupportedMediaType(f"The file holds binary data (a control byte on line {line})")
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = _line_of(content, exc.start)
        raise UnsupportedMediaType(
            f"The file is not UTF-8 text (line {line}); save it as UTF-8"
        ) from None
    first = _FIRST_TEXT.search(text)
    assert first is not None  # not all whitespace: checked above
    fmt = _format_of(file, first.group())
    if fmt is FileFormat.CSV and first.group() in "{[":
        raise UnsupportedMediaType("The file holds JSON, but CSV was declared")
    if fmt is FileFormat.NDJSON and first.group() == "[":
        raise UnsupportedMediaType(
            "The file is a JSON array, not NDJSON (one JSON object per line); "
            "send an array of items to POST /v1/jobs"
        )
    if fmt is FileFormat.NDJSON and first.group() != "{":
        raise UnsupportedMediaType("The file is not NDJSON: its first line is not a JSON object")
    return fmt, text


def _format_of(file: UploadedFile, first_char: str) -> FileFormat:
    declared = _PART_TYPES[file.media_type]
    if declared is not None:
        return declared
    if file.filename:
        by_name = _EXTENSIONS.get(posixpath.splitext(file.filename.lower())[1])
        if by_name is not None:
            return by_name
    return FileFormat.NDJSON if first_char == "{" else FileFormat.CSV


def line_location(line: int) -> list[str | int]:
    """Where an item of an uploaded file is: its (first) line number."""
    return ["line", line]


def ndjson_rows(text: str, errors: ItemErrors) -> Iterator[tuple[int, Any]]:
    """(line number, object) per non-blank line; lines that are not JSON go to `errors`."""
    for number, line in enumerate(io.StringIO(text, newline="\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except (ValueError, RecursionError):
            errors.add(line_location(number), "not valid JSON", "json_invalid")
            continue
        yield number, value


def csv_rows(text: str, kind: JobKind, errors: ItemErrors) -> Iterator[tuple[int, Any]]:
    """(first line number, {platform, id}) per non-blank data row of a CSV with a header
    naming the kind's columns (422 naming the missing ones); other columns are ignored.

    The delimiter is the first of `,` `;` tab whose header names the columns (spreadsheets
    in many locales export `;`)."""
    required = ("platform", kind.id_field)
    lines = io.StringIO(text, newline="")
    offset = 0
    header_line = ""
    for header_line in lines:
        offset += 1
        if header_line.strip():
            break
    positions, delimiter = _header(header_line, required)
    reader = csv.reader(lines, delimiter=delimiter)
    while True:
        start = offset + reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error:
            # The reader cannot resume after a broken record: report it and stop.
            errors.add(line_location(start), "malformed CSV (an unclosed quote?)", "csv_invalid")
            return
        if not any(cell.strip() for cell in row):
            continue
        yield start, {name: row[i].strip() for name, i in positions.items() if i < len(row)}


def _header(line: str, required: tuple[str, ...]) -> tuple[dict[str, int], str]:
    best: list[str] = []
    delimiter = _DELIMITERS[0]
    for candidate in _DELIMITERS:
        try:
            names = [c.strip().lower() for c in next(csv.reader([line], delimiter=candidate))]
        except (csv.Error, StopIteration):
            continue
        if all(r in names for r in required):
            best, delimiter = names, candidate
            break
        if not best:
            best = names
    missing = [r for r in required if r not in best]
    if missing:
        raise InvalidInput(
            [
                {
                    "loc": ["body", FILE_FIELD, "header"],
                    "msg": f"missing column {name!r}",
                    "type": "missing",
                }
                for name in missing
            ],
            f"The CSV header must name the columns {' and '.join(required)}; "
            f"missing: {', '.join(missing)}",
        )
    twice = [r for r in required if best.count(r) > 1]
    if twice:
        raise InvalidInput(
            [
                {
                    "loc": ["body", FILE_FIELD, "header"],
                    "msg": f"column {name!r} appears twice",
                    "type": "value_error",
                }
                for name in twice
            ],
            "The CSV header names a column more than once",
        )
    return {r: best.index(r) for r in required}, delimiter
