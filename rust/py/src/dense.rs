//! Bindings of `ohmflow_core::dense`: dense layered networks in matrix form.

use crate::{diode_model, par, to_py};
use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2,
    PyUntypedArrayMethods,
};
use ohmflow_core::dense::{self, DenseLayers, Field, HiddenDiode, RelaxOptions, SgdStep, Sums};
use ohmflow_core::Error;
use pyo3::prelude::*;

type Diode = Option<(f64, u8, [f64; 4])>;
type States<'py> = Vec<Bound<'py, PyArray2<f64>>>;

/// A dense layered network (weights `n_l × n_{l+1}` row-major, bias conductances,
/// hidden-node diodes) owned by the core; see `ohmflow.models` for the friendly API.
#[pyclass(name = "CoreDense", module = "ohmflow._core")]
pub struct PyDense {
    sizes: Vec<usize>,
    weights: Vec<Vec<f64>>,
    bias_pos: Vec<Vec<f64>>,
    bias_neg: Vec<Vec<f64>>,
    bias_voltage: f64,
    gains: Vec<f64>,
    signed: Vec<bool>,
    lower: Option<HiddenDiode>,
    upper: Option<HiddenDiode>,
    sums: Option<Sums>,
}

fn hidden(d: Diode) -> PyResult<Option<HiddenDiode>> {
    d.map(|(source, kind, p)| {
        Ok(HiddenDiode {
            source,
            model: diode_model(kind, p)?,
        })
    })
    .transpose()
}

fn vecs2(a: &[PyReadonlyArray2<'_, f64>]) -> PyResult<Vec<Vec<f64>>> {
    a.iter().map(|x| Ok(x.as_slice()?.to_vec())).collect()
}

fn vecs1(a: &[PyReadonlyArray1<'_, f64>]) -> PyResult<Vec<Vec<f64>>> {
    a.iter().map(|x| Ok(x.as_slice()?.to_vec())).collect()
}

impl PyDense {
    /// Validates and recomputes the node sums.
    fn refresh(&mut self) -> Result<(), Error> {
        let sums = self.run(Sums::new)?;
        self.sums = Some(sums);
        Ok(())
    }

    fn sums(&self) -> &Sums {
        self.sums
            .as_ref()
            .expect("sums are computed at construction")
    }

    fn run<T>(&self, f: impl FnOnce(&DenseLayers) -> Result<T, Error>) -> Result<T, Error> {
        let w: Vec<&[f64]> = self.weights.iter().map(|x| &x[..]).collect();
        let p: Vec<&[f64]> = self.bias_pos.iter().map(|x| &x[..]).collect();
        let n: Vec<&[f64]> = self.bias_neg.iter().map(|x| &x[..]).collect();
        let net = DenseLayers {
            sizes: &self.sizes,
            weights: &w,
            bias_pos: &p,
            bias_neg: &n,
            bias_voltage: self.bias_voltage,
            gains: &self.gains,
            signed: &self.signed,
            lower: self.lower,
            upper: self.upper,
        };
        f(&net)
    }

    fn rows(&self, a: &PyReadonlyArray2<'_, f64>, n: usize, what: &str) -> PyResult<usize> {
        let s = a.shape();
        if s[1] != n {
            return Err(to_py(
                a.py(),
                Error::InvalidInput(format!("{what}: {} columns, expected {n}", s[1])),
            ));
        }
        Ok(s[0])
    }

    /// The states borrowed (no copy: C-contiguous arrays), and the batch size.
    fn states_ref<'a>(
        &self,
        states: &'a [PyReadonlyArray2<'_, f64>],
    ) -> PyResult<(Vec<&'a [f64]>, usize)> {
        let mut batch = None;
        for (l, s) in states.iter().enumerate() {
            let n = self.sizes.get(l + 1).copied().unwrap_or(0);
            let b = self.rows(s, n, &format!("state of layer {}", l + 1))?;
            batch = Some(batch.unwrap_or(b));
        }
        let v = states
            .iter()
            .map(|x| x.as_slice())
            .collect::<Result<Vec<_>, _>>()?;
        Ok((v, batch.unwrap_or(0)))
    }

    /// The states copied (the relaxation writes its result over its warm start).
    fn states_in(&self, states: &[PyReadonlyArray2<'_, f64>]) -> PyResult<(Vec<Vec<f64>>, usize)> {
        let (v, batch) = self.states_ref(states)?;
        Ok((v.into_iter().map(<[f64]>::to_vec).collect(), batch))
    }

    fn states_out<'py>(
        &self,
        py: Python<'py>,
        s: Vec<Vec<f64>>,
        batch: usize,
    ) -> PyResult<States<'py>> {
        s.into_iter()
            .enumerate()
            .map(|(l, v)| v.into_pyarray(py).reshape([batch, self.sizes[l + 1]]))
            .collect()
    }
}

