"""Effects: the paper's ablation figures from the precomputed effects."""
import altair as alt
import pandas as pd
import streamlit as st

from core.metrics import (ALPHA, ablation_comparison, critical_members, cross_relation, cumulativity_from_table, inter_relation,
                          intra_relation, multilingual, random_rows, random_seed_accuracies, random_summary,
                          significance, summarise_relations, sweep_curves,
                          sweep_random_seeds)
from core.run_layout import RANDOM, RANDOM_NONCRITICAL
from core.share_state import pick_one, pick_precomputed
from ui.charts import CONDITION_COLORS, CONDITION_NAMES, RANDOM_SET_MARKS, label_axis, row_step
from ui.output import copy_link, download, guarded
from ui.statistics import (UNSCREENED, critical_text, mark_random_sets, p_text,
                           value_interval)
from ui.run import start_page
from ui.state import ViewState

TABS = {"intra": "Intra & inter", "sweep": "Sweep", "cumulativity": "Cumulativity", "multilingual": "Multilingual",
        "heldout": "Held-out templates", "modes": "Ablation modes"}
# The random sets beside the paper's (URL `random`): its uniform draw alone, or also sets without critical neurons.
RANDOM_CHOICES = {"plain": "the paper's uniform draw", "noncritical": "beside it, sets without critical neurons"}
TABLE_ROW_PX = 35  # st.dataframe's row height
FAMILY_CONDITION = {RANDOM: "random", RANDOM_NONCRITICAL: "random_noncritical"}  # a random family's bar

run_name, store = start_page("Effects of switching relation neurons off")
m = store.manifest
sweep = list(m.k_sweep)
state = ViewState("effects")
p, parsed = state.url, state.parsed
k0 = pick_precomputed(p, "k", sweep, m.k, parsed, "k")
lang0 = pick_one(p, "lang", store.languages, "en" if "en" in store.languages else store.languages[0], parsed, "language")
rel0 = pick_one(p, "rel", store.relations, store.relations[0], parsed, "relation")
tab0 = pick_one(p, "tab", list(TABS), "intra", parsed, "tab")
random0 = pick_one(p, "random", list(RANDOM_CHOICES), "plain", parsed, "random sets")
ident_lang = m.options.get("identification_language", "en")
state.show_notices()

c1, c2, c3 = st.columns(3)
k = c1.select_slider("k (precomputed)", options=sweep, key=state.bind("k", k0, sweep.__contains__))
lang = c2.selectbox("Language", store.languages, key=state.bind("lang", lang0, store.languages.__contains__))
rel = c3.selectbox("Relation (for the sweep)", store.relations,
                   key=state.bind("rel", rel0, store.relations.__contains__))
label_to_tab = {label: name for name, label in TABS.items()}
tabs = st.tabs(list(TABS.values()), on_change="rerun",
               key=state.bind("tab", TABS[tab0], label_to_tab.__contains__))
active = label_to_tab.get(st.session_state[state.key("tab")], "intra")
state.publish(dict(k=k, lang=lang, rel=rel, tab=active))


@st.cache_data(show_spinner="Summarising the effects…", max_entries=16)
def table_for(run_path: str, template_kind: str, ablation: str = "zero") -> pd.DataFrame:
    return store.ablation_summary(template_kind, ablation)


@st.cache_data(show_spinner="Testing each relation's top-k against every random set…", max_entries=32)
def relation_statistics(run_path: str, template_kind: str, k: int, lang: str,
                        families: tuple[str, ...]) -> pd.DataFrame:
    """summarise_relations + significance per relation; for a second random family, its spread, interval and
    test in columns prefixed `noncritical_`."""
    table = table_for(run_path, template_kind)
    paired = store.paired_outcomes(k, lang, template_kind)
    out = summarise_relations(table, k, lang).merge(significance(paired, RANDOM), on="relation", how="left")
    if RANDOM_NONCRITICAL in families:
        spread = random_summary(table, k, lang, RANDOM_NONCRITICAL)
        tests = significance(paired, RANDOM_NONCRITICAL)[["relation", "p_worst_seed", "p_holm", "significant"]]
        out = out.merge(spread.merge(tests, on="relation", how="outer").set_index("relation")
                        .add_prefix("noncritical_").reset_index(), on="relation", how="left")
    return out


