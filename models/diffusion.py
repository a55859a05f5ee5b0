"""The seed guide's path for the U-Net and scheduler; the code lives in :mod:`kickgen.models.diffusion`."""

from kickgen.models.diffusion import DiffusionConfig, LatentUNet, NoiseScheduler

__all__ = ["DiffusionConfig", "LatentUNet", "NoiseScheduler"]
