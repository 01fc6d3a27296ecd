"""The Triton model repository without a server: the encode step's numpy code against
``Preprocessor.inputs`` (value for value, on real and hostile data, through the client's wire
conversion), the written configs and versions, and argument errors. The served path itself is
tested on a real server in test_serve_triton.py."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from serving.helpers import make_bundle, penguins

pytest.importorskip("onnxruntime")


def _encode(pre, df, spec=None):
    """The encode step on df as the server sees it: the client's tensors, then Encoder."""
    from kernelflow.deploy.triton_client import column_tensor
    from kernelflow.deploy.triton_models.encode import Encoder
    from kernelflow.deploy.triton_repo import encoder_spec

    enc = Encoder(spec or encoder_spec(pre, ["num", "cat"] + (["passthrough"] if pre.passthrough_columns_ else []),
                                       None, "t"))
    cols = {n: column_tensor(df[n], n, t) for n, t in enc.columns()}
    return enc.encode(cols)


def _same_as_inputs(pre, df):
    blocks, num_all, missing = _encode(pre, df)
    want = pre.inputs(df)
    np.testing.assert_array_equal(blocks["num"], want.num.numpy())  # NaN == NaN here
    np.testing.assert_array_equal(blocks["cat"], want.cat.numpy())
    if want.passthrough is not None:
        np.testing.assert_array_equal(blocks["passthrough"], want.passthrough.numpy())
    cats = pre.categorical_columns_
    np.testing.assert_array_equal(missing, df[cats].isna().to_numpy() if cats else np.zeros((len(df), 0), bool))
    assert blocks["num"].dtype == np.float32 and blocks["cat"].dtype == np.int64


def test_encoder_matches_preprocessor_inputs_on_penguins():
    import kernelflow

    df, _, _ = penguins()
    pre = kernelflow.Preprocessor().fit(df)
    _same_as_inputs(pre, df)
    h = df.copy()
    h.loc[0, "island"] = "Atlantis"  # unknown
    h.loc[1, "sex"] = None  # missing -> the imputed category
    h.loc[2, "sex"] = ""  # a value (unknown), not a missing one
    h.loc[3, "bill_length_mm"] = np.inf
    h.loc[4, "body_mass_g"] = 1e30  # beyond float32: inf, as locally
    h.loc[5, "flipper_length_mm"] = 5e-324  # denormal float64 -> 0 in float32
    h.loc[6, "island"] = "Dream\x00"  # a NUL inside a string is a value
    h.loc[7, "year"] = 2**53 + 1  # integer column through float64, as locally
    _same_as_inputs(pre, h)


def test_encoder_matches_inputs_for_every_category_kind():
    import kernelflow

    rng = np.random.default_rng(0)
    n = 300
    df = pd.DataFrame({
        "x": rng.normal(size=n), "i": rng.integers(-5, 5, n),
        "s": rng.choice(["a", "b", "ccc", "é"], n).astype(object),
        "k": rng.integers(0, 4, n), "f": rng.choice([0.5, 1.5, np.nan], n), "b": rng.random(n) > 0.5,
        "p": rng.normal(size=n).astype(np.float32),
    })
    df.loc[::7, "x"] = np.nan
    df.loc[::11, "s"] = None
    pre = kernelflow.Preprocessor(categorical=["s", "k", "f", "b"], passthrough=["p"], add_indicator=True).fit(df)
    _same_as_inputs(pre, df)
    new = df.copy()
    new.loc[0, "k"] = 99  # unknown integer category
    new.loc[1, "f"] = 7.25  # unknown float category
    new.loc[2, "s"] = "zzz"
    _same_as_inputs(pre, new)


def test_encoder_errors_name_the_column():
    import kernelflow
    from kernelflow.deploy.triton_models.encode import EncodeError, Encoder
    from kernelflow.deploy.triton_repo import encoder_spec

    df, _, _ = penguins()
    pre = kernelflow.Preprocessor(handle_unknown="error").fit(df)
    enc = Encoder(encoder_spec(pre, ["num", "cat"], None, "t"))
    from kernelflow.deploy.triton_client import column_tensor

    good = {n: column_tensor(df[n].iloc[:4], n, t) for n, t in enc.columns()}
    enc.encode(good)
    cases = [
        ({k: v for k, v in good.items() if k != "island"}, "missing input column 'island'"),
        (dict(good, bill_length_mm=good["bill_length_mm"].astype(np.float64)), "'bill_length_mm' must be float32"),
        (dict(good, island=np.zeros((4, 1), np.float32)), "'island' must be BYTES"),
        (dict(good, island=np.array([[1], [2], [3], [4]], dtype=object)), "'island' must hold strings"),
        (dict(good, bill_length_mm=good["bill_length_mm"][:2]), "has 4 rows, the other columns 2"),
        (dict(good, bill_length_mm=np.zeros((4, 2), np.float32)), "'bill_length_mm' must have shape"),
        ({k: v[:0] for k, v in good.items()}, "empty batch"),
        (dict(good, island=np.array([[b"Atlantis"]] * 4, dtype=object)), r"unknown categories in columns \['island'\]"),
    ]
    for cols, msg in cases:
        with pytest.raises(EncodeError, match=msg):
            enc.encode(cols)
    with pytest.raises(ValueError, match="encoder spec"):
        Encoder({"format": "x"})


