"""Presets: the reference runs' settings, as data, resolved by (method, protocol, dataset, shots).

The reference repositories set a method's options in two places: `configs/trainers/*`
(optimiser, epochs, context) and `scripts/*` (what changes per dataset, shot count and
protocol). Here each method has one table of `Rule`s; a rule applies when all its
conditions hold, and later rules override earlier ones. A method's `Config` dataclass
holds the defaults common to every protocol (each field names its source); the rules hold
what differs. `docs/methods.md` explains each value; `vlprompt list methods --options`
prints the tables. A run records the rules it used in `run.json`, and `--set` overrides
any value.

Protocol names are the protocols' own (`fewshot`, `base2new`, `domain-generalization`,
`cross-dataset`); a run outside a protocol (`vlprompt train`) resolves as `fewshot` unless
told otherwise. Dataset names are the benchmark datasets' registry names; other datasets
(folders, CSV files, the synthetic suite) match only rules without a dataset condition.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

PROTOCOLS = ("fewshot", "base2new", "domain-generalization", "cross-dataset")
#: The protocol a run outside a protocol grid resolves its preset for.
DEFAULT_PROTOCOL = "fewshot"


@dataclass(frozen=True)
class Rule:
    """Option values that apply when every given condition holds (no condition: always)."""

    source: str  # the reference file or paper table the values were read from
    method: Mapping[str, Any] = field(default_factory=dict)
    train: Mapping[str, Any] = field(default_factory=dict)
    protocols: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    shots: tuple[int, int] | None = None  # inclusive range

    def __post_init__(self) -> None:
        unknown = set(self.protocols) - set(PROTOCOLS)
        if unknown:
            raise ValueError(f"preset rule for unknown protocol(s) {sorted(unknown)}")
        object.__setattr__(self, "method", MappingProxyType(dict(self.method)))
        object.__setattr__(self, "train", MappingProxyType(dict(self.train)))

    def applies(self, protocol: str, dataset: str | None, shots: int) -> bool:
        if self.protocols and protocol not in self.protocols:
            return False
        if self.datasets and dataset_key(dataset) not in self.datasets:
            return False
        return self.shots is None or self.shots[0] <= shots <= self.shots[1]

    def condition(self) -> str:
        """The rule's conditions in words, for listings and run records."""
        parts = []
        if self.protocols:
            parts.append("protocol " + "/".join(self.protocols))
        if self.datasets:
            parts.append("dataset " + "/".join(self.datasets))
        if self.shots is not None:
            lo, hi = self.shots
            parts.append(f"{lo} shots" if lo == hi else f"{lo}-{hi} shots" if hi < 10**6 else f">= {lo} shots")
        return ", ".join(parts) or "always"


@dataclass(frozen=True)
class Preset:
    """Resolved preset values and, for each `section.key`, the source it came from."""

    method: dict[str, Any]
    train: dict[str, Any]
    sources: dict[str, str]
    protocol: str

    def record(self) -> dict:
        """What `run.json` keeps: the protocol, the values and where each came from."""
        return {"protocol": self.protocol, "method": dict(self.method), "train": dict(self.train),
                "sources": dict(self.sources)}


def dataset_key(name: str | None) -> str | None:
    """`dtd[base]` -> `dtd`: a base/new part of a dataset keeps the dataset's presets."""
    return None if name is None else name.split("[", 1)[0]


ANY = 10**9  # open upper end of a shots range

# ---------------------------------------------------------------------------------------
# The tables. Sources are the reference repositories' files (read, not copied) or paper
# tables; docs/methods.md says what each value means.
# ---------------------------------------------------------------------------------------

