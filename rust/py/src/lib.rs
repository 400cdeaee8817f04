//! PyO3 bindings of `ohmflow-core`: argument conversion, GIL release and error
//! mapping only. All physics and numerics live in the core crate.

use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2,
    PyUntypedArrayMethods,
};
use ohmflow_core as core;
use ohmflow_core::{DiodeModel, Error, Network, Parallelism, SolveOptions, SourceValue};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

mod dense;

create_exception!(
    _core,
    OhmflowError,
    PyException,
    "Base class of every ohmflow error."
);
create_exception!(
    _core,
    FloatingNodeError,
    OhmflowError,
    "Free nodes with no resistive path to a voltage source or ground (attribute `nodes`)."
);
create_exception!(
    _core,
    InfeasibleError,
    OhmflowError,
    "Ideal diodes forced beyond their threshold by the sources (attribute `diodes`)."
);
create_exception!(
    _core,
    ConvergenceError,
    OhmflowError,
    "An iterative solver did not converge."
);
create_exception!(
    _core,
    SpiceParseError,
    OhmflowError,
    "A SPICE netlist could not be read (attributes `line` and `text`)."
);

/// `InvalidNetworkError(OhmflowError, ValueError)`, created at import.
static INVALID: PyOnceLock<Py<PyType>> = PyOnceLock::new();

fn invalid_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    INVALID
        .get_or_try_init(py, || -> PyResult<Py<PyType>> {
            let builtins = py.import("builtins")?;
            let bases = PyTuple::new(
                py,
                [py.get_type::<OhmflowError>().into_any(), py.get_type::<PyValueError>().into_any()],
            )?;
            let ns = PyDict::new(py);
            ns.set_item("__module__", "ohmflow._core")?;
            ns.set_item(
                "__doc__",
                "Invalid construction input (bad conductance, NaN, unknown node, self-loop, shape). Also a ValueError.",
            )?;
            let t = builtins.getattr("type")?.call1(("InvalidNetworkError", bases, ns))?;
            Ok(t.cast_into::<PyType>()?.unbind())
        })
        .map(|t| t.bind(py))
}

fn to_py(py: Python<'_>, e: Error) -> PyErr {
    let msg = e.to_string();
    let make = || -> PyResult<PyErr> {
        Ok(match e {
            Error::InvalidInput(_) => PyErr::from_type(invalid_type(py)?.clone(), msg),
            Error::Numerical(_) => ConvergenceError::new_err(msg),
            Error::FloatingNodes { nodes } => {
                let err = FloatingNodeError::new_err(msg);
                err.value(py).setattr("nodes", nodes)?;
                err
            }
            Error::Infeasible { diodes, .. } => {
                let err = InfeasibleError::new_err(msg);
                err.value(py).setattr("diodes", diodes)?;
                err
            }
            Error::Convergence { .. } => ConvergenceError::new_err(msg),
            Error::SpiceParse(p) => {
                let err = SpiceParseError::new_err(msg);
                err.value(py).setattr("line", p.line)?;
                err.value(py).setattr("text", p.text)?;
                err
            }
        })
    };
    make().unwrap_or_else(|e| e)
}

/// Two-port terminals as an (n, 4) array [p1, n1, p2, n2], and their parameters.
fn two_ports<'py>(
    py: Python<'py>,
    q: &[[u32; 4]],
    values: &[f64],
) -> PyResult<(Bound<'py, PyArray2<i64>>, Floats<'py>)> {
    let flat: Vec<i64> = q.iter().flat_map(|x| x.map(|y| y as i64)).collect();
    Ok((
        flat.into_pyarray(py).reshape([q.len(), 4])?,
        PyArray1::from_slice(py, values),
    ))
}

fn indices(a: &PyReadonlyArray1<'_, i64>) -> PyResult<Vec<usize>> {
    a.as_array()
        .iter()
        .map(|&x| {
            usize::try_from(x)
                .map_err(|_| PyValueError::new_err(format!("negative node index {x}")))
        })
        .collect()
}

