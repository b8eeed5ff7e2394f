"""The papers' claims judged from records written by the test."""

from __future__ import annotations

from protocol_support import record
from vlprompt.studies.replicate import evaluate_claims


def _fewshot(method, shots, values, dataset="d1"):
    return [record(f"{method}{shots}{dataset}{s}", "test", method=method, shots=shots, seed=s, top1=v, dataset=dataset)
            for s, v in enumerate(values, 1)]


def test_claims_from_records():
    recs = (_fewshot("zeroshot", 0, [0.5, 0.5]) + _fewshot("coop", 1, [0.4, 0.42]) + _fewshot("coop", 2, [0.6, 0.62])
            + _fewshot("prograd", 1, [0.55, 0.56]) + _fewshot("classifier-ft", 2, [0.6, 0.6]))
    recs += [record(f"b{m}{s}", t, protocol="base2new", method=m, shots=4, seed=s, top1=v)
             for m, new in (("coop", 0.3), ("cocoop", 0.4)) for s in (1, 2) for t, v in (("base", 0.8), ("new", new))]
    verdicts = {c["claim"]: c for c in evaluate_claims(recs)}
    assert verdicts["coop-beats-zeroshot"]["status"] == "holds"
    assert "coop 61.00 ± " in verdicts["coop-beats-zeroshot"]["numbers"]
    assert verdicts["coop-beats-zeroshot"]["numbers"].endswith("(within the 95% CI)")  # 2 seeds: t = 12.7
    assert "within" not in verdicts["cocoop-new"]["numbers"]  # 10 points apart, no spread
    assert verdicts["prograd-1shot"]["status"] == "holds"
    assert verdicts["classifier-ft-matches-coop"]["status"] == "holds"
    assert verdicts["upt-beats-coop-vpt"]["status"] == "not checked"
    assert verdicts["cocoop-new"]["status"] == "holds"
    assert verdicts["variational-new"]["status"] == "not checked"
    worse = [dict(r, top1=0.1) if r["method"] == "prograd" else r for r in recs]
    assert {c["claim"]: c["status"] for c in evaluate_claims(worse)}["prograd-1shot"] == "does not hold"


def _no_val(method, shots, values, dataset="d1"):
    return [dict(r, run_hash=r["run_hash"] + "nv", metrics={"validation": {"setting": "none"}})
            for r in _fewshot(method, shots, values, dataset)]


def test_claims_of_the_adapter_and_probe_papers():
    recs = (_fewshot("zeroshot", 0, [0.5, 0.5]) + _fewshot("tip-adapter", 4, [0.6, 0.61])
            + _fewshot("tip-adapter", 1, [0.4, 0.4]) + _fewshot("tip-adapter-f", 4, [0.65, 0.66])
            + _fewshot("linear-probe", 1, [0.45, 0.47]) + _fewshot("linear-probe", 4, [0.55, 0.57])
            + _fewshot("lp++", 1, [0.52, 0.52]) + _fewshot("lp++", 4, [0.62, 0.62])
            # no validation data: CLAP above zero-shot at 1 and 4 shots, the probe at 1 shot below it
            + _no_val("clap", 1, [0.52, 0.53]) + _no_val("clap", 4, [0.58, 0.6])
            + _no_val("linear-probe", 1, [0.3, 0.32])
            # CLAP with the few-shot val split is not what the no-validation claim reads
            + _fewshot("clap", 1, [0.1, 0.1]) + _fewshot("clap", 4, [0.1, 0.1]))
    verdicts = {c["claim"]: c for c in evaluate_claims(recs)}
    status = {k: v["status"] for k, v in verdicts.items()}
    assert status["tip-adapter-beats-zeroshot"] == "holds"  # at the most shots (4), though not at 1
    assert "4-shot: tip-adapter 60.50 ± " in verdicts["tip-adapter-beats-zeroshot"]["numbers"]
    assert status["tip-adapter-f-beats-tip-adapter"] == "holds"
    assert status["clap-above-zeroshot-no-val"] == "holds"
    assert verdicts["clap-above-zeroshot-no-val"]["numbers"].startswith("1-shot: clap (no val) 52.50 ± ")
    assert status["linear-probe-1shot-no-val"] == "holds"  # 31 % (no val) < 50 %, though 46 % with val
    assert status["lp++-beats-linear-probe"] == "holds"

    def judged(changed):
        return {c["claim"]: c["status"] for c in evaluate_claims(changed)}

    # CLAP without validation below zero-shot at one shot count: the claim fails
    worse = [dict(r, top1=0.45) if r["method"] == "clap" and r["shots"] == 4 and "nv" in r["run_hash"] else r
             for r in recs]
    assert judged(worse)["clap-above-zeroshot-no-val"] == "does not hold"
    # a probe without validation that stays above zero-shot at 1 shot: the claim fails
    better = [dict(r, top1=0.7) if r["method"] == "linear-probe" and "nv" in r["run_hash"] else r for r in recs]
    assert judged(better)["linear-probe-1shot-no-val"] == "does not hold"
    flipped = [dict(r, top1=0.55) if r["method"] == "tip-adapter-f" else r for r in recs]
    assert judged(flipped)["tip-adapter-f-beats-tip-adapter"] == "does not hold"
    low = [dict(r, top1=0.44) if r["method"] == "lp++" and r["shots"] == 1 else r for r in recs]
    assert judged(low)["lp++-beats-linear-probe"] == "does not hold"
    # without the runs a claim needs, it is not checked
    missing = judged([r for r in recs if "nv" not in r["run_hash"]])
    assert missing["clap-above-zeroshot-no-val"] == missing["linear-probe-1shot-no-val"] == "not checked"
    assert judged(_fewshot("zeroshot", 0, [0.5]))["tip-adapter-beats-zeroshot"] == "not checked"
