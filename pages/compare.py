"""Compare: the sidebar's run beside a second run. Same model: how far their top-k sets agree per relation and how
their effects differ; different models: their effect tables side by side."""
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from core.compare import (ZERO, compare_effects, compare_overlap, default_k, describe_pair, effect_ks, pair_runs,
                          pick_second_run, second_run_choices)
from core.manifest import ManifestError
from core.runs import discover_runs, runs_dir
from core.share_state import pick_int, pick_one
from core.text import escape_markdown
from ui.charts import label_axis, row_step
from ui.output import copy_link, download, guarded, notice
from ui.run import start_page, store_for
from ui.state import ViewState
from ui.statistics import p_text, value_interval

TABLE_ROW_PX = 35  # st.dataframe's row height
RUN_COLORS = ["#4c78a8", "#f58518"]  # the sidebar's run, the second run: the same two colours in every chart

run_name, store = start_page("Compare two runs")
m = store.manifest
state = ViewState("compare")
p, parsed = state.url, state.parsed
notices = st.container()  # the link's notices, above the controls, once every control has read the link
directory = Path(runs_dir(st.session_state.get("runs_dir_override")))
runs = discover_runs(directory)
others = second_run_choices(list(runs), run_name)
if not others:
    notice(f"Only one run ({run_name}) was found under {directory}. Put a second run beside it (python -m "
           f"precompute run ... --out {directory}/NAME) to compare the two.", "info", icon=":material/compare_arrows:")
    st.stop()
vs0 = pick_second_run(p, run_name, list(runs), parsed)

c1, c2, c3 = st.columns([3, 2, 3])
vs = c1.selectbox("Second run", others, key=state.bind("vs", vs0, others.__contains__),
                  help=f"Any other run found under {directory}. The first run is the sidebar's.")
try:
    other = store_for(str(runs[vs].path))
except ManifestError as exc:
    with notices:
        state.show_notices()
    notice(f"The run {vs} cannot be opened: {exc}", "error")
    st.stop()
mb = other.manifest
pairing = pair_runs(m, mb)
ident_lang = m.options.get("identification_language", "en")
languages = list(pairing.languages)
lang0 = pick_one(p, "lang", languages, ident_lang if ident_lang in languages else (languages or [ident_lang])[0],
                 parsed, "language") if languages else None
k0 = pick_int(p, "k", 1, pairing.k_limit, default_k(m, pairing), parsed, "k") if pairing.comparable else None
ablations_a, ablations_b = store.ablations(), other.ablations()
with_modes = len(ablations_a) > 1 or len(ablations_b) > 1  # a run holds effects of another ablation than zero
abl0 = pick_one(p, "abl", ablations_a, ZERO, parsed, "ablation") if with_modes else ZERO
vs_abl0 = pick_one(p, "vs_abl", ablations_b, ZERO, parsed, "ablation of the second run") if with_modes else ZERO
with notices:
    state.show_notices()

lang = None
if languages:
    lang = c2.selectbox("Language", languages, key=state.bind("lang", lang0, languages.__contains__),
                        help="Languages both runs have.")
k = None
if pairing.comparable:
    precomputed = ", ".join(f"{v:,}" for v in pairing.k_values) or "none in common"
    k = c3.number_input(f"k (top neurons per set, 1–{pairing.k_limit:,})", 1, pairing.k_limit, step=1,
                        key=state.bind("k", k0, lambda v: isinstance(v, int) and 1 <= v <= pairing.k_limit),
                        help=f"Any k up to the largest rank both runs store. Effects exist at the k values both "
                             f"runs precomputed ({precomputed}); elsewhere the nearest of them is shown.")
abl = vs_abl = ZERO
if with_modes:
    d1, d2, _ = st.columns([3, 3, 2])
    help_text = ("Zero is the paper's (every k of the sweep); another ablation a run holds was evaluated at its "
                 "main k only.")
    abl = d1.selectbox(f"Ablation in {run_name}", ablations_a, help=help_text,
                       key=state.bind("abl", abl0, ablations_a.__contains__))
    vs_abl = d2.selectbox(f"Ablation in {vs}", ablations_b, help=help_text,
                          key=state.bind("vs_abl", vs_abl0, ablations_b.__contains__))
state.publish({"vs": vs, **({"lang": lang} if lang else {}), **({"k": k} if k is not None else {}),
               "abl": None if abl == ZERO else abl, "vs_abl": None if vs_abl == ZERO else vs_abl})


def run_label(name: str, manifest) -> str:
    return f"{name} ({manifest.model['source']})"