fn diode_model(kind: u8, p: [f64; 4]) -> PyResult<DiodeModel> {
    Ok(match kind {
        0 => DiodeModel::Ideal { v_on: p[0] },
        1 => DiodeModel::Relu {
            v_on: p[0],
            g_on: p[1],
        },
        2 => DiodeModel::Shockley {
            i_s: p[0],
            n: p[1],
            temperature: p[2],
            gmin: p[3],
        },
        _ => return Err(PyValueError::new_err(format!("unknown diode kind {kind}"))),
    })
}

fn model_row(m: &DiodeModel) -> (u8, [f64; 4]) {
    match *m {
        DiodeModel::Ideal { v_on } => (0, [v_on, 0.0, 0.0, 0.0]),
        DiodeModel::Relu { g_on, v_on } => (1, [v_on, g_on, 0.0, 0.0]),
        DiodeModel::Shockley {
            i_s,
            n,
            temperature,
            gmin,
        } => (2, [i_s, n, temperature, gmin]),
    }
}

fn par(threads: Option<usize>) -> Parallelism {
    match threads {
        Some(1) => Parallelism::Serial,
        Some(n) => Parallelism::Threads(n),
        None => Parallelism::Threads(0),
    }
}

type Ints<'py> = Bound<'py, PyArray1<i64>>;
type Floats<'py> = Bound<'py, PyArray1<f64>>;
type DiodeArrays<'py> = (
    Ints<'py>,
    Ints<'py>,
    Bound<'py, PyArray1<u8>>,
    Bound<'py, PyArray2<f64>>,
);

/// A resistive network held by the Rust core (see `ohmflow.Network` for the friendly API).
#[pyclass(name = "CoreNetwork", module = "ohmflow._core")]
#[derive(Clone)]
struct PyNetwork {
    inner: Network,
}

#[pymethods]
impl PyNetwork {
    #[new]
    fn new() -> Self {
        PyNetwork {
            inner: Network::new(),
        }
    }

    fn copy(&self) -> Self {
        self.clone()
    }

    #[getter]
    fn n_nodes(&self) -> usize {
        self.inner.n_nodes()
    }
    #[getter]
    fn n_resistors(&self) -> usize {
        self.inner.n_resistors()
    }
    #[getter]
    fn n_diodes(&self) -> usize {
        self.inner.n_diodes()
    }
    #[getter]
    fn n_voltage_sources(&self) -> usize {
        self.inner.n_voltage_sources()
    }
    #[getter]
    fn n_current_sources(&self) -> usize {
        self.inner.n_current_sources()
    }
    #[getter]
    fn n_inputs(&self) -> usize {
        self.inner.n_inputs()
    }
    #[getter]
    fn is_compiled(&self) -> bool {
        self.inner.is_compiled()
    }
    #[getter]
    fn has_cached_factor(&self) -> bool {
        self.inner.has_cached_factor()
    }
    fn clear_factor_cache(&self) {
        self.inner.clear_factor_cache()
    }

    fn add_nodes(&mut self, py: Python<'_>, count: usize) -> PyResult<usize> {
        self.inner.add_nodes(count).map_err(|e| to_py(py, e))
    }

    fn add_resistors(
        &mut self,
        py: Python<'_>,
        a: PyReadonlyArray1<'_, i64>,
        b: PyReadonlyArray1<'_, i64>,
        g: PyReadonlyArray1<'_, f64>,
    ) -> PyResult<usize> {
        let (a, b) = (indices(&a)?, indices(&b)?);
        let g = g.as_slice()?;
        self.inner
            .add_resistors(&a, &b, g)
            .map_err(|e| to_py(py, e))
    }

