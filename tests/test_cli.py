"""The `rrnn` command run as a user would: a subprocess, exit codes, one-line errors."""
import subprocess
import sys

import numpy as np

from rrnn_convex import ImplicitRNN


def run(*args):
    return subprocess.run([sys.executable, "-m", "rrnn_convex", *args], capture_output=True, text=True,
                          timeout=300)


def test_demo_prints_a_verified_certificate(tmp_path):
    out = tmp_path / "cert.json"
    res = run("demo", "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert "verification    : PASSED" in res.stdout
    assert out.exists()


def test_certify_exit_codes(tmp_path):
    good = ImplicitRNN(F=[[0.0]], B1=[[0.5]], B2=[[1.0]], C1=[[1.0]], C2=[[1.0]]).save(tmp_path / "good.npz")
    bad = ImplicitRNN(F=[[0.0]], B1=[[1.5]], B2=[[1.0]], C1=[[1.0]], C2=[[1.0]]).save(tmp_path / "bad.npz")
    res = run("certify", str(good))
    assert res.returncode == 0 and "certified gamma : 2.0" in res.stdout
    res = run("certify", str(bad))
    assert res.returncode == 1 and "not contracting" in res.stdout
    res = run("certify", str(tmp_path / "missing.npz"))
    assert res.returncode == 2 and "no such file" in res.stderr and "Traceback" not in res.stderr
    np.savez(tmp_path / "other.npz", x=np.ones(2))
    res = run("certify", str(tmp_path / "other.npz"))
    assert res.returncode == 2 and "not an rrnn_convex" in res.stderr
