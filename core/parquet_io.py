"""Parquet files written atomically under hive partitions (key=value folders)."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

PARTITION_VALUE = re.compile(r"^[A-Za-z0-9_.+-]{1,80}$")


def partition_dir(root: Path, **keys) -> Path:
    """root/key1=value1/key2=value2; values are checked so nothing can escape `root`."""
    path = Path(root)
    for key, value in keys.items():
        value = str(value)
        if not PARTITION_VALUE.match(value) or value in {".", ".."}:
            raise ValueError(f"partition value {value!r} for {key} has characters outside [A-Za-z0-9_.+-]")
        path = path / f"{key}={value}"
    return path


def write_parquet_atomic(df: pd.DataFrame, path: Path) -> None:
    """Write to a temporary name in the same folder, fsync, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    table = pa.Table.from_pandas(df, preserve_index=False)
    pq.write_table(table, tmp, compression="zstd")
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_bytes_atomic(data: bytes, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_parquet(path: Path) -> pd.DataFrame:
    return pq.read_table(path).to_pandas()
