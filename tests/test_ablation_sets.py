"""The lab's ablation set: relations' top-k, plus and minus single neurons, from text the user typed."""
import pytest

from core.ablation_sets import ablation_set
from core.paths import DEMO_RUN_DIR
from core.manifest import neuron_space
from core.neurons import NeuronId
from core.share_state import MAX_LISTED, parse_neuron_list
from core.store import RunStore

pytestmark = pytest.mark.skipif(not (DEMO_RUN_DIR / "manifest.json").exists(), reason="demo run not built")


@pytest.fixture(scope="module")
def store():
    return RunStore(DEMO_RUN_DIR)


def test_union_of_top_k_plus_and_minus(store):
    space = neuron_space(store.manifest)
    father = set(store.top_neurons("person_father", "en", 108).neuron.astype(int))
    mother = set(store.top_neurons("person_mother", "en", 108).neuron.astype(int))
    dropped = space.neuron(min(father))
    outside = next(i for i in range(space.total) if i not in father | mother)
    ids = ablation_set(store, ["person_father", "person_mother"], "en", 108, space,
                       add=[space.neuron(outside)], remove=[dropped])
    assert ids == tuple(sorted((father | mother | {outside}) - {min(father)}))
    assert len(father | mother) < 216  # the two relations share neurons at k = 108: the union counts them once
    assert ablation_set(store, [], "en", 20, space) == ()


def test_neuron_lists_keep_order_drop_repeats_and_name_what_is_not_a_neuron(store):
    space = neuron_space(store.manifest)
    neurons, bad = parse_neuron_list(" 1.gate_proj.3, 2.up_proj.7 ,1.gate_proj.3,, 9.gate_proj.1, x ", space)
    assert neurons == [NeuronId(1, "gate_proj", 3), NeuronId(2, "up_proj", 7)]
    assert bad == ["9.gate_proj.1", "x"]
    many, _ = parse_neuron_list(",".join(str(i) for i in range(200)), space)
    assert len(many) == MAX_LISTED
