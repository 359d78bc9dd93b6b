"""Rendering results for people: text tables, CSV/JSON, plots. Library functions return strings or
write files only when asked; the CLI decides where they go."""
from imcflow.report.table import render_table

__all__ = ["render_table"]
