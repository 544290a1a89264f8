"""Experiments: scripts that run the pipeline end to end and write its reports."""
