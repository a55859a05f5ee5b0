"""The seed guide's ``models/`` package: thin doors into :mod:`kickgen.models`."""
