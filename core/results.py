"""Read a run's Parquet tables (hive-partitioned) into pandas."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds

TABLES = ("baseline", "identification", "scores", "effects", "top_prompts")


def read_table(run_dir: Path, table: str, filter_expr=None, columns: list[str] | None = None) -> pd.DataFrame:
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}; tables: {', '.join(TABLES)}")
    folder = Path(run_dir) / table
    if not folder.exists():
        raise FileNotFoundError(f"{folder} is missing: the run is incomplete")
    dataset = ds.dataset(folder, format="parquet", partitioning="hive", exclude_invalid_files=False)
    df = dataset.to_table(filter=filter_expr, columns=columns).to_pandas()
    for col in df.columns:  # hive keys arrive as dictionary-encoded categoricals
        if isinstance(df[col].dtype, pd.CategoricalDtype):
            df[col] = df[col].astype(str) if col != "module" else df[col]
    return df
