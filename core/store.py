"""DuckDB over one run's Parquet: tables loaded once from whitelisted paths, every user value a bound parameter.

The run folder comes from the server's own discovery of runs (core.runs), never
from a URL. The tables are loaded once into a DuckDB file next to the run
(`.store-<key>.duckdb`, the key hashing the run's file names, sizes and times,
so any change to the run builds a new one); later opens are instant and read
it lazily, so a 7B run (60 million score rows) neither waits nor fills RAM.
Where the run folder is read-only the tables load into memory instead. After
loading, file access is switched off and the configuration locked, so no query
can reach the file system. Each query runs on its own cursor, so sessions on
different threads can share one store.
"""
from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from core.manifest import MANIFEST, Manifest, read_manifest
from core.metrics import finish_ablation_table
from core.run_layout import OPTIONAL_TABLES, TABLES

TOP_SCORES = "top_scores"  # scores with rank <= the run's largest k: what the top-k views read
STORE_PREFIX = ".store-"
STORE_FORMAT = 4  # bump when the tables built below change (4: the distributions table)
LOCKED = {"enable_external_access": False, "lock_configuration": True}  # in this order: the lock comes last


class RunDataError(RuntimeError):
    """A run's files are missing or unreadable; the message names the file and what to do."""


def store_key(run_dir: Path) -> str:
    """A digest of every file the store is built from, with its size and modification time."""
    run_dir = Path(run_dir)
    # the table names too: a store built before a table existed has no record of it missing
    digest = hashlib.sha256(f"{STORE_FORMAT}|{','.join(TABLES)}|{duckdb.__version__}|{run_dir.resolve()}".encode())
    for path in sorted([run_dir / MANIFEST, *(f for t in TABLES for f in (run_dir / t).rglob("*.parquet"))]):
        try:
            stat = path.stat()
        except OSError:
            continue
        digest.update(f"|{path.relative_to(run_dir)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:20]


def _load_tables(con: duckdb.DuckDBPyConnection, run_dir: Path, top_limit: int) -> None:
    missing: dict[str, str] = {}
    for table in TABLES:
        folder = run_dir / table
        files = sorted(folder.rglob("*.parquet")) if folder.exists() else []
        if not files:
            missing[table] = f"{folder} has no Parquet files; rerun `python -m precompute run` for this run"
            continue
        try:
            con.read_parquet([str(f) for f in files], hive_partitioning=True).create(table)
        except duckdb.Error as exc:
            missing[table] = (f"{folder} holds a missing, truncated or corrupt Parquet file ({exc}); "
                              "delete it and rerun `python -m precompute run` with the same options to rebuild it")
    if "scores" in missing:
        missing[TOP_SCORES] = missing["scores"]
    else:
        try:
            con.execute(f"CREATE TABLE {TOP_SCORES} AS SELECT * FROM scores WHERE rank <= ? "
                        "ORDER BY relation, language, rank", [top_limit])
        except duckdb.Error as exc:
            missing["scores"] = missing[TOP_SCORES] = (
                f"{run_dir / 'scores'} lacks the columns of a run's scores ({exc}); rerun `python -m precompute run`")
    con.execute("CREATE TABLE _missing (name VARCHAR, message VARCHAR)")
    if missing:
        con.executemany("INSERT INTO _missing VALUES (?, ?)", list(missing.items()))


def _build_store_file(run_dir: Path, key: str, top_limit: int) -> Path:
    path = run_dir / f"{STORE_PREFIX}{key}.duckdb"
    if path.exists():
        return path
    tmp = run_dir / f"{STORE_PREFIX}{key}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        con = duckdb.connect(str(tmp))
        try:
            _load_tables(con, run_dir, top_limit)
        finally:
            con.close()
        os.replace(tmp, path)
    finally:
        for leftover in (tmp, Path(f"{tmp}.wal")):
            leftover.unlink(missing_ok=True)
    _remove_stale(run_dir, keep=path)
    return path


def _remove_stale(run_dir: Path, keep: Path) -> None:
    """Stores of earlier versions of the run, and half-built ones whose builder is gone (killed mid-build)."""
    for old in run_dir.glob(f"{STORE_PREFIX}*"):
        if old == keep:
            continue
        if old.suffix == ".duckdb":
            old.unlink(missing_ok=True)
            continue
        parts = old.name.split(".")  # .store-<key>.<pid>.<thread>.tmp[.wal]
        pid = int(parts[2]) if len(parts) > 3 and parts[2].isdigit() else None
        if pid is not None and not _alive(pid):
            old.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _effects_source(ablation: str, alias: str) -> tuple[str, str, list]:
    """(table, extra WHERE clause, its parameters) for one ablation's effects: the zero sweep's table, or another
    ablation's rows of mode_effects. The table name is one of two fixed names; the ablation is a parameter."""
    if ablation == "zero":
        return "effects", "", []
    return "mode_effects", f" AND {alias}.ablation::VARCHAR = ?", [ablation]


class RunStore:
    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.manifest: Manifest = read_manifest(self.run_dir)
        self.top_limit = max([self.manifest.k, *self.manifest.k_sweep])
        self._lock = threading.Lock()
        try:
            self._con = self._open_file(store_key(self.run_dir))
        except (OSError, duckdb.Error):
            self._con = None  # a read-only run folder, or a store file DuckDB cannot use: load into memory
        if self._con is None:
            self._con = duckdb.connect(":memory:")
            _load_tables(self._con, self.run_dir, self.top_limit)
            for option, value in LOCKED.items():
                self._con.execute(f"SET {option} = {str(value).lower()}")
        self.missing: dict[str, str] = dict(self._con.execute("SELECT name, message FROM _missing").fetchall())
        self._cached: dict[str, object] = {}

    @property
    def problems(self) -> dict[str, str]:
        """The missing tables worth a warning: all but the optional ones a run may simply not have (a run made
        before the table existed, or with zero ablation only); an optional table with broken files stays."""
        if "problems" not in self._cached:  # read on every page run (the sidebar): list the folders once
            self._cached["problems"] = {
                t: message for t, message in self.missing.items()
                if not (t in OPTIONAL_TABLES and not any((self.run_dir / t).rglob("*.parquet")))}
        return self._cached["problems"]

    def _open_file(self, key: str) -> duckdb.DuckDBPyConnection:
        path = _build_store_file(self.run_dir, key, self.top_limit)
        try:
            # Locked at connect: DuckDB shares one database per file within a process, so every store on
            # this file must ask for the same settings.
            return duckdb.connect(str(path), read_only=True, config=LOCKED)
        except duckdb.Error:
            path.unlink(missing_ok=True)  # unreadable (damaged, or from another DuckDB): build it again, once
            return duckdb.connect(str(_build_store_file(self.run_dir, key, self.top_limit)), read_only=True,
                                  config=LOCKED)

    def close(self) -> None:
        self._con.close()

    def available(self, table: str) -> bool:
        return table not in self.missing

    def query(self, sql: str, params: list | tuple = ()) -> pd.DataFrame:
        """Run one of this module's fixed queries; values only ever arrive as parameters."""
        for table in (*TABLES, TOP_SCORES):
            if table in self.missing and f" {table}" in sql:
                raise RunDataError(self.missing[table])
        with self._lock:
            cursor = self._con.cursor()
        try:
            return cursor.execute(sql, list(params)).df()
        finally:
            cursor.close()

    # ----- named queries ------------------------------------------------------------------
    @property
    def relations(self) -> list[str]:
        return list(self.manifest.corpus["relations"])

    @property
    def languages(self) -> list[str]:
        return list(self.manifest.corpus["languages"])

    @property
    def total_neurons(self) -> int:
        return int(self.manifest.neurons["total"])

    def baseline_accuracy(self, template_kind: str = "train", split: str = "evaluation") -> pd.DataFrame:
        return self.query(
            "SELECT relation, language, avg(correct::INT) AS accuracy, count(*) AS prompts FROM baseline "
            "WHERE template_kind = ? AND split = ? GROUP BY ALL ORDER BY relation, language",
            [template_kind, split])

    def prompt_counts(self) -> pd.DataFrame:
        return self.query(
            "SELECT relation, language, split, template_kind, count(*) AS prompts FROM baseline "
            "GROUP BY ALL ORDER BY ALL")

    def prompt_count_table(self) -> pd.DataFrame:
        """Prompts per relation (rows) and split / template kind (columns)."""
        counts = self.prompt_counts()
        table = counts.pivot_table(index="relation", columns=["split", "template_kind"], values="prompts", aggfunc="sum")
        table.columns = [f"{split} / {kind}" for split, kind in table.columns]
        return table

    def ranked_table(self, k: int) -> str:
        """The table holding every neuron of rank <= k: the small top table when k is within the run's k values."""
        return TOP_SCORES if int(k) <= self.top_limit else "scores"

    def top_neurons(self, relation: str, language: str, k: int) -> pd.DataFrame:
        return self.query(
            "SELECT neuron, layer, module::VARCHAR AS module, \"index\", ap, rank, mean_pos, mean_neg FROM "
            f"{self.ranked_table(k)} WHERE relation = ? AND language = ? AND rank <= ? ORDER BY rank",
            [relation, language, k])

    def _top_cte(self, k: int) -> str:
        return ("WITH top AS (SELECT relation, language, neuron, layer, module::VARCHAR AS module, \"index\" FROM "
                f"{self.ranked_table(k)} WHERE rank <= ? AND layer BETWEEN ? AND ? "
                "AND list_contains(?::VARCHAR[], module::VARCHAR)) ")

    def overlap_counts(self, k: int, languages: list[str], layers: tuple[int, int], modules: list[str]) -> pd.DataFrame:
        """Shared top-k neurons for every (relation, language) pair among `languages`, with set sizes."""
        sql = self._top_cte(k) + (
            ", sel AS (SELECT * FROM top WHERE list_contains(?::VARCHAR[], language)) "
            "SELECT a.relation AS relation_a, a.language AS language_a, b.relation AS relation_b, "
            "b.language AS language_b, count(*) AS shared FROM sel a JOIN sel b USING (neuron) GROUP BY ALL")
        shared = self.query(sql, [k, layers[0], layers[1], modules, languages])
        # A set shares all of itself with itself: the diagonal holds every non-empty set's size.
        own = shared[(shared.relation_a == shared.relation_b) & (shared.language_a == shared.language_b)]
        sizes = pd.DataFrame({"relation": own.relation_a.to_numpy(), "language": own.language_a.to_numpy(),
                              "size": own.shared.to_numpy()})
        return shared, sizes.sort_values(["relation", "language"], ignore_index=True)

    def shared_neurons(self, k: int, a: tuple[str, str], b: tuple[str, str], layers: tuple[int, int],
                       modules: list[str]) -> pd.DataFrame:
        sql = self._top_cte(k) + (
            "SELECT x.neuron, x.layer, x.module, x.\"index\" FROM top x JOIN top y USING (neuron) "
            "WHERE x.relation = ? AND x.language = ? AND y.relation = ? AND y.language = ? ORDER BY x.neuron")
        return self.query(sql, [k, layers[0], layers[1], modules, a[0], a[1], b[0], b[1]])

    def layer_distribution(self, k: int, language: str) -> pd.DataFrame:
        return self.query(
            "SELECT relation, layer, module::VARCHAR AS module, count(*) AS neurons FROM "
            f"{self.ranked_table(k)} WHERE rank <= ? AND language = ? GROUP BY ALL ORDER BY relation, layer, module",
            [k, language])

    def neuron_profile(self, neuron: int) -> pd.DataFrame:
        return self.query(
            "SELECT relation, language, ap, sign, rank, mean_pos, median_pos, mean_neg FROM scores "
            "WHERE neuron = ? ORDER BY relation, language", [neuron])

    def activation_quantiles(self, neuron: int) -> pd.DataFrame:
        """One neuron's pooled activation on each identification set's positives and negatives (the distributions
        table, core/distributions.py): count, mean and quantiles per relation, language and side; no rows for a
        neuron the run did not store."""
        return self.query(
            "SELECT relation, language, side, sampled, n, mean, q00, q05, q25, q50, q75, q95, q100 FROM distributions "
            "WHERE neuron = ? ORDER BY relation, language, side DESC", [neuron])

    def neuron_top_prompts(self, neuron: int, language: str) -> pd.DataFrame:
        return self.query(
            "SELECT t.place, t.value, b.relation, b.text, b.gold FROM top_prompts t "
            "JOIN baseline b ON b.prompt_id = t.prompt_id WHERE t.neuron = ? AND t.language = ? ORDER BY t.place",
            [neuron, language])

    def example_prompts(self, language: str, k: int, per_relation: int = 25) -> pd.DataFrame:
        """Evaluation prompts (trained templates) of every relation, those whose answer the relation's own top-k
        breaks first (largest drop of the gold first token's log-probability), for the lab's picker."""
        if not self.available("effects"):
            return self.query(
                "SELECT relation, text, gold, false AS flips, NULL::DOUBLE AS lp_drop FROM baseline "
                "WHERE split = 'evaluation' AND template_kind = 'train' AND language = ? "
                "QUALIFY row_number() OVER (PARTITION BY relation ORDER BY prompt_id) <= ? ORDER BY relation, prompt_id",
                [language, per_relation])
        return self.query(
            "WITH own AS (SELECT prompt_id, correct AS off_correct, gold_first_logprob AS off_lp FROM effects "
            "WHERE kind = 'top' AND k = ? AND ablated = relation AND language = ?), "
            "ranked AS (SELECT b.relation, b.text, b.gold, b.prompt_id, "
            "coalesce(b.correct AND NOT own.off_correct, false) AS flips, "
            "b.gold_first_logprob - own.off_lp AS lp_drop FROM baseline b LEFT JOIN own USING (prompt_id) "
            "WHERE b.split = 'evaluation' AND b.template_kind = 'train' AND b.language = ?) "
            "SELECT relation, text, gold, flips, lp_drop FROM ranked QUALIFY row_number() OVER "
            "(PARTITION BY relation ORDER BY flips DESC, lp_drop DESC NULLS LAST, prompt_id) <= ? "
            "ORDER BY relation, flips DESC, lp_drop DESC NULLS LAST, prompt_id",
            [k, language, language, per_relation])

    def table(self, table: str) -> pd.DataFrame:
        """One of the run's tables, whole, in a fixed row order (every column, ascending): for the summary,
        benchmarks and tests. The name is checked against TABLES, never formatted in from elsewhere."""
        if table not in TABLES:
            raise ValueError(f"unknown table {table!r}; tables: {', '.join(TABLES)}")
        return self.query(f"SELECT * FROM {table} ORDER BY ALL")

    def neuron_means(self) -> np.ndarray | None:
        """Every neuron's mean over the identification pool, by flat id (what mean ablation sets it to); None for
        a run made before the table existed."""
        if "means" not in self._cached:  # a run's files never change under an open store (its key would)
            means = None
            if self.available("neuron_means"):
                table = self.query("SELECT neuron, mean FROM neuron_means ORDER BY neuron")
                if len(table) == self.total_neurons and (table.neuron.to_numpy() == range(len(table))).all():
                    means = table["mean"].to_numpy("float32")
            self._cached["means"] = means
        return self._cached["means"]

    def identification_rows(self, relation: str, language: str) -> pd.DataFrame:
        """The identification prompts of one relation and language: prompt_id and positive, by prompt_id."""
        return self.query("SELECT prompt_id, positive FROM identification WHERE relation = ? AND language = ? "
                          "ORDER BY prompt_id", [relation, language])

    def effect_rows(self, kinds: list[str], k: list[int] | None = None) -> pd.DataFrame:
        """Per-prompt effects for the given ablation kinds (and k values), for core.metrics."""
        if k is None:
            return self.query("SELECT * FROM effects WHERE list_contains(?::VARCHAR[], kind)", [kinds])
        return self.query("SELECT * FROM effects WHERE list_contains(?::VARCHAR[], kind) "
                          "AND list_contains(?::INT[], k::INT)", [kinds, k])

    # ----- the checks a reviewer asks for (schema 2): paired outcomes, critical neurons, the overlap null ----
    def paired_outcomes(self, k: int, language: str, template_kind: str = "train", ablation: str = "zero"
                        ) -> pd.DataFrame:
        """Per evaluated relation and prompt: correct at baseline, with the relation's own top-k off, and with
        each random set of the same k off (`family`, `seed`): the pairs a paired test compares. `ablation`: as
        in ablation_summary (another ablation's own and random sets both come from its effects)."""
        source, where_o, extra_o = _effects_source(ablation, "o")
        _, where_r, extra_r = _effects_source(ablation, "r")
        return self.query(
            "SELECT o.relation, o.prompt_id, b.correct AS base_correct, o.correct AS own_correct, "
            f"r.ablated::VARCHAR AS family, r.seed, r.correct AS random_correct FROM {source} o "
            "JOIN baseline b ON b.prompt_id = o.prompt_id "
            f"JOIN {source} r ON r.prompt_id = o.prompt_id AND r.kind = 'random' AND r.k = o.k{where_r} "
            "WHERE o.kind = 'top' AND o.ablated::VARCHAR = o.relation AND o.k::INT = ? AND o.language = ? "
            f"AND o.template_kind = ?{where_o} ORDER BY o.relation, family, r.seed, o.prompt_id",
            [*extra_r, int(k), language, template_kind, *extra_o])

    def top_sets(self, k: int, language: str, relations: list[str] | tuple[str, ...]) -> pd.DataFrame:
        """Every relation's top-k neurons in one language: relation, neuron, layer, module, index."""
        return self.query(
            "SELECT relation, neuron, layer, module::VARCHAR AS module, \"index\" FROM "
            f"{self.ranked_table(int(k))} WHERE language = ? AND rank <= ? AND list_contains(?::VARCHAR[], relation) "
            "ORDER BY relation, rank", [language, int(k), list(relations)])

    @property
    def critical_threshold(self) -> float:
        return float(self.manifest.options.get("critical_threshold", 20.0))

    def critical_neurons(self) -> pd.DataFrame:
        """Every (neuron, relation) whose single ablation costs the relation at least the run's threshold in
        accuracy points (exact evaluation), largest first."""
        return self.query(
            "SELECT neuron, layer, module::VARCHAR AS module, \"index\", relation, language, prompts, base_accuracy, "
            "accuracy, drop_points FROM single_neuron WHERE drop_points >= ? ORDER BY drop_points DESC, neuron, relation",
            [self.critical_threshold])

    def single_neuron_effects(self, neuron: int) -> pd.DataFrame:
        """One neuron's single-ablation screen and (where it was flagged) exact effect, per relation."""
        return self.query(
            "SELECT relation, language, sample_prompts, sample_broken, sample_first_lp_drop, prompts, base_accuracy, "
            "accuracy, drop_points, coalesce(drop_points >= ?, false) AS critical FROM single_neuron WHERE neuron = ? "
            "ORDER BY relation", [self.critical_threshold, neuron])

    def random_sets(self, k: int) -> pd.DataFrame:
        """family, seed, neuron of every random set of size k."""
        return self.query("SELECT family, seed, neuron FROM random_sets WHERE k = ? ORDER BY family, seed, neuron", [k])

    def null_overlap_counts(self, k: int, layers: tuple[int, int], modules: list[str]) -> pd.DataFrame:
        """Per permutation seed, the neurons every two relations' top-k share when relation labels are
        permuted (identification language; pairs that share none are absent), with the same filters as
        overlap_counts."""
        return self.query(
            "WITH t AS (SELECT seed, relation, neuron FROM null_top WHERE rank <= ? AND layer BETWEEN ? AND ? "
            "AND list_contains(?::VARCHAR[], module::VARCHAR)) "
            "SELECT a.seed, a.relation AS relation_a, b.relation AS relation_b, count(*) AS shared "
            "FROM t a JOIN t b ON a.seed = b.seed AND a.neuron = b.neuron GROUP BY ALL ORDER BY ALL",
            [k, layers[0], layers[1], modules])

    @property
    def null_seeds(self) -> int:
        return int(self.query("SELECT count(DISTINCT seed) AS n FROM null_top").n.iloc[0]) if self.available(
            "null_top") else 0

    def ablation_summary(self, template_kind: str = "train", ablation: str = "zero") -> pd.DataFrame:
        """Per (ablated set, k, seed, evaluated relation, language): accuracy before and after, log-prob drops,
        drop in points and relative drop. The one implementation (tests/run_oracle.py holds a pandas check).
        `ablation`: zero (the sweep) or another of the run's ablations (core.ablation keys, main k only)."""
        source, where, extra = _effects_source(ablation, "e")
        params = [template_kind, *extra]
        df = self.query(
            "SELECT e.ablated, e.kind, e.k_from::INT AS k_from, e.k::INT AS k, e.seed, e.relation, e.language, "
            "avg(b.correct::INT) AS base_accuracy, avg(e.correct::INT) AS accuracy, count(*) AS prompts, "
            "avg(b.gold_first_logprob::DOUBLE - e.gold_first_logprob) AS first_lp_drop, "  # FLOAT - FLOAT stays FLOAT
            "avg(b.gold_logprob::DOUBLE - e.gold_logprob) AS lp_drop "
            f"FROM {source} e JOIN baseline b ON b.prompt_id = e.prompt_id WHERE e.template_kind = ?{where} "
            "GROUP BY ALL", params)
        return finish_ablation_table(df)

    def ablations(self) -> list[str]:
        """zero, then the other ablations whose effects this run holds (core.ablation keys)."""
        if not self.available("mode_effects"):
            return ["zero"]
        return ["zero", *self.query("SELECT DISTINCT ablation::VARCHAR AS a FROM mode_effects ORDER BY a").a]
