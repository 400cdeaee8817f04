"""Independent reference tools used by the ohmflow test-suite.

Nothing in this package imports ohmflow: these are the *independent*
references the real tests compare ohmflow against.

* :mod:`tests.reference.ngspice` -- run ngspice in batch mode and read the DC
  operating point back at full double precision; the ngspice diode model.
* :mod:`tests.reference.netgen` -- deterministic random SPICE netlists with a
  structured description of every element.
* :mod:`tests.reference.qp` -- ideal-diode networks solved as a convex QP
  (SciPy + dense KKT polish), plus a random network generator.
"""
