"""Where the app keeps its model: arguments, environment and defaults (with a fake CUDA switch), device="auto"
on CPU, and a server that keeps one large model at a time."""
import pytest
import torch

from core.loading import load_causal_lm
from core.paths import DEMO_MODEL_DIR
from core.placement import DEVICE_ENV, DTYPE_ENV, Placement, PlacementError, app_placement, choose_placement
from core.serving import ModelCache, ServedModel, load_served, weights_bytes


@pytest.mark.parametrize("cuda, expected", [(True, ("cuda", "bfloat16")), (False, ("cpu", "float32"))])
def test_the_default_follows_the_gpu(cuda, expected):
    placement = app_placement([], {}, cuda_available=cuda)
    assert (placement.device, placement.dtype, placement.chosen_by) == (*expected, "default")


def test_arguments_win_over_the_environment():
    env = {DEVICE_ENV: "cpu", DTYPE_ENV: "float16"}
    assert app_placement(["--device", "cuda", "--dtype", "float32", "--runs-dir", "x"], env, True) == \
        Placement("cuda", "float32", "argument")
    assert app_placement([], env, True) == Placement("cpu", "float16", "environment")
    # the dtype alone: the device still follows the GPU
    assert app_placement(["--dtype", "float16"], {}, False) == Placement("cpu", "float16", "argument")


def test_auto_takes_bfloat16_only_with_a_gpu():
    assert choose_placement("auto", None, True).dtype == "bfloat16"
    assert choose_placement("auto", None, False).dtype == "float32"


@pytest.mark.parametrize("device, dtype, cuda, message", [
    ("cuda", None, False, "no CUDA GPU is visible"),
    ("tpu", None, True, "unknown device 'tpu'"),
    (None, "int8", False, "unknown dtype 'int8'"),
])
def test_unusable_placements_say_what_to_pass(device, dtype, cuda, message):
    with pytest.raises(PlacementError, match=message):
        choose_placement(device, dtype, cuda)


@pytest.mark.skipif(not (DEMO_MODEL_DIR / "model.safetensors").exists(), reason="demo model not built")
def test_device_auto_on_cpu_loads_the_model_through_accelerate():
    auto = load_causal_lm(DEMO_MODEL_DIR, device="auto")
    plain = load_causal_lm(DEMO_MODEL_DIR)
    assert {p.device.type for p in auto.model.parameters()} == {"cpu"}
    ids = torch.tensor([[1, 5, 9, 13]])
    torch.testing.assert_close(auto.model(input_ids=ids).logits, plain.model(input_ids=ids).logits)


@pytest.mark.skipif(not (DEMO_MODEL_DIR / "model.safetensors").exists(), reason="demo model not built")
def test_served_model_reports_where_it_lives_and_its_memory():
    served = load_served(DEMO_MODEL_DIR, Placement("cpu", "bfloat16", "argument"))
    assert served.where == "cpu"
    assert {p.dtype for p in served.lm.model.parameters()} == {torch.bfloat16}
    parameters = sum(p.numel() for p in served.lm.model.parameters())
    assert parameters * 2 <= served.memory_bytes < parameters * 2 + (1 << 20)
    assert weights_bytes(DEMO_MODEL_DIR) == (DEMO_MODEL_DIR / "model.safetensors").stat().st_size


class FakeServed(ServedModel):
    def __init__(self, name):
        self.name, self.closed = name, False

    def close(self):
        self.closed = True


def test_the_cache_keeps_one_large_model_and_every_small_one():
    cache, loads = ModelCache(large_bytes=100), []

    def loader(name):
        def load():
            loads.append(name)
            return FakeServed(name)
        return load

    small_a = cache.get("a", 10, loader("a"))
    big_b = cache.get("b", 500, loader("b"))
    assert cache.get("b", 500, loader("b")) is big_b and loads == ["a", "b"]  # loaded once
    big_c = cache.get("c", 100, loader("c"))
    assert big_b.closed and not small_a.closed
    assert sorted(cache.keys()) == ["a", "c"]
    assert cache.loaded("b") is None and cache.loaded("c") is big_c
    cache.get("d", 1, loader("d"))
    assert sorted(cache.keys()) == ["a", "c", "d"]


@pytest.mark.skipif(not (DEMO_MODEL_DIR / "model.safetensors").exists(), reason="demo model not built")
@pytest.mark.parametrize("dtype, shown", [("bfloat16", "in bfloat16 (environment)"),
                                          ("int3", "The app's model placement is not usable: unknown dtype 'int3'")])
def test_the_lab_honours_the_servers_placement(monkeypatch, dtype, shown):
    from apptest_helpers import run_page
    from ui.run import server_placement

    monkeypatch.setenv(DTYPE_ENV, dtype)
    server_placement.clear()
    try:
        at = run_page("lab")
    finally:
        server_placement.clear()
    assert not at.exception
    texts = [t.replace("\\", "").replace("\u200b", "")  # notices are escaped Markdown
             for t in [c.value for c in at.sidebar.caption] + [e.value for e in at.error]]
    assert any(shown in t for t in texts), texts
