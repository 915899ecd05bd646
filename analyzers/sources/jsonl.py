"""Prediction records from JSONL files (``.gz`` too), whole or by byte range, bad lines as :class:`Rejected`.

Lines in the contract's canonical form are decoded by their schema straight into :class:`Columns`;
any other line goes through the full reader, which checks and explains everything.
"""
from __future__ import annotations

import functools
import gzip
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from operator import attrgetter
from pathlib import Path
from typing import Annotated, Any

import msgspec
import orjson

from logging_adapter import contract as c
from logging_adapter.fieldmap import FieldMap, contract_records

from ..core.counting import Columns
from ..core.profile import Rejected

CHUNK = 5000  # records profiled at once: in the CPU's caches (20,000 took 1.6x longer with two workers)


class UnreadableFile(ValueError):
    """A log file that cannot be read at all (not gzip after all, a directory, no permission): the
    message names the file and the problem."""


Line = tuple[str, int, "dict[str, Any] | Rejected"]  # (location prefix, line number, object): "f.jsonl:" + 12


def read_jsonl(paths: Iterable[str | Path]) -> Iterator[Line]:
    """``(prefix, line, object)`` from JSONL files (``.gz`` too); bad lines come out as :class:`Rejected`.
    ``prefix + str(line)`` locates the line: ``predictions.jsonl:12``."""
    return _each_file(paths, _parse_lines)


def _each_file(paths: Iterable[str | Path], parse: Callable[[str, Iterable[bytes], int], Iterator]) -> Iterator:
    for path in paths:
        path = Path(path)
        opener = gzip.open if path.suffix == ".gz" else open
        try:
            with opener(path, "rb") as fh:
                yield from parse(f"{path.name}:", fh, 1)
        except (OSError, EOFError, zlib.error) as exc:
            raise UnreadableFile(f"{path}: {_unreadable(exc)}") from None


def _file_range(path: str | Path, start: int, end: int, parse: Callable[[str, Iterable[bytes], int], Iterator]
                ) -> Iterator:
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            start = _line_start(fh, start)
            yield from parse(f"{path.name}@{start}+", _lines_until(fh, end - start), 1)
    except OSError as exc:
        raise UnreadableFile(f"{path}: {_unreadable(exc)}") from None


def _line_start(fh, offset: int) -> int:
    """The first line that starts at or after ``offset`` (the line in progress belongs to the range before)."""
    if offset > 0:
        fh.seek(offset - 1)
        if fh.read(1) != b"\n":
            offset += len(fh.readline())
    fh.seek(offset)
    return offset


RELATIVE = re.compile(r"^(?P<name>.*)@(?P<offset>\d+)\+(?P<line>\d+)$")


def locate(path: Path, where: str) -> str:
    """``f.jsonl@OFFSET+N`` as ``f.jsonl:LINE``: counts the newlines before the offset (done only for the
    few rejected lines that are shown)."""
    m = RELATIVE.match(where)
    if m is None or m["name"] != path.name:
        return where
    offset, before = int(m["offset"]), 0
    with open(path, "rb") as fh:
        while offset > 0:
            block = fh.read(min(offset, 1 << 20))
            if not block:
                break
            before += block.count(b"\n")
            offset -= len(block)
    return f"{path.name}:{before + int(m['line'])}"


def _unreadable(exc: BaseException) -> str:
    if isinstance(exc, gzip.BadGzipFile) or isinstance(exc, zlib.error):
        return f"not a gzip file, or a damaged one ({exc})"
    if isinstance(exc, EOFError):
        return "gzip data ends early (the file is cut short)"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower() if not isinstance(exc, IsADirectoryError) else "a directory, not a file"
    return str(exc)


def _lines_until(fh, budget: int) -> Iterator[bytes]:
    for line in fh:
        if budget <= 0:
            return
        budget -= len(line)
        yield line


def _parse_lines(prefix: str, lines: Iterable[bytes], first: int) -> Iterator[Line]:
    """Parse JSON lines, numbered from ``first``."""
    loads, decode_error = orjson.loads, orjson.JSONDecodeError
    for number, line in enumerate(lines, first):
        try:
            obj = loads(line)
        except decode_error as exc:
            if line.startswith(c.BOM):  # a byte order mark on line 1: the line itself is fine
                yield from _parse_lines(prefix, [line[3:]], number)
                continue
            if not line.strip():
                continue
            reason = c.unparsable_reason(exc)
            if not line.endswith(b"\n"):
                reason = f"truncated last line ({reason})"
            yield prefix, number, Rejected(f"{prefix}{number}", reason)
            continue
        if len(line) > c.MAX_LINE:
            yield prefix, number, Rejected(f"{prefix}{number}", c.too_long_reason(len(line)))
        elif type(obj) is not dict:
            yield prefix, number, Rejected(f"{prefix}{number}", f"a JSON {type(obj).__name__}, not an object")
        else:
            yield prefix, number, obj


