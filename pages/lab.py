"""Lab: type a prompt, switch relation neurons off, compare next tokens and the greedy continuation."""
import altair as alt
import streamlit as st
import pandas as pd

from core.ablation import ABLATION_MODES, ZERO, Ablation
from core.ablation_sets import ablation_set
from core.metrics import critical_members, neuron_label
from core.adapters import neuron_space_for
from core.loading import ModelLoadError, config_fields
from core.manifest import neuron_space
from core.runs import model_path
from core.lab import (MAX_ABLATED, MAX_NEW_TOKENS, MAX_PROMPT_CHARS, MAX_SCALE, TOP_TOKENS, LabInputError, LabRequest,
                      compare_next_tokens, continuation_table, fit_prompt, max_prompt_tokens, relation_activity)
from core.prompt_links import pick_prompt, PROMPT_KEYS, prompt_params
from core.share_state import (encode_list, format_neuron, parse_neuron_list, pick_float, pick_int, pick_many,
                              pick_neurons, pick_one)
from ui.charts import CONDITION_COLORS, label_axis, row_step
from ui.output import copy_link, guarded, notice
from ui.run import SNAPSHOT_DIR, run_model, start_page
from ui.state import ViewState

run_name, store = start_page("Ablation lab")
m = store.manifest
if m.synthetic:
    run_model(store)  # says why a synthetic run has no lab
    st.stop()
# The controls and the run's precomputed parts come from the manifest and the store, so they are drawn at once;
# the model (and torch) load below them, behind a spinner.
space = neuron_space(m)


@st.cache_data(show_spinner=False, max_entries=16)
def positions_label_for(source: str, fingerprint: str) -> str:
    """Read from config.json once per model, not at every rerun of the page."""
    try:
        return f"the model reads up to {max_prompt_tokens(config_fields(model_path(source)), 0):,} tokens"
    except ModelLoadError:
        return "as many tokens as the model's positions allow"


positions_label = positions_label_for(m.model["source"], m.model["fingerprint"])
ident_lang = m.options.get("identification_language", "en")
k_limit = min(store.total_neurons, MAX_ABLATED)


@st.cache_data(show_spinner=False, max_entries=16)
def examples_for(run: str, language: str, k: int):
    return store.example_prompts(language, k) if store.available("baseline") else None


examples = examples_for(run_name, ident_lang, min(m.k, k_limit))
showcase = examples.sort_values("lp_drop", ascending=False).iloc[0] if examples is not None and len(examples) else None
default_prompt = showcase.text if showcase is not None else "The father of"

state = ViewState("lab")
p, parsed = state.url, state.parsed
prompt0 = pick_prompt(p, SNAPSHOT_DIR, default_prompt, parsed)
rels0 = pick_many(p, "off", store.relations, [], parsed, "relation")
k0 = pick_int(p, "k", 1, k_limit, min(m.k, k_limit), parsed, "k")
extra0 = pick_neurons(p, "add", space, parsed)
minus0 = pick_neurons(p, "remove", space, parsed)
tokens0 = pick_int(p, "tokens", 1, MAX_NEW_TOKENS, MAX_NEW_TOKENS, parsed, "new tokens")
mode0 = pick_one(p, "mode", list(ABLATION_MODES), "zero", parsed, "ablation mode")
factor0 = pick_float(p, "factor", -MAX_SCALE, MAX_SCALE, 0.0, parsed, "scale factor")
state.show_notices()

prompt_key = state.bind("prompt", prompt0, lambda v: isinstance(v, str), url_keys=PROMPT_KEYS)
off_key = state.bind("off", rels0, lambda v: isinstance(v, list) and set(v) <= set(store.relations))


def use_example() -> None:
    choice = st.session_state.get("lab.example")
    if choice is not None:
        st.session_state[prompt_key] = examples.text.iloc[choice]


def switch_off(relation: str) -> None:
    st.session_state[off_key] = sorted(set(st.session_state[off_key]) | {relation})


if examples is not None and len(examples):
    st.selectbox(
        f"Examples: evaluation prompts of every relation ({ident_lang}; type to search). Those marked ✗ lose their "
        f"answer when their relation's top-{min(m.k, k_limit):,} is switched off.",
        range(len(examples)), index=None, key="lab.example", on_change=use_example,
        placeholder="Pick an example prompt…",
        format_func=lambda i: (f"{examples.relation.iloc[i]} · {examples.text.iloc[i]} → {examples.gold.iloc[i]}"
                               + ("  ✗" if examples.flips.iloc[i] else "")))
prompt = st.text_area(f"Prompt ({positions_label}, new ones included)", key=prompt_key, height=80)
c1, c2, c3 = st.columns([4, 2, 2])
rels = c1.multiselect("Switch off the top-k neurons of", store.relations, key=off_key)
k = c2.number_input(f"k per relation (≤ {k_limit:,})", 1, k_limit, step=1,
                    key=state.bind("k", k0, lambda v: isinstance(v, int) and 1 <= v <= k_limit))
