"""The data container and the CSV / NPZ readers (how users bring their own data)."""
import numpy as np
import pytest

from rrnn_convex.datasets import SequenceData, read_csv, read_npz


# ------------------------------------------------------------------------ container
def test_container_layout_and_promotion():
    d = SequenceData(u=[1, 2, 3], y=[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], ts=0.1, name="x")
    assert d.u.shape == (1, 3, 1) and d.y.shape == (1, 3, 2)
    assert d.u.dtype == np.float64 and (d.batch, d.T, d.m, d.p) == (1, 3, 1, 2)
    assert d.x0_known.tolist() == [True] and d.init == 0
    b = SequenceData(u=np.zeros((4, 10, 2)), y=np.zeros((4, 10, 1)),
                     x0_known=[True, False, True, False], init=3)
    assert b.x0_known.tolist() == [True, False, True, False]
    assert b.sequence(1).u.shape == (1, 10, 2) and not b.sequence(1).x0_known[0]
    assert b.window(5).T == 5 and not b.window(5).x0_known.any()
    with pytest.raises(ValueError):  # immutable arrays
        b.u[0, 0, 0] = 1.0


def test_container_errors_name_argument_and_shapes():
    with pytest.raises(ValueError, match=r"u of shape \(2, 10, 1\) and y of shape \(2, 9, 1\)"):
        SequenceData(u=np.zeros((2, 10, 1)), y=np.zeros((2, 9, 1)))
    with pytest.raises(ValueError, match=r"u of shape \(3, 10, 1\) and y of shape \(2, 10, 1\)"):
        SequenceData(u=np.zeros((3, 10, 1)), y=np.zeros((2, 10, 1)))
    with pytest.raises(ValueError, match=r"u: contains NaN or inf \(first at index \(0, 4, 0\)\)"):
        SequenceData(u=np.where(np.arange(10) == 4, np.nan, 0.0)[None, :, None], y=np.zeros((1, 10, 1)))
    with pytest.raises(ValueError, match="y: expected shape"):
        SequenceData(u=np.zeros((1, 2, 2, 2)[:3]), y=np.zeros((1, 1, 2, 2)))
    with pytest.raises(ValueError, match=r"x0_known: expected a bool or shape \(2,\)"):
        SequenceData(u=np.zeros((2, 5, 1)), y=np.zeros((2, 5, 1)), x0_known=[True, True, False])
    with pytest.raises(ValueError, match="init: expected 0 <= init < T = 5"):
        SequenceData(u=np.zeros((1, 5, 1)), y=np.zeros((1, 5, 1)), init=5)
    with pytest.raises(ValueError, match="ts"):
        SequenceData(u=np.zeros(5), y=np.zeros(5), ts=0.0)
    with pytest.raises(TypeError, match="u: expected an array of real numbers"):
        SequenceData(u="abc", y=np.zeros(3))


# ------------------------------------------------------------------------ CSV
CSV = '"uEst","uVal","yEst","yVal","Ts",\n3.25,0.97,5.2,4.9,4,\n3.5,0.99,5.25,4.8,,\n4.0,1.5,5.5,4.7,,\n'


@pytest.fixture
def csv_file(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text(CSV)
    return path


def test_read_csv_selects_columns_by_name_and_index(csv_file):
    d = read_csv(csv_file, inputs="uEst", outputs=["yEst"], ts=4.0)
    np.testing.assert_array_equal(d.u[0, :, 0], [3.25, 3.5, 4.0])
    np.testing.assert_array_equal(d.y[0, :, 0], [5.2, 5.25, 5.5])
    assert d.ts == 4.0 and d.name == "data" and d.meta["inputs"] == ["uEst"]
    e = read_csv(csv_file, inputs=[0, 1], outputs=[3, "yEst"], init=1)
    assert e.u.shape == (1, 3, 2) and e.y.shape == (1, 3, 2) and e.init == 1
    np.testing.assert_array_equal(e.y[0, :, 0], [4.9, 4.8, 4.7])
    np.testing.assert_array_equal(e.y[0, :, 1], [5.2, 5.25, 5.5])
    # case-insensitive names; negative indices; the half-empty "Ts" column is not needed
    f = read_csv(csv_file, inputs="uest", outputs=-2)
    np.testing.assert_array_equal(f.y[0, :, 0], [4.9, 4.8, 4.7])


def test_read_csv_without_header(tmp_path):
    path = tmp_path / "plain.csv"
    path.write_text("1, 2, 3\n4, 5, 6\n\n7, 8, 9\n")  # a blank line is skipped
    d = read_csv(path, inputs=[0, 2], outputs=1)
    np.testing.assert_array_equal(d.u[0], [[1, 3], [4, 6], [7, 9]])
    with pytest.raises(ValueError, match="no header row"):
        read_csv(path, inputs="a", outputs=1)
    semi = tmp_path / "semi.csv"
    semi.write_text("a;b\n1;2\n")
    assert read_csv(semi, inputs="a", outputs="b", delimiter=";").y[0, 0, 0] == 2.0


def test_read_csv_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_csv(tmp_path / "none.csv", inputs=0, outputs=1)


def test_read_csv_unknown_column_lists_the_available_ones(csv_file):
    with pytest.raises(ValueError, match=r"unknown column 'uest2'.*'uEst', 'uVal', 'yEst', 'yVal', 'Ts'"):
        read_csv(csv_file, inputs="uest2", outputs="yEst")
    with pytest.raises(ValueError, match=r"outputs: column index 7 out of range.*5 columns"):
        read_csv(csv_file, inputs=0, outputs=7)
    with pytest.raises(ValueError, match="at least one column"):
        read_csv(csv_file, inputs=[], outputs=0)


@pytest.mark.parametrize("row,match", [
    ("3.0,abc,5.0,4.0,,", r"line 3 \(data row 1\), column 'uVal': 'abc' is not a number"),
    ("3.0,nan,5.0,4.0,,", r"line 3 \(data row 1\), column 'uVal': 'nan' is NaN or infinite"),
    ("3.0,,5.0,4.0,,", r"line 3 \(data row 1\) has no value in column 'uVal'"),
    ("3.0", r"line 3 \(data row 1\) has no value in column 'uVal'"),
])
def test_read_csv_bad_rows_are_named(tmp_path, row, match):
    path = tmp_path / "bad.csv"
    lines = CSV.splitlines()
    lines[2] = row
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=match):
        read_csv(path, inputs=["uEst", "uVal"], outputs="yEst")
    # a bad value in a column that is not selected does not matter
    if row.count(",") >= 3:
        assert read_csv(path, inputs="uEst", outputs="yEst").T == 3