def read_predictions(items: Iterable[dict[str, Any] | Line], *, flat: bool = True, fields: FieldMap | None = None
                     ) -> Iterator[c.Prediction | c.Outcome | c.ProfileRecord | Rejected]:
    """Prediction records from parsed objects (or ``read_jsonl`` lines); outcome and profile records as
    :class:`~logging_adapter.contract.Outcome` and :class:`~logging_adapter.contract.ProfileRecord` (never as
    predictions); anything else is :class:`Rejected`.

    OpenTelemetry log records (OTLP JSON documents, Elastic's OpenTelemetry layout) are recognised as they
    come; ``fields`` reads records in a service's own layout (:mod:`logging_adapter.fieldmap`). A record
    that neither reads is :class:`Rejected` like any other bad line.

    ``flat=False``: nested feature objects stay nested (``LocalProfiler`` flattens per chunk).
    """
    read = functools.partial(c.read_record, flat=flat)
    for number, item in enumerate(items, 1):
        prefix = None
        if type(item) is tuple:
            prefix, number, item = item
        if type(item) is Rejected:
            yield item
            continue
        if type(item) is dict and (converted := contract_records(item, fields)) is not None:
            yield from _converted(converted, read, f"{prefix}{number}" if prefix else f"record {number}")
            continue
        try:
            yield read(item)
        except c.RecordError as exc:
            yield Rejected(f"{prefix}{number}" if prefix else f"record {number}", str(exc))


def _converted(records: list[dict[str, Any] | c.RecordError], read: Callable[[dict[str, Any]], Any], where: str
               ) -> Iterator[Any]:
    """The contract records of one line in another layout (an OTLP line holds many: each rejection says which)."""
    many = len(records) > 1
    for number, record in enumerate(records, 1):
        try:
            if isinstance(record, c.RecordError):
                raise record
            yield read(record)
        except c.RecordError as exc:
            yield Rejected(where, f"log record {number}: {exc}" if many else str(exc))


@dataclass(slots=True)
class Chunk:
    """A run of lines as read: its canonical predictions as :class:`Columns`, and every other item (other
    predictions, outcomes, profile records, :class:`Rejected` lines) as it came."""

    columns: Columns
    others: list[Any]

    def __len__(self) -> int:
        return len(self.columns) + len(self.others)


def read_records(paths: Iterable[str | Path], fields: FieldMap | None = None) -> Iterator[Chunk]:
    """``read_predictions(read_jsonl(paths), flat=False, fields=fields)`` in :class:`Chunk`\\ s, faster:
    canonical prediction lines go straight into columns (:func:`_chunks`), everything else the full way, with
    the same result."""
    return _each_file(paths, _chunks if fields is None else functools.partial(_chunks, fields=fields))


def read_records_range(path: str | Path, start: int, end: int, fields: FieldMap | None = None) -> Iterator[Chunk]:
    """:func:`read_records` of the lines of a plain JSONL file that *start* at a byte offset in ``[start, end)``.
    Their numbers are relative to the range (``f.jsonl@OFFSET+N``) until :func:`locate` turns them into
    ``f.jsonl:LINE``."""
    return _file_range(path, start, end, _chunks if fields is None else functools.partial(_chunks, fields=fields))


PIECE = 500  # lines: in a chunk with a line the short path cannot take, pieces this size go the full way


def _chunks(prefix: str, lines: Iterable[bytes], first: int, fields: FieldMap | None = None) -> Iterator[Chunk]:
    """Chunks of ``CHUNK`` lines. A piece of ``PIECE`` lines all in the canonical form (:func:`_canonical`)
    goes into columns; any other piece through :func:`_parse_lines` and :func:`read_predictions`, which check
    and explain everything. (Pieces keep the parsed objects few enough to stay in the CPU's caches.)"""
    it = iter(lines)
    while block := list(islice(it, CHUNK)):
        chunk = Chunk(Columns.of(()), [])
        for lo in range(0, len(block), PIECE):
            piece = block[lo:lo + PIECE]
            columns = _canonical(piece)
            if columns is None:
                chunk.others.extend(read_predictions(_parse_lines(prefix, piece, first + lo), flat=False,
                                                     fields=fields))
            else:
                chunk.columns.extend(columns)
        yield chunk
        first += len(block)


