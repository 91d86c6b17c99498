"""The search: space files (YAML) turned into Optuna define-by-run spaces, trials scheduled by
Ray Tune with ASHA, each trial one call of `training.fit()`."""
