"""λ rollouts: every problem × every λ × k samples, graded, stored so a killed run resumes.

The work is cut into units of (λ, shard), a shard being a fixed block of consecutive problems.
Each unit is written as one parquet file under a temporary name and renamed when whole, so a unit
on disk is always complete; a restart skips the units already there. Processes started by
``accelerate launch`` take shards round-robin, and each walks the grid λ by λ, so it switches the
runtime once per λ. The configuration's fingerprint (pair, problems, grid, decoding) is stored in
``manifest.json``; resuming into a folder made with other settings is refused.

Samples of one problem share their seed across λ (common random numbers), so differences between
λ values are not blurred by different draws.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import DamiPrefError
from ..runtime.checkpoints import checkpoint_fingerprint
from ..runtime.generation import DecodingOptions, GenerationRequest
from ..utils.digest import short_digest
from ..utils.faults import crash_point
from ..utils.io import atomic_write_json, clear_folder, is_stale_temporary, \
    remove_stale_temporaries, write_parquet
from .grading import grade_result
from .problems import Problem

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PROBLEMS_FILE = "problems.parquet"
TABLE_FILE = "rollouts.parquet"

SCHEMA = pa.schema([
    ("problem_id", pa.string()), ("lambda", pa.float64()), ("sample", pa.int32()),
    ("completion", pa.string()), ("answer", pa.string()), ("correct", pa.bool_()),
    ("n_tokens", pa.int32()), ("think_tokens", pa.int32()), ("finished", pa.bool_()),
    ("seconds", pa.float64()),
])
PROBLEMS_SCHEMA = pa.schema([("problem_id", pa.string()), ("question", pa.string()),
                             ("answer", pa.string()), ("difficulty", pa.string()),
                             ("index", pa.int32())])


@dataclass(frozen=True)
class Unit:
    lam: float
    shard: int

    @property
    def name(self) -> str:
        return f"lambda={self.lam:.4f}/shard-{self.shard:05d}.parquet"


@dataclass(frozen=True)
class RolloutPlan:
    grid: tuple[float, ...]
    samples: int
    shard_size: int
    n_problems: int

    @property
    def n_shards(self) -> int:
        return -(-self.n_problems // self.shard_size)

    def shard_range(self, shard: int) -> range:
        return range(shard * self.shard_size, min((shard + 1) * self.shard_size, self.n_problems))

    def units(self, rank: int = 0, world: int = 1) -> list[Unit]:
        """This process's units, λ-major so that it switches once per λ."""
        mine = [s for s in range(self.n_shards) if s % world == rank]
        return [Unit(lam, s) for lam in self.grid for s in mine]


