"""The process group: MPI through mpi4py, with timeouts and fail-fast aborts.

Every collective here is started non-blocking and then waited on in a polling loop, so a rank that
never arrives turns into an error instead of a hang:

* on entering collective number ``seq``, a rank sends a tiny "arrived at seq" note to every peer
  on a private duplicate of the communicator; while it waits it reads the notes that came in, so
  after ``timeout`` seconds it can name the operation and the ranks that never arrived;
* an uncaught exception on any rank (``sys.excepthook``, installed by ``init``) sends an "abort"
  note naming that rank to every peer, then calls ``MPI_Abort``; a peer waiting in a collective
  reads the note and raises ``RemoteRankError`` naming the rank that failed; when that error goes
  uncaught, the peer prints it and acknowledges, and the failing rank waits (a few seconds at
  most) for every acknowledgment, and half a second more for the output to be relayed, before
  it aborts, so no peer is killed before it has said why.
  ``mpiexec`` then ends every process and exits nonzero. A rank killed outright is noticed by ``mpiexec`` itself.
"""

import json
import os
import sys
import time

import numpy as np

from ..errors import BackendUnavailableError, ShapeError, TinygradLiteError

DEFAULT_TIMEOUT = 300.0          # seconds; TINYGRAD_LITE_DIST_TIMEOUT overrides
_TAG_ARRIVE, _TAG_ABORT, _TAG_ACK = 7101, 7102, 7103
ABORT_ACK_WAIT = 5.0             # seconds the failing rank waits for the peers to report
_ENV_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS",
                  "SLURM_NTASKS_MPI")
_INSTALL = "pip install 'tinygrad_lite[distributed]' (mpi4py and an MPI such as mpich)"


class DistributedError(TinygradLiteError, RuntimeError):
    """Base class of the errors of ``tinygrad_lite.distributed``."""


class CollectiveTimeoutError(DistributedError, TimeoutError):
    """A collective did not complete in time; the message names the op and the missing ranks."""


class RemoteRankError(DistributedError):
    """Another rank failed; this one stops instead of waiting forever.

    ``source`` is the rank whose failure note this is (None when not from a note)."""

    def __init__(self, message, source=None):
        super().__init__(message)
        self.source = source


def launched_with_mpi():
    """True when this process was started by ``mpiexec``/``srun`` with more than one rank.

    Reads only environment variables (no MPI import), so it is cheap to call anywhere.
    """
    for var in _ENV_SIZE_VARS:
        v = os.environ.get(var)
        if v and v.isdigit() and int(v) > 1:
            return True
    return False


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise BackendUnavailableError(
            f"distributed: mpi4py is not importable ({e}); {_INSTALL}") from None
    return MPI


