"""The seed guide's path for the vocoder; the code lives in :mod:`kickgen.models.vocoder`."""

from kickgen.models.vocoder import HiFiGANGenerator, VocoderConfig

__all__ = ["HiFiGANGenerator", "VocoderConfig"]