LABEL_A, LABEL_B = run_label(run_name, m), run_label(vs, mb)
RUNS_ORDER = [LABEL_A, LABEL_B] if LABEL_A != LABEL_B else [LABEL_A, f"{LABEL_B} [second]"]


def relation_pair_header() -> None:
    """What the two runs are and how they relate."""
    if pairing.same_model:
        changed = "; ".join(f"{d.setting} ({d.a} → {d.b})" for d in pairing.differences)
        st.success(escape_markdown(
            f"Same model ({m.model['source']}, fingerprint {str(m.model['fingerprint'])[:12]}…): "
            + (f"the runs differ in {changed}." if changed else "the runs' recorded options are identical.")),
            icon=":material/join_inner:")
    else:
        st.info(escape_markdown(
            f"Different models: {run_name} is {m.model['source']} (fingerprint {str(m.model['fingerprint'])[:12]}…), "
            f"{vs} is {mb.model['source']} (fingerprint {str(mb.model['fingerprint'])[:12]}…). Their neurons are "
            "not the same neurons, so only their effect tables are compared, side by side."),
            icon=":material/compare_arrows:")
    with st.expander("The two runs' manifests", expanded=False):
        st.dataframe(describe_pair(run_name, m, vs, mb), hide_index=True)


@st.cache_data(show_spinner="Summarising each run's effects…", max_entries=32)
def effects_for(run_a: str, run_b: str, k_a: int, k_b: int, lang_a: str, lang_b: str, abl_a: str, abl_b: str):
    return compare_effects(store_for(run_a), store_for(run_b), k_a, k_b, lang_a, lang_b, abl_a, abl_b)


@st.cache_data(show_spinner="Intersecting the two runs' top-k sets…", max_entries=64)
def overlap_for(run_a: str, run_b: str, _pairing, k_value: int, language: str):
    """`_pairing` follows from the two runs (not hashed)."""
    return compare_overlap(store_for(run_a), store_for(run_b), _pairing, k_value, language)


def overlap_section() -> None:
    result = overlap_for(str(store.run_dir), str(other.run_dir), pairing, int(k), lang)
    st.subheader(f"Top-{int(k):,} agreement per relation ({lang})")
    if result.by_position:
        st.warning(escape_markdown(
            f"The runs number their neurons in different spaces ({m.neurons['definition']} vs "
            f"{mb.neurons['definition']} neurons): flat ids are not comparable, so the sets are compared by (layer, "
            f"module, index) inside the modules both have ({', '.join(pairing.common_modules)}; left out: "
            f"{', '.join(pairing.skipped_modules) or 'none'}). |A| and |B| count each top-{int(k):,} set's members "
            "inside those modules."), icon=":material/swap_horiz:")
    table = result.table
    if table.empty:
        st.info("The runs have no relation in common.")
        return
    drawn = table.assign(p_text=table.p_more.map(p_text))
    x_max = float(max(drawn[["size_a", "size_b"]].max().max(), 1))
    y = alt.Y("relation:N", title=None, sort=list(drawn.relation), axis=label_axis())
    tooltip = [alt.Tooltip("relation:N"), alt.Tooltip("shared:Q", title="shared neurons"),
               alt.Tooltip("size_a:Q", title=f"|A| ({run_name})"), alt.Tooltip("size_b:Q", title=f"|B| ({vs})"),
               alt.Tooltip("jaccard:Q", format=".3f", title="Jaccard"),
               alt.Tooltip("expected:Q", format=".2f", title="random sets share (expected)"),
               alt.Tooltip("ratio:Q", format=".1f", title="shared ÷ expected"),
               alt.Tooltip("p_text:N", title="hypergeometric p (shared or more)")]
    bars = alt.Chart(drawn).mark_bar(color=RUN_COLORS[0]).encode(
        x=alt.X("shared:Q", title=f"shared neurons of the two top-{int(k):,} sets", scale=alt.Scale(domain=[0, x_max])),
        y=y, tooltip=tooltip)
    chance = alt.Chart(drawn).mark_tick(color="black", thickness=3, size=20).encode(
        x=alt.X("expected:Q"), y=y, tooltip=tooltip)
    labels = alt.Chart(drawn).mark_text(align="left", dx=4, fontSize=12).encode(
        x="shared:Q", y=y, text=alt.Text("jaccard:Q", format=".2f"), tooltip=tooltip)
    st.altair_chart((bars + chance + labels).properties(height=row_step()), width="stretch")
    st.caption(f"Bars: neurons in both runs' top-{int(k):,} sets (number: Jaccard, shared ÷ union). Black tick: what "
               f"two random sets of those sizes out of N = {result.total:,} neurons share on average, |A|·|B|/N; "
               "p: hypergeometric probability that random sets share at least as many. In the table, chance is "
               "|A|·|B|/N and ÷ chance the shared neurons divided by it.")
    rows = pd.DataFrame({
        "relation": table.relation, f"|A| {run_name}": table.size_a, f"|B| {vs}": table.size_b,
        "shared": table.shared, "Jaccard": table.jaccard.round(3), "chance": table.expected.round(2),
        "÷ chance": table.ratio.round(1), "p (hypergeom.)": table.p_more.map(p_text)})
    st.dataframe(rows, hide_index=True, height=TABLE_ROW_PX * (len(rows) + 1) + 3,
                 column_config={"relation": st.column_config.TextColumn(pinned=True)})
    download(table, f"{run_name}-vs-{vs}-overlap-k{int(k)}-{lang}", "cmp_overlap")