    fn resistors<'py>(
        &self,
        py: Python<'py>,
    ) -> (Bound<'py, PyArray1<i64>>, Bound<'py, PyArray1<i64>>) {
        let (a, b, _) = self.inner.resistors();
        let conv = |x: &[u32]| {
            x.iter()
                .map(|&v| v as i64)
                .collect::<Vec<_>>()
                .into_pyarray(py)
        };
        (conv(a), conv(b))
    }

    fn conductances<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        PyArray1::from_slice(py, self.inner.conductances())
    }

    fn set_conductances(&mut self, py: Python<'_>, g: PyReadonlyArray1<'_, f64>) -> PyResult<()> {
        let g = g.as_slice()?;
        self.inner.set_conductances(g).map_err(|e| to_py(py, e))
    }

    /// Diodes with model kinds (0 ideal, 1 ReLU, 2 Shockley) and parameter rows
    /// (ideal: v_on; ReLU: v_on, g_on; Shockley: i_s, n, temperature, gmin).
    fn add_diodes(
        &mut self,
        py: Python<'_>,
        a: PyReadonlyArray1<'_, i64>,
        b: PyReadonlyArray1<'_, i64>,
        kinds: PyReadonlyArray1<'_, u8>,
        params: PyReadonlyArray2<'_, f64>,
    ) -> PyResult<usize> {
        let (a, b) = (indices(&a)?, indices(&b)?);
        let kinds = kinds.as_array();
        let params = params.as_array();
        if params.ncols() != 4 || params.nrows() != kinds.len() {
            return Err(PyValueError::new_err(
                "diode parameters must have shape (n, 4)",
            ));
        }
        let models = kinds
            .iter()
            .zip(params.rows())
            .map(|(&k, r)| diode_model(k, [r[0], r[1], r[2], r[3]]))
            .collect::<PyResult<Vec<_>>>()?;
        self.inner
            .add_diodes(&a, &b, &models)
            .map_err(|e| to_py(py, e))
    }

    fn diodes<'py>(&self, py: Python<'py>) -> PyResult<DiodeArrays<'py>> {
        let (a, b, m) = self.inner.diodes();
        let conv = |x: &[u32]| {
            x.iter()
                .map(|&v| v as i64)
                .collect::<Vec<_>>()
                .into_pyarray(py)
        };
        let rows: Vec<(u8, [f64; 4])> = m.iter().map(model_row).collect();
        let kinds: Vec<u8> = rows.iter().map(|r| r.0).collect();
        let params: Vec<f64> = rows.iter().flat_map(|r| r.1).collect();
        let params = params.into_pyarray(py).reshape([m.len(), 4])?;
        Ok((conv(a), conv(b), kinds.into_pyarray(py), params))
    }

    fn set_diode_model(
        &mut self,
        py: Python<'_>,
        k: usize,
        kind: u8,
        params: [f64; 4],
    ) -> PyResult<()> {
        let m = diode_model(kind, params)?;
        self.inner.set_diode_model(k, m).map_err(|e| to_py(py, e))
    }

    /// Ideal transformers (port 1: p1, n1; port 2: p2, n2): v2 = a v1, i1 = −a i2
    /// (currents into the + terminals). Returns the first index.
    fn add_transformers(
        &mut self,
        py: Python<'_>,
        p1: PyReadonlyArray1<'_, i64>,
        n1: PyReadonlyArray1<'_, i64>,
        p2: PyReadonlyArray1<'_, i64>,
        n2: PyReadonlyArray1<'_, i64>,
        ratios: PyReadonlyArray1<'_, f64>,
    ) -> PyResult<usize> {
        let (p1, n1, p2, n2) = (indices(&p1)?, indices(&n1)?, indices(&p2)?, indices(&n2)?);
        self.inner
            .add_transformers(&p1, &n1, &p2, &n2, ratios.as_slice()?)
            .map_err(|e| to_py(py, e))
    }

    /// Ideal gyrators: i1 = g v2, i2 = −g v1 (currents into the + terminals).
    /// Returns the first index.
    fn add_gyrators(
        &mut self,
        py: Python<'_>,
        p1: PyReadonlyArray1<'_, i64>,
        n1: PyReadonlyArray1<'_, i64>,
        p2: PyReadonlyArray1<'_, i64>,
        n2: PyReadonlyArray1<'_, i64>,
        g: PyReadonlyArray1<'_, f64>,
    ) -> PyResult<usize> {
        let (p1, n1, p2, n2) = (indices(&p1)?, indices(&n1)?, indices(&p2)?, indices(&n2)?);
        self.inner
            .add_gyrators(&p1, &n1, &p2, &n2, g.as_slice()?)
            .map_err(|e| to_py(py, e))
    }

    #[getter]
    fn n_transformers(&self) -> usize {
        self.inner.n_transformers()
    }
    #[getter]
    fn n_gyrators(&self) -> usize {
        self.inner.n_gyrators()
    }

    /// Transformer terminals, shape (n, 4) as [p1, n1, p2, n2], and ratios.
    fn transformers<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyArray2<i64>>, Floats<'py>)> {
        let (q, r) = self.inner.transformers();
        two_ports(py, q, r)
    }

    /// Gyrator terminals, shape (n, 4) as [p1, n1, p2, n2], and conductances.
    fn gyrators<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyArray2<i64>>, Floats<'py>)> {
        let (q, g) = self.inner.gyrators();
        two_ports(py, q, g)
    }

    fn set_transformer_ratios(
        &mut self,
        py: Python<'_>,
        ratios: PyReadonlyArray1<'_, f64>,
    ) -> PyResult<()> {
        self.inner
            .set_transformer_ratios(ratios.as_slice()?)
            .map_err(|e| to_py(py, e))
    }

    fn set_gyrator_conductances(
        &mut self,
        py: Python<'_>,
        g: PyReadonlyArray1<'_, f64>,
    ) -> PyResult<()> {
        self.inner
            .set_gyrator_conductances(g.as_slice()?)
            .map_err(|e| to_py(py, e))
    }

    /// Clamps `node`; `value=None` makes it the next per-sample input. Returns the source index.
    #[pyo3(signature = (node, value=None))]
    fn add_voltage_source(
        &mut self,
        py: Python<'_>,
        node: usize,
        value: Option<f64>,
    ) -> PyResult<usize> {
        let v = match value {
            Some(x) => SourceValue::Fixed(x),
            None => SourceValue::Input(self.inner.n_inputs()),
        };
        self.inner
            .add_voltage_source(node, v)
            .map_err(|e| to_py(py, e))
    }

    fn set_voltage_source_value(&mut self, py: Python<'_>, k: usize, value: f64) -> PyResult<()> {
        self.inner
            .set_voltage_source_value(k, value)
            .map_err(|e| to_py(py, e))
    }

    /// (nodes, fixed values (NaN for inputs), input index (-1 for fixed)).
    fn voltage_sources<'py>(&self, py: Python<'py>) -> (Ints<'py>, Floats<'py>, Ints<'py>) {
        let (nodes, vals) = self.inner.voltage_sources();
        let n: Vec<i64> = nodes.iter().map(|&x| x as i64).collect();
        let v: Vec<f64> = vals
            .iter()
            .map(|s| match s {
                SourceValue::Fixed(x) => *x,
                SourceValue::Input(_) => f64::NAN,
            })
            .collect();
        let k: Vec<i64> = vals
            .iter()
            .map(|s| match s {
                SourceValue::Fixed(_) => -1,
                SourceValue::Input(k) => *k as i64,
            })
            .collect();
        (n.into_pyarray(py), v.into_pyarray(py), k.into_pyarray(py))
    }

    fn add_current_sources(
        &mut self,
        py: Python<'_>,
        a: PyReadonlyArray1<'_, i64>,
        b: PyReadonlyArray1<'_, i64>,
        values: PyReadonlyArray1<'_, f64>,
    ) -> PyResult<usize> {
        let (a, b) = (indices(&a)?, indices(&b)?);
        self.inner
            .add_current_sources(&a, &b, values.as_slice()?)
            .map_err(|e| to_py(py, e))
    }

    fn current_sources<'py>(&self, py: Python<'py>) -> (Ints<'py>, Ints<'py>, Floats<'py>) {
        let (a, b, v) = self.inner.current_sources();
        let conv = |x: &[u32]| {
            x.iter()
                .map(|&v| v as i64)
                .collect::<Vec<_>>()
                .into_pyarray(py)
        };
        (conv(a), conv(b), PyArray1::from_slice(py, v))
    }

    fn set_current_source_values(
        &mut self,
        py: Python<'_>,
        values: PyReadonlyArray1<'_, f64>,
    ) -> PyResult<()> {
        self.inner
            .set_current_source_values(values.as_slice()?)
            .map_err(|e| to_py(py, e))
    }

    /// Solves `batch` samples; returns a dict of arrays (see `ohmflow.Solution`).
    #[pyo3(signature = (inputs, batch, *, warm_voltages=None, warm_diode_currents=None,
                        injection_nodes=None, injections=None,
                        rtol=1e-12, vtol=1e-13, max_iter=500, threads=None,
                        method="auto", sweeps=None))]
    #[allow(clippy::too_many_arguments)]
    fn solve<'py>(
        &self,
        py: Python<'py>,
        inputs: PyReadonlyArray2<'py, f64>,
        batch: usize,
        warm_voltages: Option<PyReadonlyArray2<'py, f64>>,
        warm_diode_currents: Option<PyReadonlyArray2<'py, f64>>,
        injection_nodes: Option<PyReadonlyArray1<'py, i64>>,
        injections: Option<PyReadonlyArray2<'py, f64>>,
        rtol: f64,
        vtol: f64,
        max_iter: usize,
        threads: Option<usize>,
        method: &str,
        sweeps: Option<usize>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let x = inputs.as_slice()?;
        let method = match method {
            "auto" => core::Method::Auto,
            "direct" => core::Method::Direct,
            "layered" => core::Method::Layered,
            other => {
                return Err(PyErr::from_type(
                    invalid_type(py)?.clone(),
                    format!("method must be 'auto', 'direct' or 'layered', got {other:?}"),
                ))
            }
        };
        let wv = warm_voltages.as_ref().map(|a| a.as_slice()).transpose()?;
        let wi = warm_diode_currents
            .as_ref()
            .map(|a| a.as_slice())
            .transpose()?;
        let warm = match (wv, wi) {
            (Some(v), Some(i)) => Some(core::Warm {
                voltages: v,
                diode_currents: i,
            }),
            (None, None) => None,
            _ => {
                return Err(PyValueError::new_err(
                    "warm start needs voltages and diode currents",
                ))
            }
        };
        let inj_nodes: Vec<u32> = match &injection_nodes {
            Some(a) => indices(a)?
                .into_iter()
                .map(|x| x.min(u32::MAX as usize) as u32)
                .collect(),
            None => vec![],
        };
        let inj_vals = injections.as_ref().map(|a| a.as_slice()).transpose()?;
        let inj = match (injection_nodes.is_some(), inj_vals) {
            (true, Some(values)) => Some(core::Injections {
                nodes: &inj_nodes,
                values,
            }),
            (false, None) => None,
            _ => return Err(PyValueError::new_err("injections need nodes and values")),
        };
        let opts = SolveOptions {
            rtol,
            vtol,
            max_iter,
            par: par(threads),
            method,
            sweeps,
            ..Default::default()
        };
        let net = &self.inner;
        let sol = py
            .detach(|| core::solve_batch(net, x, batch, warm, inj, &opts))
            .map_err(|e| to_py(py, e))?;
        let d = PyDict::new(py);
        let (n, nd, nv) = (net.n_nodes(), net.n_diodes(), net.n_voltage_sources());
        d.set_item(
            "voltages",
            sol.voltages.into_pyarray(py).reshape([batch, n])?,
        )?;
        d.set_item(
            "diode_currents",
            sol.diode_currents.into_pyarray(py).reshape([batch, nd])?,
        )?;
        d.set_item(
            "source_currents",
            sol.source_currents.into_pyarray(py).reshape([batch, nv])?,
        )?;
        let nt = net.n_transformers();
        let tc = if sol.transformer_currents.len() == batch * nt {
            sol.transformer_currents
        } else {
            vec![0.0; batch * nt]
        };
        d.set_item(
            "transformer_currents",
            tc.into_pyarray(py).reshape([batch, nt])?,
        )?;
        d.set_item("iterations", sol.iterations.into_pyarray(py))?;
        d.set_item("factorizations", sol.factorizations.into_pyarray(py))?;
        d.set_item("low_rank_solves", sol.low_rank_solves.into_pyarray(py))?;
        d.set_item("kcl_residual", sol.kcl_residual.into_pyarray(py))?;
        Ok(d)
    }

    /// The adjoint (hardware linearization) at each sample's operating point: a dict
    /// with `lambda` (batch × n_nodes), `nu` and `g_diff` (batch × n_diodes).
    /// `voltages`, `diode_currents`: a solution; `rhs`: batch × n_nodes.
    #[pyo3(signature = (voltages, diode_currents, rhs, *, threads=None))]
    fn adjoint<'py>(
        &self,
        py: Python<'py>,
        voltages: PyReadonlyArray2<'py, f64>,
        diode_currents: PyReadonlyArray2<'py, f64>,
        rhs: PyReadonlyArray2<'py, f64>,
        threads: Option<usize>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let batch = voltages.shape()[0];
        let sol = core::BatchSolution {
            batch,
            voltages: voltages.as_slice()?.to_vec(),
            diode_currents: diode_currents.as_slice()?.to_vec(),
            ..Default::default()
        };
        if sol.diode_currents.len() != batch * self.inner.n_diodes() {
            return Err(PyValueError::new_err(
                "diode_currents must have shape (batch, n_diodes)",
            ));
        }
        let r = rhs.as_slice()?;
        let opts = SolveOptions {
            par: par(threads),
            ..Default::default()
        };
        let net = &self.inner;
        let adj = py
            .detach(|| core::adjoint_batch(net, &sol, r, &opts))
            .map_err(|e| to_py(py, e))?;
        let (n, nd) = (net.n_nodes(), net.n_diodes());
        let d = PyDict::new(py);
        d.set_item("lambda", adj.lambda.into_pyarray(py).reshape([batch, n])?)?;
        d.set_item("nu", adj.nu.into_pyarray(py).reshape([batch, nd])?)?;
        d.set_item("g_diff", adj.g_diff.into_pyarray(py).reshape([batch, nd])?)?;
        let nt = net.n_transformers();
        d.set_item(
            "transformer_lambda",
            adj.transformer_lambda
                .into_pyarray(py)
                .reshape([batch, nt])?,
        )?;
        Ok(d)
    }

    /// Resistor currents (a → b) for voltages of shape (batch, n_nodes).
    fn resistor_currents<'py>(
        &self,
        py: Python<'py>,
        voltages: PyReadonlyArray2<'py, f64>,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let shape = voltages.shape();
        if shape[1] != self.inner.n_nodes() {
            return Err(PyValueError::new_err(
                "voltages must have shape (batch, n_nodes)",
            ));
        }
        let (batch, nr) = (shape[0], self.inner.n_resistors());
        let v = voltages.as_slice()?;
        let net = &self.inner;
        let out = py.detach(|| core::resistor_currents(net, v, batch));
        out.into_pyarray(py).reshape([batch, nr])
    }
}

