"""CXR Studio as a node in the hospital: PACS echo, query, retrieve and send over DIMSE
(pynetdicom) and DICOMweb (dicomweb-client). No Qt. Not for diagnostic use."""

from ml.pacs.nodes import DEFAULT_AET, Node, PacsError, load_nodes, parse_url, resolve_node, retrieve_cache
from ml.pacs.service import Match, Query, echo, find, retrieve, send

__all__ = ["DEFAULT_AET", "Match", "Node", "PacsError", "Query", "echo", "find", "load_nodes", "parse_url",
           "resolve_node", "retrieve", "retrieve_cache", "send"]
