"""`gearshift eval [PATH]`: which installed tier is good enough, and fast enough, on this repository.

Masks lines and short spans of the files git tracks under PATH, completes each with every installed tier
through the full pipeline on this machine, prints exact match, edit similarity, the share of suggestions hidden,
delivered tok/s and latency per tier, and recommends one.  The report is kept in the user cache.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from lsp_server.errors import GearshiftError

if TYPE_CHECKING:  # the evaluation modules load the pipeline; `gearshift --help` should not
    from lsp_server.evaluation.metrics import SampleResult, TierSummary
    from lsp_server.evaluation.report import Measured
    from lsp_server.evaluation.runner import CheckSample
    from lsp_server.evaluation.sampling import Sample
    from lsp_server.settings import GearshiftSettings

DEFAULT_SAMPLES = 60

FILES_PER_SAMPLE = 2
MIN_FILES_READ = 100
"""At most FILES_PER_SAMPLE files per sample (and at least MIN_FILES_READ) are read to draw the samples from."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", nargs="?", default=".", help="a git repository or a folder in one (default: .)")
    parser.add_argument("--samples", type=_positive, default=DEFAULT_SAMPLES,
                        help=f"masked positions to complete per tier (default {DEFAULT_SAMPLES})")
    parser.add_argument("--seed", type=int, default=0, help="which positions are drawn (default 0)")
    parser.add_argument("--tiers", default="", help="comma-separated models to measure (default: every installed)")
    parser.add_argument("--cold", action="store_true",
                        help="no prewarm before each request (latency at a cursor that just jumped there)")
    parser.add_argument("--json", metavar="PATH", help="also write this run's report here")
    parser.add_argument("--settings", metavar="FILE",
                        help="Gearshift settings as JSON (the editor's shape, e.g. team `endpoints` to measure too)")
    parser.add_argument("--tests", metavar="CMD",
                        help="also report pass@1: run this shell command (the repository's tests) with each"
                             " suggestion in place, in a scratch copy of the repository")
    parser.add_argument("--tests-timeout", type=float, default=120.0, metavar="S",
                        help="longest one test run may take before it counts as failed (default 120)")


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {number}")
    return number


def chosen_tiers(requested: str, ladder: list[str], endpoints: tuple[str, ...] = ()) -> list[str]:
    """The tiers to measure: those named (each installed, a configured team endpoint, or a GGUF path), else the
    team endpoints of the ladder and every installed model, largest first.

    GearshiftError when a named one is not installed or none is.
    """
    from lsp_server.inference.catalog import CATALOG
    from lsp_server.inference.installed import installed_models
    from lsp_server.wiring import is_model_path

    installed = installed_models()
    if requested.strip():
        names = list(dict.fromkeys(name.strip() for name in requested.split(",") if name.strip()))
        for name in names:
            if is_model_path(name):
                if not Path(name).expanduser().is_file():
                    raise GearshiftError(f"no model file at {name}")
            elif name in endpoints:
                continue
            elif name not in CATALOG:
                raise GearshiftError(f"unknown model {name!r}; the catalog has {', '.join(CATALOG)}")
            elif name not in installed:
                raise GearshiftError(
                    f"{name} is not installed (installed: {', '.join(installed) or 'none'}); see `gearshift models list`"
                )
        return names
    if not installed and not endpoints:
        raise GearshiftError("no model is installed: run `make install`, then `gearshift models list` to check")
    available = set(installed) | set(endpoints)
    return [name for name in ladder if name in available] + [name for name in installed if name not in ladder]


class Progress:
    """One line on stderr, rewritten in place on a terminal (a line every few seconds elsewhere), with an ETA."""

    EVERY_S = 5.0

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = total
        self.stream = stream
        self.done = 0
        self.exact = 0
        self.measuring_s = 0.0
        """Seconds spent completing samples (model loads left out: they say nothing of the samples to come)."""
        self.tier = ""
        self.tier_done = 0
        self._tier_started = 0.0
        self._measured_before = 0.0
        self._last_print = 0.0
        self._interactive = stream.isatty()

    def start_tier(self, tier: str) -> None:
        self.tier, self.tier_done, self.exact = tier, 0, 0
        self._write(f"{tier}: loading the model", final=not self._interactive)

    def samples_start(self) -> None:
        self._tier_started = time.monotonic()
        self._measured_before = self.measuring_s

    def sample_done(self, exact: bool, of: int) -> None:
        self.done += 1
        self.tier_done += 1
        self.exact += exact
        self.measuring_s = self._measured_before + time.monotonic() - self._tier_started
        now = time.monotonic()
        last = self.tier_done == of
        if self._interactive or last or now - self._last_print >= self.EVERY_S:
            self._last_print = now
            eta = self.measuring_s / self.done * (self.total - self.done)
            self._write(
                f"{self.tier}: {self.tier_done}/{of} samples, {self.exact} exact,"
                f" {_clock(self.measuring_s)} elapsed, ETA {_clock(eta)}",
                final=last or not self._interactive,
            )

    def _write(self, text: str, final: bool) -> None:
        if self._interactive:
            self.stream.write(f"\r\x1b[K{text}" + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}" if minutes >= 60 else f"{minutes}:{secs:02d}"


def _pct(share: float) -> str:
    return f"{share * 100:.1f}%"


