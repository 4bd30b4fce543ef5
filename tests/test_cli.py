"""The `rrnn` command run as a user would: a subprocess, exit codes, one-line errors.

Exit codes: 0 success / certified, 1 not certified (or a certificate that does not verify),
2 bad input. Every error is one line on stderr and never a traceback. Models are tiny and fits
run one or two iterations, so the whole file stays well under a minute.
"""
import importlib.resources
import json
import re
import subprocess
import sys

import numpy as np
import pytest

from rrnn_convex import ImplicitRNN, certify
from rrnn_convex.certify import Certificate, certificate_from

from conftest import rrnn_in_process

try:
    import matplotlib  # noqa: F401
    HAVE_MPL = True
except ImportError:
    HAVE_MPL = False
try:
    import torch
except ImportError:
    torch = None


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "rrnn_convex", *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def run_without(module, *args):
    """The real CLI in a subprocess in which ``import <module>`` fails (an uninstalled extra)."""
    code = ("import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            f"        if name == {module!r} or name.startswith({module!r} + '.'):\n"
            "            raise ImportError(f'No module named {name!r}')\n"
            "sys.meta_path.insert(0, Block())\n"
            "from rrnn_convex.cli import main\n"
            f"sys.exit(main({[str(a) for a in args]!r}))\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def cli(*args):
    """The same command in-process (``rrnn_convex.cli.main``): for the many variants of one error
    class, so that the file stays fast; every error class also runs once in a subprocess above."""
    code, out, err = rrnn_in_process(*args)
    return subprocess.CompletedProcess(args, code, out, err)


def assert_error(res, code, *needles):
    """Exit ``code``, a single line on stderr naming the problem, no traceback."""
    err = res.stderr.strip()
    assert res.returncode == code, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    assert len(err.splitlines()) == 1, res.stderr
    for n in needles:
        assert n in err, err


# ---------------------------------------------------------------------- shared files
@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Small models (ImplicitRNN, Elman .npz/.json) and CSV data, written once."""
    d = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    ImplicitRNN(F=[[0.0]], B1=[[0.5]], B2=[[1.0]], C1=[[1.0]], C2=[[1.0]]).save(d / "good.npz")
    ImplicitRNN(F=[[0.0]], B1=[[1.5]], B2=[[1.0]], C1=[[1.0]], C2=[[1.0]]).save(d / "bad.npz")
    W = rng.standard_normal((3, 3))
    W *= 0.8 / np.linalg.norm(W, 2)
    U, C = rng.standard_normal((3, 1)), rng.standard_normal((1, 3))
    np.savez(d / "elman.npz", W=W, U=U, C=C, activation="tanh")
    (d / "elman.json").write_text(json.dumps({"W": W.tolist(), "U": U.tolist(), "b": [0.1, 0.0, -0.1],
                                              "C": C.tolist(), "D": [[0.0]], "activation": "relu"}))
    # data: a stable linear system driven by a random input
    T = 240
    u = rng.standard_normal(T)
    y = np.convolve(u, 0.3 * 0.7 ** np.arange(30))[:T] + 0.01 * rng.standard_normal(T)
    u, y = u.tolist(), y.tolist()  # Python floats: repr round-trips
    lines = ["time,force,position"] + [f"{i},{u[i]!r},{y[i]!r}" for i in range(T)]
    (d / "train.csv").write_text("\n".join(lines) + "\n")
    (d / "val.csv").write_text("\n".join(lines[:1] + lines[1:121]) + "\n")
    multi = ["sequence,force,position"] + [f"run{i // 80},{u[i]!r},{y[i]!r}" for i in range(T)]
    (d / "multi.csv").write_text("\n".join(multi) + "\n")
    return d


# ---------------------------------------------------------------------- demo
def test_demo_fits_and_prints_a_verified_certificate(tmp_path):
    out = tmp_path / "demo"
    res = run("demo", "--quick", "--max-iter", "1", "--states", "2", "--train-sequences", "2", "--no-progress",
              "--out", out)
    assert res.returncode == 0, res.stderr
    assert "verification    : PASSED" in res.stdout
    assert re.search(r"validation NSE  : \d\.\d{4}", res.stdout)
    assert "test NSE        : width 1:" in res.stdout
    for name in ("model.npz", "model.cert.json", "model.history.json"):
        assert (out / name).is_file()
    assert (out / "fit.png").is_file() == HAVE_MPL
    cert = json.loads((out / "model.cert.json").read_text())
    assert cert["set"] == "Theta_gamma" and cert["gamma"] == 15.0
    assert run("verify", out / "model.npz", out / "model.cert.json").returncode == 0


@pytest.mark.slow  # a second whole demo fit (about 9 s); test_demo_fits_and_prints_a_verified_certificate runs one
def test_demo_without_matplotlib_says_how_to_get_plots_and_continues(tmp_path, monkeypatch):
    import rrnn_convex.plots as plots

    def missing():
        raise ImportError(plots.PLOT_HINT)

    monkeypatch.setattr(plots, "require_matplotlib", missing)
    res = cli("demo", "--quick", "--max-iter", "1", "--states", "2", "--train-sequences", "2", "--no-progress",
              "--out", tmp_path / "d")
    assert res.returncode == 0, res.stderr
    assert 'pip install "rrnn_convex[plot]"' in res.stdout
    assert not (tmp_path / "d" / "fit.png").exists() and (tmp_path / "d" / "model.npz").exists()


# ---------------------------------------------------------------------- certify / verify
def test_certify_exit_codes(files, tmp_path):
    res = run("certify", files / "good.npz", "--out", tmp_path / "good.json")
    assert res.returncode == 0 and "certified gamma : 2.0" in res.stdout, res.stderr
    assert json.loads((tmp_path / "good.json").read_text())["set"] == "Theta_gamma"
    res = cli("certify", files / "good.npz", "--gamma", "1.5", "--out", tmp_path / "g15.json")
    assert res.returncode == 1 and "not certifiable" in res.stdout
    res = run("certify", files / "bad.npz", "--out", tmp_path / "bad.json")
    assert res.returncode == 1 and "not contracting" in res.stdout
    assert json.loads((tmp_path / "bad.json").read_text())["set"] is None
    assert_error(run("certify", tmp_path / "missing.npz"), 2, "no such file")


def test_certify_elman_files_and_verify_them(files, tmp_path):
    for name, runner in (("elman.json", run), ("elman.npz", cli)):
        cert = tmp_path / f"{name}.cert.json"
        res = runner("certify", files / name, "--out", cert)
        assert res.returncode == 0, res.stderr
        assert "Elman RNN" in res.stdout and "verification    : PASSED" in res.stdout
        res = runner("verify", files / name, cert)
        assert res.returncode == 0 and res.stdout.startswith("VERIFIED"), res.stderr
    # the default certificate path is beside the model
    assert cli("certify", files / "good.npz").returncode == 0
    assert (files / "good.cert.json").is_file()


@pytest.mark.parametrize("make, needle", [
    (lambda p: np.savez(p / "other.npz", x=np.ones(2)), "not an rrnn_convex"),
    (lambda p: (p / "other.npz").write_bytes(b"not a zip file"), "not a readable .npz"),
    (lambda p: np.savez(p / "other.npz", W=np.eye(2), U=np.ones((2, 1))), "missing ['activation']"),
    (lambda p: (p / "other.json").write_text("[1, 2]"), "JSON object"),
    (lambda p: (p / "other.json").write_text('{"W": [[0.5]], "U": [[1, 2], [3]], "activation": "relu"}'), "U"),
    (lambda p: (p / "other.csv").write_text("a,b\n1,2\n"), "unsupported file type '.csv'"),
])
def test_model_file_of_the_wrong_kind(tmp_path, make, needle):
    make(tmp_path)
    path = next(tmp_path.glob("other.*"))
    assert_error(cli("certify", path), 2, needle)


def test_model_file_of_the_wrong_kind_subprocess(tmp_path):
    np.savez(tmp_path / "other.npz", x=np.ones(2))
    assert_error(run("certify", tmp_path / "other.npz"), 2, "not an rrnn_convex")


def test_verify_rejects_tampered_certificates(files, tmp_path):
    cert_path = tmp_path / "c.json"
    assert cli("certify", files / "elman.json", "--out", cert_path).returncode == 0  # (certify: subprocess above)
    good = json.loads(cert_path.read_text())

    def variant(name, **changes):
        p = tmp_path / name
        p.write_text(json.dumps(good | changes))
        return p

    assert_error(run("verify", files / "elman.json", variant("g.json", gamma=0.5 * good["gamma"])), 1,
                 "NOT VERIFIED", "not proven")
    assert_error(cli("verify", files / "elman.npz", cert_path), 1, "hash mismatch")  # the subprocess: above
    (tmp_path / "broken.json").write_text(cert_path.read_text()[:-20])
    assert_error(run("verify", files / "elman.json", tmp_path / "broken.json"), 2, "not valid JSON")
    # more variants in-process
    assert_error(cli("verify", files / "elman.json", variant("l.json", lam=[-1.0] + good["lam"][1:])), 1,
                 "negative")
    assert_error(cli("verify", files / "elman.json", variant("s.json", set="Theta")), 1, "'set'")
    assert_error(cli("verify", files / "elman.json", variant("n.json", contracting=False, set=None)), 1,
                 "claims nothing")
    assert_error(cli("verify", files / "elman.json", variant("q.json", Q=[[1.0]])), 1, "Q: expected shape")
    assert_error(cli("verify", files / "elman.json", variant("t.json", lam="abc")), 1, "malformed")
    assert_error(cli("verify", files / "elman.json", variant("x.json", schema="other")), 2,
                 "not an rrnn_convex certificate")
    assert_error(cli("verify", files / "elman.json", tmp_path / "none.json"), 2, "no such file")
    assert_error(cli("verify", files / "elman.json", files / "elman.npz"), 2, "not a text")


# ---------------------------------------------------------------------- torch files
@pytest.mark.torch
@pytest.mark.skipif(torch is None, reason="PyTorch not installed (pip install torch==2.13.0)")
def test_certify_a_torch_state_dict(tmp_path):
    torch.manual_seed(0)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = torch.nn.RNN(1, 4, nonlinearity="relu", batch_first=True)
            self.out = torch.nn.Linear(4, 1)

    net = Net()
    with torch.no_grad():
        net.rnn.weight_hh_l0.mul_(0.3)
    torch.save(net.state_dict(), tmp_path / "net.pt")
    torch.save({"rnn": net.rnn.state_dict(), "readout": net.out.state_dict(), "nonlinearity": "relu"},
               tmp_path / "nested.pt")
    torch.save(net.rnn, tmp_path / "module.pt")  # a pickled module, not a state_dict
    res = cli("certify", tmp_path / "net.pt", "--nonlinearity", "relu", "--out", tmp_path / "c.json")
    assert res.returncode == 0 and "torch.nn.RNN (relu" in res.stdout, res.stderr
    res = cli("verify", tmp_path / "nested.pt", tmp_path / "c.json")  # same weights, same hash
    assert res.returncode == 0, res.stderr
    # the certificate is for the converted model: it matches torch's own forward pass
    model = ImplicitRNN.from_torch_rnn(net.rnn, readout=net.out)
    assert Certificate.from_json(tmp_path / "c.json").verify(model).ok
    assert_error(cli("certify", tmp_path / "net.pt"), 2, "--nonlinearity")
    assert cli("certify", tmp_path / "net.pt", "--nonlinearity", "tanh", "--out", tmp_path / "t.json").returncode == 0
    assert_error(cli("certify", tmp_path / "nested.pt", "--nonlinearity", "tanh"), 2, "records 'relu'")
    assert_error(cli("certify", tmp_path / "module.pt"), 2, "not a PyTorch state_dict")
    torch.save({"a": net.rnn.state_dict(), "b": torch.nn.RNN(1, 2).state_dict()}, tmp_path / "two.pt")
    assert_error(cli("certify", tmp_path / "two.pt", "--nonlinearity", "relu"), 2, "2 RNNs")
    # stacked layers are read too since issue 18 (tests/test_torch_import_cli.py); a bidirectional RNN is not
    torch.save(torch.nn.RNN(1, 2, num_layers=2).state_dict(), tmp_path / "deep.pt")
    res = cli("certify", tmp_path / "deep.pt", "--nonlinearity", "relu", "--out", tmp_path / "deep.json")
    assert res.returncode in (0, 1) and "2 layers" in res.stdout, res.stderr
    torch.save(torch.nn.RNN(1, 2, bidirectional=True).state_dict(), tmp_path / "bi.pt")
    assert_error(cli("certify", tmp_path / "bi.pt", "--nonlinearity", "relu"), 2, "unidirectional")


def test_torch_file_without_torch_names_the_extra(tmp_path):
    (tmp_path / "net.pt").write_bytes(b"whatever")
    assert_error(run_without("torch", "certify", tmp_path / "net.pt"), 2, 'pip install "rrnn_convex[torch]"')


# ---------------------------------------------------------------------- project
def test_project_writes_a_certified_model(files, tmp_path):
    out = tmp_path / "proj.npz"
    res = run("project", files / "elman.npz", "--gamma", "0.5", "--out", out)
    assert res.returncode == 0, res.stderr
    assert "moved by" in res.stdout and "verification    : PASSED" in res.stdout
    cert = json.loads((tmp_path / "proj.cert.json").read_text())
    assert cert["gamma"] == 0.5
    assert cli("verify", out, tmp_path / "proj.cert.json").returncode == 0
    assert_error(cli("project", files / "elman.npz", "--out", tmp_path / "p.txt"), 2, ".npz")
    assert_error(cli("project", files / "elman.npz"), 2, "--out")


# ---------------------------------------------------------------------- fit / simulate
def test_fit_writes_model_certificate_history_and_resumes(files, tmp_path):
    out, ckpt = tmp_path / "m.npz", tmp_path / "ck.npz"
    args = ["fit", files / "train.csv", "--inputs", "force", "--outputs", "position", "--states", "2",
            "--neurons", "2", "--gamma", "5", "--no-progress"]
    plot = ["--plot", tmp_path / "fit.png"] if HAVE_MPL else []
    res = run(*args, "--validation", files / "val.csv", "--max-iter", "1", "--checkpoint", ckpt, "--out", out, *plot)
    assert res.returncode == 0, res.stderr
    assert "validation NSE" in res.stdout and "verification    : PASSED" in res.stdout
    hist = json.loads((tmp_path / "m.history.json").read_text())
    assert hist["schema"] == "rrnn_convex.fit_history" and len(hist["history"]) == 1
    assert set(hist["history"][0]) >= {"loss", "val_nse", "mu", "accepted", "margin", "seconds"}
    assert json.loads((tmp_path / "m.cert.json").read_text())["gamma"] == 5.0
    if HAVE_MPL:
        assert (tmp_path / "fit.png").is_file() and (tmp_path / "fit-history.png").is_file()
    res = cli(*args, "--validation", files / "val.csv", "--max-iter", "2", "--resume", ckpt, "--out", out)
    assert res.returncode == 0, res.stderr
    assert len(json.loads((tmp_path / "m.history.json").read_text())["history"]) == 2
    assert cli("verify", out, tmp_path / "m.cert.json").returncode == 0


def test_fit_with_an_equilibrium_layer_gives_a_verified_model_with_d11(files, tmp_path):
    out = tmp_path / "eq.npz"
    res = cli("fit", files / "train.csv", "--inputs", "force", "--outputs", "position", "--states", "2",
              "--neurons", "2", "--gamma", "5", "--equilibrium", "--max-iter", "2", "--no-progress", "--out", out)
    assert res.returncode == 0, res.stderr
    model = ImplicitRNN.load(out)
    assert model.D11.shape == (2, 2) and np.any(model.D11 != 0), model.D11
    assert cli("verify", out, tmp_path / "eq.cert.json").returncode == 0
    assert_error(cli("fit", files / "train.csv", "--inputs", "force", "--outputs", "position", "--states", "2",
                     "--neurons", "2", "--model-set", "srnn", "--equilibrium", "--out", tmp_path / "x.npz"),
                 2, "equilibrium")


def test_fit_and_simulate_several_sequences(files, tmp_path):
    out = tmp_path / "mm.npz"
    res = run("fit", files / "multi.csv", "--inputs", "force", "--outputs", "position", "--states", "2",
              "--neurons", "2", "--max-iter", "1", "--no-progress", "--out", out)
    assert res.returncode == 0, res.stderr
    assert "3 sequence(s) x 80 samples" in res.stdout
    pred = tmp_path / "pred.csv"
    res = run("simulate", out, files / "multi.csv", "--inputs", "force", "--outputs", "position", "--out", pred)
    assert res.returncode == 0, res.stderr
    assert "NSE" in res.stdout
    rows = pred.read_text().splitlines()
    assert rows[0] == "sequence,position_hat" and len(rows) == 241 and rows[1].startswith("run0,")
    # the file's predictions are the model's simulation from zero initial state
    u = np.loadtxt(files / "multi.csv", delimiter=",", skiprows=1, usecols=1).reshape(3, 80, 1)
    y = ImplicitRNN.load(out).simulate(u)
    got = np.array([float(r.split(",")[1]) for r in rows[1:]]).reshape(3, 80, 1)
    np.testing.assert_array_equal(got, y)


@pytest.mark.parametrize("name, text, needle, runner", [
    ("missing.csv", None, "no such file", run),
    ("malformed.csv", 'force,position\n1,2\n"3,4\n', "malformed CSV", run),
    ("nan.csv", "force,position\n1,2\nnan,4\n3,4\n", "line 3", run),
    ("unknown.csv", "force,height\n1,2\n3,4\n", "unknown column 'position'", run),
    ("inf.csv", "force,position\n1,2\n3,-inf\n", "NaN or infinite", cli),
    ("text.csv", "force,position\n1,2\nabc,4\n", "'abc' is not a number", cli),
    ("short.csv", "force,position\n1,2\n3\n", "no value in column 'position'", cli),
    ("empty.csv", "", "holds no data", cli),
    ("header.csv", "force,position\n", "no data rows", cli),
    ("binary.csv", b"force,position\n\xff\xfe,1\n", "not a text", cli),
    ("uneven.csv", "sequence,force,position\na,1,2\na,1,2\nb,1,2\n", "different lengths", cli),
    ("split.csv", "sequence,force,position\na,1,2\nb,1,2\na,1,2\n", "not contiguous", cli),
    ("nolabel.csv", "sequence,force,position\na,1,2\n,1,2\n", "sequence column", cli),
])
def test_fit_rejects_bad_data_with_one_line(tmp_path, name, text, needle, runner):
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
        path.write_text(text)
    res = runner("fit", path, "--inputs", "force", "--outputs", "position", "--states", "1", "--neurons", "1",
              "--max-iter", "1", "--no-progress", "--out", tmp_path / "m.npz")
    assert_error(res, 2, needle)
    assert not (tmp_path / "m.npz").exists()


def test_simulate_and_fit_option_errors(files, tmp_path):
    assert_error(cli("simulate", files / "good.npz", files / "train.csv", "--inputs", "force,time",
                     "--out", tmp_path / "p.csv"), 2, "m=1")
    assert_error(cli("simulate", files / "good.npz", files / "train.csv", "--inputs", "forc",
                     "--out", tmp_path / "p.csv"), 2, "unknown column 'forc'")
    assert_error(cli("simulate", files / "good.npz", files / "train.csv", "--inputs", "force",
                     "--out", tmp_path / "p.txt"), 2, ".csv")
    assert_error(cli("simulate", files / "good.npz", files / "train.csv", "--inputs", "force",
                     "--plot", tmp_path / "p.png", "--out", tmp_path / "p.csv"), 2,
                 "--outputs" if HAVE_MPL else "rrnn_convex[plot]")
    assert_error(cli("fit", files / "train.csv", "--inputs", "force", "--outputs", "position", "--states", "0",
                     "--neurons", "1", "--out", tmp_path / "m.npz"), 2, "--states")
    assert_error(cli("fit", files / "train.csv", "--inputs", "force,", "--outputs", "position", "--states", "1",
                     "--neurons", "1", "--out", tmp_path / "m.npz"), 2, "comma-separated")
    assert_error(cli("fit", files / "train.csv", "--inputs", "force", "--outputs", "position", "--states", "1",
                     "--neurons", "1", "--plot", tmp_path / "a.jpg", "--out", tmp_path / "m.npz"), 2, ".png")
    assert_error(cli("fit", files / "multi.csv", "--inputs", "sequence", "--outputs", "position", "--states", "1",
                     "--neurons", "1", "--out", tmp_path / "m.npz"), 2, "sequence column")
    assert_error(cli("certify", files / "good.npz", "--gamma", "-1"), 2, "--gamma")
    assert_error(cli("certify", files / "good.npz", "--solver", "FOO"), 2, "solver")
    assert_error(cli("fit", files / "train.csv", "--inputs", "force", "--outputs", "position", "--states", "1",
                     "--neurons", "1", "--resume", tmp_path / "none.npz", "--out", tmp_path / "m.npz"), 2,
                 "no checkpoint")
    assert_error(run("bogus"), 2, "invalid choice")
    assert_error(cli(), 2, "required")


# ---------------------------------------------------------------------- the certificate schema
SCHEMA = json.loads((importlib.resources.files("rrnn_convex") / "certificate.schema.json").read_text())
_HANDLED = {"$schema", "$id", "title", "description", "type", "const", "enum", "pattern", "minimum", "maximum",
            "exclusiveMinimum", "required", "properties", "items", "allOf", "if", "then", "else"}
_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def _is_type(x, t):
    if t == "number":
        return isinstance(x, (int, float)) and not isinstance(x, bool)
    if t == "integer":
        return isinstance(x, int) and not isinstance(x, bool)
    return isinstance(x, _TYPES[t])


def _errors(x, s, where="$"):
    """A small validator for the JSON Schema keywords the certificate schema uses."""
    unknown = set(s) - _HANDLED
    assert not unknown, f"the hand validator does not handle {unknown}"
    out = []
    if "type" in s:
        types = s["type"] if isinstance(s["type"], list) else [s["type"]]
        if not any(_is_type(x, t) for t in types):
            return [f"{where}: {x!r} is not of type {types}"]
    if "const" in s and x != s["const"]:
        out.append(f"{where}: expected {s['const']!r}")
    if "enum" in s and x not in s["enum"]:
        out.append(f"{where}: {x!r} not in {s['enum']}")
    if _is_type(x, "number"):
        if "minimum" in s and x < s["minimum"]:
            out.append(f"{where}: {x} < {s['minimum']}")
        if "maximum" in s and x > s["maximum"]:
            out.append(f"{where}: {x} > {s['maximum']}")
        if "exclusiveMinimum" in s and x <= s["exclusiveMinimum"]:
            out.append(f"{where}: {x} <= {s['exclusiveMinimum']}")
    if isinstance(x, str) and "pattern" in s and not re.search(s["pattern"], x):
        out.append(f"{where}: {x!r} does not match {s['pattern']}")
    if isinstance(x, dict):
        out += [f"{where}: missing {k!r}" for k in s.get("required", ()) if k not in x]
        for k, sub in s.get("properties", {}).items():
            if k in x:
                out += _errors(x[k], sub, f"{where}.{k}")
    if isinstance(x, list) and "items" in s:
        for i, v in enumerate(x):
            out += _errors(v, s["items"], f"{where}[{i}]")
    for sub in s.get("allOf", ()):
        out += _errors(x, sub, where)
    if "if" in s:
        branch = s.get("then") if not _errors(x, s["if"], where) else s.get("else")
        if branch:
            out += _errors(x, branch, where)
    return out


def schema_errors(doc):
    """Errors of ``doc`` against the schema: with jsonschema when installed, else the hand validator."""
    try:
        import jsonschema
    except ImportError:
        return _errors(doc, SCHEMA)
    return [e.message for e in jsonschema.Draft202012Validator(SCHEMA).iter_errors(doc)]


def test_schema_is_valid_json_schema():
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema not installed; the hand check covers the "
                                                          "instances")
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_real_certificates_validate_against_the_schema(files):
    good = ImplicitRNN.load(files / "good.npz")
    bad = ImplicitRNN.load(files / "bad.npz")
    certs = {"gain": certify(good), "fixed gamma": certify(good, gamma=3.0),
             "contraction": certify(good, contraction_only=True), "not certified": certify(bad),
             "constructive": None}
    certs["constructive"] = certificate_from(good, certs["gain"].Q, certs["gain"].lam, 3.0, how="test")
    assert certs["contraction"].gamma is None and not certs["not certified"].certified
    for name, cert in certs.items():
        doc = json.loads(cert.to_json())
        assert schema_errors(doc) == [], name
        assert doc["set"] == {"gain": "Theta_gamma", "fixed gamma": "Theta_gamma", "contraction": "Theta",
                              "not certified": None, "constructive": "Theta_gamma"}[name]
        again = Certificate.from_dict(doc)
        assert again.gamma == cert.gamma and again.contracting == cert.contracting
    # files written by the CLI
    for path in files.glob("*.cert.json"):
        assert schema_errors(json.loads(path.read_text())) == [], path


def test_schema_and_reader_reject_inconsistent_certificates_and_accept_old_files(files):
    doc = json.loads(certify(ImplicitRNN.load(files / "good.npz")).to_json())
    old = {k: v for k, v in doc.items() if k != "set"}  # schema-version-1 file written before "set"
    assert schema_errors(old) == []
    assert Certificate.from_dict(old).verify(ImplicitRNN.load(files / "good.npz")).ok
    for bad in (doc | {"set": "Theta"}, doc | {"contracting": False}, doc | {"lam": [-1.0]},
                doc | {"model_hash": "xyz"}, doc | {"gamma": 0}, doc | {"schema_version": 2}):
        assert schema_errors(bad), bad
    with pytest.raises(ValueError, match="'set'"):
        Certificate.from_dict(doc | {"set": "Theta"})
    with pytest.raises(ValueError, match="missing required"):
        Certificate.from_dict({k: v for k, v in doc.items() if k != "model_hash"})
