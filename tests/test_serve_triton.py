"""A real Triton Inference Server on 127.0.0.1 (free ports), started and stopped here: real
requests over HTTP and gRPC on palmerpenguins (missing numbers, string categories with missing
values), compared with the local pipeline; two versions; the drift gauges; bad requests; a
server killed under load. Skipped where no Triton server can run (the main CI environment has
numpy 2, which nvidia-pytriton's server cannot take); .ci/serve runs it and fails on a skip."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from serving.helpers import local_predict, make_bundle, penguins, server_or_skip

pytest.importorskip("tritonclient.http")
pytest.importorskip("onnxruntime")

TOL = 1e-5


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    inst = server_or_skip()
    from kernelflow.deploy.server import TritonServer
    from kernelflow.deploy.triton_repo import write_model_repository

    root = tmp_path_factory.mktemp("serve")
    b1, pre1, df = make_bundle(str(root / "bundle1"), seed=0)
    b2, pre2, _ = make_bundle(str(root / "bundle2"), seed=1)
    b3, pre3, _ = make_bundle(str(root / "bundle_strict"), seed=2, handle_unknown="error")
    repo = root / "repo"
    assert write_model_repository(b1, repo, max_batch_size=512)["version"] == 1
    assert write_model_repository(b2, repo, max_batch_size=512)["version"] == 2
    write_model_repository(b3, repo, name="strict", max_batch_size=512)
    write_model_repository(b1, repo, name="drift", max_batch_size=512)
    # pipelines whose graph takes a block without columns (declared [-1], sent as [N, 0])
    num_cols = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
    bn, _, _ = make_bundle(str(root / "bundle_num"), df=df[num_cols], reference=False)
    bc, _, _ = make_bundle(str(root / "bundle_cat"), df=df[["island", "sex"]], reference=False)
    write_model_repository(bn, repo, name="numonly", backend="python")
    write_model_repository(bc, repo, name="catonly", backend="python")
    srv = TritonServer(repo, install=inst)
    srv.start(timeout=240)
    yield {"server": srv, "df": df, "bundles": {1: b1, 2: b2, "strict": b3, "numonly": bn, "catonly": bc},
           "pres": {1: pre1, 2: pre2}}
    srv.stop()


def _client(served, protocol="http", **kw):
    from kernelflow.deploy.triton_client import TritonClient

    srv = served["server"]
    url = srv.http_url if protocol == "http" else srv.grpc_url
    return TritonClient(f"{protocol}://{url}", **kw)


def _hostile(df):
    """Unknown categories, missing strings, NaN / inf / huge numbers, in real rows."""
    h = df.copy()
    h.loc[0, "island"] = "Atlantis"
    h.loc[1, "sex"] = None
    h.loc[2, "bill_length_mm"] = np.inf
    h.loc[3, "flipper_length_mm"] = -np.inf
    h.loc[4, "body_mass_g"] = 1e30
    h.loc[5, "bill_depth_mm"] = np.nan
    h.loc[6, "sex"] = ""  # an empty string is a value (unknown), not a missing one, as in pandas
    return h


# ------------------------------------------------------------------------------ serving
def test_ready_and_versions(served):
    srv = served["server"]
    assert srv.is_ready()
    import tritonclient.http as th

    c = th.InferenceServerClient(srv.http_url)
    for m in ("kernelflow", "kernelflow_v1", "kernelflow_v2", "strict"):
        assert c.is_model_ready(m), m
    for v in ("1", "2"):  # both versions of both steps are loaded (version_policy all)
        assert c.is_model_ready("kernelflow_model", v) and c.is_model_ready("kernelflow_encode", v)
    assert _client(served).is_ready()


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_predictions_match_local(served, protocol):
    df = served["df"]
    assert df.isna().any().any()  # real missing values travel
    for version, model_kw in ((2, {}), (1, {"version": 1}), (2, {"version": 2})):
        with _client(served, protocol, **model_kw) as c:
            got = c.predict(df)
        want = local_predict(served["bundles"][version], df)
        assert got.shape == want.shape == (len(df), 3)
        np.testing.assert_allclose(got, want, rtol=TOL, atol=TOL)
    # the versions are different models: serving one for the other would be caught
    assert not np.allclose(local_predict(served["bundles"][1], df), local_predict(served["bundles"][2], df), atol=1e-3)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_hostile_rows_match_local(served, protocol):
    h = _hostile(served["df"])
    with _client(served, protocol) as c:
        got = c.predict(h)
        one = c.predict(h.iloc[[0]])  # batch of one
    want = local_predict(served["bundles"][2], h)
    np.testing.assert_allclose(got, want, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(one, want[:1], rtol=TOL, atol=TOL)


@pytest.mark.parametrize("name", ["numonly", "catonly"])
def test_pipelines_without_numeric_or_categorical_columns(served, name):
    df = _hostile(served["df"])
    with _client(served, "grpc", name=name) as c:
        got = c.predict(df)
    np.testing.assert_allclose(got, local_predict(served["bundles"][name], df), rtol=TOL, atol=TOL)


def test_frame_longer_than_max_batch(served):
    import pandas as pd

    df = pd.concat([served["df"]] * 3, ignore_index=True)  # 1032 rows > max_batch_size 512
    with _client(served) as c:
        got = c.predict(df)
    np.testing.assert_allclose(got, local_predict(served["bundles"][2], df), rtol=TOL, atol=TOL)


def test_concurrent_clients_get_their_own_rows(served):
    """Dynamic batching joins requests; every reply must still be its own request's rows."""
    df = served["df"]
    want = local_predict(served["bundles"][2], df)
    errors, bad = [], []

    def work(k):
        try:
            with _client(served, "grpc" if k % 2 else "http") as c:
                for i in range(15):
                    lo = (k * 37 + i * 11) % (len(df) - 8)
                    got = c.predict(df.iloc[lo:lo + 1 + (i % 8)])
                    if not np.allclose(got, want[lo:lo + 1 + (i % 8)], rtol=TOL, atol=TOL):
                        bad.append((k, i))
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and not bad


