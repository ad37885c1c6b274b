#!/usr/bin/env bash
# Train the digits demo model on a lent GPU with scripts/train_digits.py (the same seeded script
# and settings as the CPU run: 5,000 steps of 32 fit ~40 min on 2 CPU cores), plus a longer run
# for comparison, then measure both with scripts/digits_base_stats.py (1,000 samples).
# Call: run(command="bash bench/device_digits_model.sh", carry=[".host/ComfyUI", ".whl"],
#           timeout_s=420)
set -uo pipefail
source bench/device_env.sh || exit 1
train() {  # steps, seconds
  timeout "$2" "$PY" scripts/train_digits.py --device cuda --steps "$1" --max-minutes 60 \
    --save-every 1000 --workdir "/tmp/digits_$1" --out "$OUT/digits_unet_$1.safetensors" \
    > "$OUT/train_$1.log" 2>&1
}
train 5000 200 &
train 15000 240 &
wait
tail -n 25 "$OUT"/train_*.log
for s in 5000 15000; do
  test -f "$OUT/digits_unet_$s.safetensors" || continue
  timeout 60 "$PY" scripts/digits_base_stats.py --device cuda --samples 1000 \
    --weights "$OUT/digits_unet_$s.safetensors" --json "$OUT/stats_$s.json" \
    --grid "$OUT/grid_$s.png" 2>&1 | grep -v "^ *[0-9,]*$" | head -40
done
ls -l "$OUT"