#[pymethods]
impl PyDense {
    #[new]
    #[pyo3(signature = (sizes, weights, bias_pos, bias_neg, bias_voltage, lower=None, upper=None,
                        gains=None, signed=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        sizes: Vec<usize>,
        weights: Vec<PyReadonlyArray2<'_, f64>>,
        bias_pos: Vec<PyReadonlyArray1<'_, f64>>,
        bias_neg: Vec<PyReadonlyArray1<'_, f64>>,
        bias_voltage: f64,
        lower: Diode,
        upper: Diode,
        gains: Option<Vec<f64>>,
        signed: Option<Vec<bool>>,
    ) -> PyResult<Self> {
        let mut d = PyDense {
            sizes,
            weights: vecs2(&weights)?,
            bias_pos: vecs1(&bias_pos)?,
            bias_neg: vecs1(&bias_neg)?,
            bias_voltage,
            gains: gains.unwrap_or_default(),
            signed: signed.unwrap_or_default(),
            lower: hidden(lower)?,
            upper: hidden(upper)?,
            sums: None,
        };
        d.refresh().map_err(|e| to_py(py, e))?;
        Ok(d)
    }

    /// Replaces the conductances (same shapes); validated.
    fn set_conductances(
        &mut self,
        py: Python<'_>,
        weights: Vec<PyReadonlyArray2<'_, f64>>,
        bias_pos: Vec<PyReadonlyArray1<'_, f64>>,
        bias_neg: Vec<PyReadonlyArray1<'_, f64>>,
    ) -> PyResult<()> {
        let old = (
            std::mem::replace(&mut self.weights, vecs2(&weights)?),
            std::mem::replace(&mut self.bias_pos, vecs1(&bias_pos)?),
            std::mem::replace(&mut self.bias_neg, vecs1(&bias_neg)?),
        );
        if let Err(e) = self.refresh() {
            (self.weights, self.bias_pos, self.bias_neg) = old;
            return Err(to_py(py, e));
        }
        Ok(())
    }

    /// One gradient step on the owned conductances straight from two node fields:
    /// `g ← clip(g − rates[l] · Σ_s (p_i − p_j)(q_i − q_j), lo, hi)` per weight layer
    /// (P zero on the inputs and at the sources, Q with inputs `q_inputs` and source
    /// values `q_bias`), without returning the sums; see `branch_products`.
    #[pyo3(signature = (p_states, q_inputs, q_states, q_bias, rates, lo, hi, *, threads=None))]
    #[allow(clippy::too_many_arguments)]
    fn sgd_fields(
        &mut self,
        py: Python<'_>,
        p_states: Vec<PyReadonlyArray2<'_, f64>>,
        q_inputs: PyReadonlyArray2<'_, f64>,
        q_states: Vec<PyReadonlyArray2<'_, f64>>,
        q_bias: (f64, f64),
        rates: Vec<f64>,
        lo: f64,
        hi: f64,
        threads: Option<usize>,
    ) -> PyResult<()> {
        let (ps, batch) = self.states_ref(&p_states)?;
        let (qs, _) = self.states_ref(&q_states)?;
        let qi = q_inputs.as_slice()?;
        let p = Field {
            inputs: &[],
            states: &ps,
            bias: (0.0, 0.0),
        };
        let q = Field {
            inputs: qi,
            states: &qs,
            bias: q_bias,
        };
        let par = par(threads);
        let mut step = || -> Result<(), Error> {
            // The present sums' pair differences serve as storage for the step's
            // products (no large allocation per step); on error the sums are
            // recomputed from the unchanged conductances.
            let scratch = self
                .sums
                .as_mut()
                .map(Sums::take_pair_diff)
                .unwrap_or_default();
            let stepped = self
                .run(|n| SgdStep::new(n, p, q, batch, &rates, lo, hi, par, scratch))
                .and_then(|mut plan| {
                    plan.apply(
                        &mut self.weights,
                        &mut self.bias_pos,
                        &mut self.bias_neg,
                        par,
                    )
                });
            let input = match stepped {
                Ok(input) => input,
                Err(e) => {
                    self.refresh()?;
                    return Err(e);
                }
            };
            // valid by construction (checked by SgdStep::new): no second validation
            let sums = self.run(|n| Ok(Sums::new_trusted_with(n, input)))?;
            self.sums = Some(sums);
            Ok(())
        };
        py.detach(&mut step).map_err(|e| to_py(py, e))
    }

    /// The owned conductances: (weights, bias⁺, bias⁻), as given to the constructor.
    #[allow(clippy::type_complexity)]
    fn conductances<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(
        States<'py>,
        Vec<Bound<'py, PyArray1<f64>>>,
        Vec<Bound<'py, PyArray1<f64>>>,
    )> {
        let w = self
            .weights
            .iter()
            .enumerate()
            .map(|(l, g)| {
                let rows = g.len() / self.sizes[l + 1];
                g.clone()
                    .into_pyarray(py)
                    .reshape([rows, self.sizes[l + 1]])
            })
            .collect::<PyResult<Vec<_>>>()?;
        let p = self
            .bias_pos
            .iter()
            .map(|b| b.clone().into_pyarray(py))
            .collect();
        let n = self
            .bias_neg
            .iter()
            .map(|b| b.clone().into_pyarray(py))
            .collect();
        Ok((w, p, n))
    }

    /// Layer sizes.
    #[getter]
    fn sizes(&self) -> Vec<usize> {
        self.sizes.clone()
    }

    /// `X W_0`: the drive of the first free layer (batch × n_1).
    #[pyo3(signature = (x, *, threads=None))]
    fn drive<'py>(
        &self,
        py: Python<'py>,
        x: PyReadonlyArray2<'py, f64>,
        threads: Option<usize>,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let batch = self.rows(&x, self.sizes[0], "inputs")?;
        let xs = x.as_slice()?;
        let d = py
            .detach(|| self.run(|n| dense::drive(n, self.sums(), xs, batch, par(threads))))
            .map_err(|e| to_py(py, e))?;
        d.into_pyarray(py).reshape([batch, self.sizes[1]])
    }

    /// Block coordinate descent from `states` (warm start, one array per free layer);
    /// returns (states, sweeps).
    #[pyo3(signature = (d1, states, injections=None, *, tol=1e-12, max_sweeps=10000,
                        fixed=false, threads=None))]
    #[allow(clippy::too_many_arguments)]
    fn relax<'py>(
        &self,
        py: Python<'py>,
        d1: PyReadonlyArray2<'py, f64>,
        states: Vec<PyReadonlyArray2<'py, f64>>,
        injections: Option<PyReadonlyArray2<'py, f64>>,
        tol: f64,
        max_sweeps: usize,
        fixed: bool,
        threads: Option<usize>,
    ) -> PyResult<(States<'py>, usize)> {
        let batch = self.rows(&d1, self.sizes[1], "layer-1 drive")?;
        let (mut s, _) = self.states_in(&states)?;
        let d = d1.as_slice()?;
        let inj = injections.as_ref().map(|a| a.as_slice()).transpose()?;
        let opts = RelaxOptions {
            tol,
            max_sweeps,
            fixed,
        };
        let sweeps = py
            .detach(|| {
                self.run(|n| {
                    dense::relax(n, self.sums(), d, &mut s, inj, batch, opts, par(threads))
                })
            })
            .map_err(|e| to_py(py, e))?;
        Ok((self.states_out(py, s, batch)?, sweeps))
    }

    /// Adjoint λ (one array per free layer) for the cost gradient `rhs` at the last
    /// layer, at the equilibrium `states`; returns (λ, sweeps).
    #[pyo3(signature = (states, rhs, *, tol=1e-12, max_sweeps=10000, fixed=false,
                        threads=None))]
    #[allow(clippy::too_many_arguments)]
    fn adjoint<'py>(
        &self,
        py: Python<'py>,
        states: Vec<PyReadonlyArray2<'py, f64>>,
        rhs: PyReadonlyArray2<'py, f64>,
        tol: f64,
        max_sweeps: usize,
        fixed: bool,
        threads: Option<usize>,
    ) -> PyResult<(States<'py>, usize)> {
        let nl = self.sizes.len() - 1;
        let batch = self.rows(&rhs, self.sizes[nl], "adjoint right-hand side")?;
        let (s, _) = self.states_ref(&states)?;
        let r = rhs.as_slice()?;
        let opts = RelaxOptions {
            tol,
            max_sweeps,
            fixed,
        };
        let (lam, sweeps) = py
            .detach(|| {
                self.run(|n| dense::adjoint(n, self.sums(), &s, r, batch, opts, par(threads)))
            })
            .map_err(|e| to_py(py, e))?;
        Ok((self.states_out(py, lam, batch)?, sweeps))
    }

    /// Per resistor, Σ over samples of (p_i − p_j)(q_i − q_j) for two node fields;
    /// returns (weight-layer matrices, [(bias+, bias−) per free layer]).
    #[pyo3(signature = (p_inputs, p_states, p_bias, q_inputs, q_states, q_bias, *,
                        threads=None))]
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    fn branch_products<'py>(
        &self,
        py: Python<'py>,
        p_inputs: Option<PyReadonlyArray2<'py, f64>>,
        p_states: Vec<PyReadonlyArray2<'py, f64>>,
        p_bias: (f64, f64),
        q_inputs: Option<PyReadonlyArray2<'py, f64>>,
        q_states: Vec<PyReadonlyArray2<'py, f64>>,
        q_bias: (f64, f64),
        threads: Option<usize>,
    ) -> PyResult<(
        States<'py>,
        Vec<(Bound<'py, PyArray1<f64>>, Bound<'py, PyArray1<f64>>)>,
    )> {
        let (ps, batch) = self.states_ref(&p_states)?;
        let (qs, _) = self.states_ref(&q_states)?;
        let pi = p_inputs
            .as_ref()
            .map(|a| a.as_slice())
            .transpose()?
            .unwrap_or(&[]);
        let qi = q_inputs
            .as_ref()
            .map(|a| a.as_slice())
            .transpose()?
            .unwrap_or(&[]);
        let p = Field {
            inputs: pi,
            states: &ps,
            bias: p_bias,
        };
        let q = Field {
            inputs: qi,
            states: &qs,
            bias: q_bias,
        };
        let (w, b) = py
            .detach(|| self.run(|n| dense::branch_products(n, p, q, batch, par(threads))))
            .map_err(|e| to_py(py, e))?;
        let w = w
            .into_iter()
            .enumerate()
            .map(|(l, g)| {
                let rows = g.len() / self.sizes[l + 1];
                g.into_pyarray(py).reshape([rows, self.sizes[l + 1]])
            })
            .collect::<PyResult<Vec<_>>>()?;
        let b = b
            .into_iter()
            .map(|(x, y)| (x.into_pyarray(py), y.into_pyarray(py)))
            .collect();
        Ok((w, b))
    }
}