def _read(p):
    return (p / "config.pbtxt").read_text()


def test_repository_layout_versions_and_configs(tmp_path):
    from kernelflow.deploy.triton_repo import repository_models, write_model_repository

    b1, pre, df = make_bundle(str(tmp_path / "b1"), seed=0)
    b2, _, _ = make_bundle(str(tmp_path / "b2"), seed=1)
    repo = tmp_path / "repo"
    r1 = write_model_repository(b1, repo, backend="onnxruntime", max_batch_size=1024, instances=2)
    r2 = write_model_repository(b2, repo, backend="onnxruntime", max_batch_size=1024, instances=2)
    assert (r1["version"], r2["version"]) == (1, 2)
    assert repository_models(repo) == ["kernelflow", "kernelflow_encode", "kernelflow_model", "kernelflow_v1", "kernelflow_v2"]
    for v in ("1", "2"):
        assert {p.name for p in (repo / "kernelflow_encode" / v).iterdir()} == {
            "model.py", "kernelflow_encode.py", "kernelflow_drift_stats.py", "encoder.json"}
        assert (repo / "kernelflow_model" / v / "model.onnx").is_file()
    model_cfg = _read(repo / "kernelflow_model")
    assert 'platform: "onnxruntime_onnx"' in model_cfg and "max_batch_size: 1024" in model_cfg
    assert "preferred_batch_size: [ 64, 256, 1024 ]" in model_cfg and "max_queue_delay_microseconds" in model_cfg
    assert "count: 2 kind: KIND_CPU" in model_cfg and "version_policy: { all { } }" in model_cfg
    n_num, n_cat = len(pre.numeric_columns_), len(pre.categorical_columns_)
    assert f'name: "num" data_type: TYPE_FP32 dims: [ {n_num} ]' in model_cfg
    assert f'name: "cat" data_type: TYPE_INT64 dims: [ {n_cat} ]' in model_cfg
    assert 'name: "output" data_type: TYPE_FP32 dims: [ 3 ]' in model_cfg
    enc_cfg = _read(repo / "kernelflow_encode")
    assert 'backend: "python"' in enc_cfg and "count: 1 kind: KIND_CPU" in enc_cfg
    assert 'name: "island" data_type: TYPE_STRING dims: [ 1 ]' in enc_cfg
    assert 'name: "bill_length_mm" data_type: TYPE_FP32 dims: [ 1 ]' in enc_cfg
    # <name> serves the newest version, <name>_v<k> version k
    assert "model_version: 2" in _read(repo / "kernelflow") and [p.name for p in (repo / "kernelflow").iterdir() if p.is_dir()] == ["2"]
    assert "model_version: 1" in _read(repo / "kernelflow_v1") and "model_version: 2" in _read(repo / "kernelflow_v2")
    assert 'platform: "ensemble"' in _read(repo / "kernelflow")
    spec = json.loads((repo / "kernelflow_encode" / "1" / "encoder.json").read_text())
    assert spec["reference"]["rows"] == len(df) and spec["pipeline"] == "kernelflow"
    # an explicit version rewrites that version only
    assert write_model_repository(b1, repo, backend="onnxruntime", max_batch_size=1024, instances=2, version=1)["version"] == 1
    assert "model_version: 2" in _read(repo / "kernelflow")


