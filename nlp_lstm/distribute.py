"""Training on `tf.distribute`: one device, all local GPUs (or named devices), or a cluster of workers.

API (the train commands of both apps use it):

    StrategyConfig(name="default" | "mirrored" | "multiworker", devices=(), cluster_timeout_s=180)
    make_strategy(config) -> tf.distribute.Strategy
        Call it before any other TensorFlow work: a cluster (and a split of the CPU into logical
        devices) can only be set up before TensorFlow starts its runtime.
    role_of(strategy) -> Role
        Who this process is: the chief writes the model folder; other workers only train.
    share_from_chief(strategy, text) -> str
        The chief's `text` on every worker (an all-reduce over the strategy's own collectives).
    prepare_model(model, strategy) -> model
        Works around two faults of Keras 3's `fit` on several replicas (see there).
    shardable(dataset) -> dataset
        Lets tf.distribute shard an in-memory dataset across workers by element.
    StrategyError: bad configuration (malformed TF_CONFIG, no devices, a cluster that does not form).

The batch size of a config is the global batch: tf.distribute splits each batch across the replicas
and Keras averages the loss over the global batch, so one step on N replicas is the step one device
would take on the whole batch.

A cluster is described by TF_CONFIG, as TensorFlow documents it, e.g. for the second of two workers:

    TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 1}}'

Worker 0 (or the task of type "chief", if the cluster has one) is the chief.

TensorFlow is imported inside the functions that need it, so that the command line can take its
arguments from here (`add_strategy_arguments`) without starting TensorFlow.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multiworker")
TASK_TYPES = ("chief", "worker")


class StrategyError(Exception):
    """A distribution setup that cannot work; the message says what to change."""


@dataclass(frozen=True)
class StrategyConfig:
    """Which `tf.distribute` strategy to train under.

    Args:
        name: "default" (one device), "mirrored" (MirroredStrategy over `devices`, default all local
            GPUs) or "multiworker" (MultiWorkerMirroredStrategy over the cluster in TF_CONFIG).
        devices: For "mirrored": device names such as "GPU:0", "GPU:1"; "CPU:0", "CPU:1" split this
            CPU into that many logical devices (a way to test replication without GPUs).
        cluster_timeout_s: For "multiworker": how long to wait for every worker to join before
            giving up with an error.

    Example:

    >>> from nlp_lstm.distribute import StrategyConfig
    >>> StrategyConfig("mirrored", devices=("gpu:0", "/device:GPU:1")).devices
    ('GPU:0', 'GPU:1')
    """

    name: str = "default"
    devices: tuple[str, ...] = ()
    cluster_timeout_s: float = 180.0

    def __post_init__(self) -> None:
        if self.name not in STRATEGIES:
            raise StrategyError(f"unknown strategy {self.name!r}; choose one of {', '.join(STRATEGIES)}")
        if self.devices and self.name != "mirrored":
            raise StrategyError(f"--devices goes with --strategy mirrored, not {self.name!r}")
        if not 0 < self.cluster_timeout_s < math.inf:  # NaN fails this too
            raise StrategyError(
                f"the cluster timeout must be a finite number > 0 of seconds, got {self.cluster_timeout_s}"
            )
        object.__setattr__(self, "devices", tuple(_device_name(device) for device in self.devices))


def add_strategy_arguments(parser: argparse.ArgumentParser) -> None:
    """--strategy, --devices, --cluster-timeout: how a train command spreads over devices and machines."""
    parser.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="default",
        help="default: one device; mirrored: tf.distribute.MirroredStrategy over all local GPUs "
        "(or --devices); multiworker: tf.distribute.MultiWorkerMirroredStrategy over the cluster in "
        "TF_CONFIG (run the same command on every worker; worker 0 writes --out) (default: default)",
    )
    parser.add_argument(
        "--devices",
        metavar="LIST",
        default=None,
        help="with --strategy mirrored: comma-separated devices, e.g. GPU:0,GPU:1; CPU:0,CPU:1 "
        "splits this CPU into replicas (for testing) (default: all GPUs)",
    )
    parser.add_argument("--cluster-timeout", metavar="SECONDS", type=float, default=StrategyConfig().cluster_timeout_s,
                        help="with --strategy multiworker: give up if the workers have not all joined by then "
                        "(default: %(default)s)")  # fmt: skip


def strategy_config_from_args(args: argparse.Namespace) -> StrategyConfig:
    """The StrategyConfig of the flags `add_strategy_arguments` added."""
    devices = tuple(device for device in (args.devices or "").split(",") if device.strip())
    return StrategyConfig(args.strategy, devices, args.cluster_timeout)


def _device_name(text: str) -> str:
    """'gpu:0', '/gpu:0', '/device:GPU:0' -> 'GPU:0'."""
    name = text.strip().split("device:")[-1].lstrip("/")
    kind, _, index = name.partition(":")
    if kind.upper() not in ("CPU", "GPU") or not index.isdigit():
        raise StrategyError(f"cannot read the device {text!r}; name devices as GPU:0, GPU:1 or CPU:0, CPU:1")
    return f"{kind.upper()}:{int(index)}"


@dataclass(frozen=True)
class Role:
    """This process's part in a run.

    Attributes:
        chief: Whether it writes the model folder (always true outside a cluster).
        task: "chief", "worker:1", ...; "local" outside a cluster.
        workers: Processes in the run.
        replicas: Model replicas in the run, over all processes (the global batch is split across them).
    """

    chief: bool
    task: str
    workers: int
    replicas: int


def refuse_time_limit_in_cluster(role: Role, max_minutes: float | None, bound_flag: str) -> None:
    """Raises StrategyError if a training time limit is asked for in a multi-worker run.

    Each worker would read its own clock and could stop at a different epoch from the others, leaving
    their collective ops waiting; `bound_flag` names the option that bounds such a run instead.
    """
    if role.workers > 1 and max_minutes is not None:
        raise StrategyError("--max-train-minutes cannot be used in a multi-worker run: the workers' clocks would "
                            f"stop them at different epochs; bound the run with {bound_flag}")  # fmt: skip


def is_multiworker(strategy: tf.distribute.Strategy) -> bool:
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def role_of(strategy: tf.distribute.Strategy) -> Role:
    """Who this process is in `strategy`'s run.

    Example:

    >>> import tensorflow as tf
    >>> from nlp_lstm.distribute import role_of
    >>> role_of(tf.distribute.get_strategy())
    Role(chief=True, task='local', workers=1, replicas=1)
    """
    if not is_multiworker(strategy):
        return Role(True, "local", 1, strategy.num_replicas_in_sync)
    resolver = strategy.cluster_resolver
    jobs = resolver.cluster_spec().as_dict()
    workers = sum(len(jobs.get(kind, ())) for kind in TASK_TYPES)
    task_type, task_id = resolver.task_type, int(resolver.task_id)
    chief = task_type == "chief" or (task_type == "worker" and task_id == 0 and "chief" not in jobs)
    return Role(chief, "chief" if task_type == "chief" else f"{task_type}:{task_id}", workers,
                strategy.num_replicas_in_sync)  # fmt: skip


def read_tf_config(text: str | None) -> dict[str, Any]:
    """Parses and checks TF_CONFIG for a MultiWorkerMirroredStrategy cluster.

    Raises:
        StrategyError: Missing, not JSON, or not a cluster of "chief"/"worker" tasks with this
            task among them.

    Example:

    >>> from nlp_lstm.distribute import StrategyError, read_tf_config
    >>> read_tf_config('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}')["task"]
    {'type': 'worker', 'index': 1}
    >>> try:
    ...     read_tf_config('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}')
    ... except StrategyError as error:
    ...     print(error)
    TF_CONFIG: task index 3 is out of range: the cluster has 1 worker task(s)
    """
    example = ('e.g. TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
               '"task": {"type": "worker", "index": 0}}\'')  # fmt: skip
    if not text or not text.strip():
        raise StrategyError(
            f"--strategy multiworker needs the cluster in the TF_CONFIG environment variable; {example}"
        )
    try:
        config = json.loads(text)
    except ValueError as error:
        raise StrategyError(f"TF_CONFIG is not valid JSON ({error}); {example}") from None
    cluster, task = (config.get("cluster"), config.get("task")) if isinstance(config, dict) else (None, None)
    if not isinstance(cluster, dict) or not cluster:
        raise StrategyError(f'TF_CONFIG has no "cluster" mapping task types to addresses; {example}')
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise StrategyError(f'TF_CONFIG has no "task" with a "type" and an "index"; {example}')
    for kind, addresses in cluster.items():
        if kind not in TASK_TYPES:
            raise StrategyError(
                f"TF_CONFIG: task type {kind!r} is not supported here (only {' and '.join(TASK_TYPES)})"
            )
        if not isinstance(addresses, list) or not addresses:
            raise StrategyError(f'TF_CONFIG: cluster[{kind!r}] must be a non-empty list of "host:port"')
        for address in addresses:
            host, _, port = str(address).rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise StrategyError(f'TF_CONFIG: {address!r} in cluster[{kind!r}] is not "host:port"')
    if len(cluster.get("chief", ())) > 1:
        raise StrategyError("TF_CONFIG: a cluster has at most one chief")
    kind, index = task["type"], task["index"]
    if kind not in cluster:
        raise StrategyError(f"TF_CONFIG: task type {kind!r} is not in the cluster ({', '.join(cluster)})")
    if not isinstance(index, int) or not 0 <= index < len(cluster[kind]):
        raise StrategyError(
            f"TF_CONFIG: task index {index} is out of range: the cluster has {len(cluster[kind])} {kind} task(s)"
        )
    return config


# Runs beside a process that is forming a cluster: TensorFlow blocks (holding the GIL, deaf to
# SIGTERM) until every worker answers, so only another process can bound the wait. argv: parent
# pid, seconds, then the peers' addresses. It prints why, then sends SIGINT, which the parent has
# made `_exit(2)` while it waits (`_exit_2_on_sigint`); SIGKILL only if that did not end it.
_WATCHDOG = r"""
import os, signal, socket, sys, time
parent, seconds, peers = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3:]
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    time.sleep(0.25)
    if os.getppid() != parent:
        sys.exit(0)
