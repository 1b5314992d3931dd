"""Metadata/tag panel."""

from app.tags.panel import TagPanel
from app.tags.rows import TagRow, dataset_rows

__all__ = ["TagPanel", "TagRow", "dataset_rows"]