def test_python_backend_variant_runs_the_same_graph(tmp_path):
    """The python-ORT model step's files: the copied graph under the encode step's blocks gives
    the local pipeline's prediction (the server adds only transport, tested with one)."""
    import onnxruntime as ort

    from kernelflow.deploy.triton_models.encode import Encoder
    from kernelflow.deploy.triton_repo import write_model_repository
    from serving.helpers import local_predict

    b, pre, df = make_bundle(str(tmp_path / "b"), reference=False)
    write_model_repository(b, tmp_path / "repo", backend="python")
    mdir = tmp_path / "repo" / "kernelflow_model" / "1"
    assert {p.name for p in mdir.iterdir()} == {"model.py", "model.onnx", "onnx_model.json"}
    assert 'backend: "python"' in _read(tmp_path / "repo" / "kernelflow_model")
    spec = json.loads((tmp_path / "repo" / "kernelflow_encode" / "1" / "encoder.json").read_text())
    # no training table: categorical drift from the fitted counts, numeric measures need data
    assert spec["reference"]["numeric"][0]["stats"] is None
    _ = Encoder(spec)
    blocks, _, _ = _encode(pre, df, spec)
    got = ort.InferenceSession(str(mdir / "model.onnx"), providers=["CPUExecutionProvider"]).run(["output"], blocks)[0]
    np.testing.assert_allclose(got, local_predict(b, df), rtol=1e-6, atol=1e-6)