def sample_seed(seed: int, problem_id: str, sample: int) -> int:
    """A stable per-(problem, sample) seed, the same at every λ and in every process."""
    digest = hashlib.sha256(f"{seed}|{problem_id}|{sample}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


def problems_text(problems: Sequence[Problem]) -> str:
    return "\n".join(f"{p.id}\t{p.question}\t{p.answer}" for p in problems)


def problems_fingerprint(problems: Sequence[Problem]) -> str:
    """A short id of a problem set (16 hex digits), as manifests record it."""
    return short_digest(problems_text(problems))


def problems_sha256(problems: Sequence[Problem]) -> str:
    """The full sha256 (64 hex digits) of the ids, questions and gold answers, for results."""
    return hashlib.sha256(problems_text(problems).encode()).hexdigest()


def answers_identity(pair: dict, decoding: DecodingOptions) -> dict:
    """What decides a rollout's answers, whatever the problems: the models and the decoding.
    A folder given to ``eval`` must match it; the manifest's fingerprint includes it."""
    return {"pair": pair, "max_new_tokens": decoding.max_new_tokens,
            "temperature": decoding.temperature, "top_p": decoding.top_p,
            "kv_cache": asdict(decoding.kv_cache)}


def make_manifest(plan: RolloutPlan, decoding: DecodingOptions, seed: int, pair: dict,
                  problems: Sequence[Problem], source: dict) -> dict:
    """Everything that decides the rollout table; its hash is the folder's fingerprint."""
    determines = {
        "format_version": FORMAT_VERSION, "grid": list(plan.grid),
        "samples": plan.samples, "shard_size": plan.shard_size,
        "n_problems": plan.n_problems, "problems": problems_fingerprint(problems),
        "seed": seed, **answers_identity(pair, decoding),
    }
    return {"fingerprint": short_digest(json.dumps(determines, sort_keys=True)), **determines,
            "source": source, "n_units": len(plan.units()), "complete": False}


def determining_keys(manifest: dict) -> list[str]:
    """The manifest's keys its fingerprint hashes (the pair first, as an error names it)."""
    keys = [k for k in manifest if k not in ("fingerprint", "source", "n_units", "complete",
                                              "rows", "units_done")]
    return sorted(keys, key=lambda k: k != "pair")


class RolloutStore:
    """The output folder: manifest, problems table, one parquet file per finished unit."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.units_dir = self.folder / "units"

    def path(self, unit: Unit) -> Path:
        return self.units_dir / unit.name

    def read_manifest(self) -> dict | None:
        path = self.folder / MANIFEST
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise DamiPrefError(f"{path}: not valid JSON ({err.msg}); it is not a rollout "
                                "folder, or it was damaged") from None

    def check_compatible(self, manifest: dict, overwrite: bool) -> bool:
        """True when the folder already holds (part of) this very run; errors on another run."""
        existing = self.read_manifest()
        if existing is None:  # a run killed at its first write left only its own temporaries
            if self.folder.exists() and not overwrite and any(
                    not is_stale_temporary(p) for p in self.folder.iterdir()):
                raise DamiPrefError(f"{self.folder} is not empty and holds no {MANIFEST}; "
                                    "choose an empty --output or pass --overwrite")
            return False
        if existing.get("fingerprint") == manifest["fingerprint"]:
            return True
        if overwrite:
            return False
        differ = [k for k in determining_keys(manifest) if existing.get(k) != manifest.get(k)]
        raise DamiPrefError(
            f"{self.folder} holds rollouts made with other settings (different: "
            f"{', '.join(differ) or 'fingerprint'}); pass --overwrite to replace them, or choose "
            "another --output")

    def start(self, manifest: dict, problems: Sequence[Problem], resume: bool) -> None:
        """Main process only: write the manifest and problems table (clearing an old run)."""
        if not resume and self.folder.exists():
            clear_folder(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(self.folder)  # a killed run's half-written files
        atomic_write_json(self.folder / MANIFEST, manifest)  # first: the folder is now this run's
        self.units_dir.mkdir(exist_ok=True)
        table = pa.table({
            "problem_id": [p.id for p in problems], "question": [p.question for p in problems],
            "answer": [p.answer for p in problems],
            "difficulty": [None if p.difficulty is None else str(p.difficulty) for p in problems],
            "index": list(range(len(problems)))}, schema=PROBLEMS_SCHEMA)
        write_parquet(table, self.folder / PROBLEMS_FILE)

    def done(self, unit: Unit, expected_rows: int) -> bool:
        """Whether a unit is on disk; a damaged unit file is an error naming it."""
        path = self.path(unit)
        if not path.is_file():
            return False
        try:
            meta = pq.read_metadata(path)
        except Exception as err:  # noqa: BLE001 - any unreadable file
            raise DamiPrefError(f"{path}: unreadable rollout unit ({err}); delete this file and "
                                "run again to regenerate it") from None
        if meta.num_rows != expected_rows or meta.schema.to_arrow_schema().names != SCHEMA.names:
            raise DamiPrefError(f"{path}: holds {meta.num_rows} rows, expected {expected_rows} "
                                "with the rollout columns; delete it and run again")
        return True

    def write_unit(self, unit: Unit, rows: list[dict]) -> None:
        write_parquet(pa.Table.from_pylist(rows, schema=SCHEMA), self.path(unit))
        crash_point("unit-written")

    def finalize(self, plan: RolloutPlan) -> Path:
        """Main process, once every unit exists: one sorted table and a complete manifest."""
        missing = [u.name for u in plan.units() if not self.path(u).is_file()]
        if missing:
            raise DamiPrefError(f"{len(missing)} rollout unit(s) are missing, e.g. {missing[0]}; "
                                "run the same command again to finish them")
        order = {pid: i for i, pid in enumerate(
            pq.read_table(self.folder / PROBLEMS_FILE, columns=["problem_id"])
            .column("problem_id").to_pylist())}
        table = pa.concat_tables(pq.read_table(self.path(u)) for u in plan.units())
        index = pa.array([order[p] for p in table.column("problem_id").to_pylist()])
        table = table.append_column("_order", index).sort_by(
            [("_order", "ascending"), ("lambda", "ascending"), ("sample", "ascending")]
        ).drop_columns(["_order"])
        write_parquet(table, self.folder / TABLE_FILE)
        manifest = self.read_manifest() or {}
        manifest.update(complete=True, units_done=len(plan.units()), rows=table.num_rows)
        atomic_write_json(self.folder / MANIFEST, manifest)
        return self.folder / TABLE_FILE


PROBLEM_COLUMNS = ("problem_id", "question", "answer")
ROLLOUT_COLUMNS = ("problem_id", "lambda", "sample", "correct", "n_tokens", "think_tokens",
                   "finished")


def load_rollouts(folder: str | Path) -> tuple[dict, pa.Table, pa.Table]:
    """(manifest, problems table, rollout table) of a finished rollout folder."""
    store = RolloutStore(folder)
    manifest = store.read_manifest()
    if manifest is None:
        raise DamiPrefError(f"{folder}: no {MANIFEST}; is this a rollout folder "
                            "(data_builders/rollout.py --output)?")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise DamiPrefError(f"{folder}: rollout format {manifest.get('format_version')} is not "
                            f"the supported {FORMAT_VERSION}")
    if not manifest.get("complete") or not (store.folder / TABLE_FILE).is_file():
        raise DamiPrefError(f"{folder}: the rollout is not finished; run the same rollout "
                            "command again to complete it")
    try:
        problems = pq.read_table(store.folder / PROBLEMS_FILE)
        table = pq.read_table(store.folder / TABLE_FILE)
    except Exception as err:  # noqa: BLE001
        raise DamiPrefError(f"{folder}: cannot read the rollout tables ({err})") from None
    for name, got, needed in ((PROBLEMS_FILE, problems, PROBLEM_COLUMNS),
                              (TABLE_FILE, table, ROLLOUT_COLUMNS)):
        missing = [c for c in needed if c not in got.column_names]
        if missing:
            raise DamiPrefError(f"{store.folder / name}: missing column(s) {', '.join(missing)}; "
                                "is it a table this toolkit's rollout wrote?")
    return manifest, problems, table


def run_units(runtime, problems: Sequence[Problem], plan: RolloutPlan, decoding: DecodingOptions,
              seed: int, store: RolloutStore, rank: int = 0, world: int = 1,
              progress: bool = True) -> dict:
    """Generate and write this process's missing units; returns counts for the caller."""
    from tqdm.auto import tqdm

    units = plan.units(rank, world)
    todo = [u for u in units
            if not store.done(u, len(plan.shard_range(u.shard)) * plan.samples)]
    n_requests = sum(len(plan.shard_range(u.shard)) for u in todo) * plan.samples
    bar = tqdm(total=n_requests, disable=not progress, unit="q", dynamic_ncols=True,
               desc=f"rollouts (process {rank + 1}/{world})" if world > 1 else "rollouts")
    tokens, started = 0, time.perf_counter()
    for unit in todo:
        shard = [problems[i] for i in plan.shard_range(unit.shard)]
        requests = [GenerationRequest(p.question, unit.lam, sample_seed(seed, p.id, s))
                    for p in shard for s in range(plan.samples)]
        results = runtime.generate(requests, decoding)
        rows = []
        for index, result in enumerate(results):
            problem, sample = shard[index // plan.samples], index % plan.samples
            graded = grade_result(problem, result)
            rows.append({"problem_id": problem.id, "lambda": unit.lam, "sample": sample,
                         "completion": result.completion, "answer": result.answer,
                         "correct": graded.correct, "n_tokens": result.n_tokens,
                         "think_tokens": result.think_tokens, "finished": result.finished,
                         "seconds": result.seconds})
            tokens += result.n_tokens
        store.write_unit(unit, rows)
        # the postfix waits for the update's redraw: one line per update in a log
        bar.set_postfix(lam=f"{unit.lam:g}", refresh=False,
                        tok_s=f"{tokens / max(time.perf_counter() - started, 1e-9):,.0f}")
        bar.update(len(requests))
    bar.close()
    return {"units": len(units), "skipped": len(units) - len(todo), "generated_tokens": tokens,
            "seconds": time.perf_counter() - started}


def pair_identity(instruct_dir: Path, thinking_dir: Path, dtype: str, prompt_template: str,
                  chat_template_from: str, memory_mode: str = "exact",
                  engine: str = "runtime", lambda_batching: str = "grouped") -> dict:
    """What identifies the models behind a rollout, for the manifest's fingerprint.

    The memory mode is part of it: in delta mode the live weights carry rounding that the exact
    mode does not, so a table must not mix the two. So are the engine and the λ batching: two
    kernels (or a merged weight against Θ_I + λ·Δ per leaf) may break a near-tie differently,
    and a table is made by one. (Each is recorded only when not the default, so folders made
    before the option existed keep their fingerprint.)
    """
    identity = {"instruct": checkpoint_fingerprint(instruct_dir),
                "thinking": checkpoint_fingerprint(thinking_dir), "dtype": dtype,
                "prompt_template": prompt_template, "chat_template_from": chat_template_from}
    if memory_mode != "exact":
        identity["memory_mode"] = memory_mode
    if engine != "runtime":
        identity["engine"] = engine
    if lambda_batching != "grouped":
        identity["lambda_batching"] = lambda_batching
    return identity


def drive_rollouts(runtime, problems: Sequence[Problem], plan: RolloutPlan,
                   decoding: DecodingOptions, seed: int, store: RolloutStore, manifest: dict,
                   resume: bool, *, rank: int = 0, world: int = 1,
                   barrier: Callable[[], None] = lambda: None, progress: bool = True) -> dict:
    """The one rollout driver, for one process or many (``barrier`` joins them).

    Process 0 opens the folder and finishes the table; every process writes its own units, so a
    kill leaves finished units that a rerun skips. Returns this process's counts, and the
    table's path on process 0.
    """
    if rank == 0:
        store.start(manifest, problems, resume)
    barrier()
    counts = run_units(runtime, problems, plan, decoding, seed, store, rank=rank, world=world,
                       progress=progress)
    barrier()
    if rank == 0:
        counts["table"] = store.finalize(plan)
    return counts


def open_rollouts(problems: Sequence[Problem], grid: Sequence[float], decoding: DecodingOptions,
                  folder: str | Path, *, pair: dict, seed: int = 0, samples: int = 1,
                  shard_size: int = 64, source: dict | None = None, overwrite: bool = False
                  ) -> tuple[RolloutPlan, dict, RolloutStore, bool]:
    """The rollout preamble every caller shares: the plan, the manifest, the folder, and whether
    the folder holds this very run to resume (another run's folder is refused, unless
    ``overwrite``). Nothing is written yet."""
    plan = RolloutPlan(tuple(grid), samples, shard_size, len(problems))
    manifest = make_manifest(plan, decoding, seed, pair, problems, source or {})
    store = RolloutStore(folder)
    return plan, manifest, store, store.check_compatible(manifest, overwrite)


def ensure_rollouts(runtime, problems: Sequence[Problem], grid: Sequence[float],
                    decoding: DecodingOptions, folder: str | Path, *, pair: dict,
                    seed: int = 0, samples: int = 1, shard_size: int = 64,
                    progress: bool = True, source: dict | None = None,
                    overwrite: bool = False) -> Path:
    """One process: roll out what ``folder`` lacks (resuming), then finish the table;
    ``overwrite`` replaces a folder of other settings instead of refusing it."""
    plan, manifest, store, resume = open_rollouts(
        problems, grid, decoding, folder, pair=pair, seed=seed, samples=samples,
        shard_size=shard_size, source=source, overwrite=overwrite)
    if not (resume and (store.folder / TABLE_FILE).is_file()
            and (store.read_manifest() or {}).get("complete")):
        drive_rollouts(runtime, problems, plan, decoding, seed, store, manifest, resume,
                       progress=progress)
    return store.folder
