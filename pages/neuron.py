"""Neuron: one neuron's average precision for every relation and language, its activation on the positives and
negatives behind that AP, where it fires most, and what it costs each relation switched off alone (the run's
single-neuron screen)."""
import altair as alt
import pandas as pd
import streamlit as st

from core.manifest import neuron_space
from core.share_state import format_neuron, parse_neuron, pick_one
from ui.charts import CONDITION_COLORS, RANDOM_SET_MARKS, ROW_STEP, label_axis, row_step
from ui.output import copy_link, download, guarded, notice
from ui.run import run_model, start_page
from ui.state import ViewState
from ui.statistics import CRITICAL_HERE

run_name, store = start_page("Neuron inspector")
m = store.manifest
space = neuron_space(m)
state = ViewState("neuron")
p, parsed = state.url, state.parsed
ident_lang = m.options.get("identification_language", "en")
default = "0"
try:
    top = store.top_neurons(store.relations[0], ident_lang, 1)
    default = str(int(top.neuron.iloc[0])) if len(top) else "0"
except Exception:  # a missing scores table is reported below
    pass
raw = p.get("neuron") or default
try:
    neuron = parse_neuron(raw, space)
except ValueError as exc:
    parsed.note(f"{exc}; showing neuron {format_neuron(space.neuron(int(default)))}.")
    neuron = space.neuron(int(default))
lang0 = pick_one(p, "lang", store.languages, ident_lang if ident_lang in store.languages else store.languages[0],
                 parsed, "language")
state.show_notices()

c1, c2 = st.columns([3, 2])
text = c1.text_input("Neuron (layer.module.index or flat id)", max_chars=64,
                     key=state.bind("neuron", format_neuron(neuron)))
try:
    neuron = parse_neuron(text, space)
except ValueError as exc:
    notice(f"{exc}; still showing {format_neuron(neuron)}.")
lang = c2.selectbox("Language of the top prompts", store.languages,
                    key=state.bind("lang", lang0, store.languages.__contains__))
state.publish(dict(neuron=format_neuron(neuron), lang=lang))
flat = space.flat_id(neuron)
st.caption(f"Neuron **{neuron}**, flat id {flat:,} of {space.total:,} ({m.neurons['definition']} definition).")


TABLE_ROW_PX = 35  # st.dataframe's row height: every relation in view, no inner scroll
# What the single-neuron screen found for a relation, and its bar's colour.
ALONE_STATUS = {"critical": RANDOM_SET_MARKS[CRITICAL_HERE][0], "evaluated exactly, not critical": "#ff7f0e",
                "screen only": CONDITION_COLORS["random"]}


def critical_badge():
    """First on the page: a neuron that alone breaks a relation changes how every other figure here reads."""
    if not store.available("single_neuron"):
        return
    alone = store.single_neuron_effects(flat)
    critical = alone[alone.critical]
    if len(critical):
        notice("Critical neuron: switched off alone, it costs " + "; ".join(
            f"{r.relation} {r.drop_points:.1f} points ({r.base_accuracy:.1%} to {r.accuracy:.1%} on {r.prompts} "
            f"prompts, {r.language})" for r in critical.itertuples()) + ".", "warning", icon=":material/bolt:")