def test_repository_argument_errors(tmp_path):
    import kernelflow
    from kernelflow.deploy import save_bundle
    from kernelflow.deploy.triton_repo import write_model_repository

    b, pre, df = make_bundle(str(tmp_path / "b"), reference=False)
    repo = tmp_path / "repo"
    for kw, msg in [({"name": "bad name"}, "name must be"), ({"backend": "tf"}, "backend must be one of"),
                    ({"max_batch_size": 0}, "max_batch_size must be"), ({"instances": 1.5}, "instances must be"),
                    ({"version": 0}, "version must be"), ({"backend": "tensorrt"}, "needs a TensorRT engine")]:
        with pytest.raises(ValueError, match=msg):
            write_model_repository(b, repo, **kw)
    with pytest.raises(ValueError, match="not a folder|not a kernelflow bundle"):
        write_model_repository(tmp_path / "nowhere", repo)
    (tmp_path / "tampered").mkdir()
    for f in ("manifest.json", "model.onnx", "preprocessor.safetensors"):
        (tmp_path / "tampered" / f).write_bytes((tmp_path / "b" / f).read_bytes())
    with open(tmp_path / "tampered" / "model.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ValueError, match="model.onnx"):  # a changed graph is never served
        write_model_repository(tmp_path / "tampered", repo)
    write_model_repository(b, repo, backend="onnxruntime")
    # another schema under the same name is refused (one config.pbtxt serves all versions)
    other = df.drop(columns=["year"])
    pre2 = kernelflow.Preprocessor().fit(other)
    import torch

    save_bundle(tmp_path / "b2", pre2, torch.nn.Linear(pre2.n_features_out_, 3), classes=[0, 1, 2])
    with pytest.raises(ValueError, match="differ from the versions already"):
        write_model_repository(tmp_path / "b2", repo, backend="onnxruntime")
    write_model_repository(tmp_path / "b2", repo, backend="onnxruntime", name="other")  # fine under its own name
    # a column named like an internal tensor
    clash = df.rename(columns={"year": "num"})
    pre3 = kernelflow.Preprocessor().fit(clash)
    save_bundle(tmp_path / "b3", pre3, torch.nn.Linear(pre3.n_features_out_, 3), classes=[0, 1, 2])
    with pytest.raises(ValueError, match=r"columns \['num'\] share a name"):
        write_model_repository(tmp_path / "b3", tmp_path / "repo3")
    # no categorical column: the cat block has no columns, which only the python backend can carry
    pre4 = kernelflow.Preprocessor().fit(df[["bill_length_mm", "year"]])
    save_bundle(tmp_path / "b4", pre4, torch.nn.Linear(pre4.n_features_out_, 3), classes=[0, 1, 2])
    with pytest.raises(ValueError, match=r"inputs \['cat'\] have no columns"):
        write_model_repository(tmp_path / "b4", tmp_path / "repo4", backend="onnxruntime")
    write_model_repository(tmp_path / "b4", tmp_path / "repo4", backend="python")
    assert 'name: "cat" data_type: TYPE_INT64 dims: [ -1 ]' in _read(tmp_path / "repo4" / "kernelflow_model")


def test_tensorrt_variant_config(tmp_path):
    """With an engine in the bundle (built on a GPU machine), the model step is a tensorrt_plan
    model on the GPU; the engine file is copied as it is."""
    from kernelflow.deploy.triton_repo import write_model_repository

    b, _, _ = make_bundle(str(tmp_path / "b"), reference=False)
    engine = b"engine bytes as TensorRT wrote them"
    (tmp_path / "b" / "model.plan").write_bytes(engine)
    write_model_repository(b, tmp_path / "repo", backend="tensorrt", instances=2)
    cfg = _read(tmp_path / "repo" / "kernelflow_model")
    assert 'platform: "tensorrt_plan"' in cfg and "count: 2 kind: KIND_GPU" in cfg
    assert (tmp_path / "repo" / "kernelflow_model" / "1" / "model.plan").read_bytes() == engine
    assert 'backend: "python"' in _read(tmp_path / "repo" / "kernelflow_encode")  # strings stay on the host


def test_server_arguments_and_lookup(tmp_path):
    from kernelflow.deploy.server import ServerError, TritonServer, find_server, free_port, require_server

    inst = find_server()
    if inst is None:
        with pytest.raises(ServerError, match="no Triton Inference Server found"):
            require_server()
    else:
        assert inst.binary.is_file() and "python" in inst.backends
    with pytest.raises(ValueError, match="repository must be"):
        TritonServer(tmp_path / "missing")
    p = free_port()
    with pytest.raises(ValueError, match="must differ"):
        TritonServer(tmp_path, http_port=p, grpc_port=p)
    for _ in range(50):  # ports picked one at a time used to repeat now and then
        srv = TritonServer(tmp_path)
        assert len({srv.http_port, srv.grpc_port, srv.metrics_port}) == 3
    srv = TritonServer(tmp_path, grpc_port=p)
    assert srv.grpc_port == p and len({srv.http_port, p, srv.metrics_port}) == 3
    assert srv.metrics_url.startswith("http://127.0.0.1:") and srv.stop() is None


def test_free_ports_are_distinct_and_skip_the_excluded():
    from kernelflow.deploy.server import free_ports

    ports = free_ports(64)
    assert len(set(ports)) == 64 and all(0 < q < 65536 for q in ports)
    assert not set(free_ports(16, exclude=set(ports[:8]))) & set(ports[:8])
    assert free_ports(0) == []


def test_client_wire_conversions():
    pytest.importorskip("tritonclient", reason="the Triton client library is the [serve] extra's")
    from kernelflow.deploy.triton_client import TritonClient, column_tensor
    from kernelflow.deploy.triton_models.encode import MISSING_BYTES

    big = pd.Series([2**53 + 1, -3, 7], dtype=np.int64)
    np.testing.assert_array_equal(column_tensor(big, "i", "FP32")[:, 0], big.to_numpy(np.float64).astype(np.float32))
    s = column_tensor(pd.Series(["a", None, np.nan, "", "é"], dtype=object), "s", "BYTES")[:, 0]
    assert s.tolist() == [b"a", MISSING_BYTES, MISSING_BYTES, b"", "é".encode()]
    assert column_tensor(pd.Series(["x", pd.NA], dtype="string"), "s", "BYTES")[:, 0].tolist() == [b"x", MISSING_BYTES]
    assert column_tensor(pd.Series([1.0, 2.0]), "k", "INT64").dtype == np.int64
    nullable = pd.Series([1.5, None], dtype="Float64")
    np.testing.assert_array_equal(column_tensor(nullable, "x", "FP32")[:, 0], np.array([1.5, np.nan], np.float32))
    with pytest.raises(ValueError, match="'k' has missing values"):
        column_tensor(pd.Series([1.0, np.nan]), "k", "INT64")
    with pytest.raises(TypeError, match="'k' must hold integers"):
        column_tensor(pd.Series([1.5]), "k", "INT64")
    with pytest.raises(TypeError, match="'b' must be boolean"):
        column_tensor(pd.Series([True, None], dtype=object), "b", "BOOL")
    with pytest.raises(TypeError, match="'x' must be numeric"):
        column_tensor(pd.Series(["1"]), "x", "FP32")
    with pytest.raises(TypeError, match="Triton type UINT8"):
        column_tensor(pd.Series([1]), "x", "UINT8")
    for url, msg in [("", "url must be"), ("ftp://h:1", "scheme must be")]:
        with pytest.raises(ValueError, match=msg):
            TritonClient(url)
    with pytest.raises(ValueError, match="protocol must be"):
        TritonClient("h:1", protocol="udp")
    with pytest.raises(ValueError, match="version must be"):
        TritonClient("h:1", version=0)
    assert TritonClient("grpc://h:1", version=3).model == "kernelflow_v3"
    assert not TritonClient("http://127.0.0.1:9", timeout=2).is_ready()  # nothing listens: False, no exception
