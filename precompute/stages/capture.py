"""Stage 3, capture: each identification prompt's pooled neuron values, per language, into a memory-mapped
matrix (work/language=L/activations.npy), one round of batches at a time."""
from __future__ import annotations

import numpy as np

from core.capture import capture_pooled
from core.mapped import release_pages
from core.parquet_io import read_parquet
from core.run_layout import capture_paths, identification_path
from precompute.context import RunContext
from precompute.stages.scoring import scores_missing


def capture_todo(ctx: RunContext) -> list[tuple[str, np.ndarray]]:
    """(language, prompt ids to capture) for each language whose capture is missing while its scores or
    activation distributions (or, in the identification language, the overlap null) still need it."""
    from precompute.stages.distributions import distributions_missing
    from precompute.stages.means import means_missing
    from precompute.stages.null import null_todo

    todo = []
    for lang in ctx.languages:
        needed = (scores_missing(ctx, lang) or distributions_missing(ctx, lang)
                  or (lang == ctx.options.identification_language and (null_todo(ctx) or means_missing(ctx))))
        if capture_paths(ctx.out, lang)[0].exists() or not needed:
            continue
        ids = np.unique(np.concatenate([read_parquet(identification_path(ctx.out, r, lang)).prompt_id.to_numpy()
                                        for r in ctx.relations])).astype(np.int32)
        todo.append((lang, ids))
    return todo


def run(ctx: RunContext) -> bool:
    todo = ctx.workers.on_main(lambda: capture_todo(ctx))
    if not todo:
        return False
    for lang, ids in todo:
        _capture_language(ctx, lang, ids)
    return True


def _capture_language(ctx: RunContext, lang: str, ids: np.ndarray) -> None:
    o, workers = ctx.options, ctx.workers
    texts = ctx.prompts.set_index("prompt_id").loc[ids, "text"].tolist()
    acts_path, ids_path = capture_paths(ctx.out, lang)
    out = None
    if ctx.is_main:
        acts_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = acts_path.with_name(".activations.npy.tmp")
        # A memory-mapped matrix: a 7B model's capture never has to fit in RAM.
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(ids), ctx.space.total))
    batches = [(lo, min(lo + o.batch_size, len(ids))) for lo in range(0, len(ids), o.batch_size)]
    with workers.bar(total=len(ids), desc=f"capture ({lang}): {o.pooling}-pooled activations", unit="prompt") as bar:
        for round_, mine in workers.rounds(batches):
            sent = None
            if mine is not None:
                lo, hi = mine
                pooled = capture_pooled(ctx.hooks, ctx.lm.tokenizer, texts[lo:hi], o.pooling, o.batch_size,
                                        out=out[lo:hi] if out is not None else None)
                sent = None if ctx.is_main else (lo, pooled)
            for item in workers.gather(sent) or []:
                if item is not None:
                    out[item[0] : item[0] + len(item[1])] = item[1]
            if out is not None:
                release_pages(out)  # written rows go to the file; resident memory stays one round
            bar.update(round_[-1][1] - round_[0][0])
    if ctx.is_main:
        out.flush()
        del out
        np.save(ids_path, ids)
        tmp.replace(acts_path)
