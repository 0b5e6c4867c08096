"""`make bench`: the service measured against a floor app in the same run (see run.py)."""
