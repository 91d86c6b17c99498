"""Checks run by hand: races too slow or too rare for the suite, forced here on purpose.
Each module says how to run it and what it prints."""
