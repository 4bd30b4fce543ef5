"""The fit_msd benchmark's quick mode runs end to end on the package's own data.

The claims checked are the paper's, not numbers copied from a run: every fitted model's
certificate verifies, the Theta_gamma model's certified gamma respects the requested bound, and
the measured Lipschitz lower bound never exceeds the certified gamma.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "fit_msd.py"


def _load():
    spec = importlib.util.spec_from_file_location("fit_msd", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow  # ~2 minutes; the same claims are tested on smaller fits in test_fit*.py
def test_quick_mode_on_generated_data(capsys):
    rows = _load().main(["--quick", "--data", "generated", "--n-train", "4", "--max-iter", "1",
                         "--lipschitz-horizon", "50", "--time-budget", "120"])
    out = capsys.readouterr().out
    assert "Theta_10" in out and "Theta " in out.replace("Theta_", "x")
    assert [r["set"] for r in rows] == ["Theta", "Theta_10"]
    for r in rows:
        assert r["verified"], r
        assert np.all(np.isfinite(r["test_nse"])) and r["iterations"] >= 1
        assert r["lipschitz_lb"] <= r["certified_gamma"] * (1 + 1e-9), r
    assert rows[1]["certified_gamma"] <= 10.0
