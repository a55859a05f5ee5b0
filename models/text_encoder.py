"""The seed guide's path for the keyword encoder; the code lives in :mod:`kickgen.models.text_encoder`."""

from kickgen.models.text_encoder import KeywordEncoder

__all__ = ["KeywordEncoder"]
