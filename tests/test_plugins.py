"""The generic registry, and third-party strategies and compression methods found through entry points.

The plugin tests make a fake installed distribution (a ``*.dist-info`` folder with an
``entry_points.txt`` beside the plugin module) visible to ``importlib.metadata`` by putting its folder
on ``PYTHONPATH`` of a subprocess, exactly what ``pip install`` of a real plugin would leave behind.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from imcflow.errors import ConfigError, UnknownNameError
from imcflow.registry import Registry

SRC = str(Path(__file__).resolve().parents[1] / "src")


def test_registry_refuses_duplicates_unless_asked_and_lists_known_names():
    r: Registry[int] = Registry("widget")
    r.register("b", 1)
    r.register("a", 2)
    with pytest.raises(ConfigError, match="widget 'a' is already registered"):
        r.register("a", 3)
    assert r.get("a") == 2
    r.register("a", 3, replace=True)
    assert r.get("a") == 3
    assert r.names() == ["b", "a"]  # registration order, not sorted
    with pytest.raises(UnknownNameError, match="unknown widget 'c'; known: b, a"):
        r.get("c")
    assert r.get("c", None) is None and r["a"] == 3  # a default instead of the error
    assert "a" in r and "c" not in r and len(r) == 2
    assert r.unregister("b") == 1 and r.names() == ["a"]


def test_registry_override_is_scoped_and_restores_even_on_error():
    r: Registry[str] = Registry("thing")
    r.register("x", "old")
    with r.override("x", "new"), r.override("y", "temp"):
        assert (r.get("x"), r.get("y")) == ("new", "temp")
    assert r.names() == ["x"] and r.get("x") == "old"
    with pytest.raises(RuntimeError), r.override("z", "temp"):
        raise RuntimeError
    assert r.names() == ["x"]


def test_registry_check_and_normalize():
    def only_ints(obj: object) -> None:
        if not isinstance(obj, int):
            raise ConfigError(f"not an int: {obj!r}")

    r: Registry[int] = Registry("suffix loader", check=only_ints, normalize=str.lower)
    r.register(".ONNX", 1)
    assert r.get(".onnx") == 1 and ".Onnx" in r
    with pytest.raises(ConfigError, match="not an int"):
        r.register(".csv", "x")  # type: ignore[arg-type]


def test_strategy_registry_refuses_a_second_im2col():
    from imcflow.mapping import STRATEGIES, get_strategy, register_strategy

    with pytest.raises(ConfigError, match="already registered"):
        register_strategy(get_strategy("im2col"))
    assert STRATEGIES.names()[:4] == ["im2col", "sdk", "vwsdk", "flex"]


# ---------------------------------------------------------------------------------------------------
# Entry points: a fake installed distribution.

PLUGIN = '''
"""A third-party plugin: a strategy that wraps VW-SDK under a new name, and a compression method
with a torch-free plan that renders itself."""
import dataclasses

from imcflow.compress import CompressionMethod
from imcflow.mapping import get_strategy


class WrappedVwsdk:
    name = "vwsdk-wrapped"
    description = "VW-SDK under another name (a plugin test)"

    def map(self, problem, array, options, layer_name=""):
        plan = get_strategy("vwsdk").map(problem, array, options, layer_name)
        return dataclasses.replace(plan, method=self.name)


@dataclasses.dataclass(frozen=True)
class CountPlan:
    layers: int

    def render(self):
        return f"layer-count plan: {self.layers} layer(s)"

    def to_dict(self):
        return {"layers": self.layers}


class LayerCount(CompressionMethod):
    name = "layer-count"
    description = "changes nothing; its plan counts the layers (a plugin test)"

    def apply(self, model, ctx):
        raise NotImplementedError

    def plan(self, network, array, mapping, options, structure=None):
        return CountPlan(len(network.layers))


LAYER_COUNT = LayerCount()  # an instance as an entry point works too
'''

ENTRY_POINTS = """
[imcflow.strategies]
vwsdk-wrapped = fake_imcflow_plugin:WrappedVwsdk