def alone_section():
    st.subheader("Switched off alone")
    if not store.available("single_neuron"):
        st.caption("This run has no single-neuron screen (made with --no-critical, or before the screen existed).")
        return
    alone = store.single_neuron_effects(flat)
    if alone.empty:
        st.caption(f"This neuron was not in the run's single-neuron screen: a model of more than "
                   f"{m.options.get('critical_neurons', 0):,} neurons screens every relation's top-k and a uniform "
                   "sample of the rest.")
        return
    st.caption(f"The screen switches the neuron off alone on {int(alone.sample_prompts.max())} correctly answered "
               f"evaluation prompts per relation ({', '.join(sorted(set(alone.language)))}, trained templates); a "
               "relation where it flips a first token, or lowers the gold first token's log-probability by 0.5 nats "
               "on average, is evaluated exactly on all its prompts. Critical: the exact drop is at least "
               f"{store.critical_threshold:g} accuracy points.")
    alone = alone.assign(status=[
        "critical" if c else "evaluated exactly, not critical" if n > 0 else "screen only"
        for c, n in zip(alone.critical, alone.prompts)])
    statuses = [s for s in ALONE_STATUS if s in set(alone.status)]
    chart = alt.Chart(alone).mark_bar().encode(
        y=alt.Y("relation:N", title=None, axis=label_axis()),
        x=alt.X("sample_first_lp_drop:Q", title="gold first-token log-prob drop on the screen's prompts (nats)",
                scale=alt.Scale(nice=False)),  # a "nice" domain stretches to -0.4 for a drop of -0.000001
        color=alt.Color("status:N", title=None, sort=statuses, legend=alt.Legend(orient="top", labelLimit=0),
                        scale=alt.Scale(domain=statuses, range=[ALONE_STATUS[s] for s in statuses])),
        tooltip=["relation", "language", "status",
                 alt.Tooltip("sample_broken:Q", title="screen: first tokens flipped"),
                 alt.Tooltip("sample_prompts:Q", title="screen: prompts"),
                 alt.Tooltip("sample_first_lp_drop:Q", format=".3f", title="screen: first-token log-prob drop"),
                 alt.Tooltip("drop_points:Q", format=".1f", title="exact accuracy drop (points)"),
                 alt.Tooltip("prompts:Q", title="exact: prompts")],
    ).properties(height=row_step())
    st.altair_chart(chart, width="stretch")
    evaluated = alone.prompts > 0
    table = pd.DataFrame({
        "relation": alone.relation,
        "critical": alone.critical,
        "flipped": [f"{b} of {n}" for b, n in zip(alone.sample_broken, alone.sample_prompts)],
        "log-prob drop": alone.sample_first_lp_drop,
        "exact drop": [f"{d:.1f}" if e else "not evaluated" for d, e in zip(alone.drop_points, evaluated)],
        "exact accuracy": [f"{b:.1%} → {a:.1%}" if e else "" for b, a, e in zip(alone.base_accuracy, alone.accuracy,
                                                                                evaluated)],
        "prompts": [str(n) if e else "" for n, e in zip(alone.prompts, evaluated)],
    })
    st.dataframe(table, hide_index=True, height=TABLE_ROW_PX * (len(table) + 1) + 3, column_config={
        "relation": st.column_config.TextColumn(pinned=True),
        "flipped": st.column_config.TextColumn(help="Screen: sampled prompts whose first answer token changes"),
        "log-prob drop": st.column_config.NumberColumn(
            format="%.4f", help="Screen: mean drop of the gold first token's log-probability, in nats"),
        "exact drop": st.column_config.TextColumn(
            help="Accuracy points lost on all the relation's evaluation prompts (only where the screen saw an effect)"),
        "exact accuracy": st.column_config.TextColumn(help="Accuracy before → with this neuron off"),
        "prompts": st.column_config.TextColumn(help="Prompts of the exact evaluation")})
    download(alone.drop(columns="status"), f"{run_name}-neuron-{flat}-alone", "alone")


PROMOTED_TOP = 15
PROMOTION_COLORS = {"promoted": "#2ca02c", "suppressed": "#d62728"}


def promotion_section():
    st.subheader("What it promotes")
    from core.value_vectors import promotion_applies

    reason = promotion_applies(space, neuron)
    if reason is not None:
        st.caption(reason)
        return
    st.caption("The neuron's value vector (its column of the down projection, which the FFN adds to the residual "
               "stream scaled by the neuron's activation) read through the final norm's scale and the unembedding, "
               "as LM-Debugger does: the tokens it pushes up and down when it fires positively (a negative "
               "activation swaps the two lists). A direction in isolation, not the model's output for any prompt.")
    served = run_model(store)
    if served is None:
        return
    view = served.promoted(space, neuron, PROMOTED_TOP)
    rows = pd.DataFrame([dict(direction=direction, token=repr(t.text), token_id=t.token_id, logit=t.logit,
                              label=f"{t.text!r} ({t.token_id})")
                         for direction, tokens in (("promoted", view.promoted), ("suppressed", view.suppressed))
                         for t in tokens])
    cols = st.columns(2)
    for col, direction in zip(cols, PROMOTION_COLORS):
        part = rows[rows.direction == direction]
        col.altair_chart(alt.Chart(part).mark_bar(color=PROMOTION_COLORS[direction]).encode(
            y=alt.Y("label:N", sort=None, title=f"{direction} tokens", axis=label_axis()),
            x=alt.X("logit:Q", title="logit of the value vector"),
            tooltip=["token", "token_id", alt.Tooltip("logit:Q", format=".3f")],
        ).properties(height=row_step()), width="stretch")
    download(rows.drop(columns="label"), f"{run_name}-neuron-{flat}-promoted", "promoted")


def critical_list_section():
    if not store.available("single_neuron"):
        return
    critical = store.critical_neurons()
    with st.expander(f"Every critical neuron of this run ({critical.neuron.nunique()})", icon=":material/bolt:"):
        if critical.empty:
            st.caption(f"No single neuron costs any relation {store.critical_threshold:g} points or more.")
            return
        st.dataframe(critical.assign(page=[f"./neuron?run={run_name}&neuron={r.layer}.{r.module}.{r['index']}"
                                           for _, r in critical.iterrows()]),
                     hide_index=True, column_config={
                         "page": st.column_config.LinkColumn("neuron page", display_text="open"),
                         "base_accuracy": st.column_config.NumberColumn("baseline", format="percent"),
                         "accuracy": st.column_config.NumberColumn("accuracy alone off", format="percent"),
                         "drop_points": st.column_config.NumberColumn("drop (points)", format="%.1f")})


@st.cache_data(show_spinner=False, max_entries=64)
def profile_for(run: str, neuron: int) -> pd.DataFrame:
    """Read once for the AP heatmap and the activation boxes, and not again when only the language changes."""
    return store.neuron_profile(neuron)


