"""Overlap: how many top-k neurons relations (and languages) share."""
import altair as alt
import streamlit as st

from core.manifest import module_sizes
from core.overlap import METRICS, MODES, complete_grid, filtered_total, overlap_long
from core.share_state import Parsed, encode_list, pick_int, pick_many, pick_one, pick_range
from pages.common import start_page, copy_link, download, guarded, params, set_params, show_notices

METRIC_LABEL = {"count": "shared neurons", "jaccard": "Jaccard", "chance_ratio": "ratio to chance (k·k/N)"}
MODE_LABEL = {"relations": "relation × relation", "languages": "language × language (one relation)",
              "relation_language": "relation × language (vs. the identification language)"}

run_name, store = start_page("Overlap of relation neurons")
m = store.manifest
modules_all = [name for name, _ in module_sizes(m)]
last_layer = m.neurons["num_layers"] - 1
ident_lang = m.options.get("identification_language", "en")
p, parsed = params(), Parsed()
state = dict(
    k=pick_int(p, "k", 1, store.total_neurons, m.k, parsed, "k"),
    mode=pick_one(p, "mode", list(MODES), "relations", parsed, "view"),
    metric=pick_one(p, "metric", list(METRICS), "count", parsed, "metric"),
    lang=pick_one(p, "lang", store.languages, ident_lang if ident_lang in store.languages else store.languages[0],
                  parsed, "language"),
    rel=pick_one(p, "rel", store.relations, store.relations[0], parsed, "relation"),
    layers=pick_range(p, "layers", 0, last_layer, parsed, "layers"),
    modules=pick_many(p, "modules", modules_all, modules_all, parsed, "module") or modules_all,
)
show_notices(parsed)

c1, c2, c3 = st.columns([2, 2, 3])
mode = c1.selectbox("View", MODES, index=MODES.index(state["mode"]), format_func=MODE_LABEL.get)
metric = c2.selectbox("Metric", METRICS, index=METRICS.index(state["metric"]), format_func=METRIC_LABEL.get)
k = c3.number_input(f"k (top neurons per set, 1–{store.total_neurons:,})", 1, store.total_neurons, state["k"], step=1)
c4, c5, c6 = st.columns([2, 2, 3])
if mode == "relations":
    lang = c4.selectbox("Language", store.languages, index=store.languages.index(state["lang"]))
    rel = state["rel"]
else:
    rel = c4.selectbox("Relation", store.relations, index=store.relations.index(state["rel"]))
    lang = state["lang"]
layers = c5.slider("Layers", 0, last_layer, state["layers"]) if last_layer > 0 else (0, 0)
modules = c6.multiselect("Modules", modules_all, default=state["modules"]) or modules_all
set_params(dict(k=k, mode=mode, metric=metric, lang=lang, rel=rel, layers=f"{layers[0]}-{layers[1]}",
                modules=encode_list(modules) if modules != modules_all else None))

if mode == "relations":
    rows = [(r, lang) for r in store.relations]
elif mode == "languages":
    rows = [(rel, l) for l in store.languages]
else:
    rows = [(r, l) for r in store.relations for l in store.languages]
total = filtered_total(dict(module_sizes(m)), modules, tuple(layers))


def heatmap_section():
    shared, sizes = store.overlap_counts(int(k), sorted({l for _, l in rows} | {ident_lang}), tuple(layers), modules)
    long = overlap_long(complete_grid(shared, [(r, l) for r in store.relations for l in store.languages]),
                        sizes, metric, total)
    if mode == "relations":
        data = long[(long.language_a == lang) & (long.language_b == lang)].assign(row=lambda d: d.relation_a,
                                                                                   col=lambda d: d.relation_b)
    elif mode == "languages":
        data = long[(long.relation_a == rel) & (long.relation_b == rel)].assign(row=lambda d: d.language_a,
                                                                                col=lambda d: d.language_b)
    else:
        data = long[(long.relation_a == long.relation_b) & (long.language_b == ident_lang)].assign(
            row=lambda d: d.relation_a, col=lambda d: d.language_a)
    data = data.sort_values(["row", "col"]).reset_index(drop=True)
    st.caption(f"Top-{int(k):,} sets inside layers {layers[0]}–{layers[1]} and modules {', '.join(modules)} "
               f"(N = {total:,}); two random sets of this size would share {int(k) ** 2 / max(total, 1):.1f} on average "
               "before filtering.")
    pick = alt.selection_point(fields=["row", "col"], name="cell")
    fmt = {"count": ",.0f", "jaccard": ".3f", "chance_ratio": ".1f"}[metric]
    chart = alt.Chart(data).mark_rect().encode(
        x=alt.X("col:N", title=None, sort=None), y=alt.Y("row:N", title=None, sort=None),
        color=alt.Color("value:Q", title=METRIC_LABEL[metric], scale=alt.Scale(scheme="blues")),
        tooltip=[alt.Tooltip("row:N", title="row"), alt.Tooltip("col:N", title="column"),
                 alt.Tooltip("value:Q", format=fmt, title=METRIC_LABEL[metric]),
                 alt.Tooltip("shared:Q", title="shared"), alt.Tooltip("jaccard:Q", format=".3f"),
                 alt.Tooltip("chance_ratio:Q", format=".1f", title="ratio to chance"),
                 alt.Tooltip("expected:Q", format=".1f", title="expected by chance")],
    ).add_params(pick).properties(height=max(240, 30 * data.row.nunique()))
    event = st.altair_chart(chart, width="stretch", on_select="rerun", key="overlap_chart")
    download(data.drop(columns=["row", "col"]), f"{run_name}-overlap-{mode}-k{int(k)}", "overlap")
    selected = (event or {}).get("selection", {}).get("cell", []) if isinstance(event, dict) else []
    labels = sorted(data.row.unique())
    cols = sorted(data.col.unique())
    st.subheader("Shared neurons of one cell")
    s1, s2 = st.columns(2)
    default_a = selected[0]["row"] if selected else p.get("a")
    default_b = selected[0]["col"] if selected else p.get("b")
    a = s1.selectbox("Row", labels, index=labels.index(default_a) if default_a in labels else 0)
    b = s2.selectbox("Column", cols, index=cols.index(default_b) if default_b in cols else min(1, len(cols) - 1))
    set_params(dict(a=a, b=b))
    if mode == "relations":
        pa, pb = (a, lang), (b, lang)
    elif mode == "languages":
        pa, pb = (rel, a), (rel, b)
    else:
        pa, pb = (a, b), (a, ident_lang)
    neurons = store.shared_neurons(int(k), pa, pb, tuple(layers), modules)
    st.caption(f"{len(neurons):,} neurons in both {pa[0]} ({pa[1]}) and {pb[0]} ({pb[1]}); each links to its page.")
    if len(neurons):
        neurons["page"] = [f"./neuron?run={run_name}&neuron={r.layer}.{r.module}.{r['index']}"
                           for _, r in neurons.iterrows()]
        st.dataframe(neurons, hide_index=True,
                     column_config={"page": st.column_config.LinkColumn("neuron page", display_text="open")})


guarded(heatmap_section)
copy_link()
