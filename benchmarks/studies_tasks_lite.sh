#!/usr/bin/env bash
# Issue 14 §4 and issue 12 §4 studies on a small synthetic benchmark, same folds (seed 42).
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 PYTHONPATH="$PWD" OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
PY=${PYTHON:-python}
B=out/bench14
[ -f $B/manifest.csv ] || $PY -m agfnet synth $B --n-per-class 60 --size 96 --seed 7 --workers 1
T="data.tasks=[colour,border,texture,depth,echo,posterior,heterogeneity]"
M="data.metadata=[site,age]"
C="--data $B/manifest.csv --folds 3 --config tiny --model agfnet_tiny --epochs 15 trainer.progress_bar=false data.num_workers=0"
chainA() {
  $PY -m agfnet cv $C --out out/study14/plain
  $PY -m agfnet cv $C --out out/study14/tasks "$T"
  $PY -m agfnet cv $C --out out/study14/metadata "$M"
  $PY -m agfnet cv $C --out out/study14/tasks_metadata "$T" "$M"
  echo CHAIN-A-DONE
}
L="--data $B/manifest.csv --folds 3 --config lite --model agfnet_lite --img-size 96 trainer.progress_bar=false data.num_workers=0"
chainB() {
  $PY -m agfnet cv $L --out out/study12/lite_pretrained
  $PY -m agfnet cv $L --out out/study12/lite_random model.overrides.pretrained=false
  echo CHAIN-B-DONE
}
chainA > out/study14.log 2>&1 &
sleep 20
chainB > out/study12.log 2>&1 &
wait