new_tokens = c3.number_input(f"New tokens (≤ {MAX_NEW_TOKENS})", 1, MAX_NEW_TOKENS, step=1,
                             key=state.bind("tokens", tokens0, lambda v: isinstance(v, int) and 1 <= v <= MAX_NEW_TOKENS))
MODE_LABELS = {"zero": "zero (the paper)", "mean": "set to its mean", "scale": "multiply by a factor"}
c6, c7 = st.columns([4, 2])
mode = c6.radio("What switching off does", list(ABLATION_MODES), horizontal=True, format_func=MODE_LABELS.get,
                key=state.bind("mode", mode0, lambda v: v in ABLATION_MODES),
                help="zero: the paper's ablation. mean: each neuron set to its mean over the run's identification "
                     "prompts, which keeps the layer nearer the inputs it was trained on. scale: the neurons "
                     "multiplied by the factor (0 = zero, 1 = no change, 2 = doubled, negative = flipped: "
                     "amplifying a relation's neurons steers the model).")
factor = c7.number_input(f"Factor (scale; -{MAX_SCALE:g} to {MAX_SCALE:g})", -MAX_SCALE, MAX_SCALE, step=0.5,
                         disabled=mode != "scale", format="%g",
                         key=state.bind("factor", factor0, lambda v: isinstance(v, (int, float)) and abs(v) <= MAX_SCALE))
means = store.neuron_means() if mode == "mean" else None
if mode == "mean" and means is None:
    notice("This run has no stored neuron means (it was made before mean ablation existed): rerun "
           "`python -m precompute run` with its options to add them. Zeroing instead.")
ablation = (Ablation("mean", means=means) if mode == "mean" and means is not None else
            Ablation("scale", float(factor)) if mode == "scale" else ZERO)
c4, c5 = st.columns(2)
add_text = c4.text_input("Also switch off (layer.module.index, comma-separated)", max_chars=2000,
                         key=state.bind("add", ", ".join(format_neuron(n) for n in extra0), lambda v: isinstance(v, str)))
remove_text = c5.text_input("Keep on (remove from the set)", max_chars=2000,
                            key=state.bind("remove", ", ".join(format_neuron(n) for n in minus0),
                                           lambda v: isinstance(v, str)))


def neurons_in(text: str) -> list:
    neurons, bad = parse_neuron_list(text, space)
    for item in bad:
        notice(f"'{item}' is not a neuron of this model ({space.describe()}); write layer.module.index, "
               "e.g. 2.gate_proj.17")
    return neurons


def critical_in_lab_set(store, neuron_ids) -> pd.DataFrame:
    """The run's critical neurons among `neuron_ids` (none when the run has no single-neuron screen)."""
    if not store.available("single_neuron") or not len(neuron_ids):
        return pd.DataFrame()
    return critical_members(pd.DataFrame({"neuron": list(neuron_ids)}), store.critical_neurons())


extra, minus = neurons_in(add_text), neurons_in(remove_text)
chosen_ids = ablation_set(store, rels, ident_lang, int(k), space, extra, minus)
try:
    prompt_url = prompt_params(prompt, SNAPSHOT_DIR)
except OSError as exc:
    prompt_url = {}
    notice(f"This prompt could not be saved for the link ({exc}); the link will not carry it.")
state.publish({"off": encode_list(rels) or None, "k": k, "tokens": new_tokens,
               **{key: prompt_url.get(key) for key in PROMPT_KEYS},
               "mode": None if mode == "zero" else mode, "factor": f"{factor:g}" if mode == "scale" else None,
               "add": encode_list(format_neuron(n) for n in extra) or None,
               "remove": encode_list(format_neuron(n) for n in minus) or None})
st.caption(f"{len(chosen_ids):,} neurons {ablation.effect} ({len(chosen_ids) / space.total:.2%} of {space.total:,}). "
           f"Limits: {MAX_PROMPT_CHARS:,} characters and the model's positions per prompt, {MAX_NEW_TOKENS} new "
           f"tokens, {MAX_ABLATED:,} neurons.")
critical_off = critical_in_lab_set(store, chosen_ids)
if len(critical_off):
    st.info("Critical neurons in this set, each of which alone breaks a relation: " + "; ".join(
        f"{neuron_label(r.layer, r.module, r['index'], r.neuron)} costs {r.breaks} {r.single_drop:.1f} points"
        for _, r in critical_off.iterrows()) + ".", icon=":material/priority_high:")
if showcase is not None and prompt == showcase.text:
    # Drawn in both states, so the elements below keep their places when the relation is switched off or on.
    is_off = showcase.relation in rels
    st.button(f"{showcase.relation}'s top-{int(k):,} is off: compare the two answers below" if is_off else
              f"This example is a {showcase.relation} fact: switch off {showcase.relation}'s top-{int(k):,} and "
              "watch its answer change", icon=":material/power_settings_new:", on_click=switch_off,
              args=(showcase.relation,), disabled=is_off, key="lab.showcase")


served = run_model(store)
if served is None:
    st.stop()
lm = served.lm
model_space = neuron_space_for(lm.config, m.neurons["definition"])
if model_space.total != store.total_neurons:
    notice(f"The model at {m.model['source']} has {model_space.total:,} neurons but the run was made for "
           f"{store.total_neurons:,}: the model does not match the run. Rerun precompute for this model.", "error")
    st.stop()