def effects_chart(long: pd.DataFrame) -> alt.LayerChart:
    """Own drop per relation, one bar per run (with its interval where there is one); tooltips carry every
    figure of the row."""
    y = alt.Y("relation:N", title=None, sort=list(dict.fromkeys(long.relation)), axis=label_axis())
    offset = alt.YOffset("run:N", sort=RUNS_ORDER, scale=alt.Scale(domain=RUNS_ORDER))
    color = alt.Color("run:N", sort=RUNS_ORDER, title="run (model)",
                      scale=alt.Scale(domain=RUNS_ORDER, range=RUN_COLORS),
                      legend=alt.Legend(orient="top", labelLimit=0))
    tooltip = [alt.Tooltip("relation:N"), alt.Tooltip("run:N", title="run (model)"),
               alt.Tooltip("k:Q", title="k"),
               alt.Tooltip("baseline:Q", format=".1%", title="baseline accuracy"),
               alt.Tooltip("own_drop:Q", format=".1f", title="own top-k off: drop (points)"),
               alt.Tooltip("own_ci:N", title="own drop 95% CI"),
               alt.Tooltip("others_mean_drop:Q", format=".1f", title="others' mean drop (points)"),
               alt.Tooltip("random_drop:Q", format=".1f", title="random k off: mean drop (points)"),
               alt.Tooltip("own_difference:Q", format="+.1f", title="own drop, second − first")]
    bars = alt.Chart(long).mark_bar().encode(
        x=alt.X("own_drop:Q", title="accuracy drop with the relation's own top-k off (points)"),
        y=y, yOffset=offset, color=color, tooltip=tooltip)
    whiskers = alt.Chart(long.dropna(subset=["own_low", "own_high"])).mark_rule(color="black").encode(
        x="own_low:Q", x2="own_high:Q", y=y, yOffset=offset, tooltip=tooltip)
    random = alt.Chart(long.dropna(subset=["random_drop"])).mark_tick(color="#555555", thickness=2).encode(
        x="random_drop:Q", y=y, yOffset=offset, tooltip=tooltip)
    return alt.layer(bars, whiskers, random).properties(height=alt.Step(14))  # per bar: a relation has two


def effects_long(table: pd.DataFrame, k_a: int, k_b: int) -> pd.DataFrame:
    """The merged effects table as one row per relation and run, for the chart."""
    parts = []
    for suffix, label, k_value in (("_a", RUNS_ORDER[0], k_a), ("_b", RUNS_ORDER[1], k_b)):
        part = table[["relation", "own_difference"]].copy()
        for column in ("baseline", "own_drop", "own_low", "own_high", "others_mean_drop", "random_drop"):
            part[column] = table[column + suffix]
        part["run"], part["k"] = label, k_value
        part["own_ci"] = [value_interval(v, lo, hi) for v, lo, hi in zip(part.own_drop, part.own_low, part.own_high)]
        parts.append(part)
    return pd.concat(parts, ignore_index=True).dropna(subset=["own_drop"])


def ablation_text() -> str:
    return "" if abl == vs_abl == ZERO else f"; ablation: {abl} in {run_name}, {vs_abl} in {vs}"


