"""Overlap: how many top-k neurons relations (and languages) share."""
import altair as alt
import streamlit as st

from core.manifest import module_sizes
from core.metrics import critical_members
from core.overlap import METRICS, MODES, NULL_METRICS, OverlapView, filtered_total
from core.share_state import encode_list, Notices, pick_int, pick_many, pick_one, pick_range
from ui.charts import label_axis, row_step
from ui.output import copy_link, download, guarded, show_notices
from ui.run import start_page
from ui.state import ViewState

METRIC_LABEL = {"count": "shared neurons", "jaccard": "Jaccard",
                "chance_ratio": "ratio to random sets (shared ÷ |A|·|B|/N)",
                "hypergeom_z": "z vs random sets (hypergeometric)",
                "null_ratio": "shared ÷ permutation-null mean", "null_z": "z vs permutation null"}
# The colour legend's title, short: a long one takes its width from the heatmap.
LEGEND_TITLE = {"count": "shared neurons", "jaccard": "Jaccard", "chance_ratio": "ratio to random",
                "hypergeom_z": "z (hypergeometric)", "null_ratio": "ratio to null", "null_z": "z (permutation)"}
Z_METRICS = ("hypergeom_z", "null_z")  # signed: a diverging scale centred on 0 (red: more shared than the null)
MODE_LABEL = {"relations": "relation × relation", "languages": "language × language (one relation)",
              "relation_language": "relation × language (vs. the identification language)"}
DIAGONAL_LABEL = {"mask": "masked (grey)", "show": "on the scale"}

run_name, store = start_page("Overlap of relation neurons")
m = store.manifest
modules_all = [name for name, _ in module_sizes(m)]
last_layer = m.neurons["num_layers"] - 1
ident_lang = m.options.get("identification_language", "en")
state = ViewState("overlap")
p, parsed = state.url, state.parsed
url = dict(
    k=pick_int(p, "k", 1, store.total_neurons, m.k, parsed, "k"),
    mode=pick_one(p, "mode", list(MODES), "relations", parsed, "view"),
    metric=pick_one(p, "metric", list(METRICS), "count", parsed, "metric"),
    diag=pick_one(p, "diag", list(DIAGONAL_LABEL), "mask", parsed, "diagonal"),
    lang=pick_one(p, "lang", store.languages, ident_lang if ident_lang in store.languages else store.languages[0],
                  parsed, "language"),
    rel=pick_one(p, "rel", store.relations, store.relations[0], parsed, "relation"),
    layers=pick_range(p, "layers", 0, last_layer, parsed, "layers"),
    modules=pick_many(p, "modules", modules_all, modules_all, parsed, "module") or modules_all,
)
state.show_notices()

c1, c2, c3, c4 = st.columns([2.5, 3.5, 3, 2])  # the metric names are the longest labels
mode = c1.selectbox("View", MODES, format_func=MODE_LABEL.get, key=state.bind("mode", url["mode"], MODES.__contains__))
metric = c2.selectbox("Metric", METRICS, format_func=METRIC_LABEL.get,
                      key=state.bind("metric", url["metric"], METRICS.__contains__))
k = c3.number_input(f"k (top neurons per set, 1–{store.total_neurons:,})", 1, store.total_neurons, step=1,
                    key=state.bind("k", url["k"], lambda v: isinstance(v, int) and 1 <= v <= store.total_neurons))
diag = c4.selectbox("Diagonal", list(DIAGONAL_LABEL), format_func=DIAGONAL_LABEL.get,
                    key=state.bind("diag", url["diag"], DIAGONAL_LABEL.__contains__),
                    help="A set shares all of itself with itself: on the same scale as the rest, the diagonal makes every "
                         "other cell pale.")
c5, c6, c7 = st.columns([3, 3, 5])
# Only the selector the view uses is shown; the other keeps its URL value for when the view changes back.
lang, rel = url["lang"], url["rel"]
if mode == "relations":
    lang = c5.selectbox("Language", store.languages, key=state.bind("lang", url["lang"], store.languages.__contains__))
elif mode == "languages":
    rel = c5.selectbox("Relation", store.relations, key=state.bind("rel", url["rel"], store.relations.__contains__))
else:
    c5.caption(f"Each relation's top-k in every language against its own top-k in {ident_lang}.")
if last_layer > 0:
    layers = c6.slider("Layers", 0, last_layer, key=state.bind(
        "layers", url["layers"], lambda v: isinstance(v, tuple) and 0 <= v[0] <= v[1] <= last_layer))
