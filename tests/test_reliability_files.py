"""Files and inputs (issue 15, sections 2, 4 and 5): nothing the package writes destroys an input,
atomic writes keep a file's mode and its symlinks, a checkpoint of another fit is refused, and
bad files or data get exit code 2 with one line naming the file and the problem, never a
traceback and never exit 1 (which means "not certified").

Commands run in-process (``cli``, tests/test_cli.py); the few subprocess runs (``run``) check the real
command's exit code and stderr. Every refusal must come before any long work, so the fits here
are never started, or tiny (2 states, 2 neurons, 1 iteration, 60 samples).
"""
import importlib
import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from rrnn_convex import ImplicitRNN, certify
from rrnn_convex._io import atomic_path, write_text_atomic
from rrnn_convex.activations import Activation
from rrnn_convex.certify import Certificate
from rrnn_convex.cli import main as cli_main
from rrnn_convex.errors import MissingDependency, NotCertifiable, SolverUnavailable, UnsupportedDependency
from rrnn_convex.fit import RobustRNNRegressor

import test_cli
from test_cli import cli, run  # in-process / subprocess runners

T = 60
FIT = ("--inputs", "u", "--outputs", "y", "--states", "2", "--neurons", "2", "--max-iter", "1", "--no-progress")


def assert_error(res, code, *needles):
    """Exit ``code`` and one line on stderr, no traceback, naming each needle (paths allowed)."""
    test_cli.assert_error(res, code, *map(str, needles))


def contracting_model(activation="relu"):
    return ImplicitRNN(F=[[0.0]], B1=[[0.5]], B2=[[1.0]], C1=[[1.0]], C2=[[1.0]], activation=activation)


def csv_text(u, y, header="u,y"):
    return header + "\n" + "".join(f"{float(a)!r},{float(b)!r}\n" for a, b in zip(u, y))


