"""Interrupted fits lose nothing: SIGKILL or SIGINT an `rrnn fit` subprocess, resume from its
checkpoint, and get the same final model as an uninterrupted run with the same seed."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from rrnn_convex import ImplicitRNN

from conftest import random_rnn

pytestmark = pytest.mark.skipif(os.name != "posix", reason="needs POSIX signals")


@pytest.fixture(scope="module")
def csv_data(tmp_path_factory):
    rng = np.random.default_rng(5)
    teacher = random_rnn(rng, 3, 3, 1, 1, activation="relu", scale=0.8)
    u = rng.uniform(-1, 1, (6, 300, 1))
    y = teacher.simulate(u) + 0.01 * rng.standard_normal((6, 300, 1))
    d = tmp_path_factory.mktemp("data")
    rows = ["sequence,u,y"] + [f"{b},{float(u[b, t, 0])!r},{float(y[b, t, 0])!r}"
                               for b in range(6) for t in range(300)]
    (d / "train.csv").write_text("\n".join(rows) + "\n")
    return d / "train.csv"


def _cmd(data, out, *extra):
    return [sys.executable, "-m", "rrnn_convex", "fit", str(data), "--inputs", "u", "--outputs", "y", "--states",
            "3", "--neurons", "3", "--gamma", "3", "--max-iter", "12", "--seed", "2", "--no-progress",
            "--out", str(out), *extra]


@pytest.fixture(scope="module")
def uninterrupted(csv_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("full") / "m.npz"
    proc = subprocess.run(_cmd(csv_data, out), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return ImplicitRNN.load(out)


def _interrupt_after_first_checkpoint(cmd, ckpt, sig):
    # a terminal's Ctrl-C reaches a process whose SIGINT is at its default; earlier tests in this
    # process (joblib / Dask workers) may leave SIGINT ignored, which a child would inherit
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    t0 = time.time()
    while not ckpt.exists():
        if proc.poll() is not None or time.time() - t0 > 300:
            proc.kill()
            pytest.fail(f"the fit ended before its first checkpoint: {proc.communicate()[1]}")
        time.sleep(0.02)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=300)
    return proc.returncode, err


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_interrupted_fit_resumes_to_the_same_model(csv_data, uninterrupted, tmp_path, sig):
    out, ckpt = tmp_path / "m.npz", tmp_path / "fit.ckpt.npz"
    code, err = _interrupt_after_first_checkpoint(_cmd(csv_data, out, "--checkpoint", str(ckpt),
                                                       "--checkpoint-every", "2"), ckpt, sig)
    if sig == signal.SIGKILL:
        assert code == -signal.SIGKILL
    else:  # Ctrl-C: a checkpoint of the interrupted iteration, a one-line message, exit code 130
        assert code == 130, err
        assert "interrupted" in err and "Traceback" not in err
    assert not out.exists()  # nothing half-written: the model is written once, at the end
    assert not [p for p in tmp_path.iterdir() if p.name not in ("fit.ckpt.npz",)]  # no temp files left
    proc = subprocess.run(_cmd(csv_data, out, "--checkpoint", str(ckpt), "--resume", str(ckpt)),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    resumed = ImplicitRNN.load(out)
    for k, v in uninterrupted.weights().items():
        np.testing.assert_allclose(getattr(resumed, k), v, rtol=1e-9, atol=1e-12, err_msg=k)
