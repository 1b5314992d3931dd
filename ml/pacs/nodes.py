"""PACS nodes: a DIMSE address (AE title, host, port, optional TLS) and/or a DICOMweb base URL.

A node is named in the user's node file (``<user data>/pacs/nodes.json``, a JSON object of
name -> fields) or written as a URL: ``dicom://AET@host:port`` or ``http(s)://host/dicom-web``.
Not for diagnostic use.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from urllib.parse import urlsplit

from ml.errors import CxrError
from ml.paths import user_cache_dir, user_data_dir

DEFAULT_AET = "CXRSTUDIO"
_AET = re.compile(r"^[\x20-\x7e]{1,16}$")


class PacsError(CxrError):
    """A PACS node could not be reached, refused us, or answered with an error (one readable line)."""


@dataclass(frozen=True)
class Node:
    name: str
    ae_title: str = ""
    host: str = ""
    port: int = 0
    tls: bool = False
    tls_ca_file: str = ""  # CA bundle for TLS; empty: the system's
    dicomweb_url: str = ""
    auth: str = "none"  # "none" | "basic" | "bearer"
    username: str = ""
    password: str = ""  # basic auth; for bearer: the token
    timeout_s: float = 20.0

    @property
    def has_dimse(self) -> bool:
        return bool(self.host and self.port)

    @property
    def has_dicomweb(self) -> bool:
        return bool(self.dicomweb_url)

    @property
    def address(self) -> str:
        """Where the node is, for messages (no credentials)."""
        if self.has_dimse:
            return f"{self.ae_title}@{self.host}:{self.port}"
        parts = urlsplit(self.dicomweb_url)  # never credentials in a message
        return parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else "")).geturl() \
            if parts.hostname and "@" in parts.netloc else self.dicomweb_url

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "name"}


def parse_url(text: str) -> Node:
    """``dicom://AET@host:port`` or ``http(s)://host[:port]/path`` -> a :class:`Node`."""
    text = text.strip()
    parts = urlsplit(text)
    if parts.scheme in ("http", "https"):
        if not parts.hostname:
            raise PacsError(f"'{text}' is not a DICOMweb address (expected http(s)://host/dicom-web).")
        return Node(name=text, dicomweb_url=text.rstrip("/"))
    if parts.scheme in ("dicom", "dicoms"):
        try:
            port = parts.port
        except ValueError:
            port = None
        aet = parts.username or ""
        if not aet or not parts.hostname or not port:
            raise PacsError(f"'{text}' is not a DICOM address (expected dicom://AET@host:port).")
        _check_aet(aet)
        return Node(name=text, ae_title=aet, host=parts.hostname, port=port, tls=parts.scheme == "dicoms")
    raise PacsError(f"'{text}' is neither a node name nor an address (dicom://AET@host:port or "
                    "http(s)://host/dicom-web).")


def _check_aet(aet: str) -> None:
    if not _AET.match(aet) or aet.strip() != aet or "\\" in aet:
        raise PacsError(f"'{aet}' is not a valid AE title (1 to 16 printable characters, no backslash).")


check_ae_title = _check_aet
AUTH_KINDS = ("none", "basic", "bearer")