def signals(seed=0, length=T):
    rng = np.random.default_rng(seed)
    u = rng.standard_normal(length)
    return u, np.convolve(u, 0.3 * 0.7 ** np.arange(10))[:length]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A contracting model (.npz and Elman .json), its certificate, CSV data and a fit checkpoint."""
    d = tmp_path_factory.mktemp("files")
    model = contracting_model()
    model.save(d / "model.npz")
    certify(model).to_json(d / "model.cert.json")
    (d / "elman.json").write_text(json.dumps({"W": [[0.5]], "U": [[1.0]], "activation": "relu"}))
    u, y = signals()
    (d / "data.csv").write_text(csv_text(u, y))
    (d / "val.csv").write_text(csv_text(u[:40], y[:40]))
    RobustRNNRegressor(2, 2, max_iter=1, progress=False, normalize=False, checkpoint=d / "ckpt.npz").fit(
        u[None, :, None], y[None, :, None])
    assert (d / "ckpt.npz").is_file()
    return d


# ====================================================================== 1. no output clobbers an input
#: (id, argv with {input}, the file the command would write, what the input holds). The input is
#: placed at the written path itself ("same"), or elsewhere with the written path a symbolic or
#: a hard link to it.
CLOBBER = [
    ("certify --out", "certify {input} --out {target}", "m.npz", "model.npz"),
    ("certify --out json model", "certify {input} --out {target}", "e.json", "elman.json"),
    ("project --out", "project {input} --out {target}", "m.npz", "model.npz"),
    ("project .cert.json", "project {input} --out {dir}/p.npz", "p.cert.json", "elman.json"),
    ("fit --out = --resume", "fit {data} " + " ".join(FIT) + " --resume {input} --out {target}", "c.npz",
     "ckpt.npz"),
    ("fit --checkpoint = data", "fit {input} " + " ".join(FIT) + " --checkpoint {target} --out {dir}/f.npz",
     "d.csv", "data.csv"),
    ("fit --checkpoint = --validation", "fit {data} " + " ".join(FIT) + " --validation {input} --checkpoint "
     "{target} --out {dir}/f.npz", "v.csv", "val.csv"),
    ("fit --out = data", "fit {input} " + " ".join(FIT) + " --out {target}", "d.npz", "data.csv"),
    ("fit .cert.json = --validation", "fit {data} " + " ".join(FIT) + " --validation {input} --out {dir}/f.npz",
     "f.cert.json", "val.csv"),
    ("fit .history.json = data", "fit {input} " + " ".join(FIT) + " --out {dir}/f.npz", "f.history.json",
     "data.csv"),
    ("fit --plot = data", "fit {input} " + " ".join(FIT) + " --plot {target} --out {dir}/f.npz", "d.png",
     "data.csv"),
    ("fit PLOT-history.png = --validation", "fit {data} " + " ".join(FIT) + " --validation {input} --plot "
     "{dir}/p.png --out {dir}/f.npz", "p-history.png", "val.csv"),
    ("simulate --out = data", "simulate {model} {input} --inputs u --out {target}", "d.csv", "data.csv"),
    ("simulate --plot = data", "simulate {model} {input} --inputs u --outputs y --plot {target} --out {dir}/s.csv",
     "d.png", "data.csv"),
    ("simulate --out = model", "simulate {input} {data} --inputs u --out {target}", "m.csv", "elman.json"),
    ("sweep --out = data", "sweep {input} " + " ".join(FIT[:8]) + " --max-iter 1 --jobs 1 --out {target}",
     "d.csv", "data.csv"),
    ("sweep --out = --validation", "sweep {data} " + " ".join(FIT[:8]) + " --validation {input} --max-iter 1 "
     "--jobs 1 --out {target}", "v.csv", "val.csv"),
]


def _place(files, d: Path, written: str, source: str, how: str) -> tuple[Path, Path]:
    """Put a copy of ``files/source`` as the input; returns (input path, path the command writes)."""
    target = d / written
    if how == "same":
        inp = target
    else:  # the input keeps a name of its own kind; the written path is a link to it
        inp = d / ("input" + Path(source).suffix)
    inp.write_bytes((files / source).read_bytes())
    os.chmod(inp, 0o640)
    if how == "symlink":
        target.symlink_to(inp.name)  # relative, as users make them
    elif how == "hardlink":
        os.link(inp, target)
    return inp, target


def _snapshot(path: Path):
    st = os.lstat(path)
    return path.read_bytes(), stat.S_IMODE(st.st_mode), stat.S_ISLNK(st.st_mode)


@pytest.mark.parametrize("how", ["same", "symlink", "hardlink"])
@pytest.mark.parametrize("case, argv, written, source", CLOBBER, ids=[c[0] for c in CLOBBER])
def test_no_subcommand_overwrites_an_input(files, tmp_path, monkeypatch, case, argv, written, source, how):
    if "png" in argv and not _have_matplotlib():
        pytest.skip("matplotlib not installed")
    forbid_long_work(monkeypatch)
    inp, target = _place(files, tmp_path, written, source, how)
    before = {p: _snapshot(p) for p in (inp, target)}
    args = argv.format(input=inp, target=target, dir=tmp_path, data=files / "data.csv",
                       model=files / "model.npz").split()
    res = cli(*args)
    # the message names the output as given and the input (each at least once)
    assert_error(res, 2, "same file", target, inp)
    assert {p: _snapshot(p) for p in (inp, target)} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({inp.name, target.name})


def test_benchmark_refuses_its_data_folder_as_output(tmp_path, monkeypatch):
    forbid_long_work(monkeypatch)
    data = tmp_path / "data"
    data.mkdir()
    (data / "dataBenchmark.csv").write_text("uEst,uVal,yEst,yVal,Ts\n1,2,3,4,4\n")
    (tmp_path / "link").symlink_to("data")
    for out in (data, tmp_path / "link"):
        res = cli("benchmark", "cascaded_tanks", "--data", data, "--out", out)
        assert_error(res, 2, "same folder", out, data)
    assert sorted(p.name for p in data.iterdir()) == ["dataBenchmark.csv"]


def test_an_output_equal_to_an_input_in_a_real_subprocess(files, tmp_path):
    """The issue's first example, in the installed command: the model file stays a model file."""
    model = tmp_path / "m.npz"
    model.write_bytes((files / "model.npz").read_bytes())
    before = model.read_bytes()
    assert_error(run("certify", model, "--out", model), 2, "same file", model)
    assert model.read_bytes() == before


