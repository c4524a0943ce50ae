#!/usr/bin/env bash
# Issue 15 section 3: which backbone stages ALL fuses, and how wide, chosen by accuracy
# (docs/results.md, "Which scales ALL fuses"). Tiny size, the CPU proxy: the paper preset
# (ResNet-50, 224 px) cannot be trained on two CPU cores.
#
# The study ran with the names of the time: agfnet_tiny (three scales, scale_dim 64),
# agfnet_two_scale_tiny (two scales), agfnet_narrow_tiny (three scales, scale_dim 32), then,
# after the default became two scales, agfnet_narrow_tiny (two scales, scale_dim 32).
# Today the same settings are agfnet_three_scale_tiny, agfnet_tiny and agfnet_narrow_tiny
# (the three-scale narrow one is agfnet_three_scale_tiny with model.overrides.scale_dim=32),
# so a rerun compares those three, into new folders, on the same folds.
#
# Usage: benchmarks/study_fused_scales.sh [default|local|overhead|tables|all]  (default: all;
# "all" is the accuracy study, about 25 minutes on 2 shared CPU cores; "overhead" is the
# CPU targets of `agfnet benchmark` for the paper preset, about 8 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 PYTHONPATH="$PWD" OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
PY=${PYTHON:-python}
RUN="nice -n 10 $PY -m agfnet"
MODELS=agfnet_three_scale_tiny,agfnet_tiny,agfnet_narrow_tiny
COMMON="--models $MODELS --folds 5 --epochs 12 --img-size 64 trainer.progress_bar=false data.num_workers=0"
RES=benchmarks/results
part=${1:-all}

bench() {  # $1: default or local; the compares run side by side, one thread each
  local data=out/synth_${1/default/def}
  [ -f $data/manifest.csv ] || $RUN synth $data $([ $1 == local ] && echo --kind local) \
    --n-per-class 80 --size 64 --seed 7 --workers 1
  $RUN compare --data $data/manifest.csv --out out/fused_scales_$1 $COMMON
}
case $part in
  default | local) bench $part ;;
  all) bench default & sleep 30; bench local & wait ;;
esac
if [[ $part == overhead ]]; then
  # The CPU targets of `agfnet benchmark` for the paper preset: its overhead and
  # throughput steps only (the rest of a full run does not depend on the fused scales),
  # one thread, no torch.compile, for the default agfnet_paper; then the overheads again
  # with more rounds, interleaved with the old default (three scales, scale_dim 256).
  mkdir -p $RES
  nice -n 10 $PY - <<'PYEOF'
import json
from functools import partial
import torch
torch.set_num_threads(1)
from agfnet.benchmark.common import (NUM_CLASSES, infer, interleave, make_inputs,
    make_plan, make_train_step, paired_ratio, resolve_device)
from agfnet.benchmark.overhead import measure_overhead
from agfnet.benchmark.throughput import measure_throughput
from agfnet.models import create_model

cpu = resolve_device("cpu")
plan = make_plan(False, cpu, compile=False)
o = measure_overhead(cpu, False, plan=plan)
t = measure_throughput(cpu, False, plan=plan)
out = {"threads": 1, "batch": plan.train_batch, "img_size": plan.img_size, "benchmark": {
    "train_overhead": o["train_overhead"]["agfnet"], "infer_overhead": o["infer_overhead"]["agfnet"],
    "onnx_speedup": t["onnx_speedup"], "onnx_speedup_one_pair": t["onnx_speedup_one_pair"]}}
print("agfnet_paper", {k: round(v["median"], 3) for k, v in out["benchmark"].items()}, flush=True)
models = {
    "decision_mean_paper": create_model("decision_mean_paper", num_classes=NUM_CLASSES, seed=0),
    "agfnet_paper": create_model("agfnet_paper", num_classes=NUM_CLASSES, seed=0),
    "old default": create_model("agfnet_three_scale_paper", num_classes=NUM_CLASSES, seed=0, scale_dim=256),
}
c, u, y = make_inputs(plan.train_batch, plan.img_size, cpu)
steps = {n: make_train_step(m, cpu) for n, m in models.items()}
train = interleave({n: partial(s, c, u, y) for n, s in steps.items()}, repeats=9, warmup=1, device=cpu)
for m in models.values():
    m.eval()
inf = interleave({n: partial(infer, m, c, u) for n, m in models.items()}, repeats=15, warmup=2, device=cpu)
bare = "decision_mean_paper"
out["interleaved"] = {n: {"train": paired_ratio(train[n], train[bare]), "infer": paired_ratio(inf[n], inf[bare])} for n in models if n != bare}
for n, r in out["interleaved"].items():
    print(n, {k: (round(v["median"], 3), round(v["q1"], 3), round(v["q3"], 3)) for k, v in r.items()}, flush=True)
with open("benchmarks/results/fused_scales_overhead.json", "w") as f:
    json.dump(out, f, indent=1)
PYEOF
fi
if [[ $part == tables || $part == all ]]; then
  $PY benchmarks/summarize_fused_scales.py default=out/fused_scales_default \
    local=out/fused_scales_local $RES/fused_scales_rerun.md
fi
