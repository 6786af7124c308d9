"""Exports for science: a park's photos, detections and rangers' verdicts in the formats of the field.

* md_json.py      the MegaDetector output format (one writer, shared with the batch lane)
* camtrap_dp.py   Camtrap DP 1.0.2 tables and descriptor
* observations.py what each event was (machine or ranger), for Camtrap DP observations
* run.py          reads (functions/adapters/exports_repo.py, blob storage) and writes the files
"""