def test_outputs_that_are_inputs_of_no_one_still_work(files, tmp_path):
    """The refusal is precise: --checkpoint equal to --resume is how a fit keeps checkpointing."""
    ck = tmp_path / "ck.npz"
    ck.write_bytes((files / "ckpt.npz").read_bytes())
    res = cli("fit", files / "data.csv", *FIT, "--no-normalize", "--resume", ck, "--checkpoint", ck,
              "--out", tmp_path / "f.npz")
    assert res.returncode in (0, 1), res.stderr
    assert (tmp_path / "f.npz").is_file()


def _have_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def forbid_long_work(monkeypatch):
    """Make any fit, sweep or benchmark fail loudly: refusals must come before them."""
    import rrnn_convex.experiments.sysid as sysid
    import rrnn_convex.sweep as sweep

    def forbidden(*a, **k):
        raise AssertionError("the long work started before the files were checked")

    monkeypatch.setattr(RobustRNNRegressor, "fit", forbidden)
    monkeypatch.setattr(sweep, "sweep", forbidden)
    monkeypatch.setattr(sysid, "run", forbidden)


# ---------------------------------------------------------------------- atomic writes
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o755, 0o600])
def test_atomic_write_keeps_the_mode_of_an_existing_file(tmp_path, mode):
    p = tmp_path / "f.txt"
    p.write_text("old")
    os.chmod(p, mode)
    write_text_atomic(p, "new")
    assert p.read_text() == "new"
    assert stat.S_IMODE(os.stat(p).st_mode) == mode


def test_atomic_write_of_a_new_file_follows_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        write_text_atomic(tmp_path / "n.txt", "x")
        contracting_model().save(tmp_path / "n.npz")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "n.txt").st_mode) == 0o640
    assert stat.S_IMODE(os.stat(tmp_path / "n.npz").st_mode) == 0o640