from core.hooks import neuron_hooks  # noqa: E402 (torch: only once the page has drawn its controls)

hooks = neuron_hooks(lm.model, model_space)
answer = served.scheduler(m.neurons["definition"])  # concurrent sessions' requests share one batch


@st.cache_data(show_spinner=False, max_entries=256)
def baseline_for(run: str, text: str, n_tokens: int):
    return answer(LabRequest(text, (), n_tokens).checked())


@st.cache_data(show_spinner=False, max_entries=256)
def ablated_for(run: str, text: str, n_tokens: int, neuron_ids: tuple[int, ...], mode: str, factor: float):
    """`mode` and `factor` key the cache; the ablation itself (with the run's means) is the page's."""
    return answer(LabRequest(text, tuple(space.neuron(i) for i in neuron_ids), n_tokens, ablation).checked())


@st.cache_data(show_spinner=False, max_entries=256)
def activity_for(run: str, text: str, k_each: int):
    """Independent of what is switched off, so a toggle does not recompute it."""
    sets = {r: store.top_neurons(r, ident_lang, k_each) for r in store.relations}
    return relation_activity(hooks, lm.tokenizer, text, sets, m.options.get("pooling", "mean"))


def next_token_chart(table) -> alt.Chart:
    long = table.melt(id_vars=["rank", "token", "token_id"], value_vars=["baseline", "ablated"], var_name="side",
                      value_name="probability")
    changed = f"neurons {ablation.effect}"
    long["side"] = long.side.map({"baseline": "baseline", "ablated": changed})
    sides = ["baseline", changed]
    order = list(dict.fromkeys(table.token))
    return alt.Chart(long).mark_bar().encode(
        x=alt.X("probability:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")),
        y=alt.Y("token:N", sort=order, title=None, axis=label_axis()),
        yOffset=alt.YOffset("side:N", sort=sides),
        color=alt.Color("side:N", sort=sides, title=None, legend=alt.Legend(orient="top"),
                        scale=alt.Scale(domain=sides, range=[CONDITION_COLORS["baseline"], CONDITION_COLORS["ablated"]])),
        tooltip=["rank", "token", "token_id", "side", alt.Tooltip("probability:Q", format=".4f")],
    ).properties(height=row_step())


def readout_section(text: str):
    base = baseline_for(run_name, text, int(new_tokens))
    ablated = (ablated_for(run_name, text, int(new_tokens), chosen_ids, ablation.mode, ablation.factor)
               if chosen_ids else base)
    left, right = st.columns(2)
    with left:
        st.subheader(f"Next token: top {TOP_TOKENS}")
        by_base = compare_next_tokens(base, ablated, lm.tokenizer, "baseline")
        st.altair_chart(next_token_chart(by_base), width="stretch")
        st.caption(f"The baseline's {TOP_TOKENS} most likely next tokens, each with its probability with the "
                   f"neurons {ablation.effect}.")
        st.markdown(f"**With the neurons {ablation.effect}: top {TOP_TOKENS}**")
        st.dataframe(compare_next_tokens(base, ablated, lm.tokenizer, "ablated"), hide_index=True,
                     column_config={c: st.column_config.NumberColumn(c, format="%.4f")
                                    for c in ("baseline", "ablated", "change")})
    with right:
        st.subheader(f"Greedy continuation (≤ {int(new_tokens)} tokens)")
        st.markdown("**Baseline answer**")
        st.code(base.continuation or "(end of text)", language=None, wrap_lines=True)
        st.markdown(f"**Answer with the neurons {ablation.effect}**")
        st.code(ablated.continuation or "(end of text)", language=None, wrap_lines=True)
        tokens = continuation_table(base, ablated, lm.tokenizer)
        changed = int(tokens.changed.sum())
        first = tokens.position[tokens.changed].min() if changed else None
        st.caption(f"{changed} of {len(tokens)} positions differ" + (f"; the first at position {first}." if changed
                                                                     else "."))
        st.dataframe(tokens, hide_index=True)


def activity_section(text: str):
    st.subheader("This prompt's activity on each relation's top-k neurons")
    st.caption("Scaled per neuron: 0 = the identification negatives' mean, 1 = the positives' mean; averaged over "
               f"each relation's top-{int(k):,} ({ident_lang}).")
    act = activity_for(run_name, text, int(k))
    chart = alt.Chart(act).mark_bar().encode(
        x=alt.X("activity:Q"), y=alt.Y("relation:N", sort="-x", title=None, axis=label_axis()),
        tooltip=["relation", alt.Tooltip("activity:Q", format=".2f"), "neurons"]).properties(height=row_step())
    st.altair_chart(chart, width="stretch")


try:
    fitted = fit_prompt(lm.tokenizer, lm.config, prompt, int(new_tokens))
except LabInputError as exc:
    st.info(str(exc))
else:
    for cut in fitted.notices:
        notice(cut, "info", icon=":material/content_cut:")
    guarded(lambda: readout_section(fitted.text))
    guarded(lambda: activity_section(fitted.text))
copy_link()
