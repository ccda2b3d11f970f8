"""Jupyter widgets for engagelab (installed as ``engagelab.widgets``)."""
