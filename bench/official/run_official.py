"""Time the official Personalize-SAM persam.py on a PerSeg-layout folder, model loading excluded.

Runs persam.py's own main() unchanged, in a scratch working folder holding the weights that
make_models.py wrote (persam.py reads weights/mobile_sam.pt for --sam_type vit_t and writes
./outputs/). The time of building and loading the model (sam_model_registry[...]) is measured and
subtracted; so is nothing else (the per-photo visualisations persam.py saves are part of its run).
Also measured: the time inside SamPredictor.set_image (preprocessing + image encoder).

Usage: python3 run_official.py --persam /path/to/Personalize-SAM --models DIR --data PERSEG
         [--threads 2] [--runs 3] [--json result.json]
prints one JSON line: {"seconds": median over runs of (persam.main() − model loading), ...}.
"""

import argparse
import json
import os
import statistics
import sys
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--persam", required=True, help="a checkout of ZrrSkywalker/Personalize-SAM")
    parser.add_argument("--models", required=True, help="the OUT folder of make_models.py")
    parser.add_argument("--data", required=True, help="PerSeg layout: Images/<obj>/NN.jpg, Annotations/<obj>/NN.png")
    parser.add_argument("--type", default="vit_t", choices=["vit_t", "vit_b"])
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (persam-db's --threads)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args()

    os.environ.setdefault("MPLBACKEND", "Agg")
    sys.path.insert(0, os.path.abspath(args.persam))
    sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), "shim"))
    import torch

    torch.set_num_threads(args.threads)
    os.chdir(os.path.abspath(args.models))
    import persam  # the official script, unchanged
    from per_segment_anything import SamPredictor

    clock = {"load": 0.0, "setImage": 0.0, "setImageCalls": 0}
    build = persam.sam_model_registry[args.type]

    def timed_build(*a, **k):
        t = time.perf_counter()
        model = build(*a, **k)
        clock["load"] += time.perf_counter() - t
        return model

    persam.sam_model_registry[args.type] = timed_build
    set_image = SamPredictor.set_image

    def timed_set_image(self, *a, **k):
        t = time.perf_counter()
        try:
            return set_image(self, *a, **k)
        finally:
            clock["setImage"] += time.perf_counter() - t
            clock["setImageCalls"] += 1

    SamPredictor.set_image = timed_set_image

    runs = []
    for _ in range(args.runs):
        clock.update(load=0.0, setImage=0.0, setImageCalls=0)
        sys.argv = ["persam.py", "--data", os.path.abspath(args.data), "--sam_type", args.type, "--outdir", "timing"]
        cpu = time.process_time()
        t = time.perf_counter()
        persam.main()
        wall = time.perf_counter() - t
        cpu = time.process_time() - cpu
        runs.append({"seconds": wall - clock["load"], "wall": wall, "cpu": cpu, **clock})
        print(json.dumps(runs[-1]), file=sys.stderr)
    result = {
        "seconds": statistics.median(r["seconds"] for r in runs),
        "loadSeconds": statistics.median(r["load"] for r in runs),
        "setImageSeconds": statistics.median(r["setImage"] for r in runs),
        "setImageCalls": runs[0]["setImageCalls"],
        "cpuSeconds": statistics.median(r["cpu"] for r in runs),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "type": args.type,
        "runs": runs,
    }
    print(json.dumps(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
