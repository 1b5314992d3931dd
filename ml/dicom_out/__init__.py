"""AI results, measurements and exports as standard DICOM (highdicom, pydicom, dicognito). No Qt.
Not for diagnostic use. (Nothing is imported here, so `cxr` starts without loading highdicom.)

- :mod:`ml.dicom_out.results`: TID 1500 SR of a prediction, float Parametric Map of a heatmap
- :mod:`ml.dicom_out.measurements`: the viewer's distance/angle/ROI measurements as a TID 1500 SR, and read back
- :mod:`ml.dicom_out.capture`: Secondary Capture with the overlay burned in
- :mod:`ml.dicom_out.readback`: our SRs and Parametric Maps read back for the viewer
- :mod:`ml.dicom_out.anonymise`: de-identified export (folder, DICOMDIR file-set or ZIP)
- :mod:`ml.dicom_out.predict_export`: `cxr predict --dicom-out/--dicom-capture/--send`
"""
