"""Run ngspice in batch mode and read a DC operating point at full precision.

The operating point is read from the binary rawfile written by
``ngspice -b -r FILE``: the values in it are the raw IEEE doubles of ngspice's
solution vector, so no decimal formatting (and no precision loss) is involved.
An ASCII rawfile (``SPICE_ASCIIRAWFILE``) is parsed too, should one appear.

Conventions (all checked by ``tests/test_reference_tools.py``):

* node voltages are keyed by lower-case node name (ngspice lower-cases
  everything); ground (``0``/``gnd``) does not appear;
* branch currents of voltage sources are keyed by lower-case source name and
  use ngspice's sign: the current flowing *into* the ``+`` terminal, through
  the source, out of the ``-`` terminal.  A source delivering power therefore
  reports a *negative* current;
* ``I1 a b 1m`` draws 1 mA out of node ``a`` (through the source) into ``b``;
* the diode model is :func:`ngspice_diode_current` (Shockley above
  ``-3*N*Vt``, a cubic approximation below it, GMIN in parallel everywhere).
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "ACCURATE_OPTIONS",
    "BOLTZMANN",
    "CHARGE",
    "DEFAULT_GMIN",
    "NgspiceError",
    "NgspiceResult",
    "ngspice_available",
    "ngspice_diode_current",
    "run_ngspice",
    "shockley_current",
    "thermal_voltage",
    "with_accurate_options",
]

#: Tight tolerances; with them ngspice's .op is converged far below 1e-9.
ACCURATE_OPTIONS = ".options reltol=1e-9 abstol=1e-18 vntol=1e-12 temp=27 tnom=27"

#: Physical constants exactly as in ngspice's ``const.h``.
BOLTZMANN = 1.38064852e-23
CHARGE = 1.6021766208e-19
CELSIUS_TO_KELVIN = 273.15
#: Default GMIN: ngspice puts this conductance in parallel with every junction.
DEFAULT_GMIN = 1e-12

_NGSPICE = "ngspice"
_TAIL_CHARS = 3000

# Messages meaning the operating point is missing or not to be trusted.
_FATAL_PATTERNS = (
    re.compile(r"^\s*error\b", re.IGNORECASE | re.MULTILINE),
    re.compile(r"iteration limit reached", re.IGNORECASE),
    re.compile(r"simulation\(s\) aborted", re.IGNORECASE),
    re.compile(r"there aren't any circuits loaded", re.IGNORECASE),
    re.compile(r"transient op failed", re.IGNORECASE),
    re.compile(r"no convergence", re.IGNORECASE),
    re.compile(r"timestep too small", re.IGNORECASE),
)
_SINGULAR_PATTERN = re.compile(r"singular matrix", re.IGNORECASE)


class NgspiceError(RuntimeError):
    """ngspice failed, did not converge, or produced no usable output."""

    def __init__(self, message: str, *, stdout: str = "", stderr: str = ""):
        self.stdout = stdout
        self.stderr = stderr
        parts = [message]
        if stderr.strip():
            parts.append("--- ngspice stderr (tail) ---\n" + stderr[-_TAIL_CHARS:])
        if stdout.strip():
            parts.append("--- ngspice stdout (tail) ---\n" + stdout[-_TAIL_CHARS:])
        super().__init__("\n".join(parts))


@dataclass
class NgspiceResult:
    """DC operating point as computed by ngspice.

    ``voltages``: lower-case node name -> volts (ground not included).
    ``currents``: lower-case voltage-source name -> amps, ngspice sign
    (current into the ``+`` node, through the source).
    ``other``: any further rawfile vector (e.g. internal device nodes).
    ``stdout``/``stderr``: ngspice's console output, for diagnostics.
    """

    voltages: dict[str, float]
    currents: dict[str, float]
    other: dict[str, float] = field(default_factory=dict)
    stdout: str = ""
    stderr: str = ""

    @property
    def convergence_aids(self) -> list[str]:
        """Homotopies ngspice needed ("gmin stepping", "source stepping",
        "transient op"); empty when plain Newton converged."""
        text = (self.stdout + "\n" + self.stderr).lower()
        aids = []
        for label, needle in (
            ("gmin stepping", "gmin stepping"),
            ("source stepping", "source stepping"),
            ("transient op", "transient op"),
        ):
            if needle in text:
                aids.append(label)
        return aids

    def v(self, node: str) -> float:
        """Voltage of ``node`` (0.0 for ground ``0``/``gnd``)."""
        key = node.lower()
        if key in ("0", "gnd"):
            return 0.0
        return self.voltages[key]

    def i(self, vsource: str) -> float:
        """Branch current of voltage source ``vsource`` (ngspice sign)."""
        return self.currents[vsource.lower()]


def ngspice_available() -> bool:
    return shutil.which(_NGSPICE) is not None


def thermal_voltage(temp_c: float = 27.0) -> float:
    """kT/q at ``temp_c`` degrees Celsius, with ngspice's constants."""
    return (BOLTZMANN / CHARGE) * (temp_c + CELSIUS_TO_KELVIN)


