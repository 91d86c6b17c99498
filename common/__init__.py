"""Small pieces every package shares: strict typed configs built from plain dicts with one value
check (`require`), the one-line user-facing error, and the experiment folder's format."""
