"""The PACS settings dialog's presenter: list/add/edit/remove nodes, test one, the receiver. Qt-free.

The view edits a :class:`NodeForm` (text as typed) field by field; the presenter keeps the working
copy, checks it with ``ml.pacs.node_problems`` after every edit (the messages the view lists) and
writes the node file and the receiver settings on Save only when every node is valid and the
names are unique. "Test" runs C-ECHO and/or one QIDO-RS request in the background.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from functools import partial
from typing import Any, Protocol

from app.analysis.state import JobHandle, JobRunner
from app.pacs import jobs
from app.pacs.session import PacsSession
from ml.errors import CxrError
from ml.pacs.nodes import Node, ReceiverSettings, node_problems


@dataclass(frozen=True)
class NodeForm:
    """A node as the form shows it (the port as text, the password or token as ``secret``)."""

    name: str = ""
    ae_title: str = ""
    host: str = ""
    port: str = ""
    tls: bool = False
    tls_ca_file: str = ""
    dicomweb_url: str = ""
    auth: str = "none"
    username: str = ""
    secret: str = ""

    @classmethod
    def of(cls, node: Node) -> NodeForm:
        return cls(node.name, node.ae_title, node.host, str(node.port) if node.port else "", node.tls,
                   node.tls_ca_file, node.dicomweb_url, node.auth, node.username, node.password)

    def node(self) -> Node:
        port = self.port.strip()
        return Node(name=self.name.strip(), ae_title=self.ae_title.strip(), host=self.host.strip(),
                    port=int(port) if port.isdigit() else (-1 if port else 0), tls=self.tls,
                    tls_ca_file=self.tls_ca_file.strip(), dicomweb_url=self.dicomweb_url.strip().rstrip("/"),
                    auth=self.auth, username=self.username.strip() if self.auth == "basic" else "",
                    password=self.secret if self.auth != "none" else "")

    def problems(self) -> list[str]:
        return node_problems(self.node())


@dataclass(frozen=True)
class ReceiverForm:
    enabled: bool = False
    port: str = "11112"
    ae_title: str = "CXRSTUDIO"

    def settings(self) -> ReceiverSettings:
        port = self.port.strip()
        return ReceiverSettings(self.enabled, int(port) if port.isdigit() else 0, self.ae_title.strip())

    def problems(self) -> list[str]:
        return self.settings().problems() if self.enabled else []


FORM_FIELDS = {f.name for f in fields(NodeForm)}


class NodesView(Protocol):
    def show_nodes(self, names: list[str], selected: int) -> None: ...

    def show_form(self, form: NodeForm | None) -> None: ...  # None: no node selected

    def show_problems(self, problems: list[str]) -> None: ...

    def show_receiver(self, form: ReceiverForm, status: str) -> None: ...

    def show_message(self, text: str, error: bool = False) -> None: ...

    def bind_progress(self, handle: Any, message: str) -> None: ...

    def set_enabled(self, remove: bool, test: bool, save: bool) -> None: ...


class NodesPresenter:
    def __init__(self, view: NodesView, runner: JobRunner, session: PacsSession) -> None:
        self.view, self.runner, self.session = view, runner, session
        self.forms: list[NodeForm] = []
        self.selected = -1
        self.receiver = ReceiverForm()
        self.test_job: JobHandle | None = None
        self.dirty = False

    def start(self) -> None:
        """Show what is saved (again: unsaved edits of a closed dialog are dropped)."""
        error = self.session.load()
        self.forms = [NodeForm.of(n) for n in self.session.nodes.values()]
        self.selected = 0 if self.forms else -1
        r = self.session.receiver_settings
        self.receiver = ReceiverForm(r.enabled, str(r.port), r.ae_title)
        self.dirty = False
        self._show_all()
        self.view.show_receiver(self.receiver, self.session.receiver_status())
        if error:
            self.view.show_message(error, error=True)

    # -- the list ----------------------------------------------------------------------------------
    def select(self, row: int) -> None:
        if 0 <= row < len(self.forms) and row != self.selected:
            self.selected = row
            self.view.show_form(self.forms[row])
            self._check()

    def add(self) -> None:
        names = {f.name for f in self.forms}
        name = next(n for n in (f"New node {i}" if i > 1 else "New node" for i in range(1, 1000)) if n not in names)
        self.forms.append(NodeForm(name=name))
        self.selected = len(self.forms) - 1
        self.dirty = True
        self._show_all()

    def remove(self) -> None:
        if 0 <= self.selected < len(self.forms):
            del self.forms[self.selected]
            self.selected = min(self.selected, len(self.forms) - 1)
            self.dirty = True
            self._show_all()

    def edit(self, name: str, value: Any) -> None:
        """One field of the selected node changed (the view calls this on every edit)."""
        if name not in FORM_FIELDS or not 0 <= self.selected < len(self.forms):
            return
        form = self.forms[self.selected]
        if getattr(form, name) == value:
            return
        self.forms[self.selected] = replace(form, **{name: value})
        self.dirty = True
        if name == "name":
            self.view.show_nodes([f.name for f in self.forms], self.selected)
        if name == "auth":
            self.view.show_form(self.forms[self.selected])  # the user / secret fields follow the kind
        self._check()

    def edit_receiver(self, name: str, value: Any) -> None:
        if getattr(self.receiver, name) != value:
            self.receiver = replace(self.receiver, **{name: value})
            self.dirty = True
            self._check()

    # -- rules -------------------------------------------------------------------------------------
    def problems(self) -> list[str]:
        """Everything that stops a save: the selected node's problems first, then the others'."""
        out: list[str] = []
        order = ([self.selected] if self.selected >= 0 else []) + [i for i in range(len(self.forms)) if i != self.selected]
        for i in order:
            form = self.forms[i]
            label = f"{form.name.strip() or 'A node'}: " if i != self.selected else ""
            out += [label + p for p in form.problems()]
        names = [f.name.strip() for f in self.forms]
        out += [f"Two nodes are called '{n}': names must be unique." for n in sorted({n for n in names if n and names.count(n) > 1})]
        out += self.receiver.problems()
        return out

    def _check(self) -> list[str]:
        problems = self.problems()
        self.view.show_problems(problems)
        form = self.forms[self.selected] if self.selected >= 0 else None
        testable = form is not None and not form.problems() and self.test_job is None
        self.view.set_enabled(remove=form is not None, test=testable, save=not problems)
        return problems

    def _show_all(self) -> None:
        self.view.show_nodes([f.name for f in self.forms], self.selected)
        self.view.show_form(self.forms[self.selected] if self.selected >= 0 else None)
        self._check()

    # -- actions -----------------------------------------------------------------------------------
    def save(self) -> bool:
        problems = self._check()
        if problems:
            self.view.show_message(f"Not saved: {problems[0]}", error=True)
            return False
        nodes = {f.node().name: f.node() for f in self.forms}
        try:
            path = self.session.save(nodes, self.receiver.settings())
        except CxrError as exc:
            self.view.show_message(str(exc), error=True)
            return False
        self.dirty = False
        status = self.session.receiver_status()
        self.view.show_receiver(self.receiver, status)
        self.view.show_message(f"Saved {len(nodes)} node(s) to {path}. {status}", error=bool(self.session.receiver_error))
        return True

    def test(self) -> None:
        """C-ECHO and/or a QIDO-RS request to the selected node (as it is in the form)."""
        if self.test_job is not None or not 0 <= self.selected < len(self.forms):
            return
        form = self.forms[self.selected]
        problems = form.problems()
        if problems:
            self.view.show_message(f"Cannot test: {problems[0]}", error=True)
            return
        node = form.node()
        aet = self.receiver.settings().ae_title or self.session.calling_aet
        self.view.show_message(f"Testing {node.address}…")
        self.test_job = self.runner.start(partial(jobs.test_node, node, aet), f"testing PACS node {node.name}",
                                          finished=self._tested, error=self._test_failed,
                                          cancelled=lambda: self.view.show_message("Test cancelled."),
                                          done=self._test_done)
        self.view.bind_progress(self.test_job, f"Testing {node.name}")
        self._check()

    def _tested(self, lines: list[str]) -> None:
        failed = any(": OK" not in line for line in lines)
        self.view.show_message(" · ".join(lines), error=failed)

    def _test_failed(self, message: str) -> None:
        self.view.show_message(message, error=True)

    def _test_done(self) -> None:
        self.test_job = None
        self._check()
