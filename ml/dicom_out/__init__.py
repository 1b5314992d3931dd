"""AI results and exports as standard DICOM (highdicom): see :mod:`ml.dicom_out.results`. No Qt.
Not for diagnostic use. (Nothing is imported here, so `cxr` starts without loading highdicom.)"""
