"""The search: space files (YAML) turned into Optuna define-by-run spaces, trials scheduled by
Ray Tune with ASHA, each trial one call of `training.fit()`.

From the top: runner (run_search), lifecycle (the experiment folder around a search), tuner (Ray
Tune's Tuner), optuna_search (the searcher), trainable (one trial), progress and metrics (what the
driver shows), ray_session (Ray started or joined), leaderboard (the end in numbers); space with
distributions, sections, settings and preflight (the space file), space_file (finding it)."""