def effects_section() -> None:
    wanted = int(k) if k is not None else default_k(m, pairing)
    k_a, k_b = effect_ks(wanted, pairing, m, mb, abl, vs_abl)
    if pairing.same_model and k_a is None:
        st.info("The two runs precomputed effects at no k in common, so their effects cannot be set side by side "
                "at one k.")
        return
    if pairing.same_model and k_a == k_b:
        st.subheader(f"Effects: each relation's own top-{k_a:,} off, in both runs ({lang}{ablation_text()})")
    elif pairing.same_model:
        st.subheader(f"Effects: each relation's own top-k off, each run at its main k ({lang}{ablation_text()})")
    else:
        st.subheader(f"Effect tables side by side ({lang or 'each run in its identification language'}; each run "
                     f"at its main k{ablation_text()})")
    if pairing.same_model and (abl != ZERO or vs_abl != ZERO):
        st.caption("An ablation other than zero was evaluated at each run's main k only: the effects are shown there, "
                   "whatever k the top-k sets above use.")
    elif pairing.same_model and k is not None and k_a != wanted:
        st.caption(f"Effects were precomputed at k = {', '.join(f'{v:,}' for v in pairing.k_values)} in both "
                   f"runs: shown at the nearest, k = {k_a:,}.")
    lang_a = lang or ident_lang
    lang_b = lang or mb.options.get("identification_language", "en")
    result = effects_for(str(store.run_dir), str(other.run_dir), k_a, k_b, lang_a, lang_b, abl, vs_abl)
    table = result.table
    if table.empty or table[["own_drop_a", "own_drop_b"]].isna().all().all():
        st.info("Neither run has effects for these settings.")
        return
    st.altair_chart(effects_chart(effects_long(table, k_a, k_b)), width="stretch")
    st.caption(f"{escape_markdown(RUNS_ORDER[0])} at k = {k_a:,} and {escape_markdown(RUNS_ORDER[1])} at k = "
               f"{k_b:,}. Bar: accuracy drop with the "
               "relation's own top-k off (points); black line: its 95% percentile-bootstrap interval over prompts; "
               "grey tick: mean drop with random sets of the same size off.")
    a_tag, b_tag = (f"A {run_name}", f"B {vs}")
    rows = pd.DataFrame({"relation": table.relation})
    for tag, suffix in ((a_tag, "_a"), (b_tag, "_b")):
        rows[f"{tag}: baseline"] = table["baseline" + suffix].map(lambda v: "n/a" if v != v else f"{v:.1%}")
        rows[f"{tag}: own drop [95% CI]"] = [value_interval(v, lo, hi) for v, lo, hi in zip(
            table["own_drop" + suffix], table["own_low" + suffix], table["own_high" + suffix])]
        rows[f"{tag}: others' drop"] = table["others_mean_drop" + suffix].round(1)
        rows[f"{tag}: random drop [95% CI]"] = [value_interval(v, lo, hi) for v, lo, hi in zip(
            table["random_drop" + suffix], table["random_low" + suffix], table["random_high" + suffix])]
    rows["own drop, B − A"] = table.own_difference.round(1)
    # Each figure of the two runs side by side (a 1280 px screen shows the first few columns without scrolling):
    # the same model's own drops and their difference first; different models' tables in their own order.
    if pairing.same_model:
        figures = ["own drop [95% CI]", "random drop [95% CI]", "others' drop", "baseline"]
        order = [f"{a_tag}: {figures[0]}", f"{b_tag}: {figures[0]}", "own drop, B − A",
                 *(f"{tag}: {figure}" for figure in figures[1:] for tag in (a_tag, b_tag))]
    else:
        figures = ["baseline", "own drop [95% CI]", "others' drop", "random drop [95% CI]"]
        order = [*(f"{tag}: {figure}" for figure in figures for tag in (a_tag, b_tag)), "own drop, B − A"]
    rows = rows[["relation", *order]]
    st.markdown(f"**Per relation, drops in accuracy points** — A: {escape_markdown(LABEL_A)}, k = {k_a:,}; "
                f"B: {escape_markdown(LABEL_B)}, k = {k_b:,}")
    st.dataframe(rows, hide_index=True, height=TABLE_ROW_PX * (len(rows) + 1) + 3,
                 column_config={"relation": st.column_config.TextColumn(pinned=True)})
    st.caption("Own drop: accuracy lost with the relation's own top-k off (interval: 95% percentile bootstrap over "
               "prompts); others' drop: mean over the other relations with this relation's top-k off; random drop: "
               "mean over the random sets of the same size (interval: bootstrap over the sets). B − A is the "
               "difference of the two estimates, without an interval of its own (the runs' random sets differ, and "
               "their prompts need not be the same).")
    download(table, f"{run_name}-vs-{vs}-effects-{lang_a}", "cmp_effects")


relation_pair_header()
if not languages:
    st.warning(escape_markdown(f"{run_name} and {vs} have no language in common; "
                               + ("their top-k sets cannot be compared. " if pairing.same_model else "")
                               + "Each run's effects are shown in its own identification language."))
if pairing.same_model and not pairing.comparable:
    st.warning(escape_markdown(
        f"The two runs' neuron definitions ({m.neurons['definition']}, {mb.neurons['definition']}) share no module: "
        "their top-k sets cannot be compared."))
if pairing.comparable and lang:
    guarded(overlap_section)
guarded(effects_section)
copy_link()