def profile_section():
    prof = profile_for(run_name, flat)
    st.subheader("Average precision per relation and language")
    chart = alt.Chart(prof).mark_rect().encode(
        x=alt.X("language:N", axis=label_axis()), y=alt.Y("relation:N", title=None, axis=label_axis()),
        color=alt.Color("ap:Q", title="AP", scale=alt.Scale(domain=[0, 1], scheme="purples")),
        tooltip=["relation", "language", alt.Tooltip("ap:Q", format=".3f"), "rank",
                 alt.Tooltip("mean_pos:Q", format=".3f", title="mean on positives"),
                 alt.Tooltip("median_pos:Q", format=".3f", title="median on positives"),
                 alt.Tooltip("mean_neg:Q", format=".3f", title="mean on negatives")],
    ).properties(height=row_step())
    st.altair_chart(chart, width="stretch")
    st.dataframe(prof, hide_index=True)
    download(prof, f"{run_name}-neuron-{flat}", "profile")


SIDE_COLORS = {"positive": "#e45756", "negative": "#4c78a8"}  # the relation's prompts; other relations' prompts


def distribution_section():
    st.subheader(f"Activation on positives and negatives ({lang})")
    from core.distributions import DISTRIBUTION_SAMPLE, SIDES, activation_boxes

    if not store.available("distributions"):
        st.caption("This run predates the activation-distributions table. To add it, run `python -m precompute run` "
                   "again with this run's options (manifest.json, \"options\") and `--out` set to this run's folder: "
                   "the finished stages are skipped, the activations are captured again, and only the new table "
                   "(distributions/) is written.")
        return
    boxes = activation_boxes(store.activation_quantiles(flat), profile_for(run_name, flat), lang)
    if boxes.empty:
        st.caption(f"Activation distributions are stored for every neuron ranked in the top {store.top_limit:,} "
                   "(the run's largest k) of some relation in some language, and for a uniform sample of "
                   f"{DISTRIBUTION_SAMPLE} other neurons; {neuron} is neither.")
        return
    st.caption(f"The neuron's {m.options.get('pooling', 'mean')}-pooled activation on each relation's "
               f"identification prompts in {lang}: positives (the relation's correctly answered prompts) and "
               f"negatives ({m.options.get('negatives_ratio', 4):g} times as many prompts of other relations, the "
               "ones its AP was scored against). Box: 25th to 75th percentile; black line: median; whiskers: 5th to 95th "
               "percentile (the minimum and maximum are in the tooltip). The boxes are drawn from quantiles stored "
               "by precompute (numpy.quantile, linear), not from the prompts; AP is high where the positives' box "
               "sits right of the negatives'"
               + (" (left, for a neuron of sign -1: this run also ranks neurons that are lower on a relation)"
                  if m.options.get("direction") == "either" else "") + "."
               + (" This neuron is in no top-k set: it is one of the run's uniform sample of other neurons."
                  if boxes.sampled.any() else ""))
    color = alt.Color("side:N", title=None, sort=list(SIDES), legend=alt.Legend(orient="top"),
                      scale=alt.Scale(domain=list(SIDES), range=[SIDE_COLORS[s] for s in SIDES]))
    base = alt.Chart(boxes).encode(
        y=alt.Y("relation:N", title=None, axis=label_axis()),
        yOffset=alt.YOffset("side:N", sort=list(SIDES)),
        tooltip=["relation", "side", alt.Tooltip("n:Q", title="prompts"),
                 alt.Tooltip("ap:Q", format=".3f", title=f"AP ({lang})"), alt.Tooltip("rank:Q", title="rank"),
                 alt.Tooltip("mean:Q", format=".4f"), alt.Tooltip("q00:Q", format=".4f", title="min"),
                 *(alt.Tooltip(f"{q}:Q", format=".4f", title=f"{int(q[1:])}th percentile")
                   for q in ("q05", "q25", "q50", "q75", "q95")),
                 alt.Tooltip("q100:Q", format=".4f", title="max")])
    chart = alt.layer(
        base.mark_rule().encode(x=alt.X("q05:Q", title="pooled activation", scale=alt.Scale(zero=False)), x2="q95:Q",
                                color=color),
        base.mark_bar().encode(x="q25:Q", x2="q75:Q", color=color),
        # the median: a bar of no width whose black outline spans the box's height
        base.mark_bar(stroke="black", strokeWidth=2, fillOpacity=0).encode(x="q50:Q", x2="q50:Q"),
    ).properties(height=alt.Step(ROW_STEP))
    st.altair_chart(chart, width="stretch")
    download(boxes, f"{run_name}-neuron-{flat}-activations-{lang}", "activations")


def prompts_section():
    st.subheader(f"Identification prompts ({lang}) where it is highest")
    tops = store.neuron_top_prompts(flat, lang)
    st.dataframe(tops, hide_index=True)
    download(tops, f"{run_name}-neuron-{flat}-top-prompts-{lang}", "tops")


guarded(critical_badge)
guarded(profile_section)
guarded(distribution_section)
guarded(alone_section)
guarded(promotion_section)
guarded(prompts_section)
guarded(critical_list_section)
copy_link()
