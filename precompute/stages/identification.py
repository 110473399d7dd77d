"""Stage 2, identification sets: per relation and language, the positives (identification prompts of the
trained templates answered correctly) and negatives drawn from the other relations' validated prompts."""
from __future__ import annotations

import numpy as np
import pandas as pd
from tqdm import tqdm

from core.parquet_io import write_parquet_atomic
from core.run_layout import identification_path
from precompute.context import RunContext, RunInputError
from precompute.stages.baseline import read_baseline


def run(ctx: RunContext) -> bool:
    return ctx.workers.on_main(lambda: _identify(ctx))


def _identify(ctx: RunContext) -> bool:
    units = [(r, l) for r in ctx.relations for l in ctx.languages]
    todo = [u for u in units if not identification_path(ctx.out, *u).exists()]
    if not todo:
        return False
    base = read_baseline(ctx)
    for rel, lang in tqdm(todo, desc="identification sets", unit="set"):
        key = [ctx.options.seed, ctx.relations.index(rel), ctx.corpus.languages.index(lang)]
        frame = identification_set(base, rel, lang, key, ctx.options.negatives_ratio)
        write_parquet_atomic(frame, identification_path(ctx.out, rel, lang))
    return True


def validated(base: pd.DataFrame) -> pd.DataFrame:
    """The baseline's prompts that identification draws from: identification split, trained templates,
    answered correctly."""
    return base[(base.split == "identification") & (base.template_kind == "train") & base.correct]


def identification_set(base: pd.DataFrame, rel: str, lang: str, seed_key: list[int],
                       negatives_ratio: float) -> pd.DataFrame:
    """prompt_id, positive: `rel`'s validated prompts in `lang`, then round(ratio x as many) (at least one, at
    most all) of the other relations' validated prompts, drawn with default_rng(seed_key), sorted. Raises
    RunInputError when there are no positives or no negatives to draw."""
    valid = validated(base)
    in_lang = valid[valid.language == lang]
    positives = in_lang[in_lang.relation == rel].prompt_id.to_numpy()
    pool = in_lang[in_lang.relation != rel].prompt_id.to_numpy()
    if not len(positives) or not len(pool):
        asked = int(((base.relation == rel) & (base.language == lang) & (base.split == "identification")
                     & (base.template_kind == "train")).sum())
        raise RunInputError(
            f"relation {rel} ({lang}): the model answers {len(positives)} of its {asked} identification "
            f"prompts correctly{'' if len(positives) else ', so there is nothing to find neurons from'}"
            f"{'' if len(pool) else ' and no other relation has a correct answer to serve as negatives'}; "
            "drop the relation or language, or use a model that knows these facts")
    rng = np.random.default_rng(seed_key)
    # At least one negative: a tiny --negatives-ratio must not leave average precision without any.
    count = min(max(1, int(round(negatives_ratio * len(positives)))), len(pool))
    negatives = np.sort(rng.choice(pool, count, replace=False)) if count else np.array([], dtype=np.int32)
    return pd.DataFrame({
        "prompt_id": np.concatenate([positives, negatives]).astype(np.int32),
        "positive": np.concatenate([np.ones(len(positives), bool), np.zeros(len(negatives), bool)]),
    })
