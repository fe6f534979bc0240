"""Dataset snapshots: consent-checked, quota-balanced, person-split, immutable training sets.

`spec` reads and validates a snapshot spec (TOML); `pool` gathers the eligible faces (the one
consent rule is `ingest.releases.release_status`); `select` meets every quota at once as an
integer program; `split` assigns people to train or validation; `build` stores the snapshot;
`export` writes NVIDIA's dataset format with a manifest. Callers outside use `training.snapshots.api`.
"""
