"""One exception family for every error a user can cause.

Each message is one readable sentence a clinician understands; the GUI shows it as is and the CLI
prints it as one line on stderr and exits non-zero. Never put patient names or IDs in a message.
"""

from __future__ import annotations


class CxrError(Exception):
    """Base of every user-facing error. ``str(err)`` is the message to show."""

    exit_code = 2


class ImagingError(CxrError):
    """An image file could not be read or shown."""


class NotAnImageError(ImagingError):
    """The file is neither DICOM nor PNG/JPEG."""


class NotDicomError(NotAnImageError):
    """The file is not a DICOM file."""


class NoPixelDataError(ImagingError):
    """A valid DICOM object that has no image (SR, presentation state, ...)."""


class TruncatedPixelDataError(ImagingError):
    """The pixel data is shorter than its header says."""


class UnsupportedTransferSyntaxError(ImagingError):
    """No installed decoder handles this transfer syntax."""

    def __init__(self, message: str, syntax_name: str = "", syntax_uid: str = ""):
        super().__init__(message)
        self.syntax_name = syntax_name
        self.syntax_uid = syntax_uid


class MissingCodecError(UnsupportedTransferSyntaxError):
    """The syntax is decodable in principle but the plugin is not installed."""


class CorruptImageError(ImagingError):
    """The file is damaged and cannot be decoded."""


class ImageTooLargeError(ImagingError):
    """The header claims an image larger than this machine may decode (the message names the size)."""


class ModelFileError(CxrError):
    """A model file is not ours, is truncated, or does not match its manifest."""


class UnsafeModelFileError(ModelFileError):
    """A model file would need unrestricted unpickling (could run code): refused."""


class DownloadError(CxrError):
    """A download failed (offline, server error, checksum mismatch)."""


class DataSourceError(CxrError):
    """A training data folder or CSV has the wrong layout or no usable images."""


class CancelledError(CxrError):
    """The user cancelled a long operation."""