def test_atomic_write_goes_through_a_symlink_to_its_target(tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "model.npz"
    target.write_text("old")
    os.chmod(target, 0o644)
    link = tmp_path / "link.npz"
    link.symlink_to(os.path.join("real", "model.npz"))  # relative, resolved from the link's folder
    chain = tmp_path / "chain.npz"
    chain.symlink_to("link.npz")
    contracting_model().save(chain)
    assert chain.is_symlink() and link.is_symlink()
    assert ImplicitRNN.load(target) == contracting_model()
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o644
    with atomic_path(link) as tmp:  # the temporary file sits beside the target, not the link
        assert tmp.parent == target.parent
        tmp.write_text("via link")
    assert target.read_text() == "via link" and link.is_symlink()
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == ["model.npz"]


def test_certify_writes_through_a_symlinked_out(files, tmp_path):
    real = tmp_path / "certs" / "c.json"
    real.parent.mkdir()
    real.write_text("{}")
    os.chmod(real, 0o664)
    link = tmp_path / "c.json"
    link.symlink_to(real)
    assert cli("certify", files / "model.npz", "--out", link).returncode == 0
    assert link.is_symlink()
    assert Certificate.from_json(real).contracting
    assert stat.S_IMODE(os.stat(real).st_mode) == 0o664


# ---------------------------------------------------------------------- outputs checked before a fit
UNWRITABLE = ["/proc/rrnn_no_such_dir/f.npz", "{file}/sub/f.npz"]


@pytest.mark.parametrize("where", UNWRITABLE, ids=["under /proc", "under a file"])
@pytest.mark.parametrize("option", ["--out", "--checkpoint", "--plot"])
def test_fit_checks_output_folders_before_it_starts(files, tmp_path, monkeypatch, option, where):
    if option == "--plot" and not _have_matplotlib():
        pytest.skip("matplotlib not installed")
    forbid_long_work(monkeypatch)
    bad = where.format(file=files / "data.csv")
    if option == "--plot":
        bad = bad[:-4] + ".png"
    args = {"--out": tmp_path / "f.npz"} | {option: bad}
    res = cli("fit", files / "data.csv", *FIT, *[str(x) for kv in args.items() for x in kv])
    assert_error(res, 2, option, str(Path(bad).parent))


def test_checkpoint_that_is_a_directory_is_refused_before_the_fit(files, tmp_path, monkeypatch):
    forbid_long_work(monkeypatch)
    assert_error(cli("fit", files / "data.csv", *FIT, "--checkpoint", tmp_path, "--out", tmp_path / "f.npz"), 2,
                 "--checkpoint", "is a directory")


def test_sweep_checks_its_output_folder_before_it_starts(files, monkeypatch):
    forbid_long_work(monkeypatch)
    assert_error(cli("sweep", files / "data.csv", *FIT[:8], "--out", "/proc/rrnn_no_such_dir/t.csv"), 2,
                 "--out", "/proc/rrnn_no_such_dir")


# ====================================================================== 2. --resume of another fit
def _resume(files, **changes):
    """Resume the fixture's checkpoint (2 states, 2 neurons, relu, theta, raw data) with changes."""
    u, y = signals()
    data = changes.pop("data", (u[None, :, None], y[None, :, None]))
    kw = dict(max_iter=2, progress=False, normalize=False) | changes
    return RobustRNNRegressor(kw.pop("n_states", 2), kw.pop("n_neurons", 2), **kw).fit(
        *data, resume=files / "ckpt.npz")


@pytest.mark.parametrize("changes, field", [
    ({"n_states": 3}, "n_states"),
    ({"n_neurons": 3}, "n_neurons"),
    ({"activation": "tanh"}, "activation"),
    ({"model_set": "theta_gamma", "gamma": 5.0}, "model_set"),
    ({"model_set": "srnn"}, "model_set"),
    ({"parametrization": "fixed_C1"}, "parametrization"),
    ({"normalize": True}, "normalize"),
    ({"window": 20}, "window"),
    ({"data": (signals(1)[0][None, :, None], signals(1)[1][None, :, None])}, "data"),
    ({"data": (signals(0, 50)[0][None, :, None], signals(0, 50)[1][None, :, None])}, "data_shape"),
], ids=["states", "neurons", "activation", "theta_gamma", "srnn", "parametrization", "normalize", "window",
        "data values", "data shape"])
def test_resume_refuses_a_checkpoint_of_another_fit_naming_the_fields(files, changes, field):
    with pytest.raises(ValueError, match="resume") as info:
        _resume(files, **changes)
    assert field in str(info.value)
    assert "ckpt.npz" in str(info.value)


def test_resume_names_every_differing_field_on_the_command_line(files, tmp_path):
    res = cli("fit", files / "data.csv", "--inputs", "u", "--outputs", "y", "--states", "3", "--neurons", "2",
              "--activation", "tanh", "--max-iter", "1", "--no-progress", "--no-normalize",
              "--resume", files / "ckpt.npz", "--out", tmp_path / "f.npz")
    assert_error(res, 2, "n_states", "activation", "ckpt.npz")
    assert not (tmp_path / "f.npz").exists()


def test_resume_with_the_same_settings_and_more_iterations_is_accepted(files):
    est = _resume(files, max_iter=2)
    assert len(est.history_) == 2


# ====================================================================== 3. exit 2 with one line
def _npz_variant(path: Path, drop=(), **replace):
    """The fixture's model file with entries dropped or replaced."""
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files if k not in drop}
    arrays |= {k: np.asarray(v) for k, v in replace.items()}
    return arrays


