"""Where the checkpoints come from (kickgen.weights): the lookup order every entry point shares,
the packaged weights, ``kickgen info``, ``--version``, and an installed wheel run from an empty folder."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from kickgen.audio import NUM_SAMPLES, SAMPLE_RATE
from kickgen.checkpoints import DEFAULT_TEST_VOCAB
from kickgen.cli import main
from kickgen.weights import (
    DIFFUSION_NAME,
    ENV_VAR,
    FILE_NAMES,
    MODEL_VERSION,
    SHIPPED_SHA256,
    VAE_NAME,
    VOCODER_NAME,
    CheckpointNotFoundError,
    find_checkpoints,
    packaged_dir,
)

WHEEL_LIMIT_BYTES = 45 * 2**20


def _sha16(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _copy_without(src: Path, dst: Path, *missing: str) -> Path:
    dst.mkdir()
    for name in FILE_NAMES.values():
        if name not in missing:
            shutil.copy2(src / name, dst / name)
    return dst


# --------------------------------------------------------------------------- the packaged weights


def test_packaged_weights_are_the_shipped_files_and_the_repository_links_them(repo_root):
    root = packaged_dir()
    assert root == repo_root / "kickgen" / "weights"
    for part, name in FILE_NAMES.items():
        assert _sha16(root / name) == SHIPPED_SHA256[part], (
            f"{name}: bump MODEL_VERSION and SHIPPED_SHA256"
        )
        local = repo_root / "checkpoints" / name  # the guide's path, kept working from the root
        assert local.is_file() and local.resolve() == (root / name).resolve()


# --------------------------------------------------------------------------- lookup order


def test_lookup_order_env_then_local_then_package(checkpoint_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    files = find_checkpoints()  # nothing here: the packaged weights
    assert files.directory == packaged_dir() and set(files.origins.values()) == {"package"}
    local = _copy_without(checkpoint_dir, tmp_path / "checkpoints")
    files = find_checkpoints()
    assert (
        files.directory == Path("checkpoints")
        and files.vocoder == Path("checkpoints") / VOCODER_NAME
    )
    assert set(files.origins.values()) == {"local"}
    other = _copy_without(checkpoint_dir, tmp_path / "other")
    monkeypatch.setenv(ENV_VAR, str(other))
    files = find_checkpoints()
    assert files.diffusion == other / DIFFUSION_NAME and set(files.origins.values()) == {"env"}
    files = find_checkpoints(local)  # a named folder beats the environment
    assert files.vae == local / VAE_NAME and files.origins["vae"] == "folder"
    # a named file beats every folder; the others still follow the order
    files = find_checkpoints(vae=tmp_path / "my_vae.pt")
    assert files.vae == tmp_path / "my_vae.pt" and files.origins == {
        "diffusion": "env",
        "vae": "file",
        "vocoder": "env",
    }


def test_partial_local_folder_is_skipped_with_a_warning(checkpoint_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _copy_without(checkpoint_dir, tmp_path / "checkpoints", VOCODER_NAME)
    with pytest.warns(UserWarning, match=f"lacks {VOCODER_NAME}: using the packaged weights"):
        files = find_checkpoints()
    assert files.directory == packaged_dir()
    files = find_checkpoints(use_vocoder=False)  # Griffin-Lim needs only the two it holds
    assert files.directory == Path("checkpoints") and files.vocoder is None


@pytest.mark.parametrize("named_by", ["flag", "env"])
def test_a_named_folder_that_lacks_a_file_is_an_error_never_a_fallback(
    checkpoint_dir, tmp_path, monkeypatch, named_by
):
    monkeypatch.chdir(tmp_path)
    partial = _copy_without(checkpoint_dir, tmp_path / "partial", VOCODER_NAME)
    if named_by == "env":
        monkeypatch.setenv(ENV_VAR, str(partial))
        label, call = f"${ENV_VAR}", lambda **kw: find_checkpoints(**kw)
    else:
        label, call = "--checkpoints", lambda **kw: find_checkpoints(partial, **kw)
    with pytest.raises(CheckpointNotFoundError) as err:
        call()
    message = str(err.value)
    assert "\n" not in message and message.startswith(
        f"{partial / VOCODER_NAME} not found: {label} {partial}"
    )
    assert "--no-vocoder" in message
    assert call(use_vocoder=False).diffusion == partial / DIFFUSION_NAME  # Griffin-Lim asks for two
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(CheckpointNotFoundError, match="nowhere is not a folder"):
        find_checkpoints()


@pytest.mark.parametrize(
    "argv",
    [
        ["generate", "--steps", "1", "-o", "k.wav"],
        ["vocab"],
        ["morph", "--seeds", "1", "2", "--frames", "2", "--steps", "1"],
        ["pack", "--prompts", "p.txt", "-o", "P", "-n", "1"],
        ["info"],
    ],
)
def test_every_command_refuses_a_partial_env_folder_in_one_line(
    argv, checkpoint_dir, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.txt").write_text("808\n")
    _copy_without(checkpoint_dir, tmp_path / "checkpoints")  # would do, but the env names a folder
    partial = _copy_without(checkpoint_dir, tmp_path / "partial", DIFFUSION_NAME)
    monkeypatch.setenv(ENV_VAR, str(partial))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1
        and f"{partial / DIFFUSION_NAME} not found: ${ENV_VAR} {partial}" in err
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoints",
        "p.txt",
        "partial",
    ]  # nothing written


def test_from_pretrained_without_argument_follows_the_order(checkpoint_dir, tmp_path, monkeypatch):
    from kickgen.pipeline import KickPipeline

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(ENV_VAR, str(checkpoint_dir))
    pipe = KickPipeline.from_pretrained(device="cpu")
    assert pipe.sources == {part: checkpoint_dir / name for part, name in FILE_NAMES.items()}
    assert pipe.vocab == DEFAULT_TEST_VOCAB and pipe.vocoder is not None
    monkeypatch.delenv(ENV_VAR)
    pipe = KickPipeline.from_pretrained(device="cpu")  # the packaged (shipped) weights
    assert pipe.sources["vocoder"] == packaged_dir() / VOCODER_NAME and len(pipe.vocab) == 24
    with pytest.raises(CheckpointNotFoundError, match="use_vocoder=False"):
        KickPipeline.from_pretrained(_copy_without(checkpoint_dir, tmp_path / "p", VOCODER_NAME))


def test_guide_generate_finds_diffusion_and_vae(checkpoint_dir, tmp_path, monkeypatch):
    from kickgen.pipeline import clear_cache, generate

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(ENV_VAR, str(checkpoint_dir))
    clear_cache()
    path = generate(
        prompt="808", ddim_steps=1, seed=3, output_path=Path("k.wav")
    )  # vocoder None: Griffin-Lim
    data, sr = sf.read(path, dtype="float32")
    assert sr == SAMPLE_RATE and data.shape == (NUM_SAMPLES,)
    clear_cache()


# --------------------------------------------------------------------------- CLI conventions


def test_short_flags_match_the_long_ones_and_regenerate_finds_the_weights_either_way(
    checkpoint_dir, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    long = ["generate", "--checkpoints", str(checkpoint_dir), "--prompt", "808", "--seed", "5",
            "--steps", "2", "--output", "long.wav", "-q"]  # fmt: skip
    assert main(long) == 0
    monkeypatch.setenv(ENV_VAR, str(checkpoint_dir))  # same files, found through the environment
    assert main(["generate", "-p", "808", "-s", "5", "--steps", "2", "-o", "short.wav", "-q"]) == 0
    assert (tmp_path / "long.wav").read_bytes() == (tmp_path / "short.wav").read_bytes()
    assert main(["regenerate", "long.wav", "--check", "-o", "again.wav", "-q"]) == 0
    monkeypatch.delenv(ENV_VAR)
    shutil.copytree(checkpoint_dir, tmp_path / "checkpoints")  # ./checkpoints this time
    assert main(["regenerate", "short.wav", "--check", "-q"]) == 0
    assert np.array_equal(sf.read("short.regen.wav")[0], sf.read("long.wav")[0])
    # the packaged weights are other files: regenerate refuses them by name and hash
    shutil.rmtree(tmp_path / "checkpoints")
    capsys.readouterr()
    assert main(["regenerate", "long.wav", "-q"]) == 2
    assert (
        "was made with diffusion checkpoint diffusion_step_100000.pt sha256"
        in capsys.readouterr().err
    )


def test_info_names_files_hashes_vocabulary_torch_and_device(
    checkpoint_dir, tmp_path, monkeypatch, capsys
):
    import torch

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(ENV_VAR, str(checkpoint_dir))
    assert main(["info", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    for name in FILE_NAMES.values():
        line = next(x for x in out.splitlines() if name in x)
        assert str(checkpoint_dir / name) in line and _sha16(checkpoint_dir / name) in line
        assert f"${ENV_VAR}" in line and "shipped" not in line
    assert f"vocabulary ({len(DEFAULT_TEST_VOCAB)}): {' '.join(DEFAULT_TEST_VOCAB)}" in out
    assert f"torch {torch.__version__}" in out and "device cpu" in out
    assert f"model {MODEL_VERSION}" in out


def test_version_names_the_model(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and f"model {MODEL_VERSION}" in out
    assert all(sha[:8] in out for sha in SHIPPED_SHA256.values())


# --------------------------------------------------------------------------- the installed wheel


def _child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (ENV_VAR, "PYTHONPATH")}
    return {**env, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INDEX": "1", **extra}


@pytest.mark.slow  # builds a wheel, installs it in a fresh venv, generates one kick: ~30 s
def test_wheel_installs_and_generates_from_an_empty_folder(repo_root, tmp_path):
    # build from a clean copy of the sources (no build/ or egg-info left in the checkout)
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("kickgen", "models", "inference"):
        shutil.copytree(repo_root / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(repo_root / name, src / name)
    wheels = tmp_path / "wheels"
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
                        "-q", "-w", str(wheels)], capture_output=True, text=True, timeout=300, env=_child_env())  # fmt: skip
    assert r.returncode == 0, r.stderr
    (wheel,) = wheels.glob("kickgen-*.whl")
    assert wheel.stat().st_size <= WHEEL_LIMIT_BYTES
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    assert {f"kickgen/weights/{n}" for n in FILE_NAMES.values()} <= names
    # the guide's models/ and inference/ stay at the repository root: the wheel's top level is
    # kickgen alone, so it never shadows a user's own packages of those names
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"kickgen"}, top

    # a fresh venv that borrows torch, numpy, scipy and soundfile (and pip) from this interpreter,
    # also when this interpreter runs in a venv of its own (--system-site-packages alone would
    # then reach past it to the base interpreter's packages)
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
        check=True,
        timeout=120,
    )
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / "python"
    r = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                       capture_output=True, text=True, check=True, timeout=60)  # fmt: skip
    ours = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}
    (Path(r.stdout.strip()) / "_borrowed.pth").write_text("\n".join(sorted(ours)) + "\n")
    r = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--ignore-installed", str(wheel)],
                       capture_output=True, text=True, timeout=300, env=_child_env())  # fmt: skip
    assert r.returncode == 0, r.stderr

    empty = tmp_path / "empty"
    empty.mkdir()
    r = subprocess.run([str(bindir / "kickgen"), "generate", "-p", "punchy 808", "-s", "1", "-o", "k.wav", "-q"],
                       cwd=empty, capture_output=True, text=True, timeout=600, env=_child_env())  # fmt: skip
    assert r.returncode == 0, r.stderr
    info = sf.info(str(empty / "k.wav"))
    assert (info.samplerate, info.channels, info.frames) == (SAMPLE_RATE, 1, NUM_SAMPLES)
    from kickgen.producer.recall import read_recipe

    recipe = read_recipe(empty / "k.wav")
    assert {
        part: m["sha256"] for part, m in recipe["model"].items()
    } == SHIPPED_SHA256  # HiFi-GAN too

    check = (
        "import kickgen; from kickgen.pipeline import KickPipeline; p = KickPipeline.from_pretrained(); "
        "print(kickgen.__file__); print(*p.sources.values(), sep='\\n'); print(p.vocoder is not None)"
    )
    r = subprocess.run(
        [str(python), "-c", check],
        cwd=empty,
        capture_output=True,
        text=True,
        timeout=300,
        env=_child_env(),
    )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")
    site = Path(lines[0]).parent
    assert site.is_relative_to(venv)  # the installed copy, not the checkout
    assert lines[1:4] == [
        str(site / "weights" / n) for n in (DIFFUSION_NAME, VAE_NAME, VOCODER_NAME)
    ]
    assert lines[4] == "True"
    assert sorted(p.name for p in empty.iterdir()) == ["k.wav"]
    r = subprocess.run([str(python), "-c", "import importlib.util as u; print(u.find_spec('models'), u.find_spec('inference'))"],
                       cwd=empty, capture_output=True, text=True, timeout=60, env=_child_env())  # fmt: skip
    assert r.stdout.split() == ["None", "None"], r.stdout + r.stderr
