"""Learning helps: a 16-shot run (seed 1) of each trainable method, with its preset,
on the bundled tiny CLIP beats its own starting point on the synthetic tasks where a linear
probe beats zero-shot CLIP (`rare_names`, `textures`, `position`).

The starting point is the better of zero-shot CLIP with the task's hand-crafted prompt and
the method as created before training (same config and init draw as the run): a method must
improve on both. Every run is seeded, so each number is fixed; each test asserts a margin
chosen below the gain measured here (so that small preset changes do not break it) and well
above 0 (so that it can fail).

Measured 2026-12-03 (top-1 on the test split; zero-shot / untrained / trained, gain over the
better start, the asserted margin; "-" = not asserted):

    task        method                      zero-shot  untrained  trained    gain margin
    rare_names  linear-probe                    0.616      0.125    0.984  +0.369   0.20
    rare_names  classifier-ft                   0.616      0.616    0.991  +0.375   0.20
    rare_names  coop                            0.616      0.562    0.922  +0.306   0.15
    rare_names  cocoop                          0.616      0.631    0.688  +0.056   0.03
    rare_names  prograd                         0.616      0.581    0.934  +0.319   0.15
    rare_names  kgcoop                          0.616      0.616    0.616  +0.000      -
    rare_names  variational                     0.616      0.622    0.628  +0.006      -
    rare_names  variational[conditional]        0.616      0.634    0.650  +0.016      -
    rare_names  vpt (40 ep.)                    0.616      0.600    0.675  +0.059      -
    rare_names  upt (10 ep.)                    0.616      0.581    0.744  +0.128   0.06
    rare_names  maple                           0.616      0.581    0.562  -0.053      -
    textures    linear-probe                    0.540      0.200    0.875  +0.335   0.20
    textures    classifier-ft                   0.540      0.540    0.895  +0.355   0.20
    textures    coop                            0.540      0.535    0.940  +0.400   0.20
    textures    cocoop                          0.540      0.460    0.510  -0.030      -
    textures    prograd                         0.540      0.655    0.880  +0.225   0.10
    textures    kgcoop                          0.540      0.500    0.500  -0.040      -
    textures    variational                     0.540      0.555    0.560  +0.005      -
    textures    variational[conditional]        0.540      0.545    0.570  +0.025      -
    textures    vpt (40 ep.)                    0.540      0.560    0.555  -0.005      -
    textures    upt (10 ep.)                    0.540      0.430    0.620  +0.080   0.04
    textures    maple                           0.540      0.485    0.575  +0.035   0.02
    position    linear-probe                    0.600      0.200    0.970  +0.370   0.20
    position    classifier-ft                   0.600      0.600    0.950  +0.350   0.20
    position    coop                            0.600      0.590    0.600  +0.000      -
    position    cocoop                          0.600      0.620    0.660  +0.040   0.02
    position    prograd                         0.600      0.605    0.615  +0.010      -
    position    kgcoop                          0.600      0.640    0.645  +0.005      -
    position    variational                     0.600      0.615    0.615  +0.000      -
    position    variational[conditional]        0.600      0.615    0.620  +0.005      -
    position    vpt (40 ep.)                    0.600      0.585    0.635  +0.035   0.02
    position    upt (10 ep.)                    0.600      0.645    0.620  -0.025      -
    position    maple                           0.600      0.610    0.645  +0.035   0.02
    rare_names  kgcoop, train.batch_size=32     0.616      0.616    0.650  +0.034  0.015
    textures    variational, init_log_var=-8    0.540      0.505    0.710  +0.170   0.08
    textures    variational[cond.], same        0.540      0.505    0.905  +0.365   0.15
    rare_names  tip-adapter                     0.616      0.616    0.809  +0.194   0.10
    textures    tip-adapter                     0.540      0.540    0.875  +0.335      -
    position    tip-adapter                     0.600      0.600    0.850  +0.250      -
    rare_names  tip-adapter-f                   0.616      0.616    0.809  +0.194      -
    textures    tip-adapter-f                   0.540      0.540    0.875  +0.335      -
    position    tip-adapter-f                   0.600      0.600    0.850  +0.250   0.12
    rare_names  taskres (50 ep.)                0.616      0.616    0.728  +0.112      -
    textures    taskres (30 ep.)                0.540      0.540    0.630  +0.090   0.05
    position    taskres (50 ep.)                0.600      0.600    0.680  +0.080      -
    rare_names  clip-adapter (preset, 200 ep.)  0.616      0.616    0.625  +0.009      -
    textures    clip-adapter (50 ep.)           0.540      0.545    0.545  +0.000      -
    position    clip-adapter (50 ep.)           0.600      0.630    0.630  +0.000      -
    rare_names  clip-adapter, ratio 0.6 *       0.616      0.609    0.675  +0.059      -
    textures    clip-adapter, ratio 0.6 *       0.540      0.545    0.585  +0.040      -
    position    clip-adapter, ratio 0.6 *       0.600      0.640    0.815  +0.175   0.08
    (* 20 epochs at lr 0.05: the preset's ratio 0.2 moves the tiny CLIP's features, of norm
    about 28, too slowly; docs/methods.md, clip-adapter)
    rare_names  zs-lp (preset, 300 ep.)         0.616      0.616    0.962  +0.347      -
    textures    zs-lp (preset, 300 ep.)         0.540      0.540    0.915  +0.375      -
    position    zs-lp (preset, 300 ep.)         0.600      0.600    0.935  +0.335      -
    textures    zs-lp (30 ep.)                  0.540      0.540    0.790  +0.250   0.15
    rare_names  clap (preset, 300 ep.)          0.616      0.616    0.859  +0.244      -
    textures    clap (preset, 300 ep.)          0.540      0.540    0.785  +0.245      -
    position    clap (preset, 300 ep.)          0.600      0.600    0.725  +0.125      -
    textures    clap (30 ep.)                   0.540      0.540    0.755  +0.215   0.12
    rare_names  lp++                            0.616      0.125    0.981  +0.366      -
    textures    lp++                            0.540      0.200    0.905  +0.365      -
    position    lp++                            0.600      0.200    0.960  +0.360   0.20
    rare_names  cross-modal-lp (preset, 128 ep.) 0.616     0.616    0.978  +0.362      -
    textures    cross-modal-lp (preset, 128 ep.) 0.540     0.540    0.915  +0.375      -
    position    cross-modal-lp (preset, 128 ep.) 0.600     0.600    0.915  +0.315      -
    textures    cross-modal-lp (10 ep.)         0.540      0.540    0.905  +0.365   0.20
    (the linear probes' presets take 10 to 100 s a run on a loaded machine: the asserted runs
    are shorter; CLAP gains less than ZS-LP by design, its penalty holds it near zero-shot)
    rare_names  ivlp                            0.616      0.584    0.628  +0.012      -
    textures    ivlp                            0.540      0.505    0.595  +0.055   0.03
    position    ivlp                            0.600      0.600    0.635  +0.035      -
    rare_names  promptsrc (5 ep.)               0.616      0.572    0.634  +0.019      -
    textures    promptsrc (5 ep.)               0.540      0.495    0.570  +0.030  0.015
    position    promptsrc (5 ep.)               0.600      0.615    0.620  +0.005      -
    (IVLP's preset is 5 epochs; PromptSRC's few-shot preset is 50 on images: 5 of them, its GPA
    weights over epochs 1-5 then nearly equal. Its agreement terms hold it near the frozen model
    by design. On textures the runs take 15 s (IVLP) and 21 s (PromptSRC) on a quiet machine;
    one asserted task per method keeps the suite's time)

Not asserted: the entries of NO_GAIN, each with what was measured.
VPT and UPT train on images (no cached features), so they run fewer epochs than their
presets' 200 (see CASES); with the full presets VPT gained +0.075 on position (68 s) and
+0.025 on textures (61 s), UPT +0.355 on textures (56 s).

Cost: one backbone for the module, one fixture per task (the dataset, its zero-shot accuracy
and a feature-cache folder shared by its runs, so the frozen features are encoded once per
task), the cheap runs on every task where they learn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from vlprompt.api import create_method, load_backbone, load_dataset, train, zeroshot_evaluate
from vlprompt.data.types import DatasetSplits
from vlprompt.engine.data import mix_seed
from vlprompt.engine.feature_cache import FeatureCache
from vlprompt.engine.options import TrainConfig
from vlprompt.engine.runner import resolve_config
from vlprompt.engine.trainer import Trainer
from vlprompt.methods.registry import get_method_class, list_methods
from vlprompt.utils.runtime import Runtime

SHOTS, SEED = 16, 1
#: The suite's tasks where the 16-shot linear probe beats zero-shot (docs/tiny-clip.md).
TASKS = ("rare_names", "textures", "position")


@dataclass(frozen=True)
class Case:
    method: str
    task: str
    margin: float  # asserted: trained - start >= margin
    config: dict = field(default_factory=dict)
    epochs: int | None = None  # None: the preset's
    train: dict = field(default_factory=dict)  # training options changed from the preset

    @property
    def id(self) -> str:
        variant = "-conditional" if self.config.get("conditional") else ""
        changed = "".join(f"-{k}={v}" for k, v in {**self.config, **self.train}.items() if k != "conditional")
        return f"{self.method}{variant}{changed}-{self.task}"


CASES = [
    # measured gains in the module docstring's table
    Case("linear-probe", "rare_names", 0.20),
    Case("linear-probe", "textures", 0.20),
    Case("linear-probe", "position", 0.20),
    Case("classifier-ft", "rare_names", 0.20),
    Case("classifier-ft", "textures", 0.20),
    Case("classifier-ft", "position", 0.20),
    Case("coop", "rare_names", 0.15),
    Case("coop", "textures", 0.20),
    Case("prograd", "rare_names", 0.15),
    Case("prograd", "textures", 0.10),
    Case("cocoop", "rare_names", 0.03),
    Case("cocoop", "position", 0.02),
    # UPT trains on images (no feature cache): 10 of the preset's 200 epochs, the preset's
    # other values kept (200 epochs take about a minute per task: +0.355 on textures in 56 s).
    Case("upt", "rare_names", 0.06, epochs=10),
    Case("upt", "textures", 0.04, epochs=10),
    # VPT trains on images too: 40 of the preset's 200 epochs (200 take over a minute per
    # task: +0.075 on position in 68 s); the preset's other values kept.
    Case("vpt", "position", 0.02, epochs=40),
    Case("maple", "textures", 0.02),
    Case("maple", "position", 0.02),
    Case("ivlp", "textures", 0.03),
    # PromptSRC trains on images with a second (frozen) pass of the image tower: 5 of its
    # few-shot preset's 50 epochs, the preset's other values kept.
    Case("promptsrc", "textures", 0.015, epochs=5),
    # KgCoOp's preset trains at batch 128, which is one step per epoch on these 128 training
    # images (as the reference would run them), and it stays at its start (NO_GAIN). At batch 32
    # it learns: measured 0.616 -> 0.650 (+0.034).
    Case("kgcoop", "rare_names", 0.015, train={"batch_size": 32}),
    # Variational prompts from the reference's initial log-variance (uniform in [0, 1): noise of
    # sigma 1 to 1.65 on token embeddings whose entries are about 0.03) stay near their start in
    # the preset's 10 epochs (NO_GAIN). From our smaller initial noise (init_log_var=-8, sigma
    # 0.018) they learn: measured 0.540 -> 0.710 (global, +0.17) and 0.905 (conditional, +0.365).
    Case("variational", "textures", 0.08, config={"init_log_var": -8.0}),
    Case("variational", "textures", 0.15, config={"conditional": True, "init_log_var": -8.0}),
    # Tip-Adapter(-F): the untrained cache is empty (zero-shot). The suite allows no augmentation,
    # so each training feature is its own key and -F's keys barely move (scores as Tip-Adapter).
    Case("tip-adapter", "rare_names", 0.10),
    Case("tip-adapter-f", "position", 0.12),
    # TaskRes: 30 of the preset's 200 epochs (one step an epoch at batch 256); 50 gain more.
    Case("taskres", "textures", 0.05, epochs=30),
    # CLIP-Adapter at the preset's ratio 0.2 gains nothing measurable here (NO_GAIN); at ratio 0.6.
    Case("clip-adapter", "position", 0.08, config={"ratio": 0.6}, epochs=20, train={"lr": 0.05}),
    # ZS-LP, CLAP (30 of 300 epochs) and the cross-modal probe (10 of 128): one cheap task each;
    # the full presets gain more on all three tasks (the docstring's table).
    Case("zs-lp", "textures", 0.15, epochs=30),
    Case("clap", "textures", 0.12, epochs=30),
    Case("lp++", "position", 0.20),
    Case("cross-modal-lp", "textures", 0.20, epochs=10),
]

#: Trainable methods (and variants) without an asserted case on some task: what was measured.
NO_GAIN = {
    ("coop", "position"): "+0.000 (0.600 -> 0.600), while the probe and classifier-ft reach 0.95+",
    ("prograd", "position"): "+0.010, as CoOp (whose gradient it projects)",
    ("cocoop", "textures"): "-0.030: 0.510 trained, below zero-shot 0.540",
    ("kgcoop", "rare_names"): "+0.000 with the preset (100 epochs at batch 128, weight 8): one step an "
                              "epoch here; asserted at batch 32 instead",
    ("kgcoop", "textures"): "-0.040: 0.500 trained = untrained, below zero-shot 0.540",
    ("kgcoop", "position"): "+0.005",
    ("variational", "rare_names"): "+0.006, 41 s a run (batch 1)",
    ("variational", "textures"): "+0.005, 20 s a run, from the reference's initial noise; asserted from "
                                 "init_log_var=-8 instead",
    ("variational", "position"): "+0.000, 20 s a run",
    ("variational[conditional]", "rare_names"): "+0.016, 43 s a run (batch 1)",
    ("variational[conditional]", "textures"): "+0.025, 22 s a run; asserted from init_log_var=-8 instead",
    ("variational[conditional]", "position"): "+0.005, 22 s a run",
    ("vpt", "rare_names"): "+0.059 with 40 epochs, but 22 s a run: position is the cheap task",
    ("vpt", "textures"): "-0.005 with 40 epochs; +0.025 with the preset's 200 (61 s)",
    ("upt", "position"): "-0.025 with 10 epochs",
    ("maple", "rare_names"): "-0.053: 0.562 trained, below zero-shot 0.616",
    ("ivlp", "rare_names"): "+0.012 (0.616 -> 0.628)",
    ("ivlp", "position"): "+0.035, not asserted to keep the suite's time (one image-trained run per method)",
    ("promptsrc", "rare_names"): "+0.019 with 5 epochs",
    ("promptsrc", "position"): "+0.005 with 5 epochs",
    ("zs-lp", "rare_names"): "+0.347 with the preset (the docstring's table); textures is asserted",
    ("clap", "position"): "+0.125 with the preset; textures is asserted",
    ("lp++", "textures"): "+0.365; position is asserted",
    ("cross-modal-lp", "rare_names"): "+0.362 with the preset; textures is asserted",
    ("clip-adapter", "rare_names"): "+0.009 with the preset (ratio 0.2, 200 epochs, 99 s on a loaded machine); "
                                    "asserted at ratio 0.6 on position instead",
}


@pytest.fixture(scope="module")
def tiny():
    return load_backbone("tiny")


@dataclass
class TaskSetup:
    name: str
    data: DatasetSplits
    zero_shot: float  # top-1 of zero-shot CLIP with the task's hand-crafted prompt
    cache_dir: Path  # frozen features of this task's runs, encoded once


@pytest.fixture(scope="module")
def tasks(tiny, tmp_path_factory) -> dict[str, TaskSetup]:
    """Each task's setup, made once on first use and shared by the module's tests of that task."""

    class Setups(dict):
        def __missing__(self, name: str) -> TaskSetup:
            data = load_dataset(f"synthetic:{name}")
            self[name] = TaskSetup(name, data, zeroshot_evaluate(tiny, data, runtime=Runtime(progress=False))["top1"],
                                   tmp_path_factory.mktemp(f"features-{name}"))
            return self[name]

    return Setups()


def untrained_accuracy(case: Case, task: TaskSetup, backbone) -> float:
    """Test top-1 of the method as `train` creates it, before any step."""
    mcfg, _ = resolve_config(case.method, SHOTS, method_config=case.config)
    generator = torch.Generator().manual_seed(mix_seed(SEED, 0x1417))  # the draw runner.train makes
    method = create_method(case.method, backbone, task.data.classnames, config=mcfg,
                           dataset_templates=task.data.templates, generator=generator)
    trainer = Trainer(method, TrainConfig(), seed=SEED, cache=FeatureCache(task.cache_dir), progress=False)
    return trainer.evaluate(task.data.test)["top1"]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_training_beats_the_start(case, tasks, tiny, tmp_path):
    task = tasks[case.task]
    untrained = untrained_accuracy(case, task, tiny)
    start = max(task.zero_shot, untrained)
    run = train(case.method, tiny, task.data, shots=SHOTS, seed=SEED, out=tmp_path / "run",
                runtime=Runtime(progress=False, cache_dir=task.cache_dir),
                config={"method": case.config,
                        "train": {**(case.train or {}), **({"epochs": case.epochs} if case.epochs else {})}})
    summary = (f"{case.id}: zero-shot {task.zero_shot:.4f}, untrained {untrained:.4f}, "
               f"trained {run['top1']:.4f}, gain {run['top1'] - start:+.4f}")
    print(summary)
    assert run["top1"] - start >= case.margin, f"{summary} < margin {case.margin}"


def test_every_trainable_method_has_learning_cases():
    """A new trainable method needs its cases here (or a measured reason in NO_GAIN)."""
    trainable = {n for n in list_methods()
                 if get_method_class(n).__module__.startswith("vlprompt.methods.")
                 and get_method_class(n).SPEC.fit != "none"}
    covered = {c.method for c in CASES} | {method.split("[")[0] for method, _ in NO_GAIN}
    assert covered == trainable
    assert {c.task for c in CASES} == set(TASKS)
