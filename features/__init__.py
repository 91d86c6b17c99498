"""Audio to features: the dataset layout (real GTZAN or the built-in synthetic set), and one
self-describing HDF5 store per feature setting, built once, in parallel, never half-written."""
