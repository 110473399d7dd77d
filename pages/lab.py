"""Lab: type a prompt, switch relation neurons off, compare next tokens and the greedy continuation."""
import altair as alt
import pandas as pd
import streamlit as st

from core.adapters import neuron_space_for
from core.hooks import neuron_hooks
from core.lab import (MAX_ABLATED, MAX_NEW_TOKENS, MAX_PROMPT_CHARS, LabInputError, compare_next_tokens,
                      read_prompt, read_prompt_ablated, relation_activity, token_changes)
from core.share_state import (Parsed, encode_list, format_neuron, parse_neuron, pick_int, pick_many, pick_neurons,
                              pick_prompt, prompt_params)
from pages.common import (SNAPSHOT_DIR, start_page, copy_link, guarded, params, run_model, set_params, show_notices)

run_name, store = start_page("Ablation lab")
m = store.manifest
lm = run_model(store)
if lm is None:
    st.stop()
space = neuron_space_for(lm.config, m.neurons["definition"])
if space.total != store.total_neurons:
    st.error(f"The model at {m.model['source']} has {space.total:,} neurons but the run was made for "
             f"{store.total_neurons:,}: the model does not match the run. Rerun precompute for this model.")
    st.stop()
hooks = neuron_hooks(lm.model, space)
ident_lang = m.options.get("identification_language", "en")
examples = store.query("SELECT text FROM baseline WHERE split = 'evaluation' AND template_kind = 'train' "
                       "AND language = ? ORDER BY prompt_id LIMIT 200", [ident_lang]).text.tolist() \
    if store.available("baseline") else []
default_prompt = examples[0] if examples else "The father of"

p, parsed = params(), Parsed()
prompt0 = pick_prompt(p, SNAPSHOT_DIR, default_prompt, parsed)
rels0 = pick_many(p, "off", store.relations, [], parsed, "relation")
k0 = pick_int(p, "k", 1, min(store.total_neurons, MAX_ABLATED), min(m.k, MAX_ABLATED), parsed, "k")
extra0 = pick_neurons(p, "add", space, parsed)
minus0 = pick_neurons(p, "remove", space, parsed)
tokens0 = pick_int(p, "tokens", 1, MAX_NEW_TOKENS, MAX_NEW_TOKENS, parsed, "new tokens")
show_notices(parsed)

if examples:
    pick = st.selectbox("Pick an evaluation prompt (or type your own below)", ["—"] + examples[:200], index=0)
    if pick != "—" and st.session_state.get("lab_last_pick") != pick:
        st.session_state["lab_last_pick"] = pick
        st.session_state["lab_prompt"] = pick
if "lab_prompt" not in st.session_state:
    st.session_state["lab_prompt"] = prompt0
prompt = st.text_area(f"Prompt (up to {MAX_PROMPT_CHARS:,} characters)", key="lab_prompt", max_chars=MAX_PROMPT_CHARS,
                      height=80)
c1, c2, c3 = st.columns([4, 2, 2])
rels = c1.multiselect("Switch off the top-k neurons of", store.relations, default=rels0)
k = c2.number_input(f"k per relation (≤ {min(store.total_neurons, MAX_ABLATED):,})", 1,
                    min(store.total_neurons, MAX_ABLATED), k0, step=1)
new_tokens = c3.number_input(f"New tokens (≤ {MAX_NEW_TOKENS})", 1, MAX_NEW_TOKENS, tokens0, step=1)
c4, c5 = st.columns(2)
add_text = c4.text_input("Also switch off (layer.module.index, comma-separated)",
                         value=", ".join(format_neuron(n) for n in extra0), max_chars=2000)
remove_text = c5.text_input("Keep on (remove from the set)", value=", ".join(format_neuron(n) for n in minus0),
                            max_chars=2000)


def parse_list(text: str) -> list:
    out = []
    for item in [t for t in text.split(",") if t.strip()][:64]:
        try:
            out.append(parse_neuron(item, space))
        except ValueError as exc:
            st.warning(str(exc))
    return list(dict.fromkeys(out))


