"""Llama-2-7B's exact shape on one GPU, with RANDOM weights: capture, scoring, ablated generation, the lab path,
memory.

    python -m bench.gpu_7b                                  # on a CUDA machine: Llama-2-7B config, bfloat16
    python -m bench.gpu_7b --shape small --device cpu --dtype float32   # a quick check of the script itself
    python -m bench.gpu_7b --only lab --users 1,8,32        # the lab path alone

Random weights say nothing about neurons; they cost exactly what trained ones
cost. Printed: capture throughput (prompts/s, tokens/s) through the project's
own hooks and pooling, against the arithmetic limit (2 x parameters FLOPs per
token at --peak-tflops); AP scoring of every neuron for 12 relations with the
sorts on the GPU; greedy generation latency with and without 3,000 neurons
switched off, against the memory-bandwidth limit (all weights read once per
token at --peak-tbps); the lab path (core.lab): one request's latency (a
--prompt-tokens prompt, --new-tokens tokens, --ablate random neurons off), then
requests/s with 1, 8 and 32 concurrent users (threads, each submitting
--requests-per-user requests with their own prompts and neuron sets, every
third set empty), answered batched through one core.lab_scheduler.LabScheduler
over read_prompts and one by one (read_prompt_ablated behind one lock, what the
app did before), with the ratio and the scheduler's mean batch size, and a check
that a handful of batched answers equal the one-by-one answers (continuation and
top-10 next tokens; it raises otherwise); and peak GPU memory. --only runs some
sections (scoring needs capture's rows, so it runs capture too).
"""
from __future__ import annotations

import argparse
import statistics
import threading
import time
from types import SimpleNamespace

import numpy as np
import torch


from core.adapters import neuron_space_for
from core.capture import capture_pooled
from core.generation import encode, forward_logits, greedy_generate
from core.hooks import neuron_hooks
from core.lab import MAX_NEW_TOKENS, TOP_TOKENS, LabRequest, read_prompt_ablated, read_prompts
from core.lab_scheduler import LabScheduler
from core.score_stream import LabelledRows, score_stream
from precompute.synthetic_run import SHAPES, llama_config