def _num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_table(summaries: list[TierSummary]) -> str:
    """The per-tier table (TierSummary rows)."""
    tested = any(s.pass_at_1 is not None for s in summaries)
    header = f"{'tier':<22}{'exact':>8}{'edit sim':>10}{'hidden':>8}{'tok/s':>8}{'p50 ms':>9}{'p95 ms':>9}{'time':>8}"
    rows = [header + (f"{'pass@1':>8}" if tested else "")]
    for s in summaries:
        rows.append(
            f"{s.tier:<22}{_pct(s.exact):>8}{s.similarity:>10.3f}{_pct(s.hidden):>8}{_num(s.tokens_per_s, 1):>8}"
            f"{_num(s.p50_ms):>9}{_num(s.p95_ms):>9}{_clock(s.seconds):>8}"
            + (f"{_pct(s.pass_at_1) if s.pass_at_1 is not None else '-':>8}" if tested else "")
        )
    return "\n".join(rows)


def _skipped(skipped: dict[str, int]) -> str:
    return ", ".join(f"{count} {reason}" for reason, count in sorted(skipped.items())) or "none"


async def _measure(
    settings: GearshiftSettings, tiers: list[str], root: Path, samples: list[Sample], progress: Progress, warm: bool,
    check: CheckSample | None = None,
) -> Measured:
    from lsp_server.evaluation.metrics import summarise
    from lsp_server.evaluation.runner import run_tier

    measured: Measured = []
    n = len(samples)
    for tier in tiers:
        started = time.perf_counter()
        progress.start_tier(tier)

        def on_sample(_index: int, result: SampleResult) -> None:
            progress.sample_done(result.exact, n)

        results = await run_tier(settings, tier, root, samples, on_sample, on_loaded=progress.samples_start,
                                 warm=warm, check=check)
        measured.append((summarise(tier, results, time.perf_counter() - started), results))
    return measured


def load_settings(file: str | None) -> GearshiftSettings:
    """The settings in ``file`` (JSON, as an editor sends them), else the defaults; GearshiftError naming the file."""
    import json

    from lsp_server.settings import GearshiftSettings, parse_settings

    if file is None:
        return GearshiftSettings()
    try:
        return parse_settings(json.loads(Path(file).expanduser().read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise GearshiftError(f"cannot read the settings file {file}: {exc}") from exc


def refuse_forbidden_endpoints(settings: GearshiftSettings, tiers: list[str]) -> None:
    """A team endpoint the settings forbid code to go to (``cloud.localOnly``) is refused before anything runs."""
    from lsp_server.cloud.endpoints import remote_refusal

    for endpoint in settings.endpoints:
        if endpoint.name in tiers and (refusal := remote_refusal(endpoint, None, settings)):
            raise GearshiftError(f"{endpoint.name} cannot be measured: {refusal}")


def main(args: argparse.Namespace) -> int:
    from lsp_server.evaluation.recommend import recommend
    from lsp_server.evaluation.report import build_report
    from lsp_server.evaluation.repository import head_commit, source_files
    from lsp_server.evaluation.results import save_report, write_json
    from lsp_server.evaluation.sampling import draw_samples
    from lsp_server.inference.cpu import cpu_name

    settings = load_settings(args.settings)
    path = Path(args.path).expanduser()
    found = source_files(path, settings.cloud, limit=max(FILES_PER_SAMPLE * args.samples, MIN_FILES_READ),
                         seed=args.seed)
    if not found.files:
        raise GearshiftError(
            f"no file under {path} is worth evaluating: git tracks none in a language Gearshift parses"
            f" (skipped: {_skipped(found.skipped)})"
        )
    samples = draw_samples(found.files, args.samples, args.seed)
    if not samples:
        raise GearshiftError(f"no line of the {len(found.files)} supported files under {path} is worth masking")
    tiers = chosen_tiers(args.tiers, settings.models.ladder, tuple(e.name for e in settings.endpoints))
    refuse_forbidden_endpoints(settings, tiers)
    multiline = sum(1 for s in samples if s.n_lines > 1)
    print(
        f"Private eval of {found.root}: {len(samples)} samples ({len(samples) - multiline} lines,"
        f" {multiline} spans of 2-4 lines) from {len({s.path for s in samples})} files,"
        f" seed {args.seed}; {cpu_name()}; latency {'cold' if args.cold else 'after a prewarm (cursor hint)'}",
        flush=True,
    )
    progress = Progress(len(tiers) * len(samples), sys.stderr)
    with ExitStack() as stack:
        check = None
        if args.tests:
            from lsp_server.evaluation.repository import tracked_files
            from lsp_server.evaluation.test_runs import RepositoryTests

            tests = stack.enter_context(
                RepositoryTests(found.root, tracked_files(found.root), args.tests, args.tests_timeout)
            )
            print(f"Running `{args.tests}` on the unchanged repository first...", flush=True)
            tests.check_baseline()
            check = tests.sample_passes
        measured = asyncio.run(_measure(settings, tiers, found.root, samples, progress, not args.cold, check))
    summaries = [summary for summary, _results in measured]
    target = settings.guard.inline_target_tok_s
    recommendation = recommend(summaries, target)
    print(format_table(summaries))
    print(f"Recommendation: {recommendation.line}")
    report = build_report(
        root=found.root, path=path.resolve(), commit=head_commit(found.root), seed=args.seed,
        requested=args.samples, samples=samples, found=found, measured=measured,
        recommendation=recommendation, target_tok_s=target, warm=not args.cold,
    )
    saved = save_report(found.root, report)
    if args.json:
        write_json(Path(args.json).expanduser(), report)
    print(f"Saved to {saved}" + (f" and {args.json}" if args.json else ""))
    return 0
