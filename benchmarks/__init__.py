"""`make bench`: the Shadowline scorer side by side with its baselines, in one run.

Plain scripts and modules (not a shipped package): they may import anything, including
lightgbm.  Entry point: ``python -m benchmarks.run``.
"""