def test_read_csv_malformed_file(tmp_path):
    path = tmp_path / "broken.csv"
    path.write_text('a,b\n1,"2"x\n')
    with pytest.raises(ValueError, match="malformed CSV"):
        read_csv(path, inputs="a", outputs="b")
    empty = tmp_path / "empty.csv"
    empty.write_text("\n\n")
    with pytest.raises(ValueError, match="no data"):
        read_csv(empty, inputs=0, outputs=0)
    header_only = tmp_path / "header.csv"
    header_only.write_text("a,b\n")
    with pytest.raises(ValueError, match="no data rows"):
        read_csv(header_only, inputs="a", outputs="b")
    binary = tmp_path / "bin.csv"
    binary.write_bytes(b"\xff\xfe\x00\x81\x00")
    with pytest.raises(ValueError):
        read_csv(binary, inputs=0, outputs=0)


# ------------------------------------------------------------------------ NPZ
def test_npz_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    d = SequenceData(u=rng.standard_normal((3, 20, 2)), y=rng.standard_normal((3, 20, 1)), ts=0.5, name="set",
                     x0_known=[True, False, False], init=4, x0_true=rng.standard_normal((3, 8)),
                     meta={"width": 3.0})
    path = d.to_npz(tmp_path / "set")
    assert path.name == "set.npz"
    e = read_npz(path)
    for key in ("u", "y", "x0_known", "x0_true"):
        np.testing.assert_array_equal(getattr(e, key), getattr(d, key))
    assert (e.ts, e.name, e.init, e.meta["width"]) == (0.5, "set", 4, 3.0)


def test_read_npz_column_selection_and_errors(tmp_path):
    path = tmp_path / "rec.npz"
    t = np.arange(10.0)
    np.savez(path, force=t, volt=np.stack([t, 2 * t, 3 * t], axis=1), pos=-t)
    d = read_npz(path, inputs=["force", "volt"], outputs="pos", ts=0.01, input_columns=[0, 3])
    assert d.u.shape == (1, 10, 2) and d.ts == 0.01 and d.name == "rec"
    np.testing.assert_array_equal(d.u[0, :, 1], 3 * t)
    np.testing.assert_array_equal(d.y[0, :, 0], -t)
    with pytest.raises(ValueError, match=r"unknown array 'speed'.*'force', 'volt', 'pos'"):
        read_npz(path, inputs="speed", outputs="pos")
    with pytest.raises(ValueError, match="input_columns"):
        read_npz(path, inputs="volt", outputs="pos", input_columns=[5])
    with pytest.raises(ValueError, match=r"input_columns: expected indices in 0\.\..* from the end\), got \[-9\]"):
        read_npz(path, inputs="volt", outputs="pos", input_columns=[-9])
    last = read_npz(path, inputs=["force", "volt"], outputs="pos", input_columns=[-1])  # from the end, as read_csv
    np.testing.assert_array_equal(last.u, read_npz(path, inputs="volt", outputs="pos").u[:, :, -1:])
    np.savez(tmp_path / "short.npz", a=np.zeros(10), b=np.zeros(9))
    with pytest.raises(ValueError, match=r"u and y.*\(1, 10, 1\).*\(1, 9, 1\)"):
        read_npz(tmp_path / "short.npz", inputs="a", outputs="b")
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_npz(tmp_path / "none.npz")
    (tmp_path / "junk.npz").write_text("not a zip")
    with pytest.raises(ValueError, match="not a readable .npz"):
        read_npz(tmp_path / "junk.npz")