else:
    layers = (0, 0)
modules = c7.multiselect("Modules", modules_all, key=state.bind(
    "modules", url["modules"], lambda v: isinstance(v, list) and set(v) <= set(modules_all))) or modules_all
state.publish(dict(k=k, mode=mode, metric=metric, diag=diag, lang=lang, rel=rel,
                   layers=f"{layers[0]}-{layers[1]}" if layers != (0, last_layer) else None,
                   modules=encode_list(modules) if modules != modules_all else None))
total = filtered_total(dict(module_sizes(m)), modules, tuple(layers))


view = OverlapView(mode, lang, rel, ident_lang)


def heatmap_section():
    rows_all, cols_all = view.axes(store.relations, store.languages)
    cell_notes = Notices()  # the cell's row and column depend on the view, so they are checked here
    a0 = pick_one(p, "a", rows_all, rows_all[0], cell_notes, "row")
    b0 = pick_one(p, "b", cols_all, cols_all[min(1, len(cols_all) - 1)], cell_notes, "column")
    show_notices(cell_notes)
    click = _clicked_cell()
    if click is not None and click[0] in rows_all and click[1] in cols_all:
        state.set("a", click[0])
        state.set("b", click[1])
    a_key = state.bind("a", a0, rows_all.__contains__)
    b_key = state.bind("b", b0, cols_all.__contains__)
    has_null = view.has_null(store, int(k))
    drawn = metric
    if metric in NULL_METRICS and not has_null:
        drawn = "count"  # the permutation null exists for one view only: draw what every view has
        st.info(f"{METRIC_LABEL[metric]} needs the permutation null, which exists only for the relation × relation "
                f"view in the identification language ({ident_lang}) with k up to {store.top_limit:,}"
                + ("" if store.available("null_top") and store.null_seeds else "; this run did not compute it")
                + ". Showing shared neurons instead.", icon=":material/info:")
    data = view.cells(store, int(k), tuple(layers), modules, drawn, total,
                      selected=(st.session_state[a_key], st.session_state[b_key]))
    st.caption(f"Top-{int(k):,} sets inside layers {layers[0]}–{layers[1]} and modules {', '.join(modules)} "
               f"(N = {total:,} neurons). Ratio to random sets: shared neurons divided by |A|·|B|/N, what two "
               "random sets of the filtered sizes |A|, |B| would share on average.")
    st.caption(null_caption(has_null))
    off_diagonal = data[~data.diagonal].value.dropna()
    if drawn in Z_METRICS:
        reach = float(off_diagonal.abs().max()) if len(off_diagonal) and off_diagonal.abs().max() > 0 else 1.0
        scale = alt.Scale(scheme="redblue", reverse=True, domain=[-reach, reach], clamp=True)
    else:
        top = float(off_diagonal.max()) if diag == "mask" and len(off_diagonal) and off_diagonal.max() > 0 else None
        scale = alt.Scale(scheme="blues", domain=[0, top] if top else alt.Undefined, clamp=True)
    color = alt.Color("value:Q", title=LEGEND_TITLE[drawn], scale=scale, legend=alt.Legend(titleLimit=0))
    grey = "!isValid(datum.value) || !isFinite(datum.value)" + (" || datum.diagonal" if diag == "mask" else "")
    color = alt.condition(grey, alt.value("#d9d9d9"), color)
    pick = alt.selection_point(fields=["row", "col"], name="cell")
    # invalid="show": a cell with no value (a set against itself has no null) is drawn, grey, not dropped.
    chart = alt.Chart(data).mark_rect(invalid="show").encode(
        x=alt.X("col:N", title=None, sort=cols_all, axis=label_axis(angle=-40)),
        y=alt.Y("row:N", title=None, sort=rows_all, axis=label_axis()),
        color=color,
        stroke=alt.condition("datum.selected", alt.value("#d62728"), alt.value(None)),
        strokeWidth=alt.condition("datum.selected", alt.value(3), alt.value(0)),
        tooltip=cell_tooltip(data),
    ).add_params(pick).properties(height=row_step())
    st.altair_chart(chart, width="stretch", on_select="rerun", key="overlap_chart")
    st.caption("Click a cell to list its shared neurons below; the chosen cell is outlined in red. A masked diagonal "
               "is grey: a set shares all of itself with itself, so the colour scale is set by the other cells.")
    download(data.drop(columns=["row", "col", "selected"]), f"{run_name}-overlap-{mode}-k{int(k)}", "overlap")

    st.subheader("Shared neurons of one cell")
    s1, s2 = st.columns(2)
    a = s1.selectbox("Row", rows_all, key=a_key)
    b = s2.selectbox("Column", cols_all, key=b_key)
    state.publish(dict(a=a, b=b))
    pa, pb = view.cell_sets(a, b)
    neurons = store.shared_neurons(int(k), pa, pb, tuple(layers), modules)
    st.caption(f"{len(neurons):,} neurons in both {pa[0]} ({pa[1]}) and {pb[0]} ({pb[1]}); each links to its page.")
    if len(neurons):
        neurons["page"] = [f"./neuron?run={run_name}&neuron={r.layer}.{r.module}.{r['index']}"
                           for _, r in neurons.iterrows()]
        if store.available("single_neuron"):  # a critical neuron is named wherever it appears
            breaks = critical_members(neurons[["neuron"]], store.critical_neurons())
            alone: dict[int, list[str]] = {}
            for n, rel, drop in zip(breaks.neuron, breaks.breaks, breaks.single_drop):
                alone.setdefault(int(n), []).append(f"{rel} -{drop:.1f}p")
            neurons["critical: alone it costs"] = [", ".join(alone.get(int(n), [])) for n in neurons.neuron]
        st.dataframe(neurons, hide_index=True,
                     column_config={"page": st.column_config.LinkColumn("neuron page", display_text="open")})