/// The element and node names of a netlist read by `read_spice`, kept in Rust until
/// asked for (a million-edge netlist has a million names; most scripts never look
/// one up).
#[pyclass(name = "SpiceNames", module = "ohmflow._core", frozen)]
struct PySpiceNames {
    lists: Vec<(&'static str, Vec<String>)>,
}

impl PySpiceNames {
    fn list(&self, kind: &str) -> PyResult<&[String]> {
        self.lists
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, v)| v.as_slice())
            .ok_or_else(|| PyValueError::new_err(format!("no names of kind {kind:?}")))
    }
}

#[pymethods]
impl PySpiceNames {
    /// Number of names of `kind` ("nodes", "resistors", "diodes", "voltage_sources",
    /// "current_sources", "transformers", "gyrators").
    fn count(&self, kind: &str) -> PyResult<usize> {
        Ok(self.list(kind)?.len())
    }

    /// The names of `kind`, in index order.
    fn names(&self, kind: &str) -> PyResult<Vec<String>> {
        Ok(self.list(kind)?.to_vec())
    }
}

/// Parses a SPICE netlist; returns the network and a dict with the title, the
/// voltage sources' signs and the names (lowercase, a `SpiceNames`).
#[pyfunction]
fn read_spice<'py>(py: Python<'py>, text: &str) -> PyResult<(PyNetwork, Bound<'py, PyDict>)> {
    let owned = text.to_string();
    let c = py
        .detach(move || core::spice_net::read_spice(&owned))
        .map_err(|e| to_py(py, e))?;
    let d = PyDict::new(py);
    d.set_item("title", &c.title)?;
    d.set_item("voltage_source_signs", &c.vsource_sign)?;
    let names = PySpiceNames {
        lists: vec![
            ("nodes", c.node_names),
            ("resistors", c.resistor_names),
            ("diodes", c.diode_names),
            ("voltage_sources", c.vsource_names),
            ("current_sources", c.isource_names),
            ("transformers", c.transformer_names),
            ("gyrators", c.gyrator_names),
        ],
    };
    d.set_item("names", Bound::new(py, names)?)?;
    Ok((PyNetwork { inner: c.network }, d))
}

