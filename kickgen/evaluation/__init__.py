"""Measuring kickgen: ``kickgen bench`` (speed, :mod:`kickgen.evaluation.bench`)."""
