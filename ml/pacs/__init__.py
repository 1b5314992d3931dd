"""CXR Studio as a node in the hospital: PACS echo, query, retrieve and send over DIMSE
(pynetdicom) and DICOMweb (dicomweb-client). No Qt. Not for diagnostic use.

The names below load their module on first use (PEP 562), so ``ml.pacs.nodes`` (node and receiver
settings) can be read without importing pydicom or pynetdicom.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "DEFAULT_AET": "nodes", "Node": "nodes", "PacsError": "nodes", "ReceiverSettings": "nodes",
    "load_nodes": "nodes", "node_problems": "nodes", "parse_url": "nodes", "resolve_node": "nodes",
    "retrieve_cache": "nodes",
    "METHOD_LABELS": "service", "Match": "service", "Query": "service", "echo": "service", "find": "service",
    "retrieve": "service", "retrieve_methods": "service", "send": "service",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'ml.pacs' has no attribute {name!r}")
    return getattr(importlib.import_module(f"ml.pacs.{module}"), name)


__all__ = sorted(_WHERE)
