"""Human-readable study report: document from the apps' results dicts (+ images), HTML, PDF, page PNGs and the
DICOM Encapsulated PDF (through operators/dicom_output). document.py / figures.py / render.py are pure domain
code; operator.py is the thin graph operator; timing.py times each operator's compute for the provenance."""
