"""The benchmark scripts behind bench/RESULTS.md. Run each from the repository root as `python -m bench.<name>`;
the helpers they share are in bench/_common.py."""
