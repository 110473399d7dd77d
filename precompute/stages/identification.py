"""Stage 2, identification sets: per relation and language, the positives (identification prompts of the
trained templates answered correctly) and negatives drawn from the other relations' validated prompts."""
from __future__ import annotations

import numpy as np
import pandas as pd
from tqdm import tqdm

from core.correctness import MIN_ANSWER_CHARS, head_reader, is_correct
from core.parquet_io import write_parquet_atomic
from core.run_layout import identification_path
from precompute.context import RunContext, RunInputError, to_prompts
from precompute.stages.baseline import read_baseline


def run(ctx: RunContext) -> bool:
    return ctx.workers.on_main(lambda: _identify(ctx))


def _identify(ctx: RunContext) -> bool:
    units = [(r, l) for r in ctx.relations for l in ctx.languages]
    todo = [u for u in units if not identification_path(ctx.out, *u).exists()]
    if not todo:
        return False
    base = read_baseline(ctx)
    counts = positive_counts(base, units)
    check_positives(counts, ctx.options.min_positives)
    ctx.log(positives_line(counts, floor_refusals(base, ctx.prompts, ctx.lm.tokenizer), ctx.options.answer_floor))
    for rel, lang in tqdm(todo, desc="identification sets", unit="set"):
        key = [ctx.options.seed, ctx.relations.index(rel), ctx.corpus.languages.index(lang)]
        frame = identification_set(base, rel, lang, key, ctx.options.negatives_ratio)
        write_parquet_atomic(frame, identification_path(ctx.out, rel, lang))
    return True


def positive_counts(base: pd.DataFrame, units: list[tuple[str, str]]) -> pd.DataFrame:
    """relation, language, asked (identification prompts of trained templates), positives (answered correctly),
    short (positives whose stripped answer has at most 2 characters), one row per unit in its order."""
    asked = base[(base.split == "identification") & (base.template_kind == "train")]
    grouped = asked.assign(short=asked.correct & (asked.generated.str.strip().str.len() <= 2)).groupby(
        ["relation", "language"]).agg(asked=("correct", "size"), positives=("correct", "sum"), short=("short", "sum"))
    grouped = grouped.reindex(pd.MultiIndex.from_tuples(units, names=["relation", "language"]), fill_value=0)
    return grouped.astype(np.int64).reset_index()


def check_positives(counts: pd.DataFrame, min_positives: int) -> None:
    """RunInputError naming every relation x language with fewer than `min_positives` positives, with its
    counts: one message for all, so a model that fails several relations is told of all of them at once."""
    short = counts[counts.positives < min_positives]
    if short.empty:
        return
    listed = "; ".join(f"{r.relation} ({r.language}) answers {r.positives} of its {r.asked}"
                       for r in short.itertuples(index=False))
    raise RunInputError(
        f"{len(short)} of {len(counts)} relation x language sets have fewer than --min-positives {min_positives} "
        f"correctly answered identification prompts to find neurons from: {listed}; drop these relations or "
        "languages (--relations, --languages), lower --min-positives, or use a model that knows these facts")


def floor_refusals(base: pd.DataFrame, prompts: pd.DataFrame, tokenizer) -> int:
    """Identification answers (identification split, trained templates) that the paper's prefix rule accepts
    and core.correctness's short-answer floor refuses: judged wrong under --answer-floor, positives without it.
    Only answers shorter than MIN_ANSWER_CHARS can differ, so only those are tokenized."""
    asked = base[(base.split == "identification") & (base.template_kind == "train")]
    short = asked[asked.generated.str.strip().str.len() < MIN_ANSWER_CHARS]
    if short.empty:
        return 0
    rows = prompts.set_index("prompt_id").loc[short.prompt_id].reset_index()
    return sum(is_correct(answer, p.gold, p.alternatives)
               and not is_correct(answer, p.gold, p.alternatives, head_reader(tokenizer, p), floor=True)
               for p, answer in zip(to_prompts(rows), short.generated))


def positives_line(counts: pd.DataFrame, refused: int, floor: bool) -> str:
    """The log line after the check: positives, the fewest in one set, how many rest on answers of <= 2
    characters, and the `refused` answers of floor_refusals (what the floor did, or would do)."""
    weakest = counts.loc[counts.positives.idxmin()]
    return (f"identification positives: {int(counts.positives.sum()):,} in {len(counts)} relation x language sets "
            f"(fewest: {weakest.relation} ({weakest.language}) {int(weakest.positives)}); "
            f"{int(counts.short.sum()):,} rest on answers of <= 2 characters; "
            + (f"the short-answer floor judged {refused:,} shorter answers wrong" if floor else
               f"--answer-floor would judge {refused:,} of them wrong"))


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
