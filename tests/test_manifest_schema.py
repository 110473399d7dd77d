"""Manifests that are valid JSON of the wrong shape are refused with ManifestError naming the file and the field."""
import copy
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.paths import DEMO_RUN_DIR
from core.manifest import MANIFEST, ManifestError, module_sizes, neuron_space, read_manifest

pytestmark = pytest.mark.skipif(not (DEMO_RUN_DIR / MANIFEST).exists(), reason="demo run not built")
DEMO = json.loads((DEMO_RUN_DIR / MANIFEST).read_text()) if (DEMO_RUN_DIR / MANIFEST).exists() else {}


def write(folder: Path, data) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST).write_text(json.dumps(data))
    return folder


def mutated(path: tuple, value=None, delete: bool = False) -> dict:
    data = copy.deepcopy(DEMO)
    target = data
    for key in path[:-1]:
        target = target[key]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


# (where, new value or DELETE, the name the message must contain)
DELETE = object()
BAD_FIELDS = [
    (("k",), "abc", "k"),
    (("k",), 0, "k"),
    (("k",), 99_999, "k"),
    (("k",), True, "k"),
    (("k",), 1.5, "k"),
    (("k_sweep",), [10, "x"], "k_sweep"),
    (("k_sweep",), [], "k_sweep"),
    (("k_sweep",), "10,36", "k_sweep"),
    (("k_sweep",), [10, 10**6], "k_sweep"),
    (("status",), "exploded", "status"),
    (("status",), None, "status"),
    (("model",), "demo", "model"),
    (("model", "source"), 5, "model.source"),
    (("model", "fingerprint"), DELETE, "model.fingerprint"),
    (("model", "model_type"), ["llama"], "model.model_type"),
    (("neurons",), [], "neurons"),
    (("neurons", "num_layers"), DELETE, "neurons.num_layers"),
    (("neurons", "num_layers"), 0, "neurons.num_layers"),
    (("neurons", "num_layers"), "4", "neurons.num_layers"),
    (("neurons", "total"), 999, "neurons.total"),
    (("neurons", "total"), -3584, "neurons.total"),
    (("neurons", "per_layer"), 1, "neurons.per_layer"),
    (("neurons", "definition"), None, "neurons.definition"),
    (("neurons", "modules"), {}, "neurons.modules"),
    (("neurons", "modules"), {"gate_proj": 384, "up_proj": 384, "down_proj": "128"}, "neurons.modules"),
    (("neurons", "modules"), ["gate_proj"], "neurons.modules"),
    (("neurons", "module_order"), ["gate_proj", "up_proj"], "neurons.module_order"),
    (("neurons", "module_order"), ["gate_proj", "up_proj", "mlp"], "neurons.module_order"),
    (("neurons", "module_order"), [["gate_proj"], "up_proj", "down_proj"], "neurons.module_order"),
    (("corpus",), None, "corpus"),
    (("corpus", "relations"), "abcdefghijklm", "corpus.relations"),
    (("corpus", "relations"), [], "corpus.relations"),
    (("corpus", "relations"), ["a", 1], "corpus.relations"),
    (("corpus", "relations"), ["a", "a"], "corpus.relations"),
    (("corpus", "relations"), ["../../etc"], "corpus.relations"),
    (("corpus", "languages"), DELETE, "corpus.languages"),
    (("corpus", "languages"), {"en": 1}, "corpus.languages"),
    (("options",), [], "options"),
    (("options", "pooling"), 3, "options.pooling"),
    (("options", "negatives_ratio"), "4", "options.negatives_ratio"),
    (("options", "negatives_ratio"), -1, "options.negatives_ratio"),
    (("options", "seed"), 0.5, "options.seed"),
    (("options", "identification_language"), ["en"], "options.identification_language"),
    (("packages",), DELETE, "packages"),
    (("packages",), "torch", "packages"),
    (("timings",), [], "timings"),
    (("synthetic",), "no", "synthetic"),
    (("notes",), 7, "notes"),
    (("surprise",), 1, "surprise"),
]


@pytest.mark.parametrize("where,value,name", BAD_FIELDS, ids=[f"{'.'.join(w)}={v!r:.20}" for w, v, _ in BAD_FIELDS])
def test_bad_field_names_the_file_and_field(tmp_path, where, value, name):
    data = mutated(where, delete=value is DELETE) if value is DELETE else mutated(where, value)
    with pytest.raises(ManifestError) as info:
        read_manifest(write(tmp_path / "run", data))
    assert name in str(info.value) and MANIFEST in str(info.value)


@pytest.mark.parametrize("data", [[], "manifest", 3, None, {"schema_version": "1"}, {"schema_version": True}])
def test_not_a_manifest_object(tmp_path, data):
    with pytest.raises(ManifestError, match=MANIFEST):
        read_manifest(write(tmp_path / "run", data))


def test_the_committed_demo_manifest_still_reads():
    manifest = read_manifest(DEMO_RUN_DIR)
    assert manifest.k == DEMO["k"] and manifest.corpus["relations"] == DEMO["corpus"]["relations"]


def paths_of(data, prefix=()):
    yield prefix
    if isinstance(data, dict):
        for key, value in data.items():
            yield from paths_of(value, (*prefix, key))


FIELD_PATHS = [p for p in paths_of(DEMO) if p]
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.lists(st.tuples(st.sampled_from(FIELD_PATHS or [("k",)]), JSON_VALUES | st.just(DELETE)),
                        min_size=1, max_size=3))
def test_fuzzed_manifests_read_or_raise_manifest_error(tmp_path, changes):
    data = copy.deepcopy(DEMO)
    for where, value in changes:
        target = data
        for key in where[:-1]:
            target = target.get(key) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            continue  # an earlier change replaced a parent section with something else
        if value is DELETE:
            target.pop(where[-1], None)
        else:
            target[where[-1]] = value
    folder = tmp_path / "run"
    write(folder, data)
    try:
        manifest = read_manifest(folder)
    except ManifestError:
        return
    # What the app reads from a manifest that passed works.
    total = manifest.neurons["total"]
    assert 1 <= manifest.k <= total and all(1 <= k <= total for k in manifest.k_sweep)
    assert sum(size for _, size in module_sizes(manifest)) * manifest.neurons["num_layers"] == total
    assert neuron_space(manifest).total == total and manifest.corpus["relations"]
    f"{manifest.model['source']} {manifest.options['pooling']} {manifest.options['negatives_ratio']:g}"
