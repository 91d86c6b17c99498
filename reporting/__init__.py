"""The report of a finished search (`python report.py`): the best trial retrained over several seeds
and tested once, with the search's own numbers, tables and figures, written to report.md; every
accuracy with its 95% interval over clips, and paired tests against baselines (reporting/stats.py).
`python report.py --compare A B` sets two reported experiments side by side (reporting/compare.py)."""