def cell_tooltip(data) -> list[alt.Tooltip]:
    """Every cell's figures: the overlap, the hypergeometric null's and, where the view has it, the permutation
    null's (titles short: the tooltip cuts long ones). The p-values are one-sided, P(shared or more)."""
    tooltip = [alt.Tooltip("row:N", title="row"), alt.Tooltip("col:N", title="column"),
               alt.Tooltip("shared:Q", title="shared neurons"), alt.Tooltip("size_a:Q", title="|A| (row)"),
               alt.Tooltip("size_b:Q", title="|B| (column)"), alt.Tooltip("jaccard:Q", format=".3f", title="Jaccard"),
               alt.Tooltip("expected:Q", format=".1f", title="expected (hypergeometric)"),
               alt.Tooltip("chance_ratio:Q", format=".1f", title="ratio to random sets"),
               alt.Tooltip("hypergeom_z:Q", format=".1f", title="z vs random sets"),
               alt.Tooltip("p_more:Q", format=".3g", title="hypergeometric p")]
    if "p_null" in data:
        tooltip += [alt.Tooltip("null_mean:Q", format=".2f", title="null mean (every pair)"),
                    alt.Tooltip("null_max:Q", format=".0f", title="null max (every pair)"),
                    alt.Tooltip("pair_null_mean:Q", format=".2f", title="null mean (this pair)"),
                    alt.Tooltip("null_ratio:Q", format=".1f", title="shared ÷ null mean"),
                    alt.Tooltip("null_z:Q", format=".1f", title="z vs null"),
                    alt.Tooltip("p_null:Q", format=".3g", title="permutation p"),
                    alt.Tooltip("p_null_holm:Q", format=".3g", title="permutation p (Holm)")]
    return tooltip


def null_caption(has_null: bool) -> str:
    """What the two nulls are, and why the hypergeometric one does not fit top-k sets of different relations."""
    text = ("Two nulls. Hypergeometric: two independent random sets of sizes |A| and |B| out of N. It does not fit "
            "top-k sets of different relations: the construction pushes them apart (each relation's positives are "
            "the other relations' negatives), so they share less than it predicts even without any structure. ")
    if has_null:
        return text + (f"Permutation: identification rerun with the relation labels permuted among the "
                       f"identification prompts ({store.null_seeds} permutations), the overlap the construction gives "
                       "without relation structure; p: the share of null overlaps (every pair in every "
                       "permutation) at least as large as the observed one, Holm-adjusted over the pairs.")
    return text + (f"Permutation (label-shuffled identification): only for relation × relation in {ident_lang}, with k "
                   f"up to {store.top_limit:,}, in a run that computed it.")


def _clicked_cell() -> tuple[str, str] | None:
    """The cell just clicked on the heatmap, once: a click is applied on the run it happens, not again later."""
    event = st.session_state.get("overlap_chart")
    cells = event.get("selection", {}).get("cell", []) if isinstance(event, dict) else []
    click = (cells[0].get("row"), cells[0].get("col")) if cells else None
    if click == st.session_state.get("overlap.applied_click"):
        return None
    st.session_state["overlap.applied_click"] = click
    return click


guarded(heatmap_section)
copy_link()