class _Group:
    """One initialized process group: the user communicator plus a private control channel."""

    def __init__(self, comm, timeout):
        self.MPI = _mpi() if comm is not None else None
        self.comm = comm                  # None: one process without MPI (every op is local)
        # notes travel on a duplicate, never mixed with the user's own traffic
        self.ctrl = comm.Dup() if comm is not None else None
        self.rank, self.size = (comm.Get_rank(), comm.Get_size()) if comm is not None else (0, 1)
        self.timeout = float(timeout)
        self.seq = 0
        self.seen = np.zeros(self.size, np.int64)   # highest seq each peer announced
        self._sends = []                              # (request, buffer) kept alive until done
        self._rbuf = np.zeros(1, np.int64)

    # ---- notes ---------------------------------------------------------------------------
    def _announce(self):
        self.seq += 1
        if self.size == 1:
            return self.seq
        self.poll()     # drain the notes of collectives that completed at once
        self._sends = [(r, b) for r, b in self._sends if not r.Test()]
        buf = np.array([self.seq], np.int64)
        for peer in range(self.size):
            if peer != self.rank:
                self._sends.append((self.ctrl.Isend([buf, self.MPI.INT64_T], peer, _TAG_ARRIVE),
                                    buf))
        return self.seq

    def poll(self, op=None):
        """Read every note that arrived; raise ``RemoteRankError`` on an abort note."""
        if self.size == 1:
            return
        MPI, st = self.MPI, self.MPI.Status()
        while self.ctrl.Iprobe(MPI.ANY_SOURCE, MPI.ANY_TAG, st):
            src, tag = st.Get_source(), st.Get_tag()
            if tag == _TAG_ARRIVE:
                self.ctrl.Recv([self._rbuf, MPI.INT64_T], src, tag)
                self.seen[src] = max(self.seen[src], int(self._rbuf[0]))
            else:
                raw = bytearray(st.Get_count(MPI.BYTE))
                self.ctrl.Recv([raw, MPI.BYTE], src, tag)
                where = f"{op}: " if op else ""
                raise RemoteRankError(f"{where}rank {src} failed: {raw.decode(errors='replace')};"
                                      f" rank {self.rank} stops too", source=src)

    def wait(self, req, op, seq):
        """Wait for ``req`` with the group's timeout, reading notes while waiting."""
        if req.Test():
            return
        deadline = time.monotonic() + self.timeout
        spin_until = time.monotonic() + 0.002
        nap = 1e-5
        while not req.Test():
            self.poll(op)
            now = time.monotonic()
            if now > deadline:
                self.poll(op)
                missing = [r for r in range(self.size) if r != self.rank and self.seen[r] < seq]
                who = (f"missing rank(s) {missing}" if missing else
                       "no rank missing (all arrived; the transfer itself stalled)")
                raise CollectiveTimeoutError(
                    f"{op}: timed out after {self.timeout:g} s on rank {self.rank} (collective "
                    f"#{seq}), {who}; a rank crashed, hangs, or took another code path (set "
                    "TINYGRAD_LITE_DIST_TIMEOUT or init(timeout=...) if it is just slow)")
            if now > spin_until:      # spin briefly (low latency), then back off (free the core)
                time.sleep(nap)
                nap = min(nap * 2, 0.005)

    def abort(self, message, code=1):
        """Tell every peer that this rank failed, wait until each has reported it (or
        ``ABORT_ACK_WAIT`` seconds: a peer busy outside a collective never reads the note),
        then abort."""
        MPI = self.MPI
        data = bytearray(message.encode())
        peers = [p for p in range(self.size) if p != self.rank]
        reqs = [self.ctrl.Isend([data, MPI.BYTE], p, _TAG_ABORT) for p in peers]
        waiting, ack = set(peers), np.zeros(1, np.int64)
        end = time.monotonic() + ABORT_ACK_WAIT
        while waiting and time.monotonic() < end:
            for p in list(waiting):
                if self.ctrl.Iprobe(p, _TAG_ACK):
                    self.ctrl.Recv([ack, MPI.INT64_T], p, _TAG_ACK)
                    waiting.discard(p)
            time.sleep(0.005)
        MPI.Request.Testall(reqs)
        # mpiexec relays each rank's output through its own proxies; MPI_Abort tears them down
        # and drops what is still in flight, so give the peers' last lines time to arrive
        time.sleep(0.5)
        self.comm.Abort(code)

    def acknowledge(self, source):
        """Tell ``source`` (the rank that failed) that this rank has reported its failure."""
        req = self.ctrl.Isend([np.ones(1, np.int64), self.MPI.INT64_T], source, _TAG_ACK)
        end = time.monotonic() + 1.0
        while not req.Test() and time.monotonic() < end:
            time.sleep(0.001)


_GROUP = None


def init(comm=None, timeout=None):
    """Join the process group (idempotent): ``MPI.COMM_WORLD`` unless ``comm`` is given.

    ``timeout`` (seconds) bounds every collective; default ``TINYGRAD_LITE_DIST_TIMEOUT`` or 300.
    Also installs the fail-fast hook: an uncaught exception on any rank aborts every rank.
    Not launched by ``mpiexec`` and mpi4py not installed: a one-process group without MPI, so
    the same script runs on a laptop.

    >>> from tinygrad_lite import distributed as dist
    >>> dist.init(); dist.rank(), dist.world_size()      # (0, 1) without mpiexec
    """
    global _GROUP
    if timeout is None:
        timeout = float(os.environ.get("TINYGRAD_LITE_DIST_TIMEOUT", DEFAULT_TIMEOUT))
    if not timeout > 0:
        raise ValueError(f"distributed.init: timeout must be > 0 seconds, got {timeout!r}")
    if _GROUP is not None:
        if comm is not None and comm is not _GROUP.comm:
            raise DistributedError("distributed.init: already initialized with another "
                                   "communicator; call distributed.shutdown() first")
        _GROUP.timeout = float(timeout)
        return _GROUP
    if comm is None:
        try:
            comm = _mpi().COMM_WORLD
        except BackendUnavailableError:
            if launched_with_mpi():
                raise
    _GROUP = _Group(comm, timeout)
    if _GROUP.size > 1:
        _install_excepthook()
    return _GROUP