@st.cache_resource
def statistics_computed() -> set[tuple]:
    """The relation_statistics arguments this server has computed (its cache may have dropped some since: those
    are computed again, only without the early chart)."""
    return set()


@st.cache_data(show_spinner=False, max_entries=16)
def random_set_members(run_path: str, k: int) -> pd.DataFrame | None:
    """The critical neurons inside each random set of size k (family, seed, neuron, breaks, single_drop, ...);
    None when the run has no single-neuron screen or no record of its random sets."""
    if not (store.available("single_neuron") and store.available("random_sets")):
        return None
    return critical_members(store.random_sets(k), store.critical_neurons())


@st.cache_data(show_spinner=False, max_entries=16)
def top_set_members(run_path: str, k: int) -> pd.DataFrame | None:
    """The critical neurons inside each relation's top-k (ablated, neuron, breaks, single_drop, ...); None
    without a single-neuron screen."""
    if not store.available("single_neuron"):
        return None
    sets = pd.concat([store.top_neurons(r, ident_lang, k).assign(ablated=r)[["ablated", "neuron"]]
                      for r in store.relations], ignore_index=True)
    return critical_members(sets, store.critical_neurons())


def chosen_random_families(table: pd.DataFrame) -> list[str]:
    """The random families to draw: the paper's uniform sets and, when chosen and present at this k, beside
    them the sets drawn without critical neurons (a run made with --random-exclude-critical, main k only)."""
    if k not in set(random_rows(table, RANDOM_NONCRITICAL).k):
        if random0 == "noncritical":
            st.caption(f"This run has no random sets drawn without critical neurons at k = {k:,} (they exist only "
                       "in runs made with --random-exclude-critical, at the main k); showing the paper's draw.")
        return [RANDOM]
    choice = st.radio("Random sets", list(RANDOM_CHOICES), format_func=RANDOM_CHOICES.get, horizontal=True,
                      key=state.bind("random", random0, RANDOM_CHOICES.__contains__),
                      help="The paper draws k neurons uniformly from all neurons; such a set can hold a neuron that "
                           "alone breaks a relation. The second family is drawn from the other neurons only.")
    state.publish({"random": None if choice == "plain" else choice})
    return [RANDOM, RANDOM_NONCRITICAL] if choice == "noncritical" else [RANDOM]


