"""CXR Studio as a node in the hospital: PACS echo, query, retrieve and send over DIMSE
(pynetdicom) and DICOMweb (dicomweb-client). No Qt. Not for diagnostic use."""

from ml.pacs.nodes import (
    DEFAULT_AET,
    Node,
    PacsError,
    ReceiverSettings,
    load_nodes,
    node_problems,
    parse_url,
    resolve_node,
    retrieve_cache,
)
from ml.pacs.service import METHOD_LABELS, Match, Query, echo, find, retrieve, retrieve_methods, send

__all__ = ["DEFAULT_AET", "METHOD_LABELS", "Match", "Node", "PacsError", "Query", "ReceiverSettings", "echo", "find",
           "load_nodes", "node_problems", "parse_url", "retrieve_methods",
           "resolve_node", "retrieve", "retrieve_cache", "send"]