BAD_MODELS = [
    ("huge_int.json", lambda f: ('{"W": [[1' + "0" * 400 + ']], "U": [[1.0]], "activation": "relu"}'),
     ["W", "too large"]),
    ("no_F.npz", lambda f: _npz_variant(f / "model.npz", drop=("F",)), ["'F'", "missing"]),
    ("no_version.npz", lambda f: _npz_variant(f / "model.npz", drop=("format_version",)), ["format_version"]),
    ("bad_activation.npz", lambda f: _npz_variant(f / "model.npz", activation="garbage"), ["'activation'"]),
    ("list_activation.npz", lambda f: _npz_variant(f / "model.npz", activation="[1, 2]"), ["'activation'"]),
    ("unknown_activation.npz", lambda f: _npz_variant(f / "model.npz", activation='{"name": "swish"}'),
     ["activation", "swish"]),
    ("text_version.npz", lambda f: _npz_variant(f / "model.npz", format_version="x"), ["format_version", "'x'"]),
    ("zero_version.npz", lambda f: _npz_variant(f / "model.npz", format_version=0), ["format_version", "0"]),
    ("float_version.npz", lambda f: _npz_variant(f / "model.npz", format_version=1.5), ["format_version", "1.5"]),
    ("bool_version.npz", lambda f: _npz_variant(f / "model.npz", format_version=True), ["format_version", "True"]),
    ("duplicate.json", lambda f: '{"W": [[0.5]], "U": [[1.0]], "W": [[5.0]], "activation": "relu"}',
     ["duplicate", "'W'"]),
    ("bool_in_W.json", lambda f: '{"W": [[true, 0.1], [0.2, 0.1]], "U": [[1.0], [1.0]], "activation": "relu"}',
     ["W", "true"]),
    ("bool_in_b.json", lambda f: '{"W": [[0.5]], "U": [[1.0]], "b": [false], "activation": "relu"}', ["b"]),
]


@pytest.mark.parametrize("name, make, needles", BAD_MODELS, ids=[b[0] for b in BAD_MODELS])
def test_bad_model_files_exit_2_naming_the_file_and_the_problem(files, tmp_path, name, make, needles):
    path = tmp_path / name
    content = make(files)
    if isinstance(content, str):
        path.write_text(content)
    else:
        np.savez(path, **content)
    res = cli("certify", path, "--out", tmp_path / "c.json")
    assert_error(res, 2, name, *needles)
    assert "Expecting value" not in res.stderr and "invalid literal" not in res.stderr
    with pytest.raises(ValueError, match=name.replace(".", r"\.")):
        if name.endswith(".npz"):
            ImplicitRNN.load(path)
        else:
            from rrnn_convex.io_models import load_any_model
            load_any_model(path)


def test_bad_model_files_in_a_real_subprocess(files, tmp_path):
    """The issue's crashes (OverflowError, KeyError) as the installed command shows them."""
    (tmp_path / "huge.json").write_text('{"W": [[1' + "0" * 400 + ']], "U": [[1.0]], "activation": "relu"}')
    np.savez(tmp_path / "noF.npz", **_npz_variant(files / "model.npz", drop=("F",)))
    for name in ("huge.json", "noF.npz"):
        assert_error(run("certify", tmp_path / name), 2, name)


def test_leaky_relu_with_any_valid_slope_round_trips(tmp_path):
    for act in (Activation("leaky_relu", -0.9, 1, -0.9), Activation("leaky_relu", 0.1, 1.0, 0.1),
                Activation("relu", -0.5, 2.0), Activation("tanh", 0.0, 1.5)):
        model = contracting_model(act)
        path = model.save(tmp_path / f"{act.name}.npz")
        loaded = ImplicitRNN.load(path)
        assert loaded.activation == act
        assert loaded == model and loaded.weights_hash() == model.weights_hash()
        assert cli("certify", path, "--out", tmp_path / "c.json").returncode in (0, 1)
        assert cli("verify", path, tmp_path / "c.json").returncode in (0, 1)