def shockley_current(v, IS: float, N: float = 1.0, *, temp_c: float = 27.0):
    """Pure Shockley law ``IS*(exp(v/(N*Vt)) - 1)`` (no GMIN, no regions)."""
    vte = N * thermal_voltage(temp_c)
    return IS * np.expm1(np.asarray(v, dtype=float) / vte)


def ngspice_diode_current(
    v, IS: float, N: float = 1.0, *, temp_c: float = 27.0, gmin: float = DEFAULT_GMIN
):
    """DC current of ngspice's junction diode (RS=0, no BV, temp == tnom).

    For ``v >= -3*N*Vt``: ``IS*(exp(v/(N*Vt)) - 1) + gmin*v``.
    For ``v < -3*N*Vt`` ngspice does *not* use Shockley but
    ``-IS*(1 + (3*N*Vt/(e*v))**3) + gmin*v`` (a C1-continuous cubic tail;
    e = Euler's number).  The two differ by at most ~IS in absolute terms.
    """
    v = np.asarray(v, dtype=float)
    vte = N * (BOLTZMANN / CHARGE) * (temp_c + CELSIUS_TO_KELVIN)
    forward = v >= -3.0 * vte
    # np.where evaluates both branches: keep the unused one harmless.
    v_fwd = np.where(forward, v, 0.0)
    v_rev = np.where(forward, -1.0, v)
    arg = (3.0 * vte / (v_rev * math.e)) ** 3
    i = np.where(forward, IS * (np.exp(v_fwd / vte) - 1.0), -IS * (1.0 + arg))
    i = i + gmin * v
    return float(i) if i.ndim == 0 else i


def with_accurate_options(netlist: str, options: str = ACCURATE_OPTIONS) -> str:
    """Insert ``options`` on the line before ``.end`` (appended if no ``.end``)."""
    lines = netlist.rstrip("\n").split("\n")
    for idx in range(len(lines) - 1, -1, -1):
        if lines[idx].strip().lower() == ".end":
            lines.insert(idx, options)
            break
    else:
        lines.append(options)
        lines.append(".end")
    return "\n".join(lines) + "\n"


