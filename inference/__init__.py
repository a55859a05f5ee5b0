"""The seed guide's inference door: ``from inference.generate import generate, DDIMSampler, parse_prompt``.

The code lives in the ``kickgen`` package; see kickgen/pipeline.py.
"""

from inference.generate import DDIMSampler, generate, parse_prompt

__all__ = ["DDIMSampler", "generate", "parse_prompt"]
