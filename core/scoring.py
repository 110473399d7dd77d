"""Average precision of every neuron as a classifier of "this prompt belongs to relation r".

Equal to sklearn.metrics.average_precision_score, ties included: AP is the mean,
over positives, of the precision at that positive's score, where the precision
at a score counts every sample scoring at least as high (so tied samples enter
together, as sklearn's distinct thresholds do).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch


def average_precision(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """scores [samples, neurons], labels [samples] (bool) -> AP per neuron [neurons], float64.

    Positives and negatives are sorted separately per neuron; for each positive a
    binary search counts the positives and the negatives scoring at least as high.
    Only the positives' precisions are formed, so the work after the sorts is
    proportional to the positives, not to all samples.
    """
    labels = labels.bool()
    positives, n = int(labels.sum()), scores.shape[0]
    if positives == 0 or positives == n:
        raise ValueError("average precision needs both positive and negative samples")
    cols = scores.T  # [neurons, samples]: sort and searchsorted work along the last dim
    pos = cols[:, labels].contiguous().sort(dim=1).values
    neg = cols[:, ~labels].contiguous().sort(dim=1).values
    pos_at_least = pos.shape[1] - torch.searchsorted(pos, pos, side="left")
    neg_at_least = neg.shape[1] - torch.searchsorted(neg, pos, side="left")
    return (pos_at_least.to(torch.float64) / (pos_at_least + neg_at_least).to(torch.float64)).mean(1)


def top_k(ap: np.ndarray, k: int) -> np.ndarray:
    """Flat ids of the k highest-AP neurons, ties broken by the lower flat id (stable)."""
    k = max(0, min(int(k), ap.shape[0]))
    return np.argsort(-ap, kind="stable")[:k]


# ---------------------------------------------------------------------------------------------------------
# Pooled AP: several labelled subsets of one pool of samples (every relation's positives and negatives are
# drawn from the same captured prompts), one sort per neuron shared by all of them.
#
# average_precision sorts one subset per neuron; scoring R relations that way sorts R subsets. Here each
# neuron's pooled values are sorted once, highest first. Every sample carries, per subset, a "+1 member" and a
# "+1 positive" counter, packed as bit fields into a few int64 words; one gather and one cumulative sum per
# word along the sorted order then give every subset's counts among the k highest samples, for every k. Ties:
# a positive's precision counts every member scoring at least as high, so it is read just past the end of its
# value's run of equal values (for the negated values: at the run's start, counting the members not above it).
# After that shared work a subset touches only its positives: a gather and a few operations each.

_LOW32 = 0xFFFFFFFF
_WORD_BITS = 63  # fields stay clear of the sign bit: packed counts add as plain int64, without carries
CPU_PART_BYTES = 16 << 20  # CPU: a part's working memory, per thread (cache-sized parts run fastest)
DEVICE_PART_BYTES = 1 << 30  # other devices: a part's working memory there
_POOL: ThreadPoolExecutor | None = None


def in_threads(fn: Callable[[slice], object], parts: list[slice]) -> None:
    """fn(part) for every part, in as many threads as torch uses (numpy's sort, take, accumulate and
    arithmetic release the GIL, so parts run in parallel)."""
    global _POOL
    threads = max(1, min(torch.get_num_threads(), len(parts)))
    if threads == 1:
        for part in parts:
            fn(part)
        return
    if _POOL is None or _POOL._max_workers < threads:
        if _POOL is not None:
            _POOL.shutdown(wait=False)
        _POOL = ThreadPoolExecutor(threads, thread_name_prefix="pooled-ap")
    for _ in _POOL.map(fn, parts):  # re-raises a part's exception
        pass


@dataclass
class _Field:
    """One set's two counters in a packed word, and where its positives sit in the pool's internal order."""
    set: int
    word: int
    npos: int
    members: int
    pos_shift: int
    pos_mask: int
    mem_shift: int
    mem_mask: int
    at: np.ndarray  # the positives' internal ids (a repeated positive repeats)
    span: tuple[int, int] | None  # (lo, hi) when they are exactly the internal ids lo..hi-1


class PooledSets:
    """Labelled subsets of one pool of `samples` samples, laid out once for pooled average precision.

    `sets`: (rows, positive) per subset: indices into the pool (a repeated row counts as often as it appears,
    as it would in average_precision) and a bool per row. Internally the pool is reordered so that each set's
    positives (those not positive in an earlier set) are consecutive: reading them is then a slice."""

    def __init__(self, sets: Sequence[tuple[np.ndarray, np.ndarray]], samples: int):
        self.samples = samples = int(samples)
        self.count = len(sets)
        checked = []
        for i, (rows, positive) in enumerate(sets):
            rows = np.asarray(rows, dtype=np.int64).reshape(-1)
            positive = np.asarray(positive, dtype=bool).reshape(-1)
            if rows.shape != positive.shape:
                raise ValueError(f"set {i}: {len(rows)} rows but {len(positive)} labels")
            if len(rows) and (rows.min() < 0 or rows.max() >= samples):
                raise ValueError(f"set {i}: rows outside the pool of {samples} samples")
            npos = int(positive.sum())
            if npos == 0 or npos == len(rows):
                raise ValueError("average precision needs both positive and negative samples")
            checked.append((rows, positive, npos))
        home = np.full(samples, len(sets), dtype=np.int64)  # the first set a sample is a positive of
        for i in reversed(range(len(checked))):
            rows, positive, _ = checked[i]
            home[rows[positive]] = i
        self.ids = np.empty(samples, dtype=np.int64)  # caller's sample -> internal id (grouped by home)
        self.ids[np.argsort(home, kind="stable")] = np.arange(samples)
        self.fields: list[_Field] = []
        used, word = _WORD_BITS, -1
        for i, (rows, positive, npos) in enumerate(checked):
            pos_bits, mem_bits = npos.bit_length(), len(rows).bit_length()  # a field holds 0..its set's total
            if used + pos_bits + mem_bits > _WORD_BITS:  # a set's two counters share a word
                word, used = word + 1, 0
            at = self.ids[rows[positive]]
            lo = int(at.min())
            span = (lo, lo + len(at)) if np.array_equal(np.sort(at), np.arange(lo, lo + len(at))) else None
            self.fields.append(_Field(i, word, npos, len(rows), used, (1 << pos_bits) - 1, used + pos_bits,
                                      (1 << mem_bits) - 1, at, span))
            used += pos_bits + mem_bits
        self.words = word + 1
        self.tables = np.zeros((self.words, samples + 1), dtype=np.int64)  # last entry: the sentinel's zero
        for f, (rows, positive, _) in zip(self.fields, checked):
            code = (np.int64(1) << f.mem_shift) + (positive.astype(np.int64) << f.pos_shift)
            np.add.at(self.tables[f.word], self.ids[rows], code)
        self._placed: dict[str, tuple] = {}

    def bytes_per_value(self, negated: bool = False) -> int:
        """Working memory of the pooled AP per pooled value of a part: the keys, the sorted ids, the run
        bounds and their slots by id (two of each with `negated`), and one counts column per word."""
        return 48 + (16 if negated else 0) + 8 * self.words

    def part_neurons(self, part_bytes: int, negated: bool = False) -> int:
        """Neurons per part so that a part's working memory stays within part_bytes."""
        return max(1, part_bytes // (max(1, self.samples) * self.bytes_per_value(negated)))

    def average_precision(self, scores: torch.Tensor, negated: bool = False, cpu_kernel: bool = True
                          ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """scores [samples, neurons] (no NaN) -> (AP [sets, neurons] float64, each row equal to
        average_precision(scores[rows], positive); with `negated` the AP of -scores likewise, else None).

        On the CPU, float32 (or narrower) scores run numpy in parts of a few neurons, cache-sized (CPU_PART_BYTES
        of working memory), in torch's thread count; other devices and float64 run torch in parts of
        DEVICE_PART_BYTES (cpu_kernel=False forces that path, for tests)."""
        samples, neurons = scores.shape
        if samples != self.samples:
            raise ValueError(f"scores have {samples} samples, the sets a pool of {self.samples}")
        narrow = scores.dtype in (torch.float32, torch.float16, torch.bfloat16)  # exact as float32
        cpu = scores.device.type == "cpu" and narrow and cpu_kernel
        ap = torch.empty(self.count, neurons, dtype=torch.float64, device="cpu" if cpu else scores.device)
        reverse = torch.empty_like(ap) if negated else None
        step = self.part_neurons(CPU_PART_BYTES if cpu else DEVICE_PART_BYTES, negated)
        parts = [slice(lo, min(lo + step, neurons)) for lo in range(0, neurons, step)]
        if cpu:
            values = (scores if scores.dtype == torch.float32 else scores.to(torch.float32)).numpy()
            ap_np, reverse_np = ap.numpy(), None if reverse is None else reverse.numpy()
            in_threads(lambda part: self._cpu_part(values[:, part], ap_np[:, part],
                                                   None if reverse_np is None else reverse_np[:, part]), parts)
        else:
            for part in parts:
                self._torch_part(scores[:, part], ap[:, part], None if reverse is None else reverse[:, part], narrow)
        return ap, reverse

    def _cpu_part(self, values: np.ndarray, ap: np.ndarray, reverse: np.ndarray | None) -> None:
        """values [samples, neurons] (a view of a few neurons) -> ap[set, neuron] (and reverse: AP of -values)."""
        samples, neurons = values.shape
        b = np.add(values, np.float32(0.0), dtype=np.float32).view(np.int32)  # a copy; -0.0 becomes +0.0
        flip = b >> 31
        flip &= 0x7FFFFFFF
        b ^= flip  # negative floats: flip the magnitude bits, so the int32s order as the floats
        np.invert(b, out=b)  # and reverse that order: ascending keys, descending values
        del flip
        keys = np.empty((neurons, samples), dtype=np.int64)  # high half the value's key, low half the sample id
        keys[...] = b.T
        del b
        np.left_shift(keys.view(np.uint64), np.uint64(32), out=keys.view(np.uint64))  # as unsigned: no overflow
        keys |= self.ids
        keys.sort(axis=1)
        rows = np.empty((neurons, samples + 1), dtype=np.int64)  # column 0: the sentinel, then highest first
        rows[:, 0] = samples
        np.bitwise_and(keys, _LOW32, out=rows[:, 1:])
        keys >>= 32
        differs = keys[:, 1:] != keys[:, :-1]  # a run of equal values ends between k and k + 1
        del keys
        position = np.arange(1, samples)
        base = np.arange(neurons)[:, None] * (samples + 1)  # flat offset of each neuron's counts
        scatter = rows[:, 1:] + np.arange(0, neurons * samples, samples)[:, None]  # each sorted sample's slot
        reads = []
        for out, start in ((ap, False), (reverse, True)):
            if out is None:
                continue
            bound = np.empty((neurons, samples), dtype=np.int64)
            if start:  # the run's first position: the members above it are the ones not at least as low
                bound[:] = 0
                np.copyto(bound[:, 1:], position, where=differs)
                np.maximum.accumulate(bound, axis=1, out=bound)
            else:  # just past the run's last position: the members at least as high
                bound[:] = samples
                np.copyto(bound[:, :-1], position, where=differs)
                np.minimum.accumulate(bound[:, ::-1], axis=1, out=bound[:, ::-1])
            bound += base
            column = np.empty((neurons, samples), dtype=np.int64)  # by internal id: where its counts are read
            column.reshape(-1)[scatter] = bound
            reads.append((column, out, start))
        del differs, scatter, bound
        counts = np.take(self.tables, rows, axis=1)  # [words, neurons, samples + 1]: sorted counters, sentinel first
        np.cumsum(counts, axis=2, out=counts)  # column k: the counters of the k highest samples
        for f in self.fields:
            flat = counts[f.word].reshape(-1)
            for column, out, start in reads:
                where = column[:, f.span[0]:f.span[1]] if f.span else np.take(column, f.at, axis=1)
                got = np.take(flat, where, mode="clip")
                pos = got >> f.pos_shift
                pos &= f.pos_mask
                mem = got >> f.mem_shift
                mem &= f.mem_mask
                if start:
                    np.subtract(f.npos, pos, out=pos)
                    np.subtract(f.members, mem, out=mem)
                out[f.set] = np.mean(pos / mem, axis=1)

    def _torch_part(self, scores: torch.Tensor, ap: torch.Tensor, reverse: torch.Tensor | None, narrow: bool) -> None:
        """The same counting in torch on the scores' device: scores [samples, neurons] -> ap, reverse [sets, neurons]."""
        samples, neurons = scores.shape
        device = scores.device
        key = str(device)
        if key not in self._placed:
            self._placed[key] = (torch.from_numpy(self.ids).to(device), torch.from_numpy(self.tables).to(device),
                                 [torch.from_numpy(f.at).to(device) for f in self.fields])
        ids, tables, at = self._placed[key]
        rows = torch.empty(neurons, samples + 1, dtype=torch.int64, device=device)
        rows[:, 0] = samples
        if narrow:  # the CPU kernel's keys: the value in the high half (reversed order), the internal id low
            bits = (scores.T.to(torch.float32) + 0.0).contiguous().view(torch.int32)
            bits ^= (bits >> 31) & 0x7FFFFFFF
            bits.bitwise_not_()
            keys = torch.sort((bits.to(torch.int64) << 32) | ids, dim=1).values
            del bits
            torch.bitwise_and(keys, _LOW32, out=rows[:, 1:])
            ties = keys >> 32
            del keys
        else:
            ties, order = torch.sort(scores.T, dim=1, descending=True)
            rows[:, 1:] = ids[order]
            del order
        differs = ties[:, 1:] != ties[:, :-1]
        del ties
        position = torch.arange(1, samples, device=device).expand(neurons, samples - 1)
        reads = []
        for out, start in ((ap, False), (reverse, True)):
            if out is None:
                continue
            bound = torch.full((neurons, samples), 0 if start else samples, dtype=torch.int64, device=device)
            if start:
                bound[:, 1:] = torch.where(differs, position, 0)
                bound = torch.cummax(bound, 1).values
            else:
                bound[:, :-1] = torch.where(differs, position, samples)
                bound = torch.cummin(bound.flip(1), 1).values.flip(1)
            reads.append((torch.empty_like(bound).scatter_(1, rows[:, 1:], bound), out, start))
            del bound
        del differs
        for w in range(self.words):
            counts = tables[w][rows].cumsum_(1)
            for f, positives in zip(self.fields, at):
                if f.word != w:
                    continue
                for column, out, start in reads:
                    where = column[:, f.span[0]:f.span[1]] if f.span else column.index_select(1, positives)
                    got = counts.gather(1, where)
                    pos = (got >> f.pos_shift) & f.pos_mask
                    mem = (got >> f.mem_shift) & f.mem_mask
                    if start:
                        pos, mem = f.npos - pos, f.members - mem
                    out[f.set] = (pos.to(torch.float64) / mem.to(torch.float64)).mean(1)
            del counts


def pooled_average_precision(scores: torch.Tensor, sets: Sequence[tuple[np.ndarray, np.ndarray]],
                             negated: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """AP of several labelled subsets of the same samples with one sort per neuron: scores [samples, neurons],
    sets [(rows, positive)] -> [sets, neurons] float64 (and, with `negated`, the AP of -scores, else None), each
    row equal to average_precision(scores[rows], positive). Over many neuron chunks build PooledSets once."""
    return PooledSets(sets, scores.shape[0]).average_precision(scores, negated)