def group():
    """The initialized group (``init()`` on first use)."""
    return _GROUP if _GROUP is not None else init()


def is_initialized():
    return _GROUP is not None


def rank():
    """This process's rank, 0 .. world_size() - 1 (0 when not launched under MPI)."""
    return group().rank if (_GROUP is not None or launched_with_mpi()) else 0


def world_size():
    """Number of ranks (1 when not launched under MPI)."""
    return group().size if (_GROUP is not None or launched_with_mpi()) else 1


def is_main():
    """True on rank 0: the rank that prints, writes files and decides."""
    return rank() == 0


def barrier():
    """Wait until every rank arrives here (with the group's timeout)."""
    g = group()
    if g.size == 1:
        return
    seq = g._announce()
    g.wait(g.comm.Ibarrier(), "barrier", seq)


def shutdown():
    """Leave the group: finish pending notes, free the control channel, remove the abort hook.
    MPI itself is finalized by mpi4py at exit."""
    global _GROUP
    if _GROUP is None:
        return
    g, _GROUP = _GROUP, None
    for r, _ in g._sends:
        r.Wait()
    if g.ctrl is not None:
        g.ctrl.Free()
    if sys.excepthook is _excepthook:
        sys.excepthook = _prev_hook[0]


def abort(message, code=1):
    """Abort every rank now, after telling the peers ``message`` (use when an error is caught
    and handled locally but the job cannot go on)."""
    g = group()
    print(f"tinygrad_lite.distributed: rank {g.rank} of {g.size} failed: {message}; "
          "aborting all ranks", file=sys.stderr, flush=True)
    g.abort(message, code)


_prev_hook = [sys.excepthook]


def _excepthook(etype, value, tb):
    _prev_hook[0](etype, value, tb)
    g = _GROUP
    if g is None or g.size == 1:
        return
    msg = f"{etype.__name__}: {value}"
    if issubclass(etype, RemoteRankError):    # not the origin: report, acknowledge, go
        print(f"tinygrad_lite.distributed: rank {g.rank}: {value}", file=sys.stderr, flush=True)
        if getattr(value, "source", None) is not None:
            g.acknowledge(value.source)
            # the failing rank aborts the job once every peer has acknowledged; one abort,
            # not two racing, so the lines just printed are not dropped in flight
            time.sleep(ABORT_ACK_WAIT + 2.0)
        g.comm.Abort(1)
        return
    print(f"tinygrad_lite.distributed: rank {g.rank} of {g.size} failed with {msg}; aborting "
          "all ranks", file=sys.stderr, flush=True)
    g.abort(msg, 1)


def _install_excepthook():
    if sys.excepthook is not _excepthook:
        _prev_hook[0] = sys.excepthook
        sys.excepthook = _excepthook


# ------------------------------------------------------------------ small helpers ---

def allgather_json(obj, op="all_gather_object"):
    """Every rank's JSON-serializable ``obj``, as a list in rank order (no pickle)."""
    g = group()
    data = np.frombuffer(json.dumps(obj).encode(), np.uint8)
    sizes = np.zeros(g.size, np.int64)
    seq = g._announce()
    g.wait(g.comm.Iallgather([np.array([data.size], np.int64), g.MPI.INT64_T],
                             [sizes, g.MPI.INT64_T]), op, seq)
    out = np.zeros(int(sizes.sum()), np.uint8)
    seq = g._announce()
    g.wait(g.comm.Iallgatherv([data, g.MPI.BYTE], [out, (sizes, None), g.MPI.BYTE]), op, seq)
    offs = np.concatenate([[0], np.cumsum(sizes)])
    return [json.loads(out[offs[i]:offs[i + 1]].tobytes()) for i in range(g.size)]


def check_same(value, what, op):
    """Raise ``ShapeError`` naming the ranks whose ``value`` differs from rank 0's."""
    vals = allgather_json(value, op)
    bad = [r for r, v in enumerate(vals) if v != vals[0]]
    if bad:
        raise ShapeError(f"{op}: {what} differ across ranks, got rank 0: {_short(vals[0])} and "
                         + ", ".join(f"rank {r}: {_short(vals[r])}" for r in bad)
                         + "; every rank must build the same model")
    return vals[0]


def _short(v, n=300):
    s = json.dumps(v)
    return s if len(s) <= n else s[:n] + "..."