# ------------------------------------------------------------------------------ drift gauges
def _gauges(srv):
    with urllib.request.urlopen(srv.metrics_url, timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("kernelflow_drift_"):
            key, val = line.rsplit(" ", 1)
            name, labels = key.split("{", 1)
            lab = dict(kv.split("=", 1) for kv in labels.rstrip("}").split(","))
            lab = {k: v.strip('"') for k, v in lab.items()}
            out[(name[len("kernelflow_drift_"):], lab["pipeline"], lab["version"], lab.get("column"))] = float(val)
    return out


def test_drift_gauges(served):
    """The "drift" pipeline serves only this test: the training data first (nothing moves), then
    shifted data (the gauges move); the gauges equal the offline DriftMonitor's on the same rows."""
    from kernelflow.monitor import DriftMonitor, DriftReference

    srv, df = served["server"], served["df"]
    with _client(served, name="drift") as c:
        c.predict(df)
        g = _gauges(srv)
        same = {k[3]: v for k, v in g.items() if k[0] == "psi" and k[1] == "drift"}
        assert set(same) == {"bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "year", "island", "sex"}
        assert g[("rows", "drift", "1", None)] == len(df)
        assert all(abs(v) < 1e-9 for v in same.values()), same  # unshifted: nothing moves
        assert all(abs(v) < 1e-9 for k, v in g.items() if k[0] == "mean_shift" and k[1] == "drift")
        assert g[("unknown_rate", "drift", "1", "island")] == 0.0
        assert g[("missing_rate", "drift", "1", "sex")] == pytest.approx(df["sex"].isna().mean())

        shifted = df.copy()
        std = np.nanstd(df["bill_length_mm"])
        shifted["bill_length_mm"] = shifted["bill_length_mm"] + 6 * std
        shifted["body_mass_g"] = np.nan
        shifted.loc[::2, "island"] = "Atlantis"
        c.predict(shifted)
    g = _gauges(srv)
    psi = {k[3]: v for k, v in g.items() if k[0] == "psi" and k[1] == "drift"}
    assert psi["bill_length_mm"] > 0.25 and psi["island"] > 0.25  # half the rows shifted
    assert abs(psi["flipper_length_mm"]) < 1e-9  # untouched columns stay put
    n_obs = df["bill_length_mm"].notna().sum()
    assert g[("mean_shift", "drift", "1", "bill_length_mm")] == pytest.approx(3.0, rel=1e-6)  # half the rows +6 std
    assert g[("missing_rate", "drift", "1", "body_mass_g")] == pytest.approx(
        (len(df) + df["body_mass_g"].isna().sum()) / (2 * len(df)))
    assert g[("unknown_rate", "drift", "1", "island")] == pytest.approx(np.ceil(len(df) / 2) / (2 * len(df)))
    assert n_obs > 300
    # the served gauges are the offline monitor's numbers (same statistics code)
    ref = DriftReference.load(served["bundles"][1] + "/drift_reference.json")
    mon = DriftMonitor(served["pres"][1], ref).update(df).update(shifted)
    for m in mon.measures():
        for k in ("psi", "mean_shift", "missing_rate", "unknown_rate"):
            if m[k] == m[k]:  # not NaN: a gauge the encode step exports
                assert g[(k, "drift", "1", m["column"])] == pytest.approx(m[k], rel=1e-9, abs=1e-12), (m["column"], k)


# ------------------------------------------------------------------------------ bad requests
def _raw_infer(served, arrays, model="kernelflow", protocol="http"):
    c = _client(served, protocol)
    try:
        c.model = model
        return c.infer_arrays(arrays)
    finally:
        c.close()


def _good_arrays(served, rows=3):
    c = _client(served)
    try:
        return c.tensors(served["df"].iloc[:rows])
    finally:
        c.close()


def _still_serves(served):
    df = served["df"].iloc[:20]
    with _client(served) as c:
        np.testing.assert_allclose(c.predict(df), local_predict(served["bundles"][2], df), rtol=TOL, atol=TOL)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_bad_requests_get_errors_and_server_keeps_serving(served, protocol):
    from kernelflow.deploy.triton_client import TritonClientError

    good = _good_arrays(served)
    cases = {}
    a = dict(good)
    a.pop("island")
    cases["missing column"] = (a, ("island", "expected 7 inputs but got 6"))
    a = dict(good)
    a["bill_length_mm"] = a["bill_length_mm"].astype(np.float64)
    cases["wrong dtype"] = (a, ("bill_length_mm",))
    a = dict(good)
    a["bill_length_mm"] = np.repeat(a["bill_length_mm"], 2, axis=1)
    cases["wrong shape"] = (a, ("bill_length_mm",))
    # Triton refuses a BYTES input without elements before the encode step sees it; otherwise
    # the encode step says "empty batch"
    cases["empty batch"] = ({k: v[:0] for k, v in good.items()}, ("empty batch", "got 0"))
    for what, (arrays, needle) in cases.items():
        with pytest.raises(TritonClientError) as e:
            _raw_infer(served, arrays, protocol=protocol)
        msg = str(e.value)
        assert any(n in msg for n in needle), (what, msg)
    garbage = np.array([[np.random.default_rng(0).bytes(10 << 20)]] * 3, dtype=object)  # 30 MB of random bytes
    out = _raw_infer(served, dict(good, island=garbage), protocol=protocol)  # an unknown category: served
    want = local_predict(served["bundles"][2], served["df"].iloc[:3].assign(island="Atlantis"))
    np.testing.assert_allclose(out, want, rtol=TOL, atol=TOL)
    with pytest.raises(TritonClientError, match=r"unknown categories in columns \['island'\]"):
        _raw_infer(served, dict(good, island=np.array([[b"Atlantis"]] * 3, dtype=object)), model="strict", protocol=protocol)
    _still_serves(served)


def test_garbage_http_body(served):
    srv = served["server"]
    body = np.random.default_rng(1).bytes(10 << 20)
    req = urllib.request.Request(f"http://{srv.http_url}/v2/models/kernelflow/infer", data=body,
                                 headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=60)
    assert e.value.code in (400, 500)  # Triton 2.51 answers a body it cannot parse with 500
    msg = json.loads(e.value.read().decode())["error"]
    assert "json" in msg.lower() or "parse" in msg.lower(), msg
    _still_serves(served)


def test_client_side_checks_name_the_column(served):
    df = served["df"]
    with _client(served) as c:
        with pytest.raises(ValueError, match="island"):
            c.predict(df.drop(columns=["island"]))
        with pytest.raises(TypeError, match="bill_length_mm"):
            c.predict(df.assign(bill_length_mm="x"))
        with pytest.raises(TypeError, match="sex"):
            c.predict(df.assign(sex=5))
        with pytest.raises(ValueError, match="no rows"):
            c.predict(df.iloc[:0])


def test_strict_pipeline_serves_known_categories(served):
    df = served["df"]
    with _client(served, name="strict") as c:
        np.testing.assert_allclose(c.predict(df), local_predict(served["bundles"]["strict"], df), rtol=TOL, atol=TOL)


# ------------------------------------------------------------------------------ a server that dies
def test_killed_server_gives_clear_error_and_restart_serves(tmp_path):
    inst = server_or_skip()
    from kernelflow.deploy.server import TritonServer
    from kernelflow.deploy.triton_client import TritonClient, TritonClientError
    from kernelflow.deploy.triton_repo import write_model_repository

    b, _, df = make_bundle(str(tmp_path / "bundle"), reference=False)
    write_model_repository(b, tmp_path / "repo", max_batch_size=256)
    want = local_predict(b, df)
    srv = TritonServer(tmp_path / "repo", install=inst).start(timeout=240)
    results = {"ok": 0, "wrong": 0, "errors": []}
    stop = threading.Event()

    def load():
        c = TritonClient(f"http://{srv.http_url}", timeout=10)
        deadline = time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < deadline and len(results["errors"]) < 5:
            try:
                got = c.predict(df.iloc[:32])
                results["ok" if np.allclose(got, want[:32], rtol=TOL, atol=TOL) else "wrong"] += 1
            except TritonClientError as e:
                results["errors"].append(e)
        c.close()

    try:
        t = threading.Thread(target=load)
        t.start()
        t0 = time.monotonic()
        while results["ok"] < 5 and time.monotonic() - t0 < 30:
            time.sleep(0.05)
        srv.kill()
        t.join(90)
        stop.set()
        assert results["ok"] >= 5 and results["wrong"] == 0
        assert results["errors"], "the client must raise once the server is gone"
        assert "cannot reach Triton" in str(results["errors"][-1]) or "inference" in str(results["errors"][-1])
        srv.start(timeout=240)  # same ports
        with TritonClient(f"grpc://{srv.grpc_url}") as c:
            np.testing.assert_allclose(c.predict(df), want, rtol=TOL, atol=TOL)
    finally:
        stop.set()
        srv.stop()


def test_port_in_use_and_bad_repository(tmp_path):
    import socket

    inst = server_or_skip()
    from kernelflow.deploy.server import ServerError, TritonServer

    (tmp_path / "repo" / "broken" / "1").mkdir(parents=True)
    (tmp_path / "repo" / "broken" / "config.pbtxt").write_text('backend: "python"\nmax_batch_size: 1\ninput [ garbage')
    srv = TritonServer(tmp_path / "repo", install=inst)
    with pytest.raises(ServerError, match="exited|not ready"):
        srv.start(timeout=120)
    assert srv.proc.poll() is not None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        with pytest.raises(ServerError, match=f"http_port {port} on 127.0.0.1 is not free"):
            TritonServer(tmp_path / "repo", http_port=port, install=inst).start()


# ------------------------------------------------------------------------------ the command
def test_cli_serve_bundle_until_sigterm(tmp_path):
    import os
    import signal
    import socket
    import subprocess
    import sys

    server_or_skip()
    from kernelflow.deploy.server import free_ports
    from kernelflow.deploy.triton_client import TritonClient

    b, _, df = make_bundle(str(tmp_path / "bundle"))
    ports = free_ports(3)
    cmd = [sys.executable, "-m", "kernelflow", "serve", b, "--http-port", str(ports[0]), "--grpc-port", str(ports[1]),
           "--metrics-port", str(ports[2]), "--max-batch-size", "256"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        lines = []
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            line = p.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("Ctrl-C"):
                break
        out = "".join(lines)
        assert f"http://127.0.0.1:{ports[0]}" in out and f"grpc://127.0.0.1:{ports[1]}" in out, out + p.stderr.read()
        with TritonClient(f"grpc://127.0.0.1:{ports[1]}") as c:
            np.testing.assert_allclose(c.predict(df), local_predict(b, df), rtol=TOL, atol=TOL)
        # a second server on the same port: a clear message, exit code 2
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=os.environ.copy())
        assert r.returncode == 2 and f"http_port {ports[0]} on 127.0.0.1 is not free" in r.stderr, r.stderr
        p.send_signal(signal.SIGTERM)
        rest, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        assert "stopping (SIGTERM)" in rest and "stopped" in rest
        with socket.socket() as s:  # the port is free again: the server is gone
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", ports[0]))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(30)


def test_cli_serve_rejects_what_is_not_a_repository(tmp_path):
    import subprocess
    import sys

    server_or_skip()
    r = subprocess.run([sys.executable, "-m", "kernelflow", "serve", str(tmp_path)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and "neither a bundle" in r.stderr
