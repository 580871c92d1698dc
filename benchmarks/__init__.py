"""Benchmarks and evaluation tools: each module is a script (`python -m benchmarks.NAME` from the repository root, or
`python benchmarks/NAME.py`), and the ones tests and recipes use are imported from here
(`from benchmarks.eval_timestamps import energy_segments`)."""
