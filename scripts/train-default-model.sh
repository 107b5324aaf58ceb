#!/usr/bin/env bash
# Rebuilds the shipped default model (models/default.onnx + models/default.card.json) from the
# simulator's normal operation. Deterministic: the same code gives the same sha256.
# Needs Debian's python3-torch, python3-onnx, python3-numpy, run by /usr/bin/python3.
set -euo pipefail
cd "$(dirname "$0")/.."
npx tsx scripts/gen-sim-windows.ts --hours 6 --assets 6 --seed 1000 \
  --out data/sim-normal-windows.csv --faults data/sim-fault-windows.csv
/usr/bin/python3 scripts/train-model.py --input data/sim-normal-windows.csv --out-dir models \
  --name default --version sim-ae-1.0.0 --seed 1 --epochs 60 --quantile 0.999 --margin 1.5 \
  --eval-anomalous data/sim-fault-windows.csv --no-timestamp \
  --source "scripts/gen-sim-windows.ts --hours 6 --assets 6 --seed 1000" \
  --description "Simulator normal operation only: 6 pumps (temperature, pressure, vibration at 10 Hz, the simulator's default signal shapes), 6 h each, 10 s tumbling windows, features from agent/model/features.ts. No plant data and nothing from SKAB. Anomalous-window detection rate is measured on simulator faults (overheat ramp, pressure drop, bearing wear, stuck sensor), second half of each fault."
