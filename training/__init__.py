"""Training stage: our own StyleGAN2-ADA for portrait models.

Callers outside the stage (the CLI, the app) use `training.api`. Inside: `config` (TrainConfig,
RUN_DEFAULTS, progress and result types), `loop` (train), `distributed` (the process group),
`metrics` (the registry of snapshot metrics), `checkpoint` (snapshot files), `runs` (runs and
checkpoints in the database), `generate` (faces from a checkpoint), `dataset`, `networks`
(with `generator`, `discriminator`, `layers`), `augment` and `loss`.
"""
