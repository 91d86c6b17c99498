"""Joining a Ray cluster, or starting a local Ray whose servers listen on the loopback address
only, with its authentication token readable by its owner alone; either way the space's plugin
files go to every worker with the job's runtime environment (no shared filesystem needed). An
address nothing answers at, or a local Ray that fails to start, is one line (a `UserError`)."""

from __future__ import annotations

import os
import secrets
import socket
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ray
from ray.job_config import JobConfig

from common.errors import UserError
from common.upstream import ray_constant
from models.plugins import PluginFile, stage_for_shipping

ADDRESS_TIMEOUT_S = 10.0  # how long a cluster's address may take to accept a connection


def start_ray(address: str | None, job_name: str, plugins: Sequence[PluginFile] = ()) -> None:
    """Connect to a cluster (`--address`, `RAY_ADDRESS`) or start a local Ray that listens on the
    loopback address only (dashboard, metrics, gRPC). The job is named `job_name` on the
    dashboard's Jobs page (its `job_name` metadata); `plugins` are shipped to every worker."""
    address = address or os.environ.get("RAY_ADDRESS")
    job_config = JobConfig(metadata={"job_name": job_name})
    # ray.init uploads the staged copies (to Ray's GCS): the folder is not needed after it.
    with tempfile.TemporaryDirectory(prefix="genre-search-plugins-") as staging:
        job_config.set_runtime_env(_plugins_env(plugins, Path(staging)))
        if address:
            _check_reachable(address)
            try:
                context = ray.init(address=address, log_to_driver=False, job_config=job_config)
            except (ConnectionError, SystemExit) as err:  # Ray exits the process when no cluster answers
                raise UserError(f"--address {address}: no Ray cluster answered there ({err!r})") from err
        else:
            context = _start_local_ray(job_config)
    url = context.dashboard_url
    if url:
        port = url.rsplit(":", 1)[-1]
        print(
            f"Ray dashboard: http://{url}  (access token: `ray get-auth-token`; from a laptop: "
            f"ssh -L {port}:127.0.0.1:{port} this-host, then open http://127.0.0.1:{port})"
        )


def _plugins_env(plugins: Sequence[PluginFile], staging: Path) -> dict[str, Any] | None:
    """Ray's runtime environment shipping each plugin file in a folder of its own (`py_modules`):
    Ray uploads them once and unpacks them on every node, onto the workers' `sys.path`, where
    `models.plugins.load_shipped` finds them."""
    if not plugins:
        return None
    return {"py_modules": [str(folder) for folder in stage_for_shipping(plugins, staging)]}


def _check_reachable(address: str) -> None:
    """Refuse, within ADDRESS_TIMEOUT_S, an address where nothing accepts a connection: `ray.init`
    would retry it for minutes, with a warning every 5 s. A `host:port` address only (a Ray Client
    `ray://` one the same); others are left to Ray."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=ADDRESS_TIMEOUT_S).close()
    except OSError as err:
        reason = "no answer" if isinstance(err, TimeoutError) else (err.strerror or str(err))
        raise UserError(
            f"--address {address}: no Ray cluster answers there ({reason} within {ADDRESS_TIMEOUT_S:g} s): "
            "check the head node's address and port (`ray status` on it), or leave --address and "
            "RAY_ADDRESS out for a local Ray"
        ) from err


def _start_local_ray(job_config: JobConfig) -> Any:
    try:
        return _init_local_ray(job_config)
    except UserError:
        raise
    except Exception as err:  # "The current node timed out during startup", a raylet that died, ...
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(
            f"Ray did not start on this machine: {first} (its logs: {_ray_logs()}; free memory, "
            "disk space under /tmp and processes left by another Ray (`ray stop`) are the usual causes)"
        ) from err


def _ray_logs() -> Path:
    """Where a local Ray's newest session keeps its logs (under RAY_TMPDIR, else /tmp)."""
    return Path(os.environ.get("RAY_TMPDIR") or "/tmp") / "ray" / "session_latest" / "logs"


# GENRE_SEARCH_RAY_DASHBOARD=0: a local Ray without its dashboard (2.4 s sooner to start, no
# dashboard processes beside the trials), for scripts and test suites that start many searches.
DASHBOARD_SWITCH = "GENRE_SEARCH_RAY_DASHBOARD"


def _init_local_ray(job_config: JobConfig) -> Any:
    _keep_token_private()
    # Ray binds its servers to the loopback address alone when the node's IP is the loopback
    # address, but on Linux `ray.init` turns 127.0.0.1 into the machine's outward IP unless
    # multi-node clusters are off, as Ray has them on macOS and Windows. That switch
    # (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER) is read when Ray is imported: hence its constant here.
    with ray_constant("ENABLE_RAY_CLUSTER", False):
        # address="local": a Ray of its own. Without it, `ray.init` joins the latest Ray started on
        # this machine (`ray start`, another search's), which listens where it was started to.
        return ray.init(
            address="local",
            include_dashboard=os.environ.get(DASHBOARD_SWITCH, "1") != "0",
            dashboard_host="127.0.0.1",
            log_to_driver=False,
            job_config=job_config,
        )


def auth_token_file() -> Path:
    """Where Ray reads its authentication token (`RAY_AUTH_TOKEN_PATH`, else ~/.ray/auth_token)."""
    return Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")


def _keep_token_private() -> None:
    """Ray writes a new token file with the default permissions (readable by every user): make it
    the owner's alone, creating it first (as Ray would: 256 random bits in hex) when it is missing."""
    if os.environ.get("RAY_AUTH_MODE", "token").lower() != "token" or os.environ.get("RAY_AUTH_TOKEN"):
        return  # no token (authentication turned off), or not in a file
    path = auth_token_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        path.chmod(0o600)
        return
    with os.fdopen(descriptor, "w") as file:
        file.write(secrets.token_hex(32))