def run_ngspice(
    netlist: str, *, timeout: float = 120, allow_singular: bool = False
) -> NgspiceResult:
    """Run ``netlist`` (which must contain ``.op``) through ``ngspice -b``.

    The first line of ``netlist`` is the title, as in any SPICE deck.  Work
    happens in a temporary directory that is removed afterwards.

    Raises :class:`NgspiceError` if ngspice is missing, exits non-zero,
    times out, reports an error or a convergence failure, reports a singular
    matrix (unless ``allow_singular``), or writes no operating point.
    """
    exe = shutil.which(_NGSPICE)
    if exe is None:
        raise NgspiceError("ngspice executable not found on PATH")
    if re.search(r"^\s*\.control\b", netlist, re.IGNORECASE | re.MULTILINE):
        raise NgspiceError("run_ngspice netlists must not contain a .control block")
    if not re.search(r"^\s*\.op\b", netlist, re.IGNORECASE | re.MULTILINE):
        raise NgspiceError("netlist has no .op analysis")

    with tempfile.TemporaryDirectory(prefix="ohmflow-ngspice-") as tmp:
        cir = os.path.join(tmp, "circuit.cir")
        raw = os.path.join(tmp, "circuit.raw")
        with open(cir, "w", encoding="ascii") as fh:
            fh.write(netlist if netlist.endswith("\n") else netlist + "\n")
        env = dict(os.environ)
        env.pop("SPICE_ASCIIRAWFILE", None)  # binary rawfile: exact doubles
        env["HOME"] = tmp  # keep a user's ~/.spiceinit out of the picture
        try:
            proc = subprocess.run(
                [exe, "-b", "-r", raw, cir],
                cwd=tmp,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as exc:
            raise NgspiceError(
                f"ngspice timed out after {timeout} s",
                stdout=_decode(exc.stdout),
                stderr=_decode(exc.stderr),
            ) from None
        stdout, stderr = _decode(proc.stdout), _decode(proc.stderr)
        if proc.returncode != 0:
            raise NgspiceError(
                f"ngspice exited with status {proc.returncode}", stdout=stdout, stderr=stderr
            )
        console = stdout + "\n" + stderr
        for pat in _FATAL_PATTERNS:
            m = pat.search(console)
            if m:
                raise NgspiceError(
                    f"ngspice reported a failure ({m.group(0).strip()!r})",
                    stdout=stdout,
                    stderr=stderr,
                )
        if not allow_singular and _SINGULAR_PATTERN.search(console):
            raise NgspiceError(
                "ngspice reported a singular matrix (floating node or source loop?)",
                stdout=stdout,
                stderr=stderr,
            )
        if not os.path.exists(raw) or os.path.getsize(raw) == 0:
            raise NgspiceError("ngspice wrote no rawfile", stdout=stdout, stderr=stderr)
        with open(raw, "rb") as fh:
            data = fh.read()

    try:
        plots = _parse_rawfile(data)
    except ValueError as exc:
        raise NgspiceError(
            f"cannot parse ngspice rawfile: {exc}", stdout=stdout, stderr=stderr
        ) from None
    op = [p for p in plots if p["plotname"].lower().startswith("operating point")]
    if not op:
        raise NgspiceError(
            f"rawfile holds no 'Operating Point' plot (plots: {[p['plotname'] for p in plots]})",
            stdout=stdout,
            stderr=stderr,
        )
    plot = op[-1]
    voltages: dict[str, float] = {}
    currents: dict[str, float] = {}
    other: dict[str, float] = {}
    for name, value in zip(plot["names"], plot["values"]):
        key = name.lower()
        value = float(value)
        if not math.isfinite(value):
            raise NgspiceError(f"non-finite value {value} for {name}", stdout=stdout, stderr=stderr)
        m = re.fullmatch(r"v\((.+)\)", key)
        if m:
            voltages[m.group(1)] = value
            continue
        m = re.fullmatch(r"i\((.+)\)", key) or re.fullmatch(r"(.+)#branch", key)
        if m:
            currents[m.group(1)] = value
            continue
        other[key] = value
    return NgspiceResult(voltages, currents, other, stdout, stderr)


def _decode(b) -> str:
    if b is None:
        return ""
    if isinstance(b, str):
        return b
    return b.decode("utf-8", errors="replace")


def _parse_rawfile(data: bytes) -> list[dict]:
    """Parse a (possibly multi-plot) ngspice rawfile, binary or ASCII, real data."""
    plots = []
    pos = 0
    while pos < len(data):
        # skip blank lines between plots
        while pos < len(data) and data[pos : pos + 1] in (b"\n", b"\r", b" "):
            pos += 1
        if pos >= len(data):
            break
        header: dict[str, str] = {}
        names: list[str] = []
        while True:
            nl = data.find(b"\n", pos)
            if nl < 0:
                raise ValueError("truncated header")
            line = data[pos:nl].decode("ascii", errors="replace").rstrip("\r")
            pos = nl + 1
            if line.startswith("Variables:"):
                nvars = int(header["no. variables"])
                for _ in range(nvars):
                    nl = data.find(b"\n", pos)
                    fields = data[pos:nl].decode("ascii").split()
                    pos = nl + 1
                    names.append(fields[1])
                continue
            if line.startswith("Binary:") or line.startswith("Values:"):
                kind = line.split(":")[0]
                break
            key, _, val = line.partition(":")
            header[key.strip().lower()] = val.strip()
        flags = header.get("flags", "").lower()
        if "complex" in flags:
            raise ValueError("complex data not supported")
        nvars = int(header["no. variables"])
        npoints = int(header["no. points"])
        if kind == "Binary":
            nbytes = 8 * nvars * npoints
            if len(data) - pos < nbytes:
                raise ValueError("truncated binary data")
            values = np.frombuffer(data, dtype="<f8", count=nvars * npoints, offset=pos)
            pos += nbytes
        else:
            tokens = []
            need = nvars * npoints
            while len(tokens) < need:
                nl = data.find(b"\n", pos)
                if nl < 0:
                    nl = len(data)
                fields = data[pos:nl].decode("ascii").split()
                pos = nl + 1
                if not fields:
                    if pos >= len(data):
                        raise ValueError("truncated ASCII data")
                    continue
                # every point's first line starts with the point index
                if len(tokens) % nvars == 0 and len(fields) == 2:
                    fields = fields[1:]
                tokens.extend(float(f) for f in fields)
            values = np.array(tokens)
        values = values.reshape(npoints, nvars)
        plots.append(
            {
                "plotname": header.get("plotname", ""),
                "names": names,
                "values": values[-1].copy(),
            }
        )
    return plots
