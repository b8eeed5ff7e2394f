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
