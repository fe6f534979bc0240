"""Training stage: StyleGAN2-ADA networks (`training.networks`) for portrait models."""
