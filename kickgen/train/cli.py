"""``kickgen train vae | diffusion | vocoder``, ``kickgen train smooth-time`` and ``report``.

Every field of a model's config and training config is a flag; ``--config FILE.toml`` sets any of
them (flags win). ``--resume`` continues the run in ``--run-dir`` from its saved state with its saved
config (flags and the TOML file may still change it, e.g. a larger ``--max-steps``).
Runs under ``torchrun --nproc_per_node N -m kickgen train ...`` with DistributedDataParallel.
"""

from __future__ import annotations

import argparse
from pathlib import Path

SMOOTH_TIME = (
    "make a trained U-Net smooth in t: refit its time MLP, the rest untouched",
    "Refit a diffusion checkpoint's time MLP to a smoothed copy of its own output over t, fed the "
    "embedding of t / --time-scale (kickgen.train.diffusion.refit_time_embedding). Second-order "
    "samplers such as DPM-Solver++ need a U-Net that is smooth in t.",
)


def _recipes() -> dict[str, tuple[type, type, str]]:
    from kickgen.models.autoencoder import VAEConfig
    from kickgen.models.diffusion import DiffusionConfig
    from kickgen.models.vocoder import VocoderConfig
    from kickgen.train.diffusion import DiffusionTrainConfig
    from kickgen.train.vae import VAETrainConfig
    from kickgen.train.vocoder import VocoderTrainConfig

    return {
        "vae": (VAETrainConfig, VAEConfig, "the KickVAE (log-mel <-> latent)"),
        "diffusion": (
            DiffusionTrainConfig,
            DiffusionConfig,
            "the latent U-Net and keyword encoder (needs --vae)",
        ),
        "vocoder": (
            VocoderTrainConfig,
            VocoderConfig,
            "the HiFi-GAN vocoder (--vae adds the fine-tune phase)",
        ),
    }


def register(subparsers: argparse._SubParsersAction) -> None:
    from kickgen.train.config import add_config_arguments

    train = subparsers.add_parser("train", help="train the VAE, the diffusion model or the vocoder")
    models = train.add_subparsers(dest="model", metavar="MODEL")
    for name, (train_cls, model_cls, what) in _recipes().items():
        p = models.add_parser(name, help=f"train {what}", description=f"Train {what}.")
        p.add_argument(
            "--config", metavar="FILE.toml", help="TOML file with config values (flags win)"
        )
        p.add_argument(
            "--resume", action="store_true", help="continue the run in --run-dir from its state"
        )
        p.add_argument(
            "--overwrite",
            action="store_true",
            help="start afresh in a --run-dir that holds a run's state (the state is replaced)",
        )
        p.add_argument(
            "--stop-at",
            type=int,
            default=0,
            metavar="STEP",
            help="stop at STEP with state saved (schedules still run to --max-steps); resume later",
        )
        add_config_arguments(p, train_cls, model_cls)
        p.set_defaults(func=run, recipe=name)
    smooth = models.add_parser("smooth-time", help=SMOOTH_TIME[0], description=SMOOTH_TIME[1])
    smooth.add_argument("--diffusion", type=Path, required=True, help="the checkpoint to smooth")
    smooth.add_argument("--out", type=Path, required=True, help="the smoothed checkpoint to write")
    smooth.add_argument("--time-scale", type=float, default=32.0, help="default 32.0")
    smooth.add_argument(
        "--sigma", type=float, default=8.0, help="Gaussian smoothing in steps (default 8.0)"
    )
    smooth.add_argument("--steps", type=int, default=6000, help="fitting steps (default 6000)")
    smooth.set_defaults(func=run_smooth_time)
    rep = models.add_parser(
        "report", help="numbers and spectrograms for trained checkpoints (decide what ships)"
    )
    rep.add_argument(
        "--checkpoints", type=Path, default=Path("checkpoints"), help="dir with the 3 files"
    )
    rep.add_argument("--corpus", type=Path, default=Path("corpus"), help="corpus (its val split)")
    rep.add_argument("--out", type=Path, default=Path("runs/report"), help="report.json and PNGs")
    rep.add_argument("-n", type=int, default=16, help="kicks per prompt (default 16)")
    rep.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    rep.set_defaults(func=run_report)
    train.set_defaults(func=lambda args: (train.print_help(), 2)[1])


def run_report(args: argparse.Namespace) -> int:
    import json

    from kickgen.train.report import run_report as report

    result = report(args.checkpoints, args.corpus, args.out, n=args.n, seed=args.seed)
    print(json.dumps(result, indent=1))
    return 0


def run_smooth_time(args: argparse.Namespace) -> int:
    import dataclasses

    from kickgen import checkpoints as ck
    from kickgen.errors import CommandError
    from kickgen.train.diffusion import refit_time_embedding

    if args.time_scale <= 0 or args.sigma <= 0 or args.steps < 1:
        raise CommandError("--time-scale and --sigma must be above 0 and --steps at least 1")
    unet, text_enc, _, vocab, cfg = ck.load_diffusion(args.diffusion)
    smooth = refit_time_embedding(unet, cfg.timesteps, args.time_scale, args.sigma, args.steps)
    saved = ck.load_checkpoint(args.diffusion, "diffusion")
    extra = {k: saved[k] for k in ("step", "train_config", "metrics") if k in saved}
    extra["time_refit"] = {"from": str(args.diffusion), "from_time_scale": cfg.time_scale,
                           "sigma": args.sigma, "steps": args.steps}  # fmt: skip
    config = dataclasses.replace(cfg, time_scale=args.time_scale)
    path = ck.save_diffusion(args.out, smooth, text_enc, vocab, config, **extra)
    print(f"kickgen: {path}: time MLP refitted at time scale {args.time_scale:g}")
    return 0


def run(args: argparse.Namespace) -> int:
    from kickgen.checkpoints import fill_added_fields
    from kickgen.errors import CommandError
    from kickgen.train.config import build_configs
    from kickgen.train.runtime import STATE_FILENAME, load_state, setup_runtime, shutdown_runtime

    train_cls, model_cls, _ = _recipes()[args.recipe]
    base = None
    if args.resume:
        run_dir = Path(args.run_dir or train_cls.run_dir)
        base = load_state(run_dir, args.recipe)["config"]
        saved = base.get(model_cls.__name__)
        if saved is not None:  # a run saved before a field existed was built without it
            base = {**base, model_cls.__name__: fill_added_fields(saved, model_cls)}
    train_cfg, model_cfg = build_configs((train_cls, model_cls), args.config, args, base)
    state = Path(train_cfg.run_dir) / STATE_FILENAME
    if not args.resume and not args.overwrite and state.exists():
        raise CommandError(
            f"{state} holds a run's state: continue it with --resume, start afresh with "
            "--overwrite, or choose another --run-dir"
        )
    rt = setup_runtime(train_cfg.device, train_cfg.threads)
    try:
        if args.recipe == "vae":
            from kickgen.train.vae import train
        elif args.recipe == "diffusion":
            from kickgen.train.diffusion import train
        else:
            from kickgen.train.vocoder import train
        step = train(train_cfg, model_cfg, rt, resume=args.resume, stop_at=args.stop_at)
    finally:
        shutdown_runtime(rt)
    if rt.is_main:
        export = Path(train_cfg.run_dir) / "export"
        where = (
            f"state and export in {train_cfg.run_dir}"
            if export.is_dir()
            else f"state in {train_cfg.run_dir} (nothing exported yet)"
        )
        print(f"kickgen: {args.recipe} run at step {step}; {where}")
    return 0
