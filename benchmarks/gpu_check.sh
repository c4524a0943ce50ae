#!/usr/bin/env bash
# GPU checks of agfnet in one go (a lent GPU machine is held for minutes, not hours):
#   1. training on the GPU (bf16 autocast, channels_last), evaluate, export, predict;
#   2. `agfnet benchmark --device cuda` (the paper preset, with the GPU block);
#   3. benchmarks/width_study.py on the GPU with the time left (fusion width vs accuracy).
# Run from the repository root with agfnet importable (or a .whl/ folder of missing
# wheels beside it). Results go to $OUT (default out/gpu); BUDGET is the seconds the
# whole script may take.
#
#   OUT=out/gpu BUDGET=540 bash benchmarks/gpu_check.sh
set -u
OUT=${OUT:-out/gpu}
BUDGET=${BUDGET:-540}
mkdir -p "$OUT"
T0=$(date +%s)
left() { echo $((BUDGET - ($(date +%s) - T0))); }
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH="/tmp/site:$PYTHONPATH"
fi
AG="python3 -m agfnet"
W=${WORK:-/tmp/agfnet-gpu}
mkdir -p "$W"

{
  nvidia-smi
  nproc
  python3 -c "import torch, timm, lightning, onnxruntime, numpy; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0)); print('timm', timm.__version__, 'lightning', lightning.__version__, 'onnxruntime', onnxruntime.__version__, 'numpy', numpy.__version__)"
} >"$OUT/env.txt" 2>&1
echo "[$(($(date +%s) - T0)) s] env done"

# 1. Training path on the GPU: bf16-mixed and channels_last are the defaults there.
timeout 150 bash -c "set -ex
  $AG synth $W/small --n-per-class 40 --size 64 --seed 5
  $AG train --data $W/small/manifest.csv --config tiny --epochs 3 --out $W/run trainer.progress_bar=false
  grep -h precision $W/run/config.yaml || true
  $AG evaluate --checkpoint $W/run/checkpoints/best.ckpt --data $W/small/manifest.csv --split all --out $W/eval
  $AG export --checkpoint $W/run/checkpoints/best.ckpt --out $W/model.onnx
  $AG predict --checkpoint $W/run/checkpoints/best.ckpt --data $W/small/manifest.csv --out $W/pred.csv
" >"$OUT/train.log" 2>&1
echo "[$(($(date +%s) - T0)) s] training check rc=$?"

# 2. The benchmark on the GPU (its JSON is rewritten after every step).
t=$(($(left) - 200))
[ "$t" -gt 300 ] && t=300
timeout "$t" $AG benchmark --device cuda --out "$OUT/bench_gpu.json" >"$OUT/bench.log" 2>&1
echo "[$(($(date +%s) - T0)) s] benchmark rc=$?"

# 3. Fusion width vs accuracy, paired by fold, with whatever time is left.
t=$(($(left) - 15))
if [ "$t" -gt 60 ]; then
  timeout "$t" bash -c "$AG synth $W/bench --n-per-class 120 --size 96 --seed 7 >/dev/null &&
    python3 benchmarks/width_study.py --data $W/bench/manifest.csv --out $W/width --widths 256,128 \
      --folds 3 trainer.epochs=20 optim.lr=1e-3 scheduler.warmup_epochs=1 trainer.progress_bar=false" \
    >"$OUT/width.log" 2>&1
  echo "[$(($(date +%s) - T0)) s] width study rc=$?"
  cp "$W/width/width_study.json" "$OUT/" 2>/dev/null
fi
tar czf "$OUT/work.tgz" -C "$W" --exclude='*.ckpt' --exclude='*.png' --exclude='*.onnx' \
  --exclude='small' --exclude='bench' . 2>/dev/null
echo "[$(($(date +%s) - T0)) s] done"