def test_a_stored_activation_must_hold_its_true_slopes(tmp_path):
    arrays = _npz_variant(Path(contracting_model().save(tmp_path / "m.npz")),
                          activation=json.dumps({"name": "tanh", "alpha": 0.0, "beta": 0.5, "slope": 0.0}))
    np.savez(tmp_path / "narrow.npz", **arrays)
    assert_error(cli("certify", tmp_path / "narrow.npz"), 2, "narrow.npz", "true slopes")


# ---------------------------------------------------------------------- checkpoints and directories
def test_resume_from_files_that_are_not_checkpoints(files, tmp_path):
    args = ("fit", files / "data.csv", *FIT, "--out", tmp_path / "f.npz", "--resume")
    assert_error(cli(*args, files / "model.npz"), 2, "model.npz", "model file, not a fit checkpoint")
    res = cli(*args, files / "model.cert.json")
    assert_error(res, 2, "model.cert.json", "not a fit checkpoint")
    assert "allow_pickle" not in res.stderr
    np.savez(tmp_path / "meta.npz", meta=np.array("[1, 2]"))
    assert_error(cli(*args, tmp_path / "meta.npz"), 2, "meta.npz", "not a fit checkpoint")
    with np.load(files / "ckpt.npz") as data:
        arrays = {k: data[k] for k in data.files if k != "x0"}
    np.savez(tmp_path / "cut.npz", **arrays)
    assert_error(cli(*args, tmp_path / "cut.npz"), 2, "cut.npz", "x0")


def test_resume_from_a_model_file_in_a_real_subprocess(files, tmp_path):
    est_model = tmp_path / "fitted.npz"
    contracting_model().save(est_model, meta={"inputs": ["u"], "outputs": ["y"]})
    res = run("fit", files / "data.csv", *FIT, "--out", tmp_path / "f.npz", "--resume", est_model)
    assert_error(res, 2, "fitted.npz", "not a fit checkpoint")


@pytest.mark.parametrize("argv, needle", [
    ("certify {dir}", "model"),
    ("verify {model} {dir}", "certificate"),
    ("fit {dir} " + " ".join(FIT) + " --out {out}/f.npz", "data"),
    ("fit {data} " + " ".join(FIT) + " --validation {dir} --out {out}/f.npz", "validation"),
    ("fit {data} " + " ".join(FIT) + " --resume {dir} --out {out}/f.npz", "--resume"),
    ("simulate {model} {dir} --inputs u --out {out}/s.csv", "data"),
    ("sweep {dir} " + " ".join(FIT[:8]) + " --out {out}/t.csv", "data"),
], ids=["certify model", "verify certificate", "fit data", "fit validation", "fit resume", "simulate data",
        "sweep data"])
def test_a_directory_given_as_a_file(files, tmp_path, monkeypatch, argv, needle):
    forbid_long_work(monkeypatch)
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    args = argv.format(dir=folder, model=files / "model.npz", data=files / "data.csv", out=tmp_path).split()
    res = cli(*args)
    assert_error(res, 2, needle, folder, "is a directory")
    assert "no such file" not in res.stderr


# ---------------------------------------------------------------------- strict certificates
@pytest.fixture(scope="module")
def cert_doc(files):
    return json.loads((files / "model.cert.json").read_text())


