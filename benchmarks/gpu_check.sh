#!/usr/bin/env bash
# GPU checks of agfnet in one go (a lent GPU machine is held for minutes, not hours):
#   1. training on the GPU (bf16 autocast, channels_last), evaluate, export, predict;
#   2. `agfnet benchmark --device cuda` (the paper preset, with the GPU block);
#   3. benchmarks/width_study.py on the GPU with the time left (fusion width vs accuracy);
#   4. compiled: the fusion overhead of agfnet_paper over the bare backbones, both
#      torch.compile'd, bf16, batch 32 and 64 (one process and JSON per batch and mode).
# Run from the repository root with agfnet importable (or a .whl/ folder of missing
# wheels beside it). Results go to $OUT (default out/gpu); BUDGET is the seconds the
# whole script may take; STEPS the steps to run, in order; COMPILE_MODES the
# torch.compile modes of step 4 ("reduce-overhead" adds CUDA graphs).
#
#   OUT=out/gpu BUDGET=540 bash benchmarks/gpu_check.sh
#   STEPS=compiled COMPILE_MODES="default reduce-overhead" BUDGET=540 bash benchmarks/gpu_check.sh
set -u
OUT=${OUT:-out/gpu}
BUDGET=${BUDGET:-540}
STEPS=${STEPS:-train bench width compiled}
COMPILE_MODES=${COMPILE_MODES:-default}
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
want() { case " $STEPS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# 1. Training path on the GPU: bf16-mixed, channels_last and trainer.compile are on there.
if want train; then
timeout 150 bash -c "set -ex
  $AG synth $W/small --n-per-class 40 --size 64 --seed 5
  $AG train --data $W/small/manifest.csv --config tiny --epochs 3 --out $W/run trainer.progress_bar=false
  grep -h precision $W/run/config.yaml || true
  $AG evaluate --checkpoint $W/run/checkpoints/best.ckpt --data $W/small/manifest.csv --split all --out $W/eval
  $AG export --checkpoint $W/run/checkpoints/best.ckpt --out $W/model.onnx
  $AG predict --checkpoint $W/run/checkpoints/best.ckpt --data $W/small/manifest.csv --out $W/pred.csv
" >"$OUT/train.log" 2>&1
echo "[$(($(date +%s) - T0)) s] training check rc=$?"
fi

# 2. The benchmark on the GPU (its JSON is rewritten after every step).
if want bench; then
t=$(($(left) - 200))
[ "$t" -gt 300 ] && t=300
timeout "$t" $AG benchmark --device cuda --out "$OUT/bench_gpu.json" >"$OUT/bench.log" 2>&1
echo "[$(($(date +%s) - T0)) s] benchmark rc=$?"
fi

# 3. Fusion width vs accuracy, paired by fold, with whatever time is left.
t=$(($(left) - 15))
if want width && [ "$t" -gt 60 ]; then
  timeout "$t" bash -c "$AG synth $W/bench --n-per-class 120 --size 96 --seed 7 >/dev/null &&
    python3 benchmarks/width_study.py --data $W/bench/manifest.csv --out $W/width --widths 256,128 \
      --folds 3 trainer.epochs=20 optim.lr=1e-3 scheduler.warmup_epochs=1 trainer.progress_bar=false" \
    >"$OUT/width.log" 2>&1
  echo "[$(($(date +%s) - T0)) s] width study rc=$?"
  cp "$W/width/width_study.json" "$OUT/" 2>/dev/null
fi

# 4. Compiled fusion overhead (targets: train <= 1.3, infer <= 1.2; docs/performance.md).
# Each JSON is agfnet.benchmark.gpu.measure_gpu_compiled's: batches.<B>.train_overhead
# and infer_overhead (spread over interleaved rounds), compile_seconds per network.
if want compiled; then
  for mode in $COMPILE_MODES; do
    for batch in 32 64; do
      t=$(($(left) - 15))
      [ "$t" -gt 360 ] && t=360
      if [ "$t" -lt 120 ]; then
        echo "[$(($(date +%s) - T0)) s] compiled $mode batch $batch skipped: ${t} s left"
        continue
      fi
      timeout "$t" python3 -c "import sys
from agfnet.benchmark.gpu import measure_gpu_compiled
from agfnet.fileio import write_json
out, mode, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
write_json(out, measure_gpu_compiled('cuda', False, mode=mode, batches=(batch,), report=print))" \
        "$OUT/compiled_${mode}_b${batch}.json" "$mode" "$batch" >"$OUT/compiled_${mode}_b${batch}.log" 2>&1
      echo "[$(($(date +%s) - T0)) s] compiled $mode batch $batch rc=$?"
    done
  done
fi
tar czf "$OUT/work.tgz" -C "$W" --exclude='*.ckpt' --exclude='*.png' --exclude='*.onnx' \
  --exclude='small' --exclude='bench' . 2>/dev/null
echo "[$(($(date +%s) - T0)) s] done"
