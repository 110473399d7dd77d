"""Parquet files written atomically under hive partitions (key=value folders)."""
from __future__ import annotations

import hashlib
import os
import re
import threading
import uuid
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


def parquet_digests(root: Path) -> dict[str, str]:
    """Every Parquet file under `root` (relative path) and its content's SHA-256: two runs wrote the same bytes
    when these are equal."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(root).rglob("*.parquet"))}


TEMPORARY = re.compile(r"^\..+\.(\d+)-\d+-[0-9a-f]{12}\.tmp$")  # .<name>.<pid>-<thread>-<random>.tmp


def temporary_path(path: Path) -> Path:
    """A name in `path`'s folder that no other writer uses: concurrent writers of one file (threads or
    processes) each write their own temporary file, and the last rename wins whole."""
    return path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}-{uuid.uuid4().hex[:12]}.tmp")


def _replace_from_temporary(path: Path, write) -> None:
    """`write(tmp)` then fsync and rename onto `path`: readers never see half a file. A failed write removes
    its temporary file; one from a killed process is removed by remove_dead_temporaries."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_parquet_atomic(df: pd.DataFrame, path: Path, **options) -> None:
    """`options`: more of pyarrow.parquet.write_table's arguments (encodings), beside zstd compression."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    _replace_from_temporary(path, lambda tmp: pq.write_table(table, tmp, compression="zstd", **options))


def write_bytes_atomic(data: bytes, path: Path) -> None:
    _replace_from_temporary(path, lambda tmp: Path(tmp).write_bytes(data))


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_dead_temporaries(folder: Path) -> int:
    """Delete the temporary files under `folder` whose writing process is gone (killed mid-write); returns
    how many. Live writers' files are left alone."""
    removed = 0
    for path in Path(folder).rglob(".*.tmp"):
        match = TEMPORARY.match(path.name)
        if match and not pid_alive(int(match.group(1))):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def read_parquet(path: Path) -> pd.DataFrame:
    return pq.read_table(path).to_pandas()
