"""DuckDB over one run's Parquet: tables loaded once from whitelisted paths, every user value a bound parameter.

The run folder comes from the server's own discovery of runs (core.runs), never
from a URL. After loading, file access is switched off and the configuration
locked, so no query can reach the file system. Each query runs on its own
cursor, so sessions on different threads can share one store.
"""
from __future__ import annotations

import threading
from pathlib import Path

import duckdb
import pandas as pd

from core.manifest import Manifest, read_manifest
from core.metrics import finish_ablation_table

TABLES = ("baseline", "identification", "scores", "effects", "top_prompts")


class RunDataError(RuntimeError):
    """A run's files are missing or unreadable; the message names the file and what to do."""


class RunStore:
    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.manifest: Manifest = read_manifest(self.run_dir)
        self._con = duckdb.connect(":memory:")
        self._lock = threading.Lock()
        self.missing: dict[str, str] = {}
        for table in TABLES:
            folder = self.run_dir / table
            files = sorted(folder.rglob("*.parquet")) if folder.exists() else []
            if not files:
                self.missing[table] = f"{folder} has no Parquet files; rerun `python -m precompute run` for this run"
                continue
            try:
                rel = self._con.read_parquet([str(f) for f in files], hive_partitioning=True)
                rel.create(table)
            except duckdb.Error as exc:
                self.missing[table] = (f"{folder} holds a missing, truncated or corrupt Parquet file ({exc}); "
                                       "delete it and rerun `python -m precompute run` with the same options to rebuild it")
        self._con.execute("SET enable_external_access = false")
        self._con.execute("SET lock_configuration = true")

    def close(self) -> None:
        self._con.close()

    def available(self, table: str) -> bool:
        return table not in self.missing

    def query(self, sql: str, params: list | tuple = ()) -> pd.DataFrame:
        """Run one of this module's fixed queries; values only ever arrive as parameters."""
        for table in TABLES:
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

    def top_neurons(self, relation: str, language: str, k: int) -> pd.DataFrame:
        return self.query(
            "SELECT neuron, layer, module::VARCHAR AS module, \"index\", ap, rank, mean_pos, mean_neg FROM scores "
            "WHERE relation = ? AND language = ? AND rank <= ? ORDER BY rank", [relation, language, k])

    def _top_cte(self) -> str:
        return ("WITH top AS (SELECT relation, language, neuron, layer, module::VARCHAR AS module, \"index\" FROM scores "
                "WHERE rank <= ? AND layer BETWEEN ? AND ? AND list_contains(?::VARCHAR[], module::VARCHAR)) ")

    def overlap_counts(self, k: int, languages: list[str], layers: tuple[int, int], modules: list[str]) -> pd.DataFrame:
        """Shared top-k neurons for every (relation, language) pair among `languages`, with set sizes."""
        sql = self._top_cte() + (
            ", sel AS (SELECT * FROM top WHERE list_contains(?::VARCHAR[], language)), "
            "sizes AS (SELECT relation, language, count(*) AS size FROM sel GROUP BY ALL) "
            "SELECT a.relation AS relation_a, a.language AS language_a, b.relation AS relation_b, "
            "b.language AS language_b, count(*) AS shared FROM sel a JOIN sel b USING (neuron) GROUP BY ALL")
        shared = self.query(sql, [k, layers[0], layers[1], modules, languages])
        sizes = self.query(self._top_cte() + "SELECT relation, language, count(*) AS size FROM top "
                           "WHERE list_contains(?::VARCHAR[], language) GROUP BY ALL",
                           [k, layers[0], layers[1], modules, languages])
        return shared, sizes

    def shared_neurons(self, k: int, a: tuple[str, str], b: tuple[str, str], layers: tuple[int, int],
                       modules: list[str]) -> pd.DataFrame:
        sql = self._top_cte() + (
            "SELECT x.neuron, x.layer, x.module, x.\"index\" FROM top x JOIN top y USING (neuron) "
            "WHERE x.relation = ? AND x.language = ? AND y.relation = ? AND y.language = ? ORDER BY x.neuron")
        return self.query(sql, [k, layers[0], layers[1], modules, a[0], a[1], b[0], b[1]])

    def layer_distribution(self, k: int, language: str) -> pd.DataFrame:
        return self.query(
            "SELECT relation, layer, module::VARCHAR AS module, count(*) AS neurons FROM scores "
            "WHERE rank <= ? AND language = ? GROUP BY ALL ORDER BY relation, layer, module", [k, language])

    def neuron_profile(self, neuron: int) -> pd.DataFrame:
        return self.query(
            "SELECT relation, language, ap, rank, mean_pos, median_pos, mean_neg FROM scores "
            "WHERE neuron = ? ORDER BY relation, language", [neuron])

    def neuron_top_prompts(self, neuron: int, language: str) -> pd.DataFrame:
        return self.query(
            "SELECT t.place, t.value, b.relation, b.text, b.gold FROM top_prompts t "
            "JOIN baseline b ON b.prompt_id = t.prompt_id WHERE t.neuron = ? AND t.language = ? ORDER BY t.place",
            [neuron, language])

    def effect_rows(self, kinds: list[str], k: list[int] | None = None) -> pd.DataFrame:
        """Per-prompt effects for the given ablation kinds (and k values), for core.metrics."""
        if k is None:
            return self.query("SELECT * FROM effects WHERE list_contains(?::VARCHAR[], kind)", [kinds])
        return self.query("SELECT * FROM effects WHERE list_contains(?::VARCHAR[], kind) "
                          "AND list_contains(?::INT[], k::INT)", [kinds, k])

    def ablation_summary(self, template_kind: str = "train") -> pd.DataFrame:
        """core.metrics.ablation_table computed in SQL: one row per (ablated set, k, seed, relation, language)."""
        df = self.query(
            "SELECT e.ablated, e.kind, e.k_from::INT AS k_from, e.k::INT AS k, e.seed, e.relation, e.language, "
            "avg(b.correct::INT) AS base_accuracy, avg(e.correct::INT) AS accuracy, count(*) AS prompts, "
            "avg(b.gold_first_logprob - e.gold_first_logprob) AS first_lp_drop, "
            "avg(b.gold_logprob - e.gold_logprob) AS lp_drop "
            "FROM effects e JOIN baseline b ON b.prompt_id = e.prompt_id WHERE e.template_kind = ? GROUP BY ALL",
            [template_kind])
        return finish_ablation_table(df)