[imcflow.methods]
layer-count = fake_imcflow_plugin:LAYER_COUNT
"""


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory) -> Path:
    site = tmp_path_factory.mktemp("site")
    (site / "fake_imcflow_plugin.py").write_text(textwrap.dedent(PLUGIN))
    info = site / "fake_imcflow_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-imcflow-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    return site


def _cli(site: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([SRC, str(site)]))
    return subprocess.run([sys.executable, "-m", "imcflow.cli", *args], capture_output=True, text=True,
                          env=env, timeout=300)


LAYERS = ["--layer", "12,12,3,3,16,32", "--layer", "6,6,3,3,32,32,2,1"]
COMMANDS = {
    "map": ["map", *LAYERS, "--array", "64x64", "--format", "json"],
    "cost": ["cost", *LAYERS, "--array", "64x64", "--method", "vwsdk,vwsdk-wrapped", "--format", "json"],
    "verify": ["verify", *LAYERS, "--array", "64x64", "--method", "vwsdk-wrapped", "--format", "json"],
    "verify-all": ["verify", *LAYERS, "--array", "64x64", "--method", "all"],
    "methods": ["methods", "--format", "json"],
    "plan": ["compress", *LAYERS, "--method", "layer-count", "--plan-only"],
    "plan-json": ["compress", *LAYERS, "--method", "layer-count", "--plan-only", "--format", "json"],
}
# Every command in one subprocess (torch is imported once): each through the real entry point.
RUNNER = """
import contextlib, io, json, sys
from imcflow.cli import main
out = {}
for name, argv in json.loads(sys.argv[1]).items():
    so, se = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(so), contextlib.redirect_stderr(se):
        rc = main(argv)
    out[name] = [rc, so.getvalue(), se.getvalue()]
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def runs(plugin_path) -> dict[str, tuple[int, str, str]]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([SRC, str(plugin_path)]))
    done = subprocess.run([sys.executable, "-c", RUNNER, json.dumps(COMMANDS)], capture_output=True,
                          text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    return {k: tuple(v) for k, v in json.loads(done.stdout).items()}


def test_plugin_strategy_maps_and_appears_in_method_all(runs):
    rc, out, err = runs["map"]
    assert rc == 0, err
    data = json.loads(out)
    assert data["options"]["methods"] == ["im2col", "sdk", "vwsdk", "flex", "vwsdk-wrapped"]
    for layer in data["layers"]:  # the wrapper's plans are VW-SDK's, under its own name
        assert layer["vwsdk-wrapped"] == layer["vwsdk"]
    assert data["totals"]["vwsdk-wrapped"] == data["totals"]["vwsdk"]


def test_plugin_strategy_costs_and_verifies(runs):
    rc, out, err = runs["cost"]
    assert rc == 0, err
    methods = json.loads(out)["methods"]
    wrapped, own = methods["vwsdk-wrapped"], methods["vwsdk"]
    assert wrapped["method"] == "vwsdk-wrapped"
    assert wrapped["totals"] == own["totals"] and wrapped["cycles"] == own["cycles"]
    rc, out, err = runs["verify"]
    assert rc == 0, err + out
    checks = json.loads(out)["checks"]
    assert [c["method"] for c in checks] == ["vwsdk-wrapped"] * 2 and all(c["passed"] for c in checks)
    rc, out, _ = runs["verify-all"]
    assert rc == 0 and out.count("vwsdk-wrapped") == 2


def test_plugin_method_is_listed_and_its_plan_renders_itself(runs):
    rc, out, err = runs["methods"]
    assert rc == 0, err
    names = [m["name"] for m in json.loads(out)]
    assert names[-1] == "layer-count" and "vwc-sdk" in names
    rc, out, err = runs["plan"]
    assert rc == 0, err
    assert out.strip() == "layer-count plan: 2 layer(s)"
    rc, out, _ = runs["plan-json"]
    assert json.loads(out) == {"layers": 2}


def test_a_plugin_that_fails_to_load_is_named(tmp_path):
    info = tmp_path / "broken_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[imcflow.strategies]\nbroken = no_such_module:Thing\n")
    out = _cli(tmp_path, "map", *LAYERS)
    assert out.returncode == 2
    assert "plugin 'broken'" in out.stderr and "imcflow.strategies" in out.stderr


def test_an_empty_entry_point_group_is_fine():
    r: Registry[object] = Registry("gadget", entry_points="imcflow.tests.no-such-group")
    r.register("x", 1)
    assert r.names() == ["x"]