def intra_chart(bars: pd.DataFrame, seeds: pd.DataFrame, ranges: pd.DataFrame, conditions: list[str]) -> alt.LayerChart:
    """Grouped bars per relation (original, every random family's mean, own top-k off), every random set as a
    dot marked by whether it holds critical neurons, and each family's range as an error bar.

    `bars`: relation, one column per condition, p_holm (text); `seeds`: mark_random_sets rows with
    condition; `ranges`: relation, condition, low, high."""
    long = bars.melt(id_vars=["relation", "p_holm"], value_vars=conditions, var_name="condition",
                     value_name="accuracy")
    long["condition_name"] = long.condition.map(CONDITION_NAMES)
    long.loc[long.condition != "relation_off", "p_holm"] = ""  # the test compares own top-k with random sets
    names = [CONDITION_NAMES[c] for c in conditions]
    x = alt.X("relation:N", title=None, axis=label_axis(angle=-35))
    offset = alt.XOffset("condition_name:N", sort=names, scale=alt.Scale(domain=names))
    color = alt.Color("condition_name:N", title="condition", sort=names,
                      scale=alt.Scale(domain=names, range=[CONDITION_COLORS[c] for c in conditions]),
                      legend=alt.Legend(orient="top", labelLimit=0))
    y = alt.Y("accuracy:Q", title="accuracy", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%"))
    bars_base = alt.Chart(long).mark_bar().encode(x=x, xOffset=offset, y=y, color=color)
    common = ["relation", alt.Tooltip("condition_name:N", title="condition"), alt.Tooltip("accuracy:Q", format=".1%")]
    other_bars = bars_base.transform_filter("datum.condition != 'relation_off'").encode(tooltip=common)
    own_bars = bars_base.transform_filter("datum.condition == 'relation_off'").encode(
        tooltip=[*common, alt.Tooltip("p_holm:N", title="p (Holm) vs every random set")])
    rule = alt.Chart(ranges.assign(condition_name=ranges.condition.map(CONDITION_NAMES))).mark_rule(
        color="black").encode(
        x=x, xOffset=offset, y=alt.Y("low:Q"), y2="high:Q",
        tooltip=["relation", alt.Tooltip("condition_name:N", title="random sets"),
                 alt.Tooltip("low:Q", format=".1%", title="lowest set"),
                 alt.Tooltip("high:Q", format=".1%", title="highest set")])
    kinds = [kind for kind in RANDOM_SET_MARKS if kind in set(seeds.random_set)]
    # Vega draws in data order: the larger (marked) sets last, so no plain dot hides them.
    seeds = seeds.assign(condition_name=seeds.condition.map(CONDITION_NAMES),
                         dot_size=seeds.random_set.map(lambda kind: RANDOM_SET_MARKS[kind][2]))
    dots = alt.Chart(seeds.sort_values("dot_size", kind="stable")).mark_point(
        filled=True, opacity=0.85).encode(
        x=x, xOffset=offset, y=y,
        color=alt.Color("random_set:N", title="random set", sort=kinds,
                        legend=alt.Legend(orient="bottom", labelLimit=0, direction="horizontal"),
                        scale=alt.Scale(domain=kinds, range=[RANDOM_SET_MARKS[kind][0] for kind in kinds])),
        shape=alt.Shape("random_set:N", title="random set", sort=kinds,
                        legend=alt.Legend(orient="bottom", labelLimit=0, direction="horizontal"),
                        scale=alt.Scale(domain=kinds, range=[RANDOM_SET_MARKS[kind][1] for kind in kinds])),
        size=alt.Size("dot_size:Q", scale=None, legend=None),
        tooltip=["relation", alt.Tooltip("condition_name:N", title="random sets"),
                 alt.Tooltip("seed:Q", title="random seed"), alt.Tooltip("accuracy:Q", format=".1%"),
                 alt.Tooltip("random_set:N", title="this set"),
                 alt.Tooltip("critical_neurons:N", title="critical neurons in it")])
    # The bars share one colour scale (the conditions), the dots another (the kind of set): two legends.
    return alt.layer(alt.layer(other_bars, own_bars), rule, dots).resolve_scale(color="independent",
                                                                              shape="independent")


def intra_block(template_kind: str) -> None:
    """The intra-relation figure with its statistics: bars and every random set, then the per-relation table."""
    table = table_for(str(store.run_dir), template_kind)
    families = chosen_random_families(table)
    conditions = ["original", *(FAMILY_CONDITION[f] for f in families), "relation_off"]
    bars = intra_relation(table, k, lang)
    seeds, ranges = [], []
    for family in families:
        per_family = intra_relation(table, k, lang, family)
        bars[FAMILY_CONDITION[family]] = per_family.set_index("relation").random.reindex(bars.relation).to_numpy()
        ranges.append(per_family[["relation", "random_low", "random_high"]].rename(
            columns={"random_low": "low", "random_high": "high"}).assign(condition=FAMILY_CONDITION[family]))
        seeds.append(random_seed_accuracies(table, k, lang, family).assign(family=family,
                                                                        condition=FAMILY_CONDITION[family]))
    seeds = pd.concat(seeds, ignore_index=True)
    members = random_set_members(str(store.run_dir), k)
    if members is None:
        seeds = seeds.assign(random_set=UNSCREENED, critical_neurons="")
    else:
        seeds = mark_random_sets(seeds, members)
    ranges = pd.concat(ranges, ignore_index=True)
    # The tests behind the own bars' p take a moment the first time a view asks for them: the accuracies are drawn
    # at once, and the same chart again with the p-values. Once computed they are drawn once, with no flicker.
    chart_slot = st.empty()
    key = (str(store.run_dir), template_kind, k, lang, tuple(families))
    if key not in statistics_computed():
        chart_slot.altair_chart(intra_chart(bars.assign(p_holm="being computed"), seeds, ranges, conditions),
                                width="stretch", height=460)
    stats = relation_statistics(*key)
    statistics_computed().add(key)
    bars["p_holm"] = bars.relation.map(dict(zip(stats.relation, stats.p_holm.map(p_text)))).fillna("n/a")
    chart_slot.altair_chart(intra_chart(bars, seeds, ranges, conditions), width="stretch", height=460)
    n_sets = seeds[seeds.family == RANDOM].seed.nunique()
    st.caption(f"Grey bar: mean over {n_sets} random sets of {k:,} neurons"
               + (" (pale grey: the sets drawn without critical neurons)" if RANDOM_NONCRITICAL in families else "")
               + "; each dot is one random set, the black line spans the lowest to the highest. "
               + critical_caption(members))

    st.markdown(f"**Per relation, drops in accuracy points** (baseline − with the neurons off; {lang}, "
                f"{'trained' if template_kind == 'train' else 'held-out'} templates)")
    rows = summary_rows(stats, families)
    # Every relation in view at once (no inner scroll), the relation kept in view when the columns scroll.
    st.dataframe(rows, hide_index=True, height=TABLE_ROW_PX * (len(rows) + 1) + 3,
                 column_config={"relation": st.column_config.TextColumn(pinned=True)})
    n_seeds = int(stats.seeds.max()) if "seeds" in stats and stats.seeds.notna().any() else 0
    st.caption(f"Intervals: own: 95% percentile bootstrap over prompts; random mean: 95% percentile bootstrap over "
               f"the {n_seeds} random sets; p: two-sided exact McNemar test of own top-k against each random set "
               f"on the same prompts, the largest over the sets, Holm-adjusted over relations. Significant: "
               f"p (Holm) < {ALPHA}. Worst random set: the set with the largest drop, and that drop."
               + (" No-critical: the same for random sets drawn only from neurons that are not critical."
                  if RANDOM_NONCRITICAL in families else ""))
    download(stats, f"{run_name}-statistics-{template_kind}-k{k}-{lang}", f"stats_{template_kind}")


def critical_caption(members: pd.DataFrame | None) -> str:
    """Which random sets hold critical neurons, named; or why none are marked."""
    if members is None:
        return ("This run has no single-neuron screen (or no record of its random sets), so sets holding "
                "critical neurons cannot be marked.")
    legend = (f"Large red diamond: the set holds a neuron that alone costs this relation at least "
              f"{store.critical_threshold:g} points (exact evaluation in {ident_lang}); orange triangle: it holds "
              "such neurons of other relations only. ")
    if members.empty:
        return legend + f"None of the random sets at k = {k:,} holds a critical neuron."
    named = critical_text(members, ["family", "seed"])
    return legend + "Random sets holding critical neurons: " + "; ".join(
        f"{CONDITION_NAMES[FAMILY_CONDITION[f]]}, seed {s}: {text}"
        for f, s, text in zip(named.family, named.seed, named.critical_neurons)) + "."


def summary_rows(stats: pd.DataFrame, families: list[str]) -> pd.DataFrame:
    """The statistics table as a reader reads it: each figure with its interval or range, in points."""
    rows = pd.DataFrame({
        "relation": stats.relation,
        "baseline": stats.baseline.map("{:.1%}".format),
        "own top-k off [95% CI]": [value_interval(v, lo, hi) for v, lo, hi in zip(stats.own_drop, stats.own_low,
                                                                                 stats.own_high)],
        "random median [min, max]": [value_interval(v, lo, hi) for v, lo, hi in zip(
            stats.random_median, stats.random_min, stats.random_max)],
        "random mean [95% CI]": [value_interval(v, lo, hi) for v, lo, hi in zip(
            stats.random_drop, stats.random_low, stats.random_high)],
        "worst random set": [worst_set(s, low, high) for s, low, high in zip(stats.worst_seed, stats.random_min,
                                                                             stats.random_max)],
        "p (Holm)": stats.p_holm.map(p_text),
        "significant": stats.significant.map({True: "yes", False: "no"}).fillna("n/a"),
    })
    if RANDOM_NONCRITICAL in families:
        rows["no-critical median [min, max]"] = [value_interval(v, lo, hi) for v, lo, hi in zip(
            stats.noncritical_random_median, stats.noncritical_random_min, stats.noncritical_random_max)]
        rows["no-critical mean [95% CI]"] = [value_interval(v, lo, hi) for v, lo, hi in zip(
            stats.noncritical_random_drop, stats.noncritical_random_low, stats.noncritical_random_high)]
        rows["no-critical p (Holm)"] = stats.noncritical_p_holm.map(p_text)
    return rows


def worst_set(seed: float, low: float, high: float) -> str:
    """The random set with the largest drop and that drop; no set is worst when every set drops the same."""
    if seed != seed:
        return "n/a"
    return f"all sets: {high:.1f}" if low == high else f"seed {int(seed)}: {high:.1f}"


def intra_section():
    st.subheader(f"Intra-relation: accuracy with the relation's own top-{k:,} off ({lang})")
    intra_block("train")

    table = table_for(str(store.run_dir), "train")
    st.subheader(f"Inter-relation: relative drop with one relation's top-{k:,} off ({lang})")
    st.caption("Rows: evaluated relation; columns: relation whose neurons are off. Negative = the relation improves.")
    inter = inter_relation(table, k, lang)
    members = top_set_members(str(store.run_dir), k)
    tooltip = [alt.Tooltip("relation:N", title="evaluated"), alt.Tooltip("ablated:N", title="neurons off"),
               alt.Tooltip("relative_drop:Q", format=".1%", title="relative drop"),
               alt.Tooltip("base_accuracy:Q", format=".1%", title="original accuracy"),
               alt.Tooltip("accuracy:Q", format=".1%", title="accuracy with the neurons off"),
               alt.Tooltip("drop_points:Q", format=".1f", title="drop (points)"),
               alt.Tooltip("first_lp_drop:Q", format=".3f", title="gold first-token log-prob drop")]
    if members is not None:
        # Only the neurons that alone break the *evaluated* relation explain a cell.
        cell_text = critical_text(members.assign(relation=members.breaks), ["ablated", "relation"])
        inter = inter.merge(cell_text, on=["ablated", "relation"], how="left")
        inter["critical_neurons"] = inter.critical_neurons.fillna("none")
        tooltip.append(alt.Tooltip("critical_neurons:N", title="critical neurons (alone)"))
    heat = alt.Chart(inter).mark_rect().encode(
        x=alt.X("ablated:N", title="neurons off", axis=label_axis(angle=-35)),
        y=alt.Y("relation:N", title="evaluated", axis=label_axis()),
        color=alt.Color("relative_drop:Q", title="relative drop",
                        scale=alt.Scale(scheme="redblue", domain=[-1, 1], reverse=True)),
        tooltip=tooltip,
    ).properties(height=row_step())
    st.altair_chart(heat, width="stretch")
    if members is None:
        st.caption("This run has no single-neuron screen: the tooltips cannot name critical neurons.")
    else:
        st.caption(f"A cell's tooltip names the critical neurons among the neurons off that alone cost the evaluated "
                   f"relation at least {store.critical_threshold:g} points (single-neuron screen, {ident_lang}).")
    download(inter, f"{run_name}-inter-k{k}-{lang}", "inter")

    spread, large = cross_relation(table, k, lang)
    st.markdown("**Cross-relation effects as a distribution**")
    st.caption(f"The {spread['cells']} off-diagonal cells (one relation's top-{k:,} off, another relation "
               f"evaluated), drop in accuracy points: median {spread['median']:.1f}, mean {spread['mean']:.1f}, max "
               f"{spread['max']:.1f}; {spread['zero']} cells lose nothing; {spread['above']} "
               f"{'loses' if spread['above'] == 1 else 'lose'} "
               f"{spread['threshold']:g} points or more" + (":" if spread["above"] else "."))
    if len(large):
        st.dataframe(large.rename(columns={"ablated": "neurons off", "relation": "evaluated",
                                           "base_accuracy": "original accuracy", "drop_points": "drop (points)"}),
                     hide_index=True, column_config={
                         "original accuracy": st.column_config.NumberColumn(format="percent"),
                         "accuracy": st.column_config.NumberColumn(format="percent"),
                         "drop (points)": st.column_config.NumberColumn(format="%.1f")})


def sweep_section():
    table = table_for(str(store.run_dir), "train")
    st.subheader(f"Accuracy vs k: {rel} and the mean of the other relations ({lang})")
    curves = sweep_curves(table, rel, lang)
    series = [rel, "other relations (mean)", f"{rel}, random sets"]
    chart = alt.Chart(curves).mark_line(point=True).encode(
        x=alt.X("k:Q", scale=alt.Scale(type="log"), title="k (neurons off, log scale)"),
        y=alt.Y("accuracy:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")),
        color=alt.Color("series:N", sort=series, scale=alt.Scale(domain=series, range=[
            CONDITION_COLORS["relation_off"], CONDITION_COLORS["original"], CONDITION_COLORS["random"]]),
            legend=alt.Legend(orient="top", labelLimit=0, title=None)),
        strokeDash=alt.StrokeDash("series:N", sort=series, legend=None,
                                  scale=alt.Scale(domain=series, range=[[1, 0], [1, 0], [4, 3]])),
        tooltip=["series", "k", alt.Tooltip("accuracy:Q", format=".1%")])
    seeds = sweep_random_seeds(table, rel, lang)
    dots = alt.Chart(seeds).mark_circle(size=20, color="black", opacity=0.55).encode(
        x="k:Q", y="accuracy:Q",
        tooltip=["k", alt.Tooltip("seed:Q", title="random seed"), alt.Tooltip("accuracy:Q", format=".1%")])
    st.altair_chart(chart + dots, width="stretch", height=360)
    st.caption(f"The dashed line is the mean over the random sets of each k; each black dot is one random set "
               f"({seeds.seed.nunique()} per k), so one set that breaks {rel} shows apart from the others.")
    download(curves, f"{run_name}-sweep-{rel}-{lang}", "sweep")