@pytest.mark.parametrize("change, needle", [
    ({"gamma": True}, "gamma"),
    ({"Q": [[True]]}, "Q"),
    ({"lam": [True]}, "lam"),
    ({"margin": True}, "margin"),
    ({"proven_margin": False}, "proven_margin"),
    ({"alpha": False}, "alpha"),
], ids=["gamma", "Q", "lam", "margin", "proven_margin", "alpha"])
def test_booleans_are_not_numbers_in_a_certificate(files, tmp_path, cert_doc, change, needle):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(cert_doc | change))
    assert_error(cli("verify", files / "model.npz", path), 1, "malformed", needle)
    with pytest.raises(ValueError, match=needle):
        Certificate.from_dict(cert_doc | change)


@pytest.mark.parametrize("version", [True, 0, -1, 1.0, "1", None])
def test_certificate_schema_version_must_be_a_positive_integer(files, tmp_path, cert_doc, version):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(cert_doc | {"schema_version": version}))
    assert_error(cli("verify", files / "model.npz", path), 2, "schema_version", repr(version))
    with pytest.raises(ValueError, match="schema_version"):
        Certificate.from_dict(cert_doc | {"schema_version": version})


def test_duplicate_keys_in_a_certificate(files, tmp_path, cert_doc):
    text = json.dumps(cert_doc)
    path = tmp_path / "c.json"
    path.write_text(text[:-1] + ', "gamma": 1e-9}')
    assert_error(cli("verify", files / "model.npz", path), 2, "c.json", "duplicate", "'gamma'")
    with pytest.raises(ValueError, match="duplicate"):
        Certificate.from_json(path)
    assert cli("verify", files / "model.npz", files / "model.cert.json").returncode == 0


# ---------------------------------------------------------------------- data a model cannot be fitted to
def _data_file(tmp_path, name, u, y):
    path = tmp_path / name
    path.write_text(csv_text(u, y))
    return path


@pytest.mark.parametrize("make, column, needle", [
    (lambda u, y: (u, np.ones_like(y)), "'y'", "constant"),
    (lambda u, y: (np.ones_like(u), y), "'u'", "constant"),
    (lambda u, y: (np.ones_like(u), np.ones_like(y)), "'u'", "constant"),
    (lambda u, y: (1e300 * u, 1e300 * y), "'u'", "rescale"),
    (lambda u, y: (u, 1e200 * y), "'y'", "rescale"),
    (lambda u, y: (u, 1e-200 * y), "'y'", "rescale"),
], ids=["constant output", "constant input", "all constant", "1e300", "1e200 output", "1e-200 output"])
@pytest.mark.parametrize("command", ["fit", "sweep"])
def test_data_a_model_cannot_be_fitted_to_is_refused_naming_the_file(tmp_path, monkeypatch, make, column,
                                                                     needle, command):
    forbid_long_work(monkeypatch)
    path = _data_file(tmp_path, "odd.csv", *make(*signals()))
    res = cli(command, path, *FIT[:8], "--out", tmp_path / ("f.npz" if command == "fit" else "t.csv"))
    assert_error(res, 2, "odd.csv", column, needle)


def test_a_constant_validation_output_is_refused_before_the_fit(files, tmp_path, monkeypatch):
    forbid_long_work(monkeypatch)
    u, _ = signals()
    path = _data_file(tmp_path, "flat.csv", u, np.zeros_like(u))
    assert_error(cli("fit", files / "data.csv", *FIT, "--validation", path, "--out", tmp_path / "f.npz"), 2,
                 "flat.csv", "'y'", "constant")


def test_constant_data_in_a_real_subprocess(tmp_path):
    u, y = signals()
    path = _data_file(tmp_path, "const.csv", np.ones_like(u), np.ones_like(y))
    assert_error(run("fit", path, *FIT, "--out", tmp_path / "f.npz"), 2, "const.csv", "constant")


