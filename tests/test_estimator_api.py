"""Estimator conventions (get_params / set_params / clone, NotFitted), the model-set registry and
what each set answers about itself, and the one CSV reader (issue 17)."""
import inspect

import numpy as np
import pytest

from rrnn_convex import ImplicitRNN
from rrnn_convex import sets
from rrnn_convex._estimator import clone
from rrnn_convex.baselines.barrier import BarrierSGD
from rrnn_convex.baselines.lstm import LSTMRegressor
from rrnn_convex.datasets.core import CsvTable, read_csv
from rrnn_convex.errors import NotFitted
from rrnn_convex.fit import SET_NAMES, RobustRNNRegressor
from rrnn_convex.sets import CIRNNSet, Contracting, ElmanSet, GainBounded, ModelSet, SRNNSet, Unconstrained
from rrnn_convex.sweep import grid

from conftest import random_rnn

ESTIMATORS = (RobustRNNRegressor, BarrierSGD, LSTMRegressor)
CHANGES = {RobustRNNRegressor: {"n_states": 3, "gamma": 4.0, "model_set": "theta_gamma", "gamma_path": [8.0]},
           BarrierSGD: {"n_neurons": 4, "lr": 1e-2, "clip": 0.5},
           LSTMRegressor: {"n_hidden": 5, "max_iter": 3, "seed": 7}}


def _signature(cls):
    return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]


# ---------------------------------------------------------------------- get_params / set_params / clone
@pytest.mark.parametrize("cls", ESTIMATORS)
def test_every_constructor_parameter_is_an_attribute_and_round_trips(cls):
    est = cls()
    params = est.get_params()
    assert list(params) == _signature(cls)
    assert all(params[k] is getattr(est, k) for k in params)
    assert cls(**params).get_params() == params
    assert est.set_params(**CHANGES[cls]) is est
    assert {k: getattr(est, k) for k in CHANGES[cls]} == CHANGES[cls]
    assert est.get_params() == params | CHANGES[cls]
    assert est.set_params() is est  # nothing to change


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_set_params_names_an_unknown_parameter(cls):
    with pytest.raises(ValueError, match=rf"set_params: {cls.__name__} has no parameter 'bogus'; expected one of"):
        cls().set_params(bogus=1)


def test_clone_gives_a_new_unfitted_estimator_with_copied_parameters():
    est = RobustRNNRegressor(3, 2, model_set="theta_gamma", gamma=2.0, gamma_path=[5.0])
    est.model_ = "fitted"  # a fitted attribute is not a parameter
    twin = clone(est)
    assert type(twin) is RobustRNNRegressor and twin is not est and not hasattr(twin, "model_")
    assert twin.get_params() == est.get_params()
    assert twin.gamma_path is not est.gamma_path  # deep copies: changing one leaves the other
    with pytest.raises(TypeError, match="estimator: expected an estimator instance"):
        clone(RobustRNNRegressor)


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_sklearn_clone_works(cls):
    base = pytest.importorskip("sklearn.base", reason="scikit-learn is not installed; the package's own clone "
                                                      "is tested without it")
    est = cls().set_params(**CHANGES[cls])
    twin = base.clone(est)
    assert type(twin) is cls and twin is not est and twin.get_params() == est.get_params()


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_simulate_before_fit_is_not_fitted(cls):
    with pytest.raises(NotFitted, match="simulate: call fit first") as info:
        cls().simulate(np.zeros((1, 5, 1)))
    # scikit-learn's convention (ValueError, AttributeError) and what the package raised before
    assert isinstance(info.value, (ValueError)) and isinstance(info.value, AttributeError)
    assert isinstance(info.value, RuntimeError)
    with pytest.raises(NotFitted, match="save: call fit first"):
        RobustRNNRegressor().save("never.npz")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    teacher = random_rnn(rng, 2, 2, 1, 1, scale=0.7)
    u = rng.uniform(-1, 1, (3, 60, 1))
    return u, teacher.simulate(u)


def test_initial_model_needs_no_private_set(data):
    u, y = data
    est = RobustRNNRegressor(2, 2, model_set="theta", progress=False)
    assert est.initial_model(u, y) == est.initial_model(u, y, est._set())


def test_gamma_path_stages_leave_the_estimators_parameters_alone(data):
    u, y = data
    est = RobustRNNRegressor(2, 2, model_set="theta_gamma", gamma=3.0, gamma_path=(6.0,), path_iter=1, max_iter=1,
                             progress=False)
    before = est.get_params()
    est.fit(u, y)
    assert est.get_params() == before and [s["gamma"] for s in est.path_] == [6.0]


# ---------------------------------------------------------------------- the registry
def test_registry_names_and_construction():
    assert ModelSet.names() == SET_NAMES == ("theta", "theta_gamma", "cirnn", "srnn", "elman", "unconstrained")
    assert ModelSet.names_where(certifies=False) == ("elman", "unconstrained")
    assert ModelSet.names_where(uses_multiplier=True) == ("theta", "theta_gamma")
    tg = ModelSet.from_name("theta_gamma", gamma=10, margin=1e-4, eps=0.5)  # eps is the SRNN's: ignored
    assert isinstance(tg, GainBounded) and tg.gamma == 10.0 and tg.margin == 1e-4 and tg.key == "theta_gamma"
    assert ModelSet.from_name("srnn", eps=0.1, margin=1.0).eps == 0.1
    assert isinstance(ModelSet.from_name("unconstrained", parametrization="free_C1"), Unconstrained)
    with pytest.raises(ValueError, match=r"model_set: expected one of \('theta', .*got 'gru'"):
        ModelSet.from_name("gru")
    with pytest.raises(ValueError, match="gamma: model_set 'theta_gamma' needs gamma"):
        ModelSet.from_name("theta_gamma")
    with pytest.raises(ValueError, match="gamma: only meaningful with model_set 'theta_gamma', got model_set 'cirnn'"):
        ModelSet.from_name("cirnn", gamma=2.0)
    with pytest.raises(ValueError, match=r"options: expected some of .*got \['margn'\]"):
        ModelSet.from_name("theta", margn=1e-3)
    with pytest.raises(ValueError, match="flags: expected class attributes"):
        ModelSet.names_where(colour="red")