extra, minus = parse_list(add_text), parse_list(remove_text)
tops = {r: store.top_neurons(r, ident_lang, int(k)) for r in rels} if rels else {}
chosen_ids = {int(i) for t in tops.values() for i in t.neuron}
chosen_ids |= {space.flat_id(n) for n in extra}
chosen_ids -= {space.flat_id(n) for n in minus}
neurons = [space.neuron(i) for i in sorted(chosen_ids)]
set_params({"off": encode_list(rels) or None, "k": k, "tokens": new_tokens, "prompt": None, "snap": None,
            "add": encode_list(format_neuron(n) for n in extra) or None,
            "remove": encode_list(format_neuron(n) for n in minus) or None})
try:
    set_params(prompt_params(prompt, SNAPSHOT_DIR))
except OSError as exc:
    st.warning(f"This prompt could not be saved for the link ({exc}); the link will not carry it.")
st.caption(f"{len(neurons):,} neurons off ({len(neurons) / space.total:.2%} of {space.total:,}). "
           f"Limits: {MAX_PROMPT_CHARS:,} characters, {MAX_NEW_TOKENS} new tokens, {MAX_ABLATED:,} neurons.")


@st.cache_data(show_spinner=False, max_entries=256)
def baseline_for(run: str, text: str, n_tokens: int):
    return read_prompt(lm, text, new_tokens=n_tokens)


def readout_section():
    try:
        base = baseline_for(run_name, prompt, int(new_tokens))
        ablated = read_prompt_ablated(lm, hooks, prompt, neurons, new_tokens=int(new_tokens)) if neurons else base
    except LabInputError as exc:
        st.info(str(exc))
        return
    table = compare_next_tokens(base, ablated, lm.tokenizer)
    long = table.melt(id_vars=["token_id", "token"], value_vars=["baseline", "ablated"], var_name="side",
                      value_name="probability").dropna()
    long["label"] = long.token.map(repr)
    left, right = st.columns(2)
    with left:
        st.subheader("Next token: top 10")
        chart = alt.Chart(long).mark_bar().encode(
            x=alt.X("probability:Q", scale=alt.Scale(domain=[0, 1])), y=alt.Y("label:N", sort="-x", title=None),
            color=alt.Color("side:N", sort=["baseline", "ablated"]), yOffset=alt.YOffset("side:N", sort=["baseline", "ablated"]),
            tooltip=["side", "token", "token_id", alt.Tooltip("probability:Q", format=".4f")])
        st.altair_chart(chart, width="stretch")
        st.dataframe(table, hide_index=True)
    with right:
        st.subheader(f"Greedy continuation (≤ {int(new_tokens)} tokens)")
        st.markdown("**Baseline**")
        st.code(prompt + base.continuation, language=None, wrap_lines=True)
        st.markdown("**With the neurons off**")
        st.code(prompt + ablated.continuation, language=None, wrap_lines=True)
        changed = token_changes(base.continuation_ids, ablated.continuation_ids)
        tokens = pd.DataFrame({
            "position": range(1, max(len(base.continuation_ids), len(ablated.continuation_ids)) + 1)})
        tokens["baseline_id"] = pd.Series(base.continuation_ids, dtype="Int64")
        tokens["ablated_id"] = pd.Series(ablated.continuation_ids, dtype="Int64")
        tokens["changed"] = [bool(c) for c in changed] + [True] * (len(tokens) - len(changed))
        st.dataframe(tokens, hide_index=True)
        st.caption(f"{sum(tokens.changed)} of {len(tokens)} positions differ by token id.")


def activity_section():
    st.subheader("This prompt's activity on each relation's top-k neurons")
    st.caption("Scaled per neuron: 0 = the identification negatives' mean, 1 = the positives' mean; averaged over "
               f"each relation's top-{int(k):,} ({ident_lang}).")
    try:
        sets = {r: store.top_neurons(r, ident_lang, int(k)) for r in store.relations}
        act = relation_activity(hooks, lm.tokenizer, prompt, sets, m.options.get("pooling", "mean"))
    except LabInputError as exc:
        st.info(str(exc))
        return
    chart = alt.Chart(act).mark_bar().encode(
        x=alt.X("activity:Q"), y=alt.Y("relation:N", sort="-x", title=None),
        tooltip=["relation", alt.Tooltip("activity:Q", format=".2f"), "neurons"])
    st.altair_chart(chart, width="stretch")


guarded(readout_section)
guarded(activity_section)
copy_link()