def cumulativity_section():
    st.subheader("Cumulativity per k range")
    st.caption("Of the prompts right with the top-k₁ off but wrong with the top-k₂ off, the share NOT explained by the "
               "ranks k₁..k₂ alone (high = the neurons act jointly). Macro over relations, micro over prompts.")
    table = cumulativity_from_table(store.effect_rows(["top", "range"]), sweep, lang)
    st.dataframe(table, hide_index=True)
    download(table, f"{run_name}-cumulativity-{lang}", "cum")


def multilingual_section():
    table = table_for(str(store.run_dir), "train")
    st.subheader(f"Multilingual: the top-{k:,} identified in {ident_lang} switched off, every language")
    long = multilingual(table, k)
    names = ["original", "relation's top-k off"]
    chart = alt.Chart(long).mark_bar().encode(
        x=alt.X("language:N", title=None, axis=label_axis()),
        xOffset=alt.XOffset("condition:N", sort=names),
        y=alt.Y("accuracy:Q", title="accuracy", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")),
        color=alt.Color("condition:N", sort=names, title=None, legend=alt.Legend(orient="top", labelLimit=0),
                        scale=alt.Scale(domain=names, range=[CONDITION_COLORS["original"],
                                                             CONDITION_COLORS["relation_off"]])),
        tooltip=["relation", "language", "condition", alt.Tooltip("accuracy:Q", format=".1%")],
    ).properties(width=150, height=120).facet(
        facet=alt.Facet("relation:N", title=None, header=alt.Header(labelLimit=0, labelFontSize=12)), columns=4)
    st.altair_chart(chart)
    download(long, f"{run_name}-multilingual-k{k}", "multi")


def heldout_section():
    st.subheader(f"Held-out templates: intra-relation accuracy with top-{k:,} off ({lang})")
    st.caption("Templates the model was not trained on: here the original accuracy is below 100%, so an improvement "
               "can show.")
    intra_block("heldout")


def modes_section():
    ablations = store.ablations()
    st.subheader(f"Ablation modes side by side: top-{m.k:,} off ({lang}, trained templates)")
    st.caption("zero: the paper's ablation. mean: each neuron set to its mean over the identification prompts "
               "(closer to the inputs the next layer was trained on). scaleF: the neurons multiplied by F. Modes "
               f"other than zero are evaluated at the run's main k ({m.k:,}): each relation's top-k and the random "
               "sets of that size.")
    if len(ablations) == 1:
        st.info("This run holds zero ablation only. Add another mode to the same run with its precompute command "
                "and `--ablation mean` (or `--ablation scale --ablation-factor 2`): it reuses everything and "
                "writes only the new effects.", icon=":material/tune:")
        return
    both = ablation_comparison({a: table_for(run_name, "train", a) for a in ablations}, m.k, lang)
    if both.empty:
        st.info(f"No effects at k = {m.k:,} in {lang}.")
        return
    bars = both.melt(id_vars=["relation", "ablation"], value_vars=["own_drop", "random_drop"], var_name="set",
                     value_name="drop")
    bars["set"] = bars["set"].map({"own_drop": "own top-k", "random_drop": "random sets (mean)"})
    st.altair_chart(alt.Chart(bars).mark_bar().encode(
        x=alt.X("drop:Q", title="accuracy drop (points)"),
        y=alt.Y("relation:N", title=None, axis=label_axis()),
        yOffset=alt.YOffset("ablation:N", sort=ablations),
        color=alt.Color("ablation:N", sort=ablations, legend=alt.Legend(orient="top")),
        opacity=alt.Opacity("set:N", legend=alt.Legend(orient="top", title=None),
                            scale=alt.Scale(domain=["own top-k", "random sets (mean)"], range=[1.0, 0.35])),
        tooltip=["relation", "ablation", "set", alt.Tooltip("drop:Q", format=".1f")],
    ).properties(height=alt.Step(9)), width="stretch")
    table = both[["relation", "ablation", "baseline", "own_drop", "others_mean_drop", "random_drop", "random_max",
                  "beats_worst_random", "own_first_lp_drop", "random_first_lp_drop"]]
    st.dataframe(table, hide_index=True, column_config={
        "baseline": st.column_config.NumberColumn(format="percent"),
        **{c: st.column_config.NumberColumn(format="%.1f") for c in
           ("own_drop", "others_mean_drop", "random_drop", "random_max")},
        **{c: st.column_config.NumberColumn(format="%.3f") for c in ("own_first_lp_drop", "random_first_lp_drop")}})
    download(table, f"{run_name}-ablation-modes-{lang}", "modes")


SECTIONS = {"intra": intra_section, "sweep": sweep_section, "cumulativity": cumulativity_section,
            "multilingual": multilingual_section, "heldout": heldout_section, "modes": modes_section}
for tab, name in zip(tabs, TABS):
    if tab.open is False:  # only the open tab is computed and drawn
        continue
    with tab:
        guarded(SECTIONS[name])
copy_link()