@functools.cache
def _canonical_decoder() -> tuple[Callable[[bytes], Any], Callable[[Any], Any], Callable[[Any], Any],
                                  Callable[[Any], Any]]:
    """A decoder of one prediction record in the canonical nested form, which refuses any other
    record: a key the contract does not name at the top or in ``predwatch`` (dotted keys, outcomes, profile
    records), a field of another type, a feature that is not a scalar, an integer that the full reader (orjson)
    would read as a float. What it accepts, :func:`~logging_adapter.contract.read_record` reads unchanged."""
    integer = Annotated[int, msgspec.Meta(ge=-(2 ** 63), le=2 ** 63 - 1)]  # within what orjson reads as int
    scalar = str | integer | float | bool | None
    model = msgspec.defstruct("Model", [("name", str | None, None), ("version", str | None, None)])
    fields = {"model": (model, msgspec.NODEFAULT), "features": (dict[str, scalar], msgspec.NODEFAULT),
              "prediction_id": (str | None, None), "prediction": (scalar | dict[str, scalar], None),
              "latency_ms": (Any, None), "shadow": (Any, None)}
    assert fields.keys() == c.CANONICAL_NAMESPACE
    namespace = msgspec.defstruct("Namespace", [(k, t, d) for k, (t, d) in fields.items()],
                                  forbid_unknown_fields=True, kw_only=True)
    top = sorted(c.CANONICAL_TOP)  # the other top-level fields are kept raw: never parsed into objects
    record = msgspec.defstruct(
        "Record", [(f"f{i}", namespace, msgspec.NODEFAULT) if key == c.NAMESPACE else
                   (f"f{i}", str | None, None) if key == c.TIMESTAMP else (f"f{i}", msgspec.Raw, None)
                   for i, key in enumerate(top)],
        rename={f"f{i}": key for i, key in enumerate(top)}, forbid_unknown_fields=True, kw_only=True)
    return msgspec.json.Decoder(record).decode, attrgetter(f"f{top.index(c.NAMESPACE)}"), \
        attrgetter(f"f{top.index(c.TIMESTAMP)}"), attrgetter(*(f"f{top.index(k)}" for k in c.CONTEXT_OBJECTS))


_NUMBER_OR_NONE = frozenset({int, float, type(None)})


def _canonical(lines: list[bytes]) -> Columns | None:
    """Columns of lines that are all canonical prediction records (:func:`_canonical_decoder`); None if any
    is not, or is longer than the contract allows."""
    decode, namespace, timestamp, context = _canonical_decoder()
    if max(map(len, lines)) > c.MAX_LINE:
        return None
    try:  # one line at a time: no copy of the lines into one array (a blank line is refused too)
        records = list(map(decode, lines))
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    ns = list(map(namespace, records))
    models = list(map(_MODEL, ns))
    latencies = list(map(_LATENCY, ns))
    if not set(map(type, latencies)) <= _NUMBER_OR_NONE:  # booleans and the rest are no latency
        latencies = [v if type(v) in (int, float) else None for v in latencies]
    return Columns(list(map(timestamp, records)), list(map(_NAME, models)), list(map(_VERSION, models)),
                   list(map(_PREDICTION_ID, ns)), list(map(_FEATURES, ns)), list(map(_PREDICTION, ns)), latencies,
                   list(map(context, records)))  # the raw service, host and labels: read only when asked


_MODEL, _LATENCY, _NAME, _VERSION = attrgetter("model"), attrgetter("latency_ms"), attrgetter("name"), \
    attrgetter("version")
_PREDICTION_ID, _FEATURES, _PREDICTION = attrgetter("prediction_id"), attrgetter("features"), attrgetter("prediction")


def chunked(items: Iterable[Any], size: int) -> Iterator[Chunk]:
    """Chunks as they come (:func:`read_records`), loose items gathered into chunks of ``size``."""
    loose: list[Any] = []
    for item in items:
        if type(item) is Chunk:
            if loose:
                yield Chunk(Columns.of(()), loose)
                loose = []
            yield item
            continue
        loose.append(item)
        if len(loose) >= size:
            yield Chunk(Columns.of(()), loose)
            loose = []
    if loose:
        yield Chunk(Columns.of(()), loose)


def estimate_lines(paths: Iterable[str | Path], sample: int = 1 << 20) -> int | None:
    """About how many lines the files hold, from their sizes and the first MiB (None for gzip)."""
    paths = [Path(p) for p in paths]
    if not paths or any(p.suffix == ".gz" for p in paths):
        return None
    with open(paths[0], "rb") as fh:
        head = fh.read(sample)
    lines = head.count(b"\n")
    if not lines:
        return None
    return int(sum(p.stat().st_size for p in paths) / (len(head) / lines))


def unseen_paths(paths: Iterable[str | Path], fields: FieldMap, lines: int = CHUNK) -> tuple[int, dict[str, list[str]]]:
    """The field map's paths that occur in none of the records of the first ``lines`` lines of each file
    (with the keys that name them), and how many records the map read there: said once at the start, so that
    a misspelt path is not found out from a profile of nothing but missing values. Records in predwatch's own
    or in the OpenTelemetry layout are not the map's to read and are not counted."""
    from logging_adapter.fieldmap import occurs, otel_layout, otlp_records, own_layout

    wanted = fields.paths()
    seen: set[str] = set()
    records = 0
    for path in paths:
        try:
            for _, _, item in islice(read_jsonl([path]), lines):
                if type(item) is not dict:
                    continue
                layout = otel_layout(item)
                try:
                    found = list(otlp_records(item)) if layout == "otlp" else [item]
                except c.RecordError:
                    continue
                for record in found:
                    if own_layout(record) or otel_layout(record) == "elastic":
                        continue
                    records += 1
                    seen.update(p for p in wanted if p not in seen and occurs(record, p))
        except UnreadableFile:
            continue  # the reading proper says so
    return records, {p: keys for p, keys in wanted.items() if p not in seen}
