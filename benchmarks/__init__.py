"""Performance benchmarks: `python benchmarks/NAME.py` or `python -m benchmarks.NAME`."""
