"""A realistic stand-in for a training job, without torch.

One run::

    python examples/demo_job.py --name my-run          # a few minutes
    ttop progress                                      # in another terminal

Four independent runs in the background (one of them fails after a while),
then watch them::

    python examples/demo_job.py --runs 4 --detach && ttop progress

What a run does: a ``loading`` phase that starts a ``multiprocessing`` pool of
``--workers`` processes (data-loader stand-ins that do a little CPU work for
every batch); then ``--epochs`` epochs of a ``train`` phase and a
``validation`` phase with their own batch counters; metrics ``loss`` / ``acc``
and ``val_loss`` / ``val_acc``; progress lines on stdout and occasional
warnings on stderr, captured into ``<run>.stdout.log`` / ``<run>.stderr.log``.

Tracked variables you can edit from ttop (key ``e``) while it runs:

``lr`` (float)
    the loop really obeys it: the loss moves towards its floor by a step
    proportional to ``lr`` (raise it and the loss falls faster; above ~0.2 it
    starts to diverge), and changes are printed.
``batch_size`` (int)
    a batch takes ``--batch-time * batch_size / 32`` seconds.
``pause`` (bool)
    true: the loop waits (printing once) until it is set back to false.
"""
from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import random
import subprocess
import sys
import time

try:
    from ttop import TrainingMonitor
except ImportError:  # running from a source checkout without installing
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from ttop import TrainingMonitor

MODELS = ["resnet50", "vit-small", "bert-base", "gpt2-mini", "unet", "mlp-mixer"]
SPEEDS = [1.0, 0.6, 1.4, 0.8, 1.2, 1.6]
LRS = [0.01, 0.02, 0.005, 0.03, 0.015, 0.008]


def load_batch(args):
    """Runs in a pool worker: a little CPU work, like decoding a batch."""
    seed, epoch, batch, worker, work = args
    rng = random.Random(hash((seed, epoch, batch, worker)))
    acc = 0
    for i in range(work):
        acc += (i * i) ^ rng.getrandbits(8)
    return acc % 997


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="A demo training job (no torch) that reports to ttop.")
    p.add_argument("--folder", default="progress", help="progress folder (default: %(default)s)")
    p.add_argument("--name", default=None, help="run name (default: demo-<date>-<time>)")
    p.add_argument("--epochs", type=int, default=3, help="epochs (default: %(default)s)")
    p.add_argument("--batches", type=int, default=200, help="training batches per epoch (default: %(default)s)")
    p.add_argument("--val-batches", type=int, default=40, help="validation batches per epoch (default: %(default)s)")
    p.add_argument(
        "--batch-time", type=float, default=0.25, help="seconds per training batch at batch_size 32 (default: %(default)s)"
    )
    p.add_argument("--workers", type=int, default=2, help="data-loader worker processes (default: %(default)s)")
    p.add_argument("--work", type=int, default=20000, help="CPU work per worker per batch (default: %(default)s)")
    p.add_argument("--lr", type=float, default=0.01, help="initial learning rate (default: %(default)s)")
    p.add_argument("--fail-at-epoch", type=int, default=None, metavar="K", help="raise an error half-way through epoch K")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--interval", type=float, default=1.0, help="progress file write interval in s (default: %(default)s)")
    p.add_argument("--runs", type=int, default=1, help="start N independent runs (default: %(default)s)")
    p.add_argument("--detach", action="store_true", help="start the run(s) in the background and return at once")
    args = p.parse_args(argv)
    for name in ("epochs", "batches", "val_batches", "runs"):
        if getattr(args, name) < (1 if name == "runs" else 0):
            p.error("--%s must be positive" % name.replace("_", "-"))
    if args.workers < 0 or args.batch_time < 0 or args.interval <= 0:
        p.error("--workers and --batch-time must be >= 0, --interval > 0")
    return args


# ---------------------------------------------------------------------------
# launching several runs


def run_command(args, name, seed, batch_time, lr, fail_at):
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--folder", args.folder,
        "--name", name,
        "--epochs", str(args.epochs),
        "--batches", str(args.batches),
        "--val-batches", str(args.val_batches),
        "--batch-time", repr(batch_time),
        "--workers", str(args.workers),
        "--work", str(args.work),
        "--lr", repr(lr),
        "--seed", str(seed),
        "--interval", repr(args.interval),
    ]  # fmt: skip
    if fail_at is not None:
        cmd += ["--fail-at-epoch", str(fail_at)]
    return cmd