def node_problems(node: Node) -> list[str]:
    """What is wrong with a node's settings, one readable line each (empty: it can be saved)."""
    problems = []
    if not node.name.strip():
        problems.append("Give the node a name.")
    if not node.has_dimse and not node.has_dicomweb and not (node.host or node.port or node.ae_title):
        problems.append("Give a DICOM address (AE title, host, port) or a DICOMweb URL, or both.")
    if node.host or node.port or node.ae_title:
        if not node.ae_title:
            problems.append("The DICOM address needs the node's AE title.")
        else:
            try:
                _check_aet(node.ae_title)
            except PacsError as exc:
                problems.append(str(exc))
        if not node.host.strip() or any(c.isspace() for c in node.host.strip()):
            problems.append("The DICOM address needs a host name or IP address (no spaces).")
        if not 1 <= int(node.port or 0) <= 65535:
            problems.append("The DICOM port must be a number from 1 to 65535.")
    if node.tls and not node.has_dimse:
        problems.append("TLS applies to the DICOM address: give host and port too.")
    if node.tls_ca_file and not Path(node.tls_ca_file).expanduser().is_file():
        problems.append(f"The CA file {node.tls_ca_file} does not exist.")
    if node.dicomweb_url:
        parts = urlsplit(node.dicomweb_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            problems.append("The DICOMweb URL must look like http(s)://host[:port]/dicom-web.")
        elif "@" in parts.netloc:
            problems.append("Put the user name and password in the authentication fields, not in the URL.")
    if node.auth not in AUTH_KINDS:
        problems.append(f"Authentication must be none, basic or bearer (not '{node.auth}').")
    elif node.auth != "none" and not node.dicomweb_url:
        problems.append("Authentication applies to the DICOMweb URL: give the URL too.")
    elif node.auth == "basic" and not (node.username and node.password):
        problems.append("Basic authentication needs a user name and a password.")
    elif node.auth == "bearer" and not node.password:
        problems.append("Bearer authentication needs a token.")
    return problems


@dataclass(frozen=True)
class ReceiverSettings:
    """The app's own C-STORE SCP: off by default; when on, it listens on ``port`` as ``ae_title``."""

    enabled: bool = False
    port: int = 11112
    ae_title: str = DEFAULT_AET

    def problems(self) -> list[str]:
        out = []
        try:
            _check_aet(self.ae_title)
        except PacsError as exc:
            out.append(f"Receiver: {exc}")
        if not 1 <= int(self.port) <= 65535:
            out.append("Receiver: the listening port must be a number from 1 to 65535.")
        return out


def receiver_file() -> Path:
    return user_data_dir() / "pacs" / "receiver.json"


def load_receiver(path: Path | None = None) -> ReceiverSettings:
    path = path or receiver_file()
    if not path.exists():
        return ReceiverSettings()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        settings = ReceiverSettings(enabled=bool(raw.get("enabled", False)), port=int(raw.get("port", 11112)),
                                    ae_title=str(raw.get("ae_title", DEFAULT_AET)))
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise PacsError(f"The receiver settings {path} cannot be read ({type(exc).__name__}).") from None
    return settings


def save_receiver(settings: ReceiverSettings, path: Path | None = None) -> Path:
    from ml.fileio import atomic_path

    path = path or receiver_file()
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(asdict(settings), indent=2), encoding="utf-8")
    return path


def nodes_file() -> Path:
    return user_data_dir() / "pacs" / "nodes.json"


def retrieve_cache() -> Path:
    """Where retrieved studies go (``<user cache>/pacs``): never anywhere else by default."""
    return user_cache_dir() / "pacs"


def load_nodes(path: Path | None = None) -> dict[str, Node]:
    path = path or nodes_file()
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PacsError(f"The PACS node file {path} cannot be read ({exc}).") from exc
    if not isinstance(raw, dict):
        raise PacsError(f"The PACS node file {path} must hold a JSON object of name -> node.")
    known = {f.name for f in fields(Node)} - {"name"}
    nodes = {}
    for name, entry in raw.items():
        if not isinstance(entry, dict) or set(entry) - known:
            bad = sorted(set(entry) - known) if isinstance(entry, dict) else "not an object"
            raise PacsError(f"PACS node '{name}' in {path}: unknown setting(s) {bad}.")
        try:
            node = Node(name=name, **entry)
        except TypeError as exc:
            raise PacsError(f"PACS node '{name}' in {path}: {exc}.") from exc
        if node.ae_title:
            _check_aet(node.ae_title)
        if not node.has_dimse and not node.has_dicomweb:
            raise PacsError(f"PACS node '{name}' in {path} has neither host/port nor a DICOMweb URL.")
        nodes[name] = node
    return nodes


def save_nodes(nodes: dict[str, Node], path: Path | None = None) -> Path:
    from ml.fileio import atomic_path

    path = path or nodes_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, private=True) as tmp:  # a DICOMweb URL may carry user:password
        Path(tmp).write_text(json.dumps({n: node.to_json() for n, node in nodes.items()}, indent=2),
                             encoding="utf-8")
    return path


def resolve_node(text: str, path: Path | None = None) -> Node:
    """A node name from the node file, else a URL."""
    if "://" in text:
        return parse_url(text)
    nodes = load_nodes(path)
    if text in nodes:
        return nodes[text]
    known = ", ".join(sorted(nodes)) or "none configured"
    raise PacsError(f"No PACS node named '{text}' (known: {known}); give a name or dicom://AET@host:port.")
