"""The one way images enter MedFlow: store blobs, write job rows, send after commit.

Called by the API's multipart upload and URI import, and by every DICOM path to come (STOW-RS,
C-STORE, PACS pull): callers parse and answer, ``intake.service.Intake`` does the rest. Sits
between workers (whose sends it asks for) and api (its callers). See docs/internals.md.
"""
