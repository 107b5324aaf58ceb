#!/usr/bin/python3
"""Train the on-device anomaly model and export it to ONNX with its model card.

Runs with Debian's packages, i.e. /usr/bin/python3 (NOT a pyenv/venv python3 earlier on PATH,
which does not see them):

    apt-get install python3-torch python3-onnx python3-numpy    # torch 1.13 CPU, onnx 1.12

Usage:
    /usr/bin/python3 scripts/train-model.py --input data/sim-normal-windows.csv \
        --out-dir models --name default --version sim-ae-1.0.0 \
        [--eval-anomalous data/sim-fault-windows.csv] [--seed 1] [--epochs 60] [--quantile 0.999]
    /usr/bin/python3 scripts/train-model.py --manifest jobs.json   # many jobs, one torch import

Input: CSV of window feature vectors (first line `# window_ms=N`, then a header
`asset,window_start,<sensor>.<stat>,...`) as written by scripts/gen-sim-windows.ts or
`edge-agent export --normal`. All columns after `asset,window_start` are features, in that order.

Model: a small MLP autoencoder on standardised features. The ONNX graph takes `features`
[batch, F] (already standardised by the agent with the card's constants) and returns `score`
[batch]: the mean squared reconstruction error. Every 5th block of 50 windows is held out (none of
it is trained on); the held-out blocks alternate between calibration (the alarm threshold is a
quantile of their scores) and evaluation (the card's false-alarm rate is measured there: windows
used neither to fit nor to threshold the model).

Deterministic: fixed seeds, one thread, deterministic algorithms; the same input and arguments
give the same weights and the same sha256.
"""

import argparse
import csv
import datetime
import hashlib
import io
import json
import os
import sys

import numpy as np
import torch
from torch import nn

CARD_FORMAT = "edge-agent-model-card/1"


def read_windows(path):
    meta = {}
    with open(path, newline="") as f:
        lines = []
        for line in f:
            if line.startswith("#"):
                for kv in line[1:].split():
                    if "=" in kv:
                        k, v = kv.split("=", 1)
                        meta[k] = v
            else:
                lines.append(line)
    rows = list(csv.reader(io.StringIO("".join(lines))))
    header, body = rows[0], [r for r in rows[1:] if r]
    if header[:2] != ["asset", "window_start"]:
        raise SystemExit(f"{path}: header must start with asset,window_start")
    names = header[2:]
    x = np.array([[float(v) for v in r[2:]] for r in body], dtype=np.float64)
    if x.size == 0:
        raise SystemExit(f"{path}: no windows")
    keep = np.isfinite(x).all(axis=1)
    return names, x[keep], meta, int((~keep).sum())


class AutoEncoder(nn.Module):
    def __init__(self, n, hidden, code):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n, hidden), nn.Tanh(), nn.Linear(hidden, code), nn.Tanh(),
            nn.Linear(code, hidden), nn.Tanh(), nn.Linear(hidden, n),
        )

    def forward(self, features):
        recon = self.net(features)
        return ((features - recon) ** 2).mean(dim=1)