#: CoOp's schedule: configs/trainers/CoOp/rn50_ep50.yaml, rn50.yaml (ep200) and
#: scripts/coop/main.sh choose 50 / 100 / 200 epochs by shots; ImageNet 50 at every count.
COOP_SCHEDULE: tuple[Rule, ...] = (
    Rule("CoOp configs/trainers/CoOp/*.yaml (OPTIM: SGD lr 0.002, batch 32)",
         train={"lr": 0.002, "batch_size": 32}),
    Rule("CoOp paper Sec. 4.1 and scripts/coop/main.sh (configs rn50_ep50)",
         train={"epochs": 50}, shots=(0, 1)),
    Rule("CoOp paper Sec. 4.1 and scripts/coop/main.sh (configs rn50_ep100)",
         train={"epochs": 100}, shots=(2, 4)),
    Rule("CoOp paper Sec. 4.1 and scripts/coop/main.sh (configs rn50.yaml, 200 epochs)",
         train={"epochs": 200}, shots=(5, ANY)),
    Rule("CoOp paper Sec. 4.1 (ImageNet: 50 epochs at every shot count)",
         train={"epochs": 50}, datasets=("imagenet",)),
)

#: ProGrad's own template table (trainers/prograd.py CUSTOM_TEMPLATES), where it differs
#: from the datasets' (CoOp's) templates; ProGrad uses it for the teacher and the context init.
PROGRAD_TEMPLATES = {
    "oxford_pets": "a type of pet, a photo of a {}.",
    "oxford_flowers": "a type of flower, a photo of a {}.",
    "fgvc_aircraft": "a type of aircraft, a photo of a {}.",
    "food101": "a type of food, a photo of {}.",
    "dtd": "a texture of {}.",
}

#: Bayesian prompt learning's L and epochs per dataset (its VPT.md base-to-new commands).
VARIATIONAL_L_EPOCHS = {
    "caltech101": (20, 20), "oxford_pets": (40, 20), "stanford_cars": (20, 40),
    "oxford_flowers": (10, 40), "food101": (20, 20), "fgvc_aircraft": (10, 10), "sun397": (20, 10),
    "dtd": (40, 10), "eurosat": (20, 60), "ucf101": (5, 20), "imagenet": (10, 10),
}

TRANSFER = ("domain-generalization", "cross-dataset")
PROGRAD = "ProGrad (BeierZhu/Prompt-align) "
VARIATIONAL = "Bayesian-Prompt-Learning (saic-fi) "
MAPLE = "MaPLe repo (muzairkhattak/multimodal-prompt-learning) "
UPT_CODE = "UPT code (yuhangzang, 2025 release) "
PROMPTSRC = "PromptSRC repo (muzairkhattak/PromptSRC) "
CLAP_REPO = "CLAP (jusiro/CLAP) "
LPP_REPO = "LP++ (FereshteShakeri/FewShot-CLIP-Strong-Baseline) "
CROSS_MODAL = "Cross-modal adaptation (linzhiqiu/cross_modal_adaptation) "

