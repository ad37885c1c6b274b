#!/usr/bin/env bash
# The digits benchmark (bench/digits.py) on a lent GPU: 5 methods x 3 seeds, one worker process
# per (method, seed), all 15 at once; workers stop themselves after 5.5 minutes (the driver ends
# any still running 30 s later, inside the 400 s timeout) and whatever they reached is merged.
# Results come back in $OUT (digits.json, digits.png if the image has matplotlib, digits.log);
# copy them to bench/results/.
# Call: run(command="bash bench/device_digits.sh", carry=[".host/ComfyUI", ".whl"], timeout_s=420)
set -uo pipefail
source bench/device_env.sh || exit 1
timeout 400 "$PY" bench/digits.py --jobs 15 --device cuda --threads 1 --max-minutes 5.5 \
  --out "$OUT/digits.json" "$@" > "$OUT/digits.log" 2>&1
rc=$?
grep -v "WARNING" "$OUT/digits.log" | tail -n 40
exit $rc