def answers(address):
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=2).close()
        return True
    except OSError:
        return False
silent = [peer for peer in peers if not answers(peer)]
why = f"no answer from {', '.join(silent)}" if silent else "every address answers, but not every worker joined"
sys.stderr.write(
    f"nlp-lstm: error: the cluster in TF_CONFIG did not form within {seconds:.0f} s ({why}); start the same "
    "train command on every worker with its own TF_CONFIG task, check the addresses and firewalls, or raise "
    "--cluster-timeout\n"
)
sys.stderr.flush()
os.kill(parent, signal.SIGINT)
time.sleep(5)
if os.getppid() == parent:
    os.kill(parent, signal.SIGKILL)
"""


def _exit_2_on_sigint() -> Callable[[], None]:
    """Makes SIGINT end this process at once with exit status 2; returns the function that undoes it.

    While TensorFlow waits for a cluster, C++ holds the GIL: no Python signal handler or thread can
    run, and only the watchdog process can end the wait. SIGINT's handler is made libc's `_exit`
    itself, which the kernel calls with the signal's number, 2 on Linux and macOS: the process ends
    with status 2 (a user's error, as every other refusal) after the watchdog printed why, instead of
    the 137 of a SIGKILL and the shell's "Killed". A Ctrl-C in that wait ends it with 2 as well.
    Where this cannot be set up, the undo does nothing and the watchdog's SIGKILL ends the wait.
    """
    import ctypes
    import signal

    if signal.SIGINT != 2 or threading.current_thread() is not threading.main_thread():
        return lambda: None
    try:
        libc = ctypes.CDLL(None)
        libc.signal.restype = ctypes.c_void_p
        libc.signal.argtypes = [ctypes.c_int, ctypes.c_void_p]
        python_handler = signal.getsignal(signal.SIGINT)
        previous = libc.signal(signal.SIGINT, ctypes.cast(libc._exit, ctypes.c_void_p))
    except (OSError, AttributeError):
        return lambda: None

    def undo() -> None:
        if python_handler is not None:
            signal.signal(signal.SIGINT, python_handler)  # puts Python's own C handler back
        else:
            libc.signal(signal.SIGINT, previous)

    return undo


def _multiworker_strategy(config: StrategyConfig) -> tf.distribute.Strategy:
    import tensorflow as tf

    tf_config = read_tf_config(os.environ.get("TF_CONFIG"))
    me = tf_config["cluster"][tf_config["task"]["type"]][tf_config["task"]["index"]]
    peers = [address for addresses in tf_config["cluster"].values() for address in addresses if address != me]
    print(f"joining the cluster as {tf_config['task']['type']} {tf_config['task']['index']} ({me}); waiting up to "
          f"{config.cluster_timeout_s:.0f} s for {len(peers)} other worker(s)", file=sys.stderr)  # fmt: skip
    undo_sigint = _exit_2_on_sigint()
    watchdog = subprocess.Popen(
        [sys.executable, "-c", _WATCHDOG, str(os.getpid()), str(config.cluster_timeout_s), *peers]
    )
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except (ValueError, RuntimeError, tf.errors.OpError) as error:
        raise StrategyError(f"cannot form the cluster in TF_CONFIG: {error}") from error
    finally:
        watchdog.kill()
        watchdog.wait()
        undo_sigint()


def _split_cpu(count: int) -> None:
    """Makes `count` logical CPU devices (only possible before TensorFlow's runtime starts)."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError as error:  # the runtime started (listing logical devices starts it too)
        if len(tf.config.list_logical_devices("CPU")) >= count:
            return
        raise StrategyError(
            f"cannot split the CPU into {count} devices after TensorFlow has started ({error}); choose the "
            f"strategy before anything else runs (the train command does)"
        ) from None


def _mirrored_strategy(config: StrategyConfig) -> tf.distribute.Strategy:
    import tensorflow as tf

    devices = config.devices
    if not devices:
        gpus = [device.name for device in tf.config.list_logical_devices("GPU")]
        if not gpus:
            raise StrategyError(
                "--strategy mirrored found no GPU; name the devices to mirror over with --devices (for "
                "example --devices CPU:0,CPU:1 splits this CPU into two replicas, to test) or use --strategy default"
            )
        return tf.distribute.MirroredStrategy(gpus)
    cpu_indices = [int(device.split(":")[1]) for device in devices if device.startswith("CPU")]
    if cpu_indices:
        _split_cpu(max(cpu_indices) + 1)
    available = {device.name.split("device:")[-1] for device in tf.config.list_logical_devices()}
    missing = [device for device in devices if device not in available]
    if missing:
        raise StrategyError(f"no device {', '.join(missing)} here; this machine has {', '.join(sorted(available))}")
    return tf.distribute.MirroredStrategy([f"/{device}" for device in devices])


def make_strategy(config: StrategyConfig = StrategyConfig()) -> tf.distribute.Strategy:
    """The strategy of `config`, with a clear error instead of a hang or a traceback.

    Raises:
        StrategyError: Malformed TF_CONFIG, devices that do not exist, `mirrored` without any
            device to mirror over, a cluster that does not form in `cluster_timeout_s` (then a
            watchdog prints the reason and ends the process with exit status 2, which TensorFlow
            leaves no other way to interrupt).

    Example:

    >>> from nlp_lstm.distribute import StrategyConfig, make_strategy
    >>> make_strategy(StrategyConfig("default")).num_replicas_in_sync
    1
    """
    import tensorflow as tf

    if config.name == "multiworker":
        return _multiworker_strategy(config)
    if config.name == "mirrored":
        return _mirrored_strategy(config)
    return tf.distribute.get_strategy()


def share_from_chief(strategy: tf.distribute.Strategy, text: str | None) -> str:
    """The chief's `text` on every process of `strategy` (others pass None); `text` as is outside a cluster.

    Sent as UTF-8 bytes through two all-reduces (length, then bytes) in which only the first replica
    of the run, the chief's, contributes anything but zeros.
    """
    import tensorflow as tf

    if not is_multiworker(strategy):
        if text is None:
            raise ValueError("outside a cluster the caller is the chief and must pass the text")
        return text
    data = (text or "").encode("utf-8")

    def from_first_replica(values: Any) -> tf.Tensor:
        def value(context: tf.distribute.experimental.ValueContext) -> tf.Tensor:
            return values if context.replica_id_in_sync_group == 0 else tf.zeros_like(values)

        return strategy.reduce("SUM", strategy.experimental_distribute_values_from_function(value), axis=None)

    length = int(from_first_replica(tf.constant([len(data)], tf.int64))[0])
    padded = list(data) + [0] * (length - len(data))  # the chief's bytes; zeros elsewhere
    shared = from_first_replica(tf.constant(padded or [0], tf.int32))[:length]
    return bytes(shared.numpy().astype("uint8").tolist()).decode("utf-8")


def shardable(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """`dataset`, sharded by element across workers (an in-memory dataset has no files to shard by)."""
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def prepare_model(model: Any, strategy: tf.distribute.Strategy) -> Any:
    """`model`, made trainable by Keras 3's `fit` under `strategy` (a no-op on one replica).

    Two places where Keras 3 (up to 3.15.1; keras-team/keras#20585) breaks `fit` on several replicas,
    both in its TensorFlow trainer:

    1. `_maybe_symbolic_build` averages the first batch over the replicas with `strategy.reduce` to
       learn its shapes. That fails when the replicas' shares differ in size (a batch of 3 on 2
       replicas) and, on MultiWorkerMirroredStrategy, for any tuple. Any replica's share has the
       right shapes: this process's first is used instead (for this model only).
    2. Under MultiWorkerMirroredStrategy, `reduce_per_replica(..., "auto")` averages the step's
       metric values with `strategy.reduce("MEAN", value, axis=0)`, which fails for scalars. Keras
       metrics are synchronised on read (summed over all replicas), so every replica already holds
       the global value: the first is taken, as Keras does for TPUs (only for multi-worker strategies).
    """
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer as tf_trainer

    if strategy.num_replicas_in_sync == 1 and not is_multiworker(strategy):
        return model

    def first_local(values: Any) -> Any:
        return tf.nest.map_structure(
            lambda v: (
                strategy.experimental_local_results(v)[0] if isinstance(v, tf.distribute.DistributedValues) else v
            ),
            values,
        )

    symbolic_build = model._maybe_symbolic_build

    def symbolic_build_from_local_batch(iterator: Any = None, data_batch: Any = None) -> Any:
        if iterator is not None:
            for _, _, batches in iterator:
                data_batch = first_local(next(batches))
                break
        return symbolic_build(data_batch=data_batch)

    model._maybe_symbolic_build = symbolic_build_from_local_batch
    if is_multiworker(strategy) and not getattr(tf_trainer.reduce_per_replica, "_nlp_lstm_fix", False):
        reduce_per_replica = tf_trainer.reduce_per_replica

        def reduce_synchronised_metrics(values: Any, strategy_: Any, reduction: str) -> Any:
            if reduction == "auto" and is_multiworker(strategy_):
                return first_local(values)
            return reduce_per_replica(values, strategy_, reduction)

        reduce_synchronised_metrics._nlp_lstm_fix = True  # type: ignore[attr-defined]
        tf_trainer.reduce_per_replica = reduce_synchronised_metrics
    return model


def free_ports(count: int) -> list[int]:
    """`count` ports free on 127.0.0.1 now (a cluster's workers bind them a moment later)."""
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports
