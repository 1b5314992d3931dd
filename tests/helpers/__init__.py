"""Test helpers shared by the project's tests (synthetic DICOM files, phantoms, ...)."""