def test_the_cli_offers_every_registered_set():
    from rrnn_convex.cli import build_parser

    fit = build_parser()._subparsers._group_actions[0].choices["fit"]
    (action,) = [a for a in fit._actions if "--model-set" in a.option_strings]
    assert tuple(action.choices) == ModelSet.names()


def test_a_newly_registered_set_is_known_by_name(monkeypatch):
    monkeypatch.setattr(sets, "_REGISTRY", dict(sets._REGISTRY))  # undone after the test

    @sets.register("theta_tight")
    class Tight(Contracting):
        name_options = ("margin",)

    assert ModelSet.names()[-1] == "theta_tight" and Tight.key == "theta_tight"
    built = ModelSet.from_name("theta_tight", margin=1e-3, parametrization="free_C1")
    assert isinstance(built, Tight) and built.margin == 1e-3 and built.parametrization == "fixed_C1"
    assert [c.model_set for c in grid((), (0,), ("theta_tight",))] == ["theta_tight"]
    assert isinstance(RobustRNNRegressor(model_set="theta_tight")._set(), Tight)
    with pytest.raises(ValueError, match="already registered"):
        sets.register("theta")(Tight)


# ---------------------------------------------------------------------- what a set answers
def test_sets_answer_the_certificate_and_membership_questions():
    rng = np.random.default_rng(3)
    model = random_rnn(rng, 3, 3, 1, 1, scale=0.5)
    assert Unconstrained().certificate(model) is None and ElmanSet().membership(model) is None
    contraction = Contracting().certificate(model)
    assert contraction.certified and contraction.gamma is None
    assert Contracting().certificate(model, smallest_gamma=True).gamma is not None
    assert GainBounded(gamma=1e3).membership(model).gamma == 1e3
    assert CIRNNSet().membership(model) is None  # needs the diagonal-P LMI: never decided by certify
    assert SRNNSet().membership(model) is None  # not an Elman RNN
    elman = ImplicitRNN.from_elman(0.3 * np.eye(3), U=np.ones((3, 1)), C=np.ones((1, 3)))
    assert SRNNSet().membership(elman).certified
    with pytest.raises(ValueError, match=r"does not have the SRNNSet structure .*: \['F', 'B1'"):
        SRNNSet().check_structure(model)
    SRNNSet().check_structure(elman)
    with pytest.raises(ValueError, match=r"target: expected a constrained ModelSet \(Contracting, GainBounded, "
                                         r"CIRNNSet, SRNNSet\), got"):
        ModelSet.constrained(ElmanSet())


def test_replace_and_lifted_form():
    rng = np.random.default_rng(4)
    model = random_rnn(rng, 2, 2, 1, 1, scale=0.5, E_far=True)
    theta = Contracting()
    tight = theta.replace(margin=0.5)
    assert tight.margin == 0.5 and theta.margin == 1e-6
    with pytest.raises(ValueError, match=r"Contracting has no attribute\(s\) \['gamma_max'\]"):
        theta.replace(gamma_max=3)
    same, point = theta.lifted_form(model)
    assert set(point) == {"P", "lam"} and np.all(point["lam"] > 0)
    assert theta.lifted_point(same, min_margin=0.0) is not None
    assert np.allclose(same.simulate(np.ones((1, 20, 1))), model.simulate(np.ones((1, 20, 1))))


# ---------------------------------------------------------------------- the CSV reader
def test_csv_table_reads_a_file_once_for_labels_and_data(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("sequence, u ,y\n\na,1,2\na,3,4\nb,5,6\n")
    table = CsvTable.read(path)
    assert table.first_row == ["sequence", "u", "y"] and table.has_header()
    assert table.labels(0, "sequence column") == [(3, "a"), (4, "a"), (5, "b")]
    data = table.sequence_data("u", ["y"])
    again = read_csv(path, "u", ["y"])
    np.testing.assert_array_equal(data.u, again.u)
    assert data.meta == again.meta and data.u[0, :, 0].tolist() == [1.0, 3.0, 5.0]
    (tmp_path / "gap.csv").write_text("sequence,u,y\na,1,2\n,1,2\n")
    with pytest.raises(ValueError, match="gap.csv: line 3 has no value in the sequence column"):
        CsvTable.read(tmp_path / "gap.csv").labels(0, "sequence column")
    (tmp_path / "empty.csv").write_text("\n")
    empty = CsvTable.read(tmp_path / "empty.csv")
    assert empty.first_row is None
    with pytest.raises(ValueError, match="holds no data"):
        empty.sequence_data(0, 1)
    with pytest.raises(FileNotFoundError, match="data: no such file"):
        CsvTable.read(tmp_path / "none.csv", role="data")
