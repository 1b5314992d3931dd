"""Keep patient-identifying values out of every log line and traceback (issue 11 item 3).

Third-party messages can quote raw header bytes: pydicom's ``BytesLengthException`` for a
PatientName with the wrong VR contains the name itself, and the traceback goes to ``errors.log``
and the GUI log. Two defences, applied to every message and every traceback text:

* the values of identifying elements (names, IDs, birth dates, addresses, accession numbers ...)
  are registered as headers are read (:func:`register_dataset`, from the raw bytes, before any
  value conversion can fail) in a bounded set, and replaced wherever they appear;
* patterns: Python byte literals (``b'...'``, how pydicom quotes raw values) and DICOM person
  names (``Family^Given``) are replaced whatever they hold.

:func:`install` puts the scrubbing in the log record factory (every record of every logger, for
every handler, present or future); :func:`scrub` is for text written without ``logging``.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from typing import Any

REDACTED = "<redacted>"

# (group, element) of the elements whose values identify a patient (PS3.15 E.1-1 basic profile)
IDENTIFYING_TAGS: dict[int, str] = {
    0x00100010: "PatientName",
    0x00100020: "PatientID",
    0x00100021: "IssuerOfPatientID",
    0x00100030: "PatientBirthDate",
    0x00100032: "PatientBirthTime",
    0x00101000: "OtherPatientIDs",
    0x00101001: "OtherPatientNames",
    0x00101002: "OtherPatientIDsSequence",
    0x00101005: "PatientBirthName",
    0x00101040: "PatientAddress",
    0x00101060: "PatientMotherBirthName",
    0x00102154: "PatientTelephoneNumbers",
    0x00102155: "PatientTelecomInformation",
    0x00080050: "AccessionNumber",
    0x00080090: "ReferringPhysicianName",
    0x00080080: "InstitutionName",
    0x00080081: "InstitutionAddress",
    0x00081050: "PerformingPhysicianName",
    0x00081070: "OperatorsName",
    0x00321032: "RequestingPhysician",
    0x00380010: "AdmissionID",
    0x00401001: "RequestedProcedureID",
}

MAX_VALUES = 4096  # most recently read values kept (a long session reads many patients)
_MIN_LENGTH = 3  # shorter pieces ("M", "Dr") would blank ordinary words

_BYTES_LITERAL = re.compile(r"""b'(?:[^'\\\n]|\\.)*'|b"(?:[^"\\\n]|\\.)*\"""")
_PERSON_NAME = re.compile(r"[^\W\d_][\w.'-]*(?:\^[\w.'-]*)+")

_lock = threading.Lock()
_values: OrderedDict[str, None] = OrderedDict()
_pattern: re.Pattern[str] | None = None


def register(*values: object) -> None:
    """Add identifying values (str or bytes; a name's components are added one by one)."""
    global _pattern
    pieces: set[str] = set()
    for value in values:
        if value is None:
            continue
        texts = _texts(value)
        for text in texts:
            text = text.strip("\x00 ")
            if len(text) >= _MIN_LENGTH:
                pieces.add(text)
            for part in re.split(r"[\^=\\]", text):
                part = part.strip("\x00 ")
                if len(part) >= _MIN_LENGTH:
                    pieces.add(part)
    if not pieces:
        return
    with _lock:
        changed = False
        for piece in pieces:
            if piece in _values:
                _values.move_to_end(piece)
            else:
                _values[piece] = None
                changed = True
        while len(_values) > MAX_VALUES:
            _values.popitem(last=False)
            changed = True
        if changed:
            _pattern = None


def _texts(value: object) -> list[str]:
    if isinstance(value, bytes | bytearray):
        raw = bytes(value)
        out = [raw.decode("latin-1"), repr(raw)[2:-1]]  # as text, and as repr() quotes it
        try:
            out.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            pass
        return out
    if isinstance(value, list | tuple):
        return [t for v in value for t in _texts(v)]
    return [str(value)]


def register_dataset(ds: Any) -> None:
    """Register the identifying values of a pydicom Dataset from their raw bytes (no value
    conversion, so a malformed element cannot fail here). Never raises."""
    try:
        for tag in IDENTIFYING_TAGS:
            elem = ds.get_item(tag)
            if elem is None:
                continue
            value = getattr(elem, "value", None)
            if isinstance(value, bytes | bytearray | str | list | tuple):
                register(value)
            elif value is not None and not hasattr(value, "__iter__"):
                register(str(value))
            elif value is not None and hasattr(value, "original_string"):
                register(value.original_string)
    except Exception:  # noqa: BLE001 - registering must never break reading
        pass


def _compiled() -> re.Pattern[str] | None:
    global _pattern
    with _lock:
        if _pattern is None and _values:
            alternatives = sorted(_values, key=len, reverse=True)
            # whole words only: an ID "123" must not blank "line 1234" of a traceback
            body = "|".join(re.escape(v) for v in alternatives)
            _pattern = re.compile(f"(?<![A-Za-z0-9])(?:{body})(?![A-Za-z0-9])")
        return _pattern


def scrub(text: str) -> str:
    """``text`` without any registered identifying value, byte literal or person name."""
    if not text:
        return text
    pattern = _compiled()
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    text = _BYTES_LITERAL.sub(f"b'{REDACTED}'", text)
    return _PERSON_NAME.sub(REDACTED, text)


def clear() -> None:
    """Forget every registered value (tests)."""
    global _pattern
    with _lock:
        _values.clear()
        _pattern = None


def scrub_record(record: logging.LogRecord) -> logging.LogRecord:
    """Scrub a record in place: its message, its traceback text and its stack text."""
    try:
        record.msg = scrub(record.getMessage())
        record.args = None
        if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
    except Exception:  # noqa: BLE001 - a message that cannot be formatted is dropped, not leaked
        record.msg, record.args, record.exc_text = "(a log message that could not be checked)", None, None
        record.exc_info = None
    return record


class ScrubFilter(logging.Filter):
    """A handler filter doing :func:`scrub_record` (for handlers made elsewhere)."""

    def filter(self, record: logging.LogRecord) -> bool:
        scrub_record(record)
        return True


_installed = False


def install() -> None:
    """Scrub every log record from now on, whatever logger or handler it goes through."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return scrub_record(previous(*args, **kwargs))

    logging.setLogRecordFactory(factory)