def launch(args):
    os.makedirs(args.folder, exist_ok=True)
    stamp = time.strftime("%H%M%S")
    procs = []
    names = []
    for i in range(args.runs):
        model = MODELS[i % len(MODELS)]
        base = args.name or model
        name = "%s-%s" % (base, stamp) if args.runs == 1 or not args.name else "%s-%d-%s" % (base, i + 1, stamp)
        if i >= len(MODELS) and not args.name:
            name += "-%d" % (i // len(MODELS) + 1)
        fail_at = args.fail_at_epoch
        if fail_at is None and args.runs >= 3 and i == 2 and args.epochs >= 2:
            fail_at = 2  # one run of a batch fails half-way through epoch 2
        cmd = run_command(
            args,
            name,
            args.seed + i,
            args.batch_time * SPEEDS[i % len(SPEEDS)],
            args.lr if args.runs == 1 else LRS[i % len(LRS)],
            fail_at,
        )
        procs.append(
            subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,  # each run captures its own output into logs
                stderr=subprocess.DEVNULL,
                start_new_session=args.detach,
            )
        )
        names.append(name)
    if args.detach:
        print("started %d run(s) in %s: %s" % (len(names), os.path.abspath(args.folder), ", ".join(names)))
        print("watch them with:  ttop %s" % args.folder)
        return 0
    code = 0
    try:
        for p in procs:
            code = max(code, p.wait())
    except KeyboardInterrupt:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
        return 130
    return code


# ---------------------------------------------------------------------------
# one run


def announce(name, old, new):
    # called from the monitor's thread when an edit made in ttop is applied
    # one write for the line and its newline: print() writes them apart, and
    # the training loop's own print could land between them
    print("variable %s changed: %r -> %r\n" % (name, old, new), end="", flush=True)


def wait_while_paused(monitor):
    if not monitor.variables.get("pause"):
        return
    print("paused (set pause to false in ttop to go on)", flush=True)
    while monitor.variables.get("pause"):
        time.sleep(0.2)
    print("resumed", flush=True)


def train(args):
    rng = random.Random(args.seed)
    name = args.name or "demo-%s" % time.strftime("%Y%m%d-%H%M%S")
    floor = 0.05 + 0.1 * rng.random()
    loss = 2.3 + 0.2 * rng.random()
    with TrainingMonitor(
        folder=args.folder,
        run_name=name,
        interval=args.interval,
        resource_interval=max(args.interval, 0.5) * 2,
        capture_output=True,
        total_epochs=args.epochs,
        on_variable_change=announce,
    ) as monitor:
        monitor.track_variables({"lr": float(args.lr), "batch_size": 32, "pause": False})
        print("run %s (pid %d): %d epochs x %d batches" % (monitor.run_name, os.getpid(), args.epochs, args.batches))
        monitor.start_phase("loading")
        print("loading data with %d worker process(es) ..." % args.workers, flush=True)
        ctx = multiprocessing.get_context("spawn")
        pool = ctx.Pool(args.workers) if args.workers > 0 else None
        try:
            if pool is not None:
                pool.map(load_batch, [(args.seed, 0, 0, w, 10) for w in range(args.workers)])

            def fetch(epoch, batch, work):
                if pool is not None:
                    pool.map(load_batch, [(args.seed, epoch, batch, w, work) for w in range(args.workers)])

            for epoch in range(1, args.epochs + 1):
                monitor.start_epoch(epoch)
                correct = 0
                for batch in monitor.track(range(args.batches), phase="train"):
                    wait_while_paused(monitor)
                    lr = monitor.variables["lr"]
                    batch_size = max(int(monitor.variables["batch_size"]), 1)
                    t0 = time.monotonic()
                    fetch(epoch, batch, args.work)
                    step = min(max(lr, 0.0) * 4.0, 1.9)  # > 1: overshoots, the loss grows
                    loss = floor + (loss - floor) * (1.0 - step) + rng.gauss(0.0, 0.01) * math.sqrt(32 / batch_size)
                    loss = abs(loss)
                    acc = max(0.0, min(1.0, 1.0 - loss / 2.5 + rng.gauss(0.0, 0.01)))
                    correct += acc
                    monitor.update_metrics(loss=loss, acc=acc)
                    if batch % 50 == 0:
                        print("epoch %d batch %d/%d loss %.4f acc %.3f lr %g" % (epoch, batch, args.batches, loss, acc, lr))
                    if rng.random() < 0.01:
                        print("warning: slow batch %d (data loader stalled)" % batch, file=sys.stderr)
                    if args.fail_at_epoch == epoch and batch >= args.batches // 2:
                        raise RuntimeError("loss diverged at epoch %d batch %d (simulated failure)" % (epoch, batch))
                    left = args.batch_time * batch_size / 32 - (time.monotonic() - t0)
                    if left > 0:
                        time.sleep(left)
                val_loss = 0.0
                for batch in monitor.track(range(args.val_batches), phase="validation"):
                    t0 = time.monotonic()
                    fetch(epoch, batch, args.work // 2)
                    val_loss = loss * (1.05 + rng.gauss(0.0, 0.02))
                    monitor.update_metrics(val_loss=val_loss, val_acc=max(0.0, 1.0 - val_loss / 2.5))
                    left = args.batch_time / 2 - (time.monotonic() - t0)
                    if left > 0:
                        time.sleep(left)
                print(
                    "epoch %d done: train acc %.3f, val loss %.4f"
                    % (epoch, correct / max(args.batches, 1), val_loss),
                    flush=True,
                )
        finally:
            if pool is not None:
                pool.terminate()
                pool.join()
    print("run %s finished" % monitor.run_name)
    return 0


def main(argv=None):
    args = parse_args(argv)
    if args.runs > 1 or args.detach:
        return launch(args)
    return train(args)


if __name__ == "__main__":
    sys.exit(main())
