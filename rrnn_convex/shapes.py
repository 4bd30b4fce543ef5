"""The weight fields of an implicit RNN and their shapes, named by the dimensions n, q, m, p.

This module imports nothing: the model (:mod:`rrnn_convex.model`), the convex sets
(:mod:`rrnn_convex.sets`) and the linearisation (:mod:`rrnn_convex.linearize`) all read the
field list from here, so that none of them has to import another only for it.
"""

#: matrix fields in storage order; each entry is (name, rows, cols) in terms of the dimensions
MATRIX_SHAPES = (
    ("E", "n", "n"), ("F", "n", "n"), ("B1", "n", "q"), ("B2", "n", "m"),
    ("C1", "q", "n"), ("D12", "q", "m"),
    ("C2", "p", "n"), ("D21", "p", "q"), ("D22", "p", "m"),
)
#: bias fields; each entry is (name, length)
BIAS_SHAPES = (("bx", "n"), ("bv", "q"), ("by", "p"))
#: every weight field, matrices first, in storage order (the order of ``ImplicitRNN.save``)
MATRIX_NAMES = tuple(name for name, _, _ in MATRIX_SHAPES)
BIAS_NAMES = tuple(name for name, _ in BIAS_SHAPES)
WEIGHT_FIELDS = MATRIX_NAMES + BIAS_NAMES
#: optional matrix fields that are *not* in ``WEIGHT_FIELDS`` (so the sets, the linearisation,
#: the checkpoints and the hash of models without them are unchanged): the equilibrium
#: feedback ``D11`` (q x q) of ``v = C1 x + D11 w + D12 u + bv``; zero when absent
OPTIONAL_MATRIX_SHAPES = (("D11", "q", "q"),)
OPTIONAL_MATRIX_NAMES = tuple(name for name, _, _ in OPTIONAL_MATRIX_SHAPES)