#: ZS-LP and CLAP share one schedule: configs/trainers/SGD_lr1e-1_B256_ep300.yaml, 20 augmented
#: views per support image (trainers/adapters.py epochs_aumentation), and for ImageNet the 7
#: selected templates plus the dataset's prompt (trainers/adapters.py _get_base_text_features).
CLAP_SCHEDULE: tuple[Rule, ...] = (
    Rule(CLAP_REPO + "configs/trainers/SGD_lr1e-1_B256_ep300.yaml (SGD lr 0.1, batch 256, 300 epochs, "
         "no weight decay, 1 warm-up epoch at 1e-5, cosine)",
         train={"lr": 0.1, "batch_size": 256, "epochs": 300, "weight_decay": 0.0, "warmup_epochs": 1,
                "warmup_lr": 1e-5, "schedule": "cosine"}),
    Rule(CLAP_REPO + "trainers/adapters.py (20 augmented views of each support image)",
         train={"augment": True, "views": 20}),
    Rule(CLAP_REPO + "trainers/adapters.py (ImageNet: IMAGENET_TEMPLATES_SELECT + 'a photo of a {}.')",
         method={"template": "select7+dataset"}, datasets=("imagenet",)),
)
#: Cross-modal LP: 12800 iterations of a batch of 32 (16 image + 16 text features) are
#: 2048 / shots epochs of 16 image features at 100 classes (205 / shots at ImageNet's 1000);
#: the few-shot val set is checked about every 100 iterations (16 / shots epochs).
CROSS_MODAL_SCHEDULE: tuple[Rule, ...] = (
    Rule(CROSS_MODAL + "engine/optimizer/default.py 'linear' (AdamW, cosine; from its grid lr "
         "{1e-3, 1e-4} x wd {0, 1e-2, 1e-4} x batch {8, 32}: lr 1e-3, wd 1e-4, batch 32 = 16 image + "
         "16 text); linear_probe.sh (center crop, no random crops)",
         train={"optimizer": "adamw", "lr": 0.001, "weight_decay": 1e-4, "batch_size": 16,
                "schedule": "cosine", "warmup_epochs": 0, "augment": False, "select": "val"}),
) + tuple(
    Rule(CROSS_MODAL + f"engine/optimizer/default.py (12800 iterations) and train.py (val every 100 "
         f"iterations), as epochs at 100 classes, {shots} shots",
         train={"epochs": 2048 // shots, "eval_every": max(1, 16 // shots)}, shots=(lo, hi))
    for shots, lo, hi in ((1, 0, 1), (2, 2, 3), (4, 4, 7), (8, 8, 15), (16, 16, ANY))
) + tuple(
    Rule(CROSS_MODAL + f"12800 iterations as epochs at ImageNet's 1000 classes, {shots} shots",
         train={"epochs": max(1, 205 // shots), "eval_every": 1}, shots=(lo, hi), datasets=("imagenet",))
    for shots, lo, hi in ((1, 0, 1), (2, 2, 3), (4, 4, 7), (8, 8, 15), (16, 16, ANY))
) + (
    Rule(CROSS_MODAL + "engine/templates/hand_crafted.py (ImageNet: Tip-Adapter's 7 templates)",
         method={"template": "select7"}, datasets=("imagenet",)),
)

PRESETS: dict[str, tuple[Rule, ...]] = {
    "linear-probe": (
        Rule("CLIP paper Sec. 3.2 / CoOp's linear probe (features of unaugmented images)",
             train={"augment": False}),
    ),
    "zs-lp": CLAP_SCHEDULE,
    "clap": CLAP_SCHEDULE,
    "lp++": (
        Rule(LPP_REPO + "methods/linear_probe_p2.py (features of one augmented pass over the support set)",
             train={"augment": True, "views": 1}),
        Rule(LPP_REPO + "datasets/imagenet.py via Tip-Adapter (the 7 selected ImageNet templates)",
             method={"template": "select7"}, datasets=("imagenet",)),
    ),
    "cross-modal-lp": CROSS_MODAL_SCHEDULE,
    "classifier-ft": COOP_SCHEDULE,  # "trained like CoOp" (rethinking paper)
    "coop": COOP_SCHEDULE + (
        Rule("CoOp repo scripts/cocoop/base2new_train.sh (TRAINER=CoOp, CFG vit_b16_ctxv1: "
             "200 epochs, CTX_INIT 'a photo of a', so 4 context vectors)",
             method={"n_ctx": 4, "ctx_init": "a photo of a"}, train={"epochs": 200},
             protocols=("base2new",)),
        Rule("CoOp repo scripts/cocoop/base2new_train.sh (CFG vit_b16_ep50_ctxv1 for ImageNet)",
             train={"epochs": 50}, protocols=("base2new",), datasets=("imagenet",)),
    ),
    "cocoop": (
        Rule("CoOp repo configs/trainers/CoCoOp/vit_b16_c4_ep10_batch1_ctxv1.yaml",
             train={"lr": 0.002, "batch_size": 1, "epochs": 10}),
    ),
    "prograd": COOP_SCHEDULE + tuple(
        Rule(PROGRAD + "trainers/prograd.py CUSTOM_TEMPLATES",
             method={"teacher_template": template}, datasets=(name,))
        for name, template in PROGRAD_TEMPLATES.items()
    ) + (
        Rule(PROGRAD + "README (lambda 0.8 for Flowers102, DTD, EuroSAT at 8 and 16 shots)",
             method={"grad_lambda": 0.8}, datasets=("oxford_flowers", "dtd", "eurosat"), shots=(8, ANY)),
        Rule(PROGRAD + "scripts/base2new_train_prograd.sh (rn50_ep100: 100 epochs, NCTX 16, LAMBDA 1.0)",
             method={"grad_lambda": 1.0}, train={"epochs": 100}, protocols=("base2new",)),
        Rule(PROGRAD + "README (base-to-new on ImageNet: rn50_ep50)",
             train={"epochs": 50}, protocols=("base2new",), datasets=("imagenet",)),
    ),
    "kgcoop": (
        Rule("KgCoOp configs/trainers/KgCoOp/vit_b16_ep100_ctxv1.yaml (batch 128, lr 0.002, 100 epochs)",
             train={"lr": 0.002, "batch_size": 128, "epochs": 100}),
        Rule("KgCoOp trainers/kgcoop.py CUSTOM_TEMPLATES (DTD differs from CoOp's)",
             method={"template": "a photo of a {}, a type of texture."}, datasets=("dtd",)),
    ),
    "vpt": (
        Rule(MAPLE + "configs/trainers/VPT/vit_b16_c2_ep5_batch4_4.yaml (lr 0.0025, batch 4, 5 epochs)",
             train={"lr": 0.0025, "batch_size": 4, "epochs": 5}),
        Rule(UPT_CODE + "configs/trainers/VPT_deep/vit_b16_ep*.yaml and trainers/vpt_deep.py "
             "(4 tokens, lr 0.002, batch 32, the dataset's CoOp template)",
             method={"n_tokens": 4, "template": "dataset"}, train={"lr": 0.002, "batch_size": 32},
             protocols=("fewshot", "domain-generalization")),
    ) + tuple(
        Rule(rule.source + " (CoOp's epochs, as UPT compares with CoOp)", train=rule.train,
             shots=rule.shots, datasets=rule.datasets, protocols=("fewshot", "domain-generalization"))
        for rule in COOP_SCHEDULE if "epochs" in rule.train
    ),
    "upt": (
        Rule(UPT_CODE + "configs/trainers/Unified/vit_b16_ep*.yaml (batch 32, lr 0.002)",
             train={"lr": 0.002, "batch_size": 32}),
    ) + tuple(r for r in COOP_SCHEDULE if "epochs" in r.train) + (
        Rule(UPT_CODE + "scripts/unified/base2new_train_*.sh (vit_b16_ep200)",
             train={"epochs": 200}, protocols=("base2new",)),
        Rule(UPT_CODE + "scripts/unified/base2new_train_imagenet.sh (vit_b16_ep50)",
             train={"epochs": 50}, protocols=("base2new",), datasets=("imagenet",)),
        Rule(UPT_CODE + "scripts/unified/base2new_train_caltech-101.sh (vit_b16_ep10)",
             train={"epochs": 10}, protocols=("base2new",), datasets=("caltech101",)),
    ),
    "maple": (
        Rule(MAPLE + "configs/trainers/MaPLe/vit_b16_c2_ep5_batch4_2ctx.yaml (lr 0.0035, batch 4, 5 epochs)",
             train={"lr": 0.0035, "batch_size": 4, "epochs": 5}),
        Rule(MAPLE + "configs/trainers/MaPLe/vit_b16_c2_ep5_batch4_2ctx_cross_datasets.yaml "
             "(depth 3, lr 0.0026, 2 epochs)",
             method={"depth": 3}, train={"lr": 0.0026, "epochs": 2}, protocols=TRANSFER),
    ),
    "ivlp": (
        Rule(MAPLE + "configs/trainers/IVLP/vit_b16_c2_ep5_batch4_2+2ctx.yaml, the config of its "
             "base-to-new and cross-dataset scripts (lr 0.0035, batch 4, 5 epochs)",
             train={"lr": 0.0035, "batch_size": 4, "epochs": 5}),
    ),
    "promptsrc": (
        Rule(PROMPTSRC + "configs/trainers/PromptSRC/vit_b16_c2_ep20_batch4_4+4ctx.yaml (lr 0.0025, batch 4, "
             "20 epochs)", train={"lr": 0.0025, "batch_size": 4, "epochs": 20}),
        Rule(PROMPTSRC + "configs/trainers/PromptSRC/vit_b16_c2_ep50_batch4_4+4ctx_few_shot.yaml and "
             "scripts/promptsrc/few_shot.sh (50 epochs, GPA mean 30, std 30)",
             method={"gpa_mean": 30.0, "gpa_std": 30.0}, train={"epochs": 50}, protocols=("fewshot",)),
        Rule(PROMPTSRC + "configs/trainers/PromptSRC/vit_b16_c2_ep50_batch4_4+4ctx_few_shot.yaml (GPA mean 45, "
             "std 5 for StanfordCars, Flowers102, FGVCAircraft, DTD and EuroSAT)",
             method={"gpa_mean": 45.0, "gpa_std": 5.0}, protocols=("fewshot",),
             datasets=("stanford_cars", "oxford_flowers", "fgvc_aircraft", "dtd", "eurosat")),
        Rule(PROMPTSRC + "configs/trainers/PromptSRC/vit_b16_c2_ep20_batch4_4+4ctx_cross_datasets.yaml, named by "
             "docs/TRAIN.md (depth 3, GPA mean 6, std 10, 20 epochs)",
             method={"text_depth": 3, "vision_depth": 3, "gpa_mean": 6.0, "gpa_std": 10.0},
             train={"epochs": 20}, protocols=TRANSFER),
    ),
    "variational": (
        Rule(VARIATIONAL + "configs/trainers/VPT/vit_b16_c4_ep10_batch1_ctxv1.yaml (batch 1, lr 0.002); "
             "datasets outside its table: its ImageNet row (L 10, 10 epochs)",
             method={"samples": 10}, train={"lr": 0.002, "batch_size": 1, "epochs": 10}),
    ) + tuple(
        Rule(VARIATIONAL + "VPT.md (per-dataset L and epochs)",
             method={"samples": samples}, train={"epochs": epochs}, datasets=(name,))
        for name, (samples, epochs) in VARIATIONAL_L_EPOCHS.items()
    ) + (
        Rule(VARIATIONAL + "scripts/vpt/xd_train.sh (ImageNet source: L 10, 10 epochs)",
             method={"samples": 10}, train={"epochs": 10}, protocols=TRANSFER),
    ),
}


# Feature adapters: CLIP-Adapter, Tip-Adapter(-F), TaskRes.
CLIP_ADAPTER = "CLIP-Adapter (gaopengcuhk/CLIP-Adapter) "
TIP = "Tip-Adapter (gaopengcuhk/Tip-Adapter) "
TASKRES = "TaskRes (geekyutao/TaskRes) "
#: Tip-Adapter's configs/<dataset>.yaml: init_alpha, search_scale (beta, alpha); init_beta is 1
#: and search_step (200, 20) everywhere.
TIP_DATASETS = {
    "caltech101": (3.0, 12.0, 5.0), "dtd": (2.0, 13.0, 13.0), "eurosat": (2.0, 12.0, 10.0),
    "fgvc_aircraft": (5.0, 30.0, 30.0), "food101": (1.17, 10.0, 10.0), "imagenet": (1.17, 7.0, 3.0),
    "oxford_flowers": (10.0, 50.0, 50.0), "oxford_pets": (1.17, 7.0, 3.0), "stanford_cars": (3.0, 20.0, 10.0),
    "sun397": (1.17, 12.0, 10.0), "ucf101": (3.0, 7.0, 3.0),
}
TIP_CACHE: tuple[Rule, ...] = (
    Rule(TIP + "utils.build_cache_model (augment_epoch 10: 10 augmented views of each image, averaged)",
         train={"augment": True, "views": 10}),
    Rule(TIP + "datasets/imagenet.py (ImageNet: the 7 selected templates, ensembled)",
         method={"template": "select7"}, datasets=("imagenet",)),
) + tuple(
    Rule(TIP + f"configs/{name}.yaml (init_alpha, search_scale)",
         method={"init_alpha": alpha, "beta_scale": beta_scale, "alpha_scale": alpha_scale}, datasets=(name,))
    for name, (alpha, beta_scale, alpha_scale) in TIP_DATASETS.items()
)

PRESETS.update({
    "clip-adapter": tuple(
        Rule(CLIP_ADAPTER + "README ('follow CoOp's command'; clip_adapter.py builds Dassl's optimiser "
             "from the CoOp configs) -> " + rule.source, train=rule.train, shots=rule.shots,
             datasets=rule.datasets)
        for rule in COOP_SCHEDULE
    ),
    "tip-adapter": TIP_CACHE,
    "tip-adapter-f": TIP_CACHE + (
        Rule(TIP + "main.py run_tip_adapter_F (AdamW lr cfg 0.001, eps 1e-4, torch's default weight decay "
             "0.01, batch 256, cosine without warm-up) and configs/*.yaml (train_epoch 20)",
             train={"optimizer": "adamw", "lr": 0.001, "adam_eps": 1e-4, "weight_decay": 0.01,
                    "batch_size": 256, "epochs": 20, "warmup_epochs": 0, "schedule": "cosine"}),
        Rule(TIP + "configs/eurosat.yaml (train_epoch 100)", train={"epochs": 100}, datasets=("eurosat",)),
    ),
    "taskres": (
        Rule(TASKRES + "configs/trainers/TaskRes/adam_lr2e-3_B256_ep*.yaml (Dassl 'adam', lr 0.002, batch 256, "
             "Dassl's weight decay 5e-4, 1 warm-up epoch at 1e-5, cosine)",
             train={"optimizer": "adam", "lr": 0.002, "batch_size": 256, "weight_decay": 5e-4}),
        Rule(TASKRES + "scripts/taskres/README.md (1-4 shots: adam_lr2e-3_B256_ep100)",
             train={"epochs": 100}, shots=(0, 4)),
        Rule(TASKRES + "scripts/taskres/README.md (8 and 16 shots: adam_lr2e-3_B256_ep200)",
             train={"epochs": 200}, shots=(5, ANY)),
        Rule(TASKRES + "scripts/taskres/README.md (ImageNet: adam_lr2e-4_B256_ep100/ep200)",
             train={"lr": 0.0002}, datasets=("imagenet",)),
        Rule(TASKRES + "trainers/taskres.py _get_base_text_features (ImageNet: IMAGENET_TEMPLATES_SELECT "
             "plus the dataset's prompt, raw features averaged)",
             method={"template": "select7+dataset"}, datasets=("imagenet",)),
        Rule(TASKRES + "scripts/taskres/README.md (SCALE 1.0 for Flowers102)",
             method={"alpha": 1.0}, datasets=("oxford_flowers",)),
        Rule(TASKRES + "configs/trainers/TaskRes/generalization_rn50.yaml (lr 2e-4, 200 epochs)",
             train={"lr": 0.0002, "epochs": 200}, protocols=("domain-generalization",)),
    ),
})

def register_presets(method: str, rules: Sequence[Rule]) -> None:
    """The preset table of a method from outside vlprompt (a plugin)."""
    PRESETS[method] = tuple(rules)


def rules_for(cls: type) -> tuple[Rule, ...]:
    """The table of a method class; a subclass without one (a plugin deriving from CoOp)
    inherits its parent's."""
    for klass in cls.__mro__:
        name = getattr(klass, "name", "")
        if name in PRESETS:
            return PRESETS[name]
    return ()


def resolve_preset(cls: type, *, protocol: str = DEFAULT_PROTOCOL, dataset: str | None = None,
                   shots: int = 16) -> Preset:
    """The values of every rule of `cls`'s table that applies, later rules winning."""
    if protocol not in PROTOCOLS:
        from ..errors import ConfigError

        raise ConfigError(f"unknown protocol {protocol!r} for presets; known: {', '.join(PROTOCOLS)}")
    method: dict[str, Any] = {}
    train: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for rule in rules_for(cls):
        if not rule.applies(protocol, dataset, shots):
            continue
        for section, values, out in (("method", rule.method, method), ("train", rule.train, train)):
            for key, value in values.items():
                out[key] = value
                sources[f"{section}.{key}"] = rule.source
    return Preset(method=method, train=train, sources=sources, protocol=protocol)