/// Formats a number so that SPICE reads back exactly the same double.
#[pyfunction]
fn format_spice_value(x: f64) -> String {
    core::spice::format_value(x)
}

/// Parses one SPICE number with its scale suffix and units (None if malformed).
#[pyfunction]
fn parse_spice_value(token: &str) -> Option<f64> {
    core::spice::parse_value(token)
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<PyNetwork>()?;
    m.add_class::<dense::PyDense>()?;
    m.add_class::<PySpiceNames>()?;
    m.add_function(wrap_pyfunction!(read_spice, m)?)?;
    m.add_function(wrap_pyfunction!(format_spice_value, m)?)?;
    m.add_function(wrap_pyfunction!(parse_spice_value, m)?)?;
    m.add("OhmflowError", py.get_type::<OhmflowError>())?;
    m.add("FloatingNodeError", py.get_type::<FloatingNodeError>())?;
    m.add("InfeasibleError", py.get_type::<InfeasibleError>())?;
    m.add("ConvergenceError", py.get_type::<ConvergenceError>())?;
    m.add("SpiceParseError", py.get_type::<SpiceParseError>())?;
    m.add("InvalidNetworkError", invalid_type(py)?)?;
    m.add("BOLTZMANN", core::network::BOLTZMANN)?;
    m.add("CHARGE", core::network::CHARGE)?;
    m.add("DEFAULT_TEMPERATURE", core::network::DEFAULT_TEMPERATURE)?;
    m.add("DEFAULT_GMIN", core::network::DEFAULT_GMIN)?;
    Ok(())
}
