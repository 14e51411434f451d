"""The lost-SIGTERM watcher: it leaves an app's wakeup fd alone and stays out of forked children."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _python(code: str, env: dict[str, str]) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_an_apps_wakeup_fd_is_left_alone(child_env: dict[str, str]) -> None:
    """With a wakeup fd already set (asyncio's, say) the watcher does not start."""
    out = _python(
        """
        import os, signal
        from podtrace import _lost_signal
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        signal.set_wakeup_fd(write_fd)
        print(_lost_signal.watch(), signal.set_wakeup_fd(-1) == write_fd)
        """,
        child_env,
    )
    assert out == "False True"


def test_a_forked_child_does_not_feed_the_parents_watcher(child_env: dict[str, str]) -> None:
    """A plain fork child drops the inherited wakeup fd; a new watcher in it gets its own."""
    out = _python(
        """
        import os, signal
        from podtrace import _lost_signal
        print(_lost_signal.watch(), flush=True)
        pid = os.fork()
        if pid == 0:
            dropped = signal.set_wakeup_fd(-1) == -1
            own = _lost_signal.watch() and _lost_signal._watcher[0] == os.getpid()
            print(dropped, own, flush=True)
            os._exit(0)
        os.waitpid(pid, 0)
        print(signal.set_wakeup_fd(-1) == _lost_signal._watcher[2])  # the parent's is untouched
        """,
        child_env,
    )
    assert out.split() == ["True", "True", "True", "True"]
