"""PACS > Nodes…: the node list and form, the receiver settings, Test and Save (view of
:class:`app.pacs.nodes_presenter.NodesPresenter`; it renders and forwards, the presenter decides)."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.analysis.runner import QtJobRunner
from app.pacs.nodes_presenter import NodeForm, NodesPresenter, ReceiverForm
from app.pacs.session import PacsSession
from app.progress import ProgressPanel

AUTH_LABELS = (("none", "None"), ("basic", "Basic (user name and password)"), ("bearer", "Bearer token"))


class NodesDialog(QDialog):
    def __init__(self, session: PacsSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("pacsNodesDialog")
        self.setWindowTitle("PACS nodes")
        self._updating = False
        self.list = QListWidget(objectName="pacsNodeList")
        self.add_button = QPushButton("Add", objectName="pacsAddNode")
        self.remove_button = QPushButton("Remove", objectName="pacsRemoveNode")
        left = QVBoxLayout()
        left.addWidget(self.list, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.remove_button)
        left.addLayout(buttons)

        self.fields: dict[str, Any] = {}
        form = QFormLayout()
        for key, label, hint in (("name", "Name", "e.g. Hospital PACS"), ("ae_title", "AE title", "the PACS's, e.g. ORTHANC"),
                                 ("host", "Host", "host name or IP address"), ("port", "Port", "e.g. 104 or 4242")):
            self.fields[key] = QLineEdit(placeholderText=hint, objectName=f"pacs_{key}")
            form.addRow(label, self.fields[key])
        self.fields["tls"] = QCheckBox("Use TLS", objectName="pacs_tls")
        form.addRow("", self.fields["tls"])
        self.fields["tls_ca_file"] = QLineEdit(placeholderText="CA bundle (empty: the system's)", objectName="pacs_tls_ca_file")
        browse = QPushButton("…", objectName="pacsBrowseCa")
        browse.setMaximumWidth(32)
        browse.clicked.connect(self._browse_ca)
        row = QHBoxLayout()
        row.addWidget(self.fields["tls_ca_file"], 1)
        row.addWidget(browse)
        form.addRow("CA file", row)
        self.fields["dicomweb_url"] = QLineEdit(placeholderText="http(s)://host/dicom-web", objectName="pacs_dicomweb_url")
        form.addRow("DICOMweb URL", self.fields["dicomweb_url"])
        self.auth = QComboBox(objectName="pacs_auth")
        for key, label in AUTH_LABELS:
            self.auth.addItem(label, key)
        form.addRow("Authentication", self.auth)
        self.fields["username"] = QLineEdit(objectName="pacs_username")
        self.user_label = QLabel("User name")
        form.addRow(self.user_label, self.fields["username"])
        self.fields["secret"] = QLineEdit(objectName="pacs_secret", echoMode=QLineEdit.EchoMode.Password)
        self.secret_label = QLabel("Password")
        form.addRow(self.secret_label, self.fields["secret"])
        self.node_box = QGroupBox("Node")
        self.node_box.setLayout(form)

        self.receiver_enabled = QCheckBox("Receive studies (C-STORE SCP; needed for C-MOVE)", objectName="pacsReceiverOn")
        self.receiver_port = QLineEdit(objectName="pacsReceiverPort")
        self.receiver_aet = QLineEdit(objectName="pacsReceiverAet")
        self.receiver_status = QLabel(objectName="pacsReceiverStatus", wordWrap=True)
        rform = QFormLayout()
        rform.addRow(self.receiver_enabled)
        rform.addRow("Listening port", self.receiver_port)
        rform.addRow("Our AE title", self.receiver_aet)
        rform.addRow(self.receiver_status)
        receiver_box = QGroupBox("This computer as a DICOM node")
        receiver_box.setLayout(rform)

        self.problems = QLabel(objectName="pacsProblems", wordWrap=True)
        self.problems.setStyleSheet("color: #c0392b;")
        self.message = QLabel(objectName="pacsNodesMessage", wordWrap=True)
        self.progress = ProgressPanel(cancel_tooltip="Stop the test", object_name="pacsTestProgress")
        self.test_button = QPushButton("Test", objectName="pacsTestNode")
        self.save_button = QPushButton("Save", objectName="pacsSaveNodes")
        self.close_button = QPushButton("Close", objectName="pacsCloseNodes")
        right = QVBoxLayout()
        right.addWidget(self.node_box)
        right.addWidget(receiver_box)
        right.addWidget(self.problems)
        right.addWidget(self.message)
        right.addWidget(self.progress)
        actions = QHBoxLayout()
        actions.addWidget(self.test_button)
        actions.addStretch(1)
        actions.addWidget(self.save_button)
        actions.addWidget(self.close_button)
        right.addLayout(actions)
        layout = QHBoxLayout(self)
        layout.addLayout(left, 1)
        layout.addLayout(right, 2)
        self.resize(760, 560)

        self.presenter = NodesPresenter(self, QtJobRunner(owner=self), session)
        self._connect()

    def _connect(self) -> None:
        p = self.presenter
        self.list.currentRowChanged.connect(lambda row: None if self._updating else p.select(row))
        self.add_button.clicked.connect(p.add)
        self.remove_button.clicked.connect(p.remove)
        self.test_button.clicked.connect(p.test)
        self.save_button.clicked.connect(p.save)
        self.close_button.clicked.connect(self.close)
        for key, widget in self.fields.items():
            if isinstance(widget, QCheckBox):
                widget.toggled.connect(lambda on, k=key: None if self._updating else p.edit(k, on))
            else:
                widget.textEdited.connect(lambda text, k=key: None if self._updating else p.edit(k, text))
        self.auth.currentIndexChanged.connect(
            lambda _i: None if self._updating else p.edit("auth", self.auth.currentData()))
        self.receiver_enabled.toggled.connect(lambda on: None if self._updating else p.edit_receiver("enabled", on))
        self.receiver_enabled.toggled.connect(self._receiver_fields)
        self.receiver_port.textEdited.connect(lambda t: p.edit_receiver("port", t))
        self.receiver_aet.textEdited.connect(lambda t: p.edit_receiver("ae_title", t))

    def open(self) -> None:  # noqa: A003 - QDialog.open: show it with what is saved
        self.presenter.start()
        self.show()
        self.raise_()
        self.activateWindow()

    def _browse_ca(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "CA bundle", "", "Certificates (*.pem *.crt);;All files (*)")
        if path:
            self.fields["tls_ca_file"].setText(path)
            self.presenter.edit("tls_ca_file", path)

    # -- NodesView ---------------------------------------------------------------------------------
    def show_nodes(self, names: list[str], selected: int) -> None:
        self._updating = True
        if [self.list.item(i).text() for i in range(self.list.count())] != names:
            self.list.clear()
            self.list.addItems(names)
        self.list.setCurrentRow(selected)
        self._updating = False

    def show_form(self, form: NodeForm | None) -> None:
        self._updating = True
        self.node_box.setEnabled(form is not None)
        form = form or NodeForm()
        for key, widget in self.fields.items():
            value = getattr(form, key)
            if isinstance(widget, QCheckBox):
                widget.setChecked(bool(value))
            elif widget.text() != value:
                widget.setText(value)
        self.auth.setCurrentIndex(max(0, self.auth.findData(form.auth)))
        self.fields["username"].setEnabled(form.auth == "basic")
        self.fields["secret"].setEnabled(form.auth != "none")
        self.secret_label.setText("Token" if form.auth == "bearer" else "Password")
        self._updating = False

    def show_problems(self, problems: list[str]) -> None:
        self.problems.setText("\n".join(f"• {p}" for p in problems))
        self.problems.setVisible(bool(problems))

    def show_receiver(self, form: ReceiverForm, status: str) -> None:
        self._updating = True
        self.receiver_enabled.setChecked(form.enabled)
        self.receiver_port.setText(form.port)
        self.receiver_aet.setText(form.ae_title)
        self.receiver_status.setText(status)
        self._receiver_fields(form.enabled)
        self._updating = False

    def _receiver_fields(self, on: bool) -> None:
        self.receiver_port.setEnabled(on)
        self.receiver_aet.setEnabled(on)

    def show_message(self, text: str, error: bool = False) -> None:
        self.message.setText(text)
        self.message.setStyleSheet("color: #c0392b;" if error else "")

    def bind_progress(self, handle: Any, message: str) -> None:
        self.progress.bind(handle, message)

    def set_enabled(self, remove: bool, test: bool, save: bool) -> None:
        self.remove_button.setEnabled(remove)
        self.test_button.setEnabled(test)
        self.save_button.setEnabled(save)
