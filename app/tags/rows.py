"""A pydicom Dataset as display rows for the tag panel (no Qt here, so it is easy to test).

Every element becomes a :class:`TagRow`; sequences become rows with one child row per item and
the item's elements below it. Pixel data (and other bulk binary data) is shown as its size only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the rows are made from a dataset already read; pydicom is not imported first
    from pydicom.dataelem import DataElement
    from pydicom.dataset import Dataset

MAX_VALUE_CHARS = 240
MAX_SEQUENCE_ITEMS = 500
BULK_KEYWORDS = {"PixelData", "FloatPixelData", "DoubleFloatPixelData", "OverlayData", "WaveformData"}


@dataclass
class TagRow:
    tag: str  # "(0028,0030)", "" for a sequence item row
    name: str  # "Pixel Spacing", or "Item 1"
    keyword: str  # "PixelSpacing"
    vr: str
    value: str
    children: list[TagRow] = field(default_factory=list)

    @property
    def search_text(self) -> str:
        compact = self.tag.strip("()").replace(",", "")
        return f"{self.tag} {compact} {self.name} {self.keyword} {self.vr} {self.value}".lower()


def _size(n: int) -> str:
    if n >= 1 << 20:
        return f"{n:,} bytes ({n / (1 << 20):.1f} MiB)"
    if n >= 1 << 10:
        return f"{n:,} bytes ({n / (1 << 10):.1f} KiB)"
    return f"{n:,} bytes"


def _bulk_text(elem: DataElement) -> str:
    value = elem.value
    n = len(value) if isinstance(value, bytes | bytearray) else 0
    if elem.keyword in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
        encapsulated = bool(getattr(elem, "is_undefined_length", False))
        return f"<pixel data: {_size(n)}{', encapsulated (compressed)' if encapsulated else ''}>"
    return f"<binary data: {_size(n)}>"


def format_value(elem: DataElement) -> str:
    """The element's value as one readable line."""
    from pydicom.multival import MultiValue
    from pydicom.uid import UID

    value: Any = elem.value
    if elem.keyword in BULK_KEYWORDS or (elem.tag.group & 0xFF00 == 0x6000 and elem.tag.element == 0x3000):
        return _bulk_text(elem)
    if value is None or value == "":
        return ""
    if isinstance(value, bytes | bytearray):
        if len(value) > 64:
            return f"<binary data: {_size(len(value))}>"
        return value.hex(" ")
    if elem.VR == "UI":
        uid = UID(str(value))
        name = uid.name if uid.is_valid else ""
        text = f"{uid} ({name})" if name and name != str(uid) else str(uid)
    elif isinstance(value, MultiValue | list | tuple):
        text = "\\".join(str(v) for v in value)
    else:
        text = str(value)
    text = text.replace("\r", " ").replace("\n", " ").replace("\0", "")
    if len(text) > MAX_VALUE_CHARS:
        text = text[:MAX_VALUE_CHARS] + f"… ({len(text):,} characters)"
    return text


def _tag_text(elem: DataElement) -> str:
    return f"({elem.tag.group:04X},{elem.tag.element:04X})"


def element_row(elem: DataElement) -> TagRow:
    tag = _tag_text(elem)
    try:
        name, keyword, vr = elem.name, elem.keyword, str(elem.VR)
    except Exception:  # noqa: BLE001 - unknown/private elements can fail in odd ways
        name, keyword, vr = "Unknown element", "", "UN"
    if vr == "SQ":
        try:
            items = list(elem.value or [])
        except Exception as exc:  # noqa: BLE001 - a malformed sequence must not break the panel
            return TagRow(tag, name, keyword, vr, f"<unreadable sequence: {exc}>")
        row = TagRow(tag, name, keyword, vr, f"{len(items)} item{'s' if len(items) != 1 else ''}")
        for i, item in enumerate(items[:MAX_SEQUENCE_ITEMS], start=1):
            row.children.append(TagRow("", f"Item {i}", "", "", "", dataset_rows(item, include_file_meta=False)))
        if len(items) > MAX_SEQUENCE_ITEMS:
            row.children.append(TagRow("", f"… {len(items) - MAX_SEQUENCE_ITEMS} more items", "", "", ""))
        return row
    try:
        value = format_value(elem)
    except Exception as exc:  # noqa: BLE001
        value = f"<unreadable: {exc}>"
    return TagRow(tag, name, keyword, vr, value)


def dataset_rows(ds: Dataset, include_file_meta: bool = True) -> list[TagRow]:
    """All elements of ``ds`` (file meta group first), in tag order."""
    rows: list[TagRow] = []
    meta = getattr(ds, "file_meta", None) if include_file_meta else None
    if meta is not None:
        rows.extend(_rows_of(meta))
    rows.extend(_rows_of(ds))
    return rows


def _rows_of(ds: Dataset) -> list[TagRow]:
    rows = []
    for tag in list(ds.keys()):
        try:
            elem = ds[tag]
        except Exception as exc:  # noqa: BLE001 - a malformed element is shown, not fatal
            rows.append(TagRow(f"({tag.group:04X},{tag.element:04X})", "Unreadable element", "", "", str(exc)))
            continue
        rows.append(element_row(elem))
    return rows


def count_rows(rows: list[TagRow]) -> int:
    return sum(1 + count_rows(r.children) for r in rows)