def split_blocks(n, block=50, every=5):
    idx = np.arange(n)
    held = (idx // block) % every == every - 1
    if held.sum() == 0 or (~held).sum() == 0:
        held = idx % every == every - 1
    return idx[~held], idx[held]


def split_heldout(ho, block=50):
    """Held-out windows -> (calibration, evaluation): alternate held-out blocks."""
    blocks = ho // block
    order = np.unique(blocks)
    cal_blocks = order[::2]
    cal = np.isin(blocks, cal_blocks)
    if cal.sum() == 0 or (~cal).sum() == 0:
        cal = np.arange(len(ho)) % 2 == 0
    return ho[cal], ho[~cal]


def train_one(job):
    seed = int(job.get("seed", 1))
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)

    names, x, meta, dropped = read_windows(job["input"])
    window_ms = int(job.get("window_ms") or meta.get("window_ms") or 0)
    if window_ms <= 0:
        raise SystemExit(f"{job['input']}: window length unknown (add '# window_ms=N' or --window-ms)")
    tr, ho = split_blocks(len(x))
    cal, ev = split_heldout(ho)
    if len(tr) < 8 or len(ho) < 2:
        raise SystemExit(f"{job['input']}: only {len(x)} usable windows; need at least 10")
    mean = x[tr].mean(axis=0)
    std = x[tr].std(axis=0)
    std = np.where(std < 1e-6, 1.0, std)
    z = ((x - mean) / std).astype(np.float32)
    xt = torch.from_numpy(z[tr])
    xh = torch.from_numpy(z[ho])

    n = len(names)
    hidden = int(job.get("hidden", max(8, min(32, n))))
    code = int(job.get("code", max(2, n // 4)))
    model = AutoEncoder(n, hidden, code)
    opt = torch.optim.Adam(model.parameters(), lr=float(job.get("lr", 3e-3)))
    epochs = int(job.get("epochs", 60))
    bs = int(job.get("batch_size", 128))
    g = torch.Generator().manual_seed(seed)
    model.train()
    loss = torch.tensor(0.0)
    for _ in range(epochs):
        perm = torch.randperm(len(xt), generator=g)
        for i in range(0, len(xt), bs):
            batch = xt[perm[i : i + bs]]
            opt.zero_grad()
            loss = model(batch).mean()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        s_tr = model(xt).numpy()
        s_ho = model(xh).numpy()
    pos = {int(w): k for k, w in enumerate(ho)}
    s_cal = s_ho[[pos[int(w)] for w in cal]]
    s_ev = s_ho[[pos[int(w)] for w in ev]]
    q = float(job.get("quantile", 0.999))
    threshold = float(np.quantile(s_cal, q)) * float(job.get("margin", 1.0))
    threshold = max(threshold, 1e-9)
    metrics = {
        "train_windows": int(len(tr)),
        "heldout_windows": int(len(ho)),
        "dropped_nonfinite_windows": dropped,
        "final_train_loss": float(loss.item()),
        "train_score_mean": float(s_tr.mean()),
        "heldout_score_p50": float(np.quantile(s_ho, 0.5)),
        "heldout_score_p99": float(np.quantile(s_ho, 0.99)),
        "heldout_score_max": float(s_ho.max()),
        "threshold_quantile": q,
        "threshold_margin": float(job.get("margin", 1.0)),
        "threshold_windows": int(len(cal)),
        "evaluation_windows": int(len(ev)),
        "threshold_false_alarm_rate": float((s_cal > threshold).mean()),
        # Windows used neither to fit nor to threshold the model.
        "evaluation_false_alarm_rate": float((s_ev > threshold).mean()),
    }
    if job.get("eval_anomalous"):
        names_a, xa, _, _ = read_windows(job["eval_anomalous"])
        if names_a != names:
            raise SystemExit(f"{job['eval_anomalous']}: feature columns differ from {job['input']}")
        with torch.no_grad():
            s_a = model(torch.from_numpy(((xa - mean) / std).astype(np.float32))).numpy()
        metrics["anomalous_windows"] = int(len(xa))
        metrics["anomalous_detection_rate"] = float((s_a > threshold).mean())

    out_dir = job["out_dir"]
    os.makedirs(out_dir, exist_ok=True)
    name = job.get("name", "model")
    onnx_file = f"{name}.onnx"
    onnx_path = os.path.join(out_dir, onnx_file)
    torch.onnx.export(
        model, torch.zeros(1, n), onnx_path, input_names=["features"], output_names=["score"],
        dynamic_axes={"features": {0: "batch"}, "score": {0: "batch"}}, opset_version=13,
    )
    import onnx  # noqa: E402  (only needed for the check; keeps --help fast)

    onnx.checker.check_model(onnx.load(onnx_path))
    with open(onnx_path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()

    card = {
        "format": CARD_FORMAT,
        "version": job["version"],
        "model_file": onnx_file,
        "sha256": digest,
        "inputs": [{"name": "features", "dtype": "float32", "shape": ["batch", n]}],
        "outputs": [{"name": "score", "dtype": "float32", "shape": ["batch"]}],
        "features": {"window_ms": window_ms, "names": names},
        "normalization": {"mean": [float(v) for v in mean], "std": [float(v) for v in std]},
        "output": {
            "name": "score",
            "meaning": "mean squared reconstruction error of the standardised window features; higher is more unusual",
            "higher_is_anomalous": True,
        },
        "threshold": threshold,
        "training": {
            "description": job.get("description", f"normal-operation windows from {os.path.basename(job['input'])}"),
            "source": job.get("source", os.path.basename(job["input"])),
            "windows": int(len(x)),
            "seed": seed,
            "architecture": f"MLP autoencoder {n}-{hidden}-{code}-{hidden}-{n}, tanh, Adam, {epochs} epochs",
            "trainer": f"scripts/train-model.py, torch {torch.__version__}, numpy {np.__version__}, onnx opset 13",
        },
        "metrics": metrics,
    }
    if not job.get("no_timestamp"):
        card["created_at"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    card_path = os.path.join(out_dir, f"{name}.card.json")
    with open(card_path, "w") as f:
        json.dump(card, f, indent=2)
        f.write("\n")
    return card_path, metrics


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input")
    p.add_argument("--out-dir", dest="out_dir")
    p.add_argument("--name", default="model")
    p.add_argument("--version")
    p.add_argument("--window-ms", dest="window_ms", type=int)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--quantile", type=float, default=0.999)
    p.add_argument("--margin", type=float, default=1.0, help="multiply the quantile threshold by this")
    p.add_argument("--description")
    p.add_argument("--source")
    p.add_argument("--eval-anomalous", dest="eval_anomalous")
    p.add_argument("--no-timestamp", dest="no_timestamp", action="store_true", help="omit created_at (reproducible card)")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--manifest", help="JSON list of jobs (same keys as the long options, with _)")
    a = p.parse_args()
    if a.manifest:
        with open(a.manifest) as f:
            jobs = json.load(f)
    else:
        if not (a.input and a.out_dir and a.version):
            p.error("--input, --out-dir and --version are required (or --manifest)")
        jobs = [{k: v for k, v in vars(a).items() if v is not None and k not in ("manifest", "quiet")}]
    for job in jobs:
        card_path, metrics = train_one(job)
        if not a.quiet:
            print(f"wrote {card_path}: {json.dumps(metrics)}", file=sys.stderr)


if __name__ == "__main__":
    main()
