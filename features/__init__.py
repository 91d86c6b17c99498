"""Audio to features: the dataset (GTZAN's layout with split lists, class folders split here, or a
manifest; detected in features.layouts), and one self-describing HDF5 store per feature setting,
built once, in parallel, never half-written."""
