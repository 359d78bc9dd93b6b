"""Design-space sweeps: a spec of axes (models, arrays, bit widths, mappings, presets, compression), its
expansion or sampling, a content-addressed cache, local or Ray executors, and one results table."""
from imcflow.sweep.points import INPUT_COLUMNS, OUTPUT_COLUMNS, evaluate_point, point_key
from imcflow.sweep.runner import PointCache, SweepResult, run_sweep, with_mappings, write_table
from imcflow.sweep.spec import AXES, SweepSpec, load_spec, spec_from_dict

__all__ = ["AXES", "INPUT_COLUMNS", "OUTPUT_COLUMNS", "PointCache", "SweepResult", "SweepSpec",
           "evaluate_point", "load_spec", "point_key", "run_sweep", "spec_from_dict", "with_mappings",
           "write_table"]
