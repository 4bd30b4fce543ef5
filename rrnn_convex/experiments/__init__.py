"""Experiments that reproduce the paper's results (``rrnn experiment msd``)."""
