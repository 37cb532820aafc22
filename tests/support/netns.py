"""Run a test again inside a private network namespace, so Ableton Link's multicast never leaves this machine.

Link finds peers by multicast on every network interface. A test that enables Link calls
`rerun_in_private_network(request)` first: outside, it runs the same test again under
`unshare -n ../shared/netns.sh` (loopback and a veth pair whose two ends both stay inside) and
checks that it passed; inside, it returns True and the test goes on. Where `unshare -n` is
refused (not root, no user namespaces), the test is skipped with the reason.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

INSIDE_ENV = "IMPROV_PRIVATE_NETWORK"
PRIVATE_INTERFACES = {"lo", "link0", "link1"}  # what netns.sh brings up
RERUN_TIMEOUT_S = 280


def repository() -> Path:
    return Path(__file__).resolve().parents[2]


def netns_script() -> Path:
    """../shared/netns.sh beside the repository (CI clones the repository with ../shared beside it)."""
    return repository().parent / "shared" / "netns.sh"


def interfaces() -> set[str]:
    """The network interfaces of this process's own namespace (/proc/self/net/dev is per namespace)."""
    lines = Path("/proc/self/net/dev").read_text().splitlines()[2:]
    return {line.split(":", 1)[0].strip() for line in lines}


def assert_private_network() -> None:
    """Refuse to go on (so never enable Link) unless only netns.sh's interfaces are here."""
    found = interfaces()
    assert found <= PRIVATE_INTERFACES and "link0" in found, f"not in a private network namespace: {sorted(found)}"


def rerun_in_private_network(request: pytest.FixtureRequest) -> bool:
    """True inside the namespace (run the test body); outside, run this test inside, assert it passed, return False."""
    if os.environ.get(INSIDE_ENV) == "1":
        assert_private_network()
        return True
    script = netns_script()
    if not script.is_file():
        pytest.skip(f"no {script}: Link tests run only inside its private network namespace")
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        reason = probe.stderr.strip() or f"exit status {probe.returncode}"
        pytest.skip(f"unshare -n is refused here ({reason}): Link tests need a private network namespace")
    env = dict(os.environ, **{INSIDE_ENV: "1"})
    command = ["unshare", "-n", "bash", str(script), sys.executable, "-m", "pytest", "-q", "-x", "-rA",
               "-p", "no:cacheprovider", request.node.nodeid]
    result = subprocess.run(command, cwd=repository(), env=env, capture_output=True, text=True,
                            timeout=RERUN_TIMEOUT_S)
    output = result.stdout[-6000:] + result.stderr[-2000:]
    print(output)  # the inner run's measurements, shown with -s or -rA
    assert result.returncode == 0, f"inside the private network namespace the test failed:\n{output}"
    return False
