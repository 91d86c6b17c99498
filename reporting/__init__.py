"""The report of a finished search (`python report.py`): the best trial retrained over several seeds
and tested once, with the search's own numbers, tables and figures, written to report.md."""