@pytest.mark.parametrize("inputs, outputs", [("u", "u"), ("u", "U"), ("0", "u"), ("u,y", "y"), ("u,u", "y")])
@pytest.mark.parametrize("command", ["fit", "sweep", "simulate"])
def test_a_column_cannot_be_both_input_and_output(files, tmp_path, monkeypatch, command, inputs, outputs):
    forbid_long_work(monkeypatch)
    if command == "simulate":
        if "," in inputs:
            pytest.skip("the model has one input")
        args = ("simulate", files / "model.npz", files / "data.csv", "--inputs", inputs, "--outputs", outputs,
                "--out", tmp_path / "s.csv")
    else:
        args = (command, files / "data.csv", "--inputs", inputs, "--outputs", outputs, "--states", "2",
                "--neurons", "2", "--out", tmp_path / ("f.npz" if command == "fit" else "t.csv"))
    res = cli(*args)
    assert_error(res, 2, "'u'" if "u,y" != inputs else "'y'")
    assert "more than once" in res.stderr or "both" in res.stderr


# ---------------------------------------------------------------------- bugs are not bad input
def _certify_raises(monkeypatch, exc: BaseException) -> None:
    """Make rrnn_convex.certify.certify raise ``exc`` (and the CLI run without RRNN_TRACEBACK)."""
    certify_module = importlib.import_module("rrnn_convex.certify")  # the package's name is the function

    def broken(*a, **k):
        raise exc

    monkeypatch.setattr(certify_module, "certify", broken)
    monkeypatch.delenv("RRNN_TRACEBACK", raising=False)


@pytest.mark.parametrize("exc, code, needle", [
    (ValueError("gamma: bad"), 2, "error: gamma: bad"),
    (OSError(28, "No space left on device"), 2, "No space left"),
    (TypeError("only 0-dimensional arrays can be converted to Python scalars"), 3, "internal error: TypeError"),
    (KeyError("F"), 3, "internal error: KeyError"),
    (ZeroDivisionError("float division by zero"), 3, "internal error: ZeroDivisionError"),
], ids=["ValueError", "OSError", "TypeError", "KeyError", "ZeroDivisionError"])
def test_a_fault_inside_the_package_is_not_reported_as_bad_input(files, tmp_path, monkeypatch, exc, code, needle):
    _certify_raises(monkeypatch, exc)
    res = cli("certify", files / "model.npz", "--out", tmp_path / "c.json")
    assert_error(res, code, needle)
    if code == 3:
        assert "RRNN_TRACEBACK=1" in res.stderr and "bad input" not in res.stderr


@pytest.mark.parametrize("exc, code, needle", [
    (RuntimeError("solver crashed"), 3, "internal error: RuntimeError"),
    (ImportError("cannot import name 'x' from 'rrnn_convex.y'"), 3, "internal error: ImportError"),
    (SolverUnavailable("solver: MOSEK was requested but cannot be used: no licence"), 2, "error: solver: MOSEK"),
    (MissingDependency("needs PyTorch: pip install torch"), 2, "error: needs PyTorch"),
    (UnsupportedDependency("this version of nonlinear_benchmarks has no EMPS()"), 2, "error: this version"),
    (NotCertifiable("project: no margin gave a model that passes the rigorous check"), 1, "not certified: project"),
], ids=["RuntimeError", "ImportError", "SolverUnavailable", "MissingDependency", "UnsupportedDependency",
        "NotCertifiable"])
def test_exit_codes_say_whose_problem_an_error_is(files, tmp_path, monkeypatch, exc, code, needle):
    """2 only for what the user can fix; a package fault (RuntimeError, ImportError of the
    package itself) is 3; a model that cannot be certified is 1."""
    _certify_raises(monkeypatch, exc)
    res = cli("certify", files / "model.npz", "--out", tmp_path / "c.json")
    assert_error(res, code, needle)


def test_debug_shows_the_traceback_of_an_internal_error(files, tmp_path, monkeypatch):
    _certify_raises(monkeypatch, KeyError("F"))
    with pytest.raises(KeyError):
        cli_main(["--debug", "certify", str(files / "model.npz"), "--out", str(tmp_path / "c.json")])