def word_tokenizer(vocab: int):
    """A tokenizer where "w17" is token 17: exact prompt lengths without a trained vocabulary."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = {"<pad>": 0, "<s>": 1, "</s>": 2, **{f"w{i}": i for i in range(3, vocab)}}
    tok = Tokenizer(models.WordLevel(words, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>")


def synced(device: str):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str) -> float:
    synced(device)
    t0 = time.perf_counter()
    fn()
    synced(device)
    return time.perf_counter() - t0


SECTIONS = ("capture", "scoring", "generation", "lab")


def sections_arg(text: str) -> set[str]:
    chosen = {part.strip() for part in text.split(",") if part.strip()}
    unknown = chosen - set(SECTIONS)
    if not chosen or unknown:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(SECTIONS)} (comma-separated), not {text!r}")
    return chosen


def counts_arg(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"a comma-separated list of positive counts, not {text!r}")
    return counts


def random_neurons(space, rng: np.random.Generator, count: int) -> tuple:
    ids = rng.choice(space.total, min(count, space.total), replace=False)
    return tuple(space.neuron(int(i)) for i in ids)


def random_prompt(rng: np.random.Generator, vocab: int, tokens: int) -> str:
    return " ".join(f"w{t}" for t in rng.integers(3, vocab, tokens))


def serve_users(users: int, per_user: int, requests: list[LabRequest], answer) -> tuple[float, dict[int, object]]:
    """`users` threads released together, user u asking requests[u * per_user:(u + 1) * per_user] one after the
    other (each waits for its answer before asking the next); the seconds until the last answer, and the answers
    by request index."""
    results: dict[int, object] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(users + 1)

    def user(u: int) -> None:
        barrier.wait()
        try:
            for i in range(u * per_user, (u + 1) * per_user):
                results[i] = answer(requests[i])
        except BaseException as exc:  # noqa: BLE001 (re-raised below, in the main thread)
            errors.append(exc)

    threads = [threading.Thread(target=user, args=(u,), name=f"lab-user-{u}") for u in range(users)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return seconds, results


def bench_lab(args, lm, hooks, space, rng: np.random.Generator) -> None:
    """The live lab's requests: one alone, then concurrent users answered batched and one by one."""
    vocab = lm.config.vocab_size
    new_tokens = min(args.new_tokens, MAX_NEW_TOKENS)  # what LabRequest.checked() clamps to
    short = max(1, args.prompt_tokens - args.prompt_tokens // 4)  # prompts of different lengths: padding too

    def request(i: int) -> LabRequest:
        neurons = () if i % 3 == 0 else random_neurons(space, rng, args.ablate)
        return LabRequest(random_prompt(rng, vocab, int(rng.integers(short, args.prompt_tokens + 1))), neurons,
                          new_tokens)

    # 1. one request, alone (no other user): straight through read_prompt_ablated, and through the scheduler
    one = LabRequest(random_prompt(rng, vocab, args.prompt_tokens), random_neurons(space, rng, args.ablate),
                     new_tokens)
    scheduler = LabScheduler(lambda batch: read_prompts(lm, hooks, batch), max_batch=args.max_batch)
    try:
        alone = lambda: read_prompt_ablated(lm, hooks, one.prompt, one.neurons, one.new_tokens)  # noqa: E731
        alone()  # warm-up
        scheduler(one)
        latency = statistics.median(timed(alone, args.device) for _ in range(args.lab_repeats + 2))
        queued = statistics.median(timed(lambda: scheduler(one), args.device) for _ in range(args.lab_repeats + 2))
        print(f"lab, one request ({args.prompt_tokens}-token prompt, {new_tokens} new tokens, "
              f"{len(one.neurons):,} neurons off): {latency * 1000:.0f} ms alone "
              f"({latency / new_tokens * 1000:.1f} ms/token), {queued * 1000:.0f} ms through the scheduler "
              f"(median of {args.lab_repeats + 2})")

        # 2. concurrent users, batched through the scheduler vs one by one behind a lock
        lock = threading.Lock()

        def one_by_one(r: LabRequest):
            with lock:
                return read_prompt_ablated(lm, hooks, r.prompt, r.neurons, r.new_tokens)

        warmed = False
        last: dict[str, dict[int, object]] = {}
        requests: list[LabRequest] = []
        for users in args.users:
            requests = [request(i) for i in range(users * args.requests_per_user)]
            if not warmed:  # the largest batch once, so no timed run pays for first calls
                serve_users(max(args.users), 1, [request(i) for i in range(max(args.users))], scheduler)
                warmed = True
            seconds = {"batched": [], "one by one": []}
            sizes: list[float] = []  # mean batch size per repeat
            for _ in range(args.lab_repeats):
                batches, answered = scheduler.answered_batches, scheduler.answered_requests
                took, last["batched"] = serve_users(users, args.requests_per_user, requests, scheduler)
                seconds["batched"].append(took)
                sizes.append((scheduler.answered_requests - answered) / (scheduler.answered_batches - batches))
                took, last["one by one"] = serve_users(users, args.requests_per_user, requests, one_by_one)
                seconds["one by one"].append(took)
            rate = {mode: len(requests) / statistics.median(s) for mode, s in seconds.items()}
            print(f"lab, {users} user{'s' if users > 1 else ''} x {args.requests_per_user} requests "
                  f"({min(args.ablate, space.total):,} or 0 neurons off each): "
                  f"batched {rate['batched']:,.1f} requests/s (mean batch {statistics.mean(sizes):.1f}), "
                  f"one by one {rate['one by one']:,.1f} requests/s: {rate['batched'] / rate['one by one']:.2f}x "
                  f"(median of {args.lab_repeats})")
    finally:
        scheduler.close()

    # 3. the batched answers are the one-by-one answers (last round of the last user count)
    picked = sorted({int(i) for i in np.linspace(0, len(requests) - 1, min(args.check, len(requests)))})
    for i in picked:
        batched, single = last["batched"][i], last["one by one"][i]
        if batched.continuation_ids != single.continuation_ids or batched.top(TOP_TOKENS) != single.top(TOP_TOKENS):
            raise RuntimeError(
                f"lab request {i} ({len(requests[i].neurons):,} neurons off): batched continuation "
                f"{batched.continuation_ids} top-{TOP_TOKENS} {batched.top(TOP_TOKENS)} differs from one by one "
                f"{single.continuation_ids} top-{TOP_TOKENS} {single.top(TOP_TOKENS)} ({args.dtype}; in a reduced "
                "precision, batch-dependent kernels can reorder near-tied tokens: --dtype float32 tells a rounding "
                "difference from a wrong row)")
    ablated = [i for i in picked if requests[i].neurons]
    plain = read_prompts(lm, hooks, [LabRequest(requests[i].prompt, (), requests[i].new_tokens) for i in ablated])
    moved = sum(1 for i, p in zip(ablated, plain) if (last["batched"][i].continuation_ids, last["batched"][i].top())
                != (p.continuation_ids, p.top()))
    print(f"lab check: {len(picked)} requests ({len(ablated)} with neurons off, {len(picked) - len(ablated)} plain), "
          f"batched vs one by one: continuations and top-{TOP_TOKENS} next tokens identical; {moved} of the "
          f"{len(ablated)} with neurons off answer differently from the plain model")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shape", choices=sorted(SHAPES), default="llama-2-7b")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float16", "float32"))
    parser.add_argument("--only", type=sections_arg, default=set(SECTIONS),
                        help=f"comma-separated sections to run, of {', '.join(SECTIONS)} (default: all)")
    parser.add_argument("--prompts", type=int, default=2048, help="prompts captured")
    parser.add_argument("--tokens", type=int, default=20, help="tokens per prompt")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--score-prompts", type=int, default=6000, help="capture rows scored (the paper: ~6,000)")
    parser.add_argument("--relations", type=int, default=12)
    parser.add_argument("--ablate", type=int, default=3000, help="neurons switched off (generation, lab)")
    parser.add_argument("--new-tokens", type=int, default=20, help=f"(the lab reads at most {MAX_NEW_TOKENS})")
    parser.add_argument("--prompt-tokens", type=int, default=32, help="lab: tokens per prompt (some 1/4 fewer)")
    parser.add_argument("--users", type=counts_arg, default=[1, 8, 32], help="lab: concurrent users, e.g. 1,8,32")
    parser.add_argument("--requests-per-user", type=int, default=3, help="lab: requests each user asks in turn")
    parser.add_argument("--max-batch", type=int, default=32, help="lab: the scheduler's largest batch")
    parser.add_argument("--lab-repeats", type=int, default=3, help="lab: timed repetitions (the median is shown)")
    parser.add_argument("--check", type=int, default=8, help="lab: requests compared batched vs one by one")
    parser.add_argument("--peak-tflops", type=float, default=790.0, help="dense bf16 arithmetic limit")
    parser.add_argument("--peak-tbps", type=float, default=4.8, help="memory bandwidth limit")
    args = parser.parse_args()
    if "scoring" in args.only:
        args.only.add("capture")  # scoring ranks the captured rows
    from transformers import LlamaForCausalLM

    config = llama_config(SHAPES[args.shape], max_position_embeddings=4096, pad_token_id=0, bos_token_id=1,
                          eos_token_id=2)
    vocab = config.vocab_size
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(0)
    with torch.device(args.device):
        model = LlamaForCausalLM(config).to(dtype).eval()
    params = sum(p.numel() for p in model.parameters())
    matmul_params = params - model.get_input_embeddings().weight.numel()  # embeddings are a lookup, not a matmul
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    space = neuron_space_for(config, "paper")
    hooks = neuron_hooks(model, space)
    tokenizer = word_tokenizer(vocab)
    rng = np.random.default_rng(0)
    texts = [random_prompt(rng, vocab, args.tokens) for _ in range(args.prompts)]
    print(f"RANDOM WEIGHTS, {args.shape} config: {params / 1e9:.2f} B parameters, {space.total:,} neurons, "
          f"{args.dtype} on {args.device} ({torch.cuda.get_device_name() if args.device.startswith('cuda') else 'CPU'})")
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()

    if "capture" in args.only:
        capture_pooled(hooks, tokenizer, texts[: args.batch], batch_size=args.batch)  # warm-up
        if args.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        out = np.empty((args.prompts, space.total), dtype=np.float32)
        seconds = timed(lambda: capture_pooled(hooks, tokenizer, texts, batch_size=args.batch, out=out), args.device)
        tokens = args.prompts * args.tokens
        achieved = 2 * matmul_params * tokens / seconds / 1e12
        print(f"capture: {args.prompts / seconds:,.0f} prompts/s, {tokens / seconds:,.0f} tokens/s "
              f"(batch {args.batch} x {args.tokens} tokens); {achieved:,.1f} TFLOP/s = "
              f"{achieved / args.peak_tflops:.1%} of {args.peak_tflops:g}")
        # the same batch both ways (the capture's own tokenization and positions), interleaved, median of 5
        first = encode(tokenizer, texts[: args.batch], "right", args.device)
        plain_runs, capture_runs = [], []
        for _ in range(5):
            plain_runs.append(timed(lambda: forward_logits(model, first), args.device))
            capture_runs.append(timed(lambda: capture_pooled(hooks, tokenizer, texts[: args.batch],
                                                             batch_size=args.batch), args.device))
        plain, with_hooks = statistics.median(plain_runs), statistics.median(capture_runs)
        print(f"  one batch, the same prompts, median of 5: forward outside any request {plain * 1000:.1f} ms, "
              f"with capture {with_hooks * 1000:.1f} ms ({with_hooks / plain:.2f}x)")

    if "scoring" in args.only:
        rows = np.resize(out, (args.score_prompts, space.total)) if args.score_prompts != args.prompts else out
        set_size = min(1500, len(rows))  # the paper's sets: 300 positives and 4x as many negatives
        sets = {f"relation_{r}": LabelledRows(np.sort(rng.choice(len(rows), set_size, replace=False)),
                                              np.arange(set_size) < set_size // 5) for r in range(args.relations)}
        scoring = timed(lambda: score_stream(rows, sets, np.arange(len(rows), dtype=np.int32), device=args.device),
                        args.device)
        print(f"scoring: {space.total:,} neurons x {args.relations} relations over {len(rows):,} captured prompts "
              f"in {scoring:.1f} s (AP sorts on {args.device})")

    if "generation" in args.only:
        neurons = list(random_neurons(space, rng, args.ablate))
        for batch in (1, 32):
            batch_texts = (texts * 32)[:batch]
            runs = {}
            for label in ("unablated", "ablated"):
                samples = []
                for _ in range(3):
                    if label == "ablated":
                        def go():
                            with hooks.ablate(neurons):
                                greedy_generate(model, tokenizer, batch_texts, args.new_tokens, batch_size=batch)
                    else:
                        def go():
                            greedy_generate(model, tokenizer, batch_texts, args.new_tokens, batch_size=batch)
                    samples.append(timed(go, args.device))
                runs[label] = statistics.median(samples)
            per_token = runs["unablated"] / args.new_tokens
            floor = weight_bytes / (args.peak_tbps * 1e12)
            print(f"generation, batch {batch}, {args.new_tokens} new tokens: unablated "
                  f"{runs['unablated'] * 1000:.0f} ms, ablated ({len(neurons):,} neurons off) "
                  f"{runs['ablated'] * 1000:.0f} ms ({runs['ablated'] / runs['unablated']:.2f}x); "
                  f"{per_token * 1000:.1f} ms/token against a {floor * 1000:.2f} ms/token bandwidth floor "
                  f"({floor / per_token:.0%} of it)")

    if "lab" in args.only:
        bench_lab(args, SimpleNamespace(model=model, tokenizer=tokenizer, config=config), hooks, space, rng)
    if args.device.startswith("cuda"):
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB "
              f"(weights {weight_bytes / 2**30:.1f} GiB)")


if __name__ == "__main__":
    main()
