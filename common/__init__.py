"""Small pieces every package shares: strict typed configs built from plain dicts, and the
one-line user-facing error (exit code 2) that every command line uses."""
