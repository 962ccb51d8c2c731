"""Decode, prompt-lookup, prompt-processing and KV-reuse speed of every installed tier.

    python benchmarks/speed.py [--tiers smollm2-135m,qwen2.5-coder-0.5b] [--repeats 3] [--json PATH]

For each tier, in one run:

(a) raw llama.cpp: a plain ``llama_decode`` loop with a numpy argmax, no Gearshift code;
(b) LlamaEngine on the same prompt (greedy, prompt lookup off);
(c) LlamaEngine with prompt lookup on a code-editing prompt (rewrite a 40-line function with
    one variable renamed), with the draft acceptance rate;
(d) prompt processing tokens/s of a ~1,000-token prompt evaluated cold;
(e) that cold evaluation against re-evaluating the prompt after a one-character edit at its end.

Raw and engine runs are interleaved and the best of ``--repeats`` is kept, so that load from
other processes hurts both sides alike.  Nothing is written to stdout but the table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import llama_cpp as llama  # noqa: E402
import numpy as np  # noqa: E402

from lsp_server.errors import GearshiftError  # noqa: E402
from lsp_server.inference.assembly import ensure_model  # noqa: E402
from lsp_server.inference.chat import format_chat  # noqa: E402
from lsp_server.inference.llama.engine import LlamaEngine  # noqa: E402
from lsp_server.inference.types import GenerationRequest  # noqa: E402
from lsp_server.settings import EngineSettings  # noqa: E402

DEFAULT_TIERS = "smollm2-135m,qwen2.5-coder-0.5b,qwen2.5-coder-1.5b"
DECODE_TOKENS = 64
N_CTX = 4096

DECODE_PROMPT_USER = (
    "Write a Python module implementing a binary search tree class with insert, delete, search, "
    "minimum, maximum and in-order traversal methods, with docstrings."
)

EDIT_SOURCE = '''def summarize_orders(orders, tax_rate, discounts):
    """Summarize a list of orders into totals per customer."""
    totals = {}
    counts = {}
    for order in orders:
        customer = order["customer"]
        amount = order["amount"]
        if amount <= 0:
            continue
        discount = discounts.get(customer, 0.0)
        amount = amount * (1.0 - discount)
        amount = amount * (1.0 + tax_rate)
        if customer not in totals:
            totals[customer] = 0.0
            counts[customer] = 0
        totals[customer] += amount
        counts[customer] += 1
    report = []
    for customer, total in totals.items():
        count = counts[customer]
        average = total / count
        report.append(
            {
                "customer": customer,
                "total": round(total, 2),
                "count": count,
                "average": round(average, 2),
            }
        )
    report.sort(key=lambda row: row["total"], reverse=True)
    best = report[0]["customer"] if report else None
    grand_total = sum(row["total"] for row in report)
    return {
        "report": report,
        "best_customer": best,
        "grand_total": round(grand_total, 2),
        "customers": len(report),
    }
'''

EDIT_USER = (
    "Rename the variable `amount` to `net_amount` in this function. "
    "Reply with the complete rewritten function only.\n\n```python\n" + EDIT_SOURCE + "```"
)


def long_prompt_text(target_tokens: int, count_tokens) -> str:
    """Python source of about ``target_tokens`` tokens, different function by function."""
    parts: list[str] = []
    i = 0
    while True:
        parts.append(
            f"def handler_{i}(request, session):\n"
            f'    """Handle request kind {i} and return a response dict."""\n'
            f"    value = request.get('field_{i}', {i})\n"
            f"    if value > {i * 3}:\n"
            f"        session.log('large value for {i}', value)\n"
            f"    return {{'status': 'ok', 'value': value * {i + 1}}}\n\n"
        )
        i += 1
        text = "".join(parts)
        if count_tokens(text) >= target_tokens:
            return text


class RawDecoder:
    """llama.cpp driven directly: load, evaluate a prompt, then one-token decodes with a numpy argmax."""

    def __init__(self, path: Path, n_threads: int, settings: EngineSettings) -> None:
        # The same llama.cpp configuration as the engine's, so that only the driving code differs.
        model_params = llama.llama_model_default_params()
        model_params.use_extra_bufts = settings.weight_repack
        model_params.load_mode = (
            llama.LLAMA_LOAD_MODE_MMAP if settings.use_mmap else llama.LLAMA_LOAD_MODE_NONE
        )
        self.model = llama.llama_model_load_from_file(str(path).encode(), model_params)
        params = llama.llama_context_default_params()
        params.n_ctx = N_CTX
        params.n_batch = params.n_ubatch = 512
        params.n_threads = params.n_threads_batch = n_threads
        types = {"f16": llama.GGML_TYPE_F16, "q8_0": llama.GGML_TYPE_Q8_0, "q4_0": llama.GGML_TYPE_Q4_0}
        params.type_k = types[settings.kv_cache_type_k]
        params.type_v = types[settings.kv_cache_type_v]
        flash = settings.flash_attention or settings.kv_cache_type_v != "f16"
        params.flash_attn_type = (
            llama.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash else llama.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        params.no_perf = True
        self.ctx = llama.llama_init_from_model(self.model, params)
        self.vocab = llama.llama_model_get_vocab(self.model)
        self.n_vocab = llama.llama_vocab_n_tokens(self.vocab)
        self.memory = llama.llama_get_memory(self.ctx)
        self.batch = llama.llama_batch_init(512, 0, 1)

    def tokenize(self, text: str) -> list[int]:
        data = text.encode()
        buf = (llama.llama_token * (len(data) + 8))()
        n = llama.llama_tokenize(self.vocab, data, len(data), buf, len(buf), True, True)
        return buf[:n]

    def _decode(self, tokens: list[int], pos: int) -> None:
        batch = self.batch
        batch.n_tokens = len(tokens)
        for i, token in enumerate(tokens):
            batch.token[i] = token
            batch.pos[i] = pos + i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = i == len(tokens) - 1
        if llama.llama_decode(self.ctx, batch) != 0:
            raise RuntimeError("llama_decode failed")

    def run(self, prompt: list[int], n_tokens: int) -> tuple[float, list[int]]:
        """Decode tokens/s after the first token (same definition as GenerationResult's)."""
        llama.llama_memory_clear(self.memory, True)
        for start in range(0, len(prompt), 512):
            self._decode(prompt[start : start + 512], start)
        pos = len(prompt)
        logits = np.ctypeslib.as_array(llama.llama_get_logits_ith(self.ctx, -1), shape=(self.n_vocab,))
        token = int(logits.argmax())
        out = [token]
        started = time.perf_counter()
        for _ in range(n_tokens - 1):
            self._decode([token], pos)
            pos += 1
            logits = np.ctypeslib.as_array(llama.llama_get_logits_ith(self.ctx, 0), shape=(self.n_vocab,))
            token = int(logits.argmax())
            out.append(token)
        return (n_tokens - 1) / (time.perf_counter() - started), out

    def close(self) -> None:
        llama.llama_batch_free(self.batch)
        llama.llama_free(self.ctx)
        llama.llama_model_free(self.model)


def bench_tier(tier: str, path: Path, settings: EngineSettings, repeats: int, log) -> dict:
    engine = LlamaEngine(path, settings, name=tier)
    raw = RawDecoder(path, engine.n_threads, settings)
    try:
        decode_prompt = format_chat(
            engine.metadata, "You are a helpful coding assistant.", DECODE_PROMPT_USER
        ).text
        edit_chat = format_chat(engine.metadata, "You are a careful code editor.", EDIT_USER)

        # (a) and (b), interleaved.
        prompt_tokens = raw.tokenize(decode_prompt)
        raw_runs, engine_runs = [], []
        plain = GenerationRequest(prompt=decode_prompt, max_tokens=DECODE_TOKENS, prompt_lookup=False)
        for i in range(max(repeats, 5)):  # 64 tokens are cheap: more runs, alternating which goes first
            for side in ("raw", "engine") if i % 2 == 0 else ("engine", "raw"):
                if side == "raw":
                    raw_tok_s, raw_tokens = raw.run(prompt_tokens, DECODE_TOKENS)
                    raw_runs.append(raw_tok_s)
                else:
                    result = engine.generate_blocking(plain)
                    engine_runs.append(result.decode_tokens_per_s)
        if result.n_generated_tokens != DECODE_TOKENS:
            log(f"  note: engine stopped after {result.n_generated_tokens} tokens ({result.stop_reason})")
        same = engine.detokenize(raw_tokens).startswith(result.text)
        log(f"  raw {fmt_runs(raw_runs)}  engine {fmt_runs(engine_runs)}  same text: {same}")

        # (c) prompt lookup on a code edit; the plain figure on the same prompt is printed for reference.
        lookup = GenerationRequest(
            prompt=edit_chat.text, max_tokens=256, stop=list(edit_chat.stop), prompt_lookup=True
        )
        edit_plain = GenerationRequest(
            prompt=edit_chat.text, max_tokens=256, stop=list(edit_chat.stop), prompt_lookup=False
        )
        lookup_runs, edit_plain_runs = [], []
        for _ in range(repeats):
            with_lookup = engine.generate_blocking(lookup)
            lookup_runs.append(with_lookup.decode_tokens_per_s)
            without = engine.generate_blocking(edit_plain)
            edit_plain_runs.append(without.decode_tokens_per_s)
        acceptance = with_lookup.accepted_draft_tokens / max(1, with_lookup.drafted_tokens)
        log(
            f"  code edit: lookup {fmt_runs(lookup_runs)} plain {fmt_runs(edit_plain_runs)} "
            f"tokens {with_lookup.n_generated_tokens} drafted {with_lookup.drafted_tokens} "
            f"accepted {with_lookup.accepted_draft_tokens} same text: {with_lookup.text == without.text}"
        )

        # (d) and (e): cold evaluation of a ~1,000-token prompt, then after a one-character edit at its end.
        text = long_prompt_text(1000, engine.count_tokens)
        edited = text[:-3] + ("9" if text[-3] != "9" else "8") + text[-2:]
        cold_runs, edit_runs = [], []
        n_prompt = 0
        for _ in range(repeats):
            engine.reset_cache()
            cold = engine.generate_blocking(GenerationRequest(prompt=text, max_tokens=1, prompt_lookup=False))
            cold_runs.append(cold.prompt_eval_s)
            n_prompt = cold.n_prompt_tokens
            warm = engine.generate_blocking(
                GenerationRequest(prompt=edited, max_tokens=1, prompt_lookup=False)
            )
            edit_runs.append(warm.prompt_eval_s)
        log(
            f"  {n_prompt}-token prompt: cold {fmt_runs(cold_runs, 's')} after edit {fmt_runs(edit_runs, 's')} "
            f"(re-evaluated {warm.n_prompt_tokens - warm.n_reused_tokens} tokens)"
        )
        cold_eval_s = min(cold_runs)
        return {
            "tier": tier,
            "raw_decode_tok_s": round(max(raw_runs), 2),
            "engine_decode_tok_s": round(max(engine_runs), 2),
            "lookup_decode_tok_s": round(max(lookup_runs), 2),
            "lookup_acceptance": round(acceptance, 3),
            "prompt_tok_s": round(n_prompt / cold_eval_s, 2),
            "cold_eval_s": round(cold_eval_s, 4),
            "edit_reeval_s": round(min(edit_runs), 4),
        }
    finally:
        raw.close()
        engine.close()


def bench_remote(tier: str, path: Path, settings: EngineSettings, repeats: int, log) -> dict:
    """(f) the same model through a loopback llama-server (streamed /v1/completions) vs in-process, interleaved:
    delivered decode tok/s and time to first token, the network and HTTP included."""
    import asyncio
    import subprocess
    import urllib.request

    from lsp_server.inference.remote import RemoteEngine
    from lsp_server.settings import EndpointSettings

    binary = subprocess.run([sys.executable, str(Path(__file__).resolve().parents[1] / "scripts" / "build_llama_server.py")],
                            capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    engine = LlamaEngine(path, settings, name=tier)
    port = 18123
    server = subprocess.Popen([binary, "-m", str(path), "--host", "127.0.0.1", "--port", str(port), "-c", str(N_CTX),
                               "--parallel", "1", "-t", str(engine.n_threads), "--no-webui"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.2)
        prompt = format_chat(engine.metadata, "You are a helpful coding assistant.", DECODE_PROMPT_USER).text
        request = GenerationRequest(prompt=prompt, max_tokens=DECODE_TOKENS, prompt_lookup=False)

        async def remote_runs() -> list:
            remote = RemoteEngine(EndpointSettings(name="loopback", urls=[f"http://127.0.0.1:{port}"], api="openai",
                                                   read_timeout_s=120))
            results = []
            for _ in range(repeats):
                results.append(await remote.generate(request))
                results.append(engine.generate_blocking(request))  # interleaved: load hurts both alike
            return results

        results = asyncio.run(remote_runs())
        remote, local = results[0::2], results[1::2]
        log(f"  loopback llama-server: {fmt_runs([r.decode_tokens_per_s for r in remote])} tok/s, in-process "
            f"{fmt_runs([r.decode_tokens_per_s for r in local])}; ttft remote "
            f"{fmt_runs([r.time_to_first_token_s * 1000 for r in remote], 'ms')}")
        return {
            "tier": tier,
            "remote_decode_tok_s": round(max(r.decode_tokens_per_s for r in remote), 2),
            "inprocess_decode_tok_s": round(max(r.decode_tokens_per_s for r in local), 2),
            "remote_ttft_ms": round(min(r.time_to_first_token_s for r in remote) * 1000, 1),
            "inprocess_ttft_ms": round(min(r.time_to_first_token_s for r in local) * 1000, 1),
        }
    finally:
        server.kill()
        server.wait()
        engine.close()


def fmt_runs(runs: list[float], unit: str = "") -> str:
    return "[" + " ".join(f"{r:.3g}{unit}" for r in runs) + f"] median {statistics.median(runs):.3g}{unit}"


def print_table(records: list[dict]) -> None:
    header = (
        f"{'tier':<20} {'raw tok/s':>9} {'engine':>8} {'eng/raw':>7} {'lookup':>8} {'accept':>7} "
        f"{'prompt tok/s':>12} {'cold s':>8} {'edit s':>8} {'edit/cold':>9}"
    )
    print(header)
    print("-" * len(header))
    for r in records:
        print(
            f"{r['tier']:<20} {r['raw_decode_tok_s']:>9.1f} {r['engine_decode_tok_s']:>8.1f} "
            f"{r['engine_decode_tok_s'] / r['raw_decode_tok_s']:>7.3f} {r['lookup_decode_tok_s']:>8.1f} "
            f"{r['lookup_acceptance']:>7.2f} {r['prompt_tok_s']:>12.1f} {r['cold_eval_s']:>8.3f} "
            f"{r['edit_reeval_s']:>8.4f} {r['edit_reeval_s'] / r['cold_eval_s']:>9.4f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiers", default=DEFAULT_TIERS, help="comma-separated catalog names")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement; the best is kept")
    parser.add_argument("--json", type=Path, help="write the records to this file")
    parser.add_argument("--remote", action="store_true",
                        help="also the same model through a loopback llama-server (make team-server) vs in-process")
    parser.add_argument(
        "--kv", choices=["f16", "q8_0", "q4_0"], help="KV cache type (K and V); default: the engine setting's"
    )
    parser.add_argument(
        "--threads", type=int, help="llama.cpp threads; default: the engine's (physical cores)"
    )
    args = parser.parse_args(argv)
    settings = EngineSettings(n_ctx=N_CTX, n_threads=args.threads)
    if args.kv:
        settings = settings.model_copy(update={"kv_cache_type_k": args.kv, "kv_cache_type_v": args.kv})

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    records = []
    for tier in [t.strip() for t in args.tiers.split(",") if t.strip()]:
        try:
            path = ensure_model(tier)
        except GearshiftError as exc:
            log(f"{tier}: skipped ({exc})")
            continue
        log(
            f"{tier}: {path} (kv {settings.kv_cache_type_k}/{settings.kv_cache_type_v}, "
            f"threads {settings.n_threads or 'default'})"
        )
        records.append(bench_tier(tier, path, settings, args.repeats, log))
        if args.remote:
            records[-1]["remote"] = bench_remote(tier, path, settings, args.repeats, log)
    if records:
        print_table(records)
    for r in records:
        if "remote" in r:
            m = r["remote"]
            print(f"{r['tier']:<20} loopback llama-server {m['remote_decode_tok_s']:.1f} tok/s "
                  f"(ttft {m['remote_ttft_ms']:.0f} ms) vs in-process {m['inprocess_decode_tok_s']:.1f} tok/s "
                  f"(ttft {m['inprocess_ttft_ms']:.0f} ms)")
    if args.json:
        args.json.write_text(json.dumps(records, indent=2) + "\n")
    return 0 if records else 1


if __name__ == "__main__":
    sys.exit(main())
