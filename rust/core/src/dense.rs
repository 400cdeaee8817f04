//! Dense layered networks in matrix form: exact block coordinate descent and the
//! training quantities of deep resistive networks (Scellier 2024), batched over
//! samples as matrix products.
//!
//! A [`DenseLayers`] is a layered network whose successive layers are joined by
//! dense resistor matrices: layer 0 holds clamped inputs (voltage sources), layers
//! `1..L` are free; each free node may have resistors to two bias sources (at
//! `+bias_voltage` and `−bias_voltage`) and each *hidden* node (layers `1..L−1`)
//! a diode from a source at `lower.0` (anode) to the node and / or from the node to
//! a source at `upper.0`. This is exactly the circuit `ohmflow.models` builds; the
//! general sparse path ([`crate::layered`]) solves the same equations node by node,
//! here the same exact block coordinate descent runs as dense products:
//!
//! ```text
//! T_l = V_{l−1} W_{l−1} + V_{l+1} W_lᵀ + g⁺_l V_b − g⁻_l V_b (+ injections)
//! s_l = colsum W_{l−1} + rowsum W_l + g⁺_l + g⁻_l
//! V_l = argmin of the node's convex 1-D problem: clip(T_l / s_l) for ideal diodes
//! ```
//!
//! updating the odd layers, then the even ones (each class is independent given the
//! other), which decreases the co-content monotonically to the unique equilibrium.
//! The input drive `X W_0` is the same in every sweep and in every phase of a
//! training step: [`drive`] computes it once.
//!
//! [`branch_products`] gives, for every resistor, `Σ_s (p_i − p_j)(q_i − q_j)` over
//! the samples of two node fields P and Q: with P = V^β − V⁰, Q = V^β + V⁰ it is the
//! equilibrium-propagation estimate `Σ_s [(Δv^β)² − (Δv⁰)²]` without the
//! cancellation of squaring twice; with P = λ (adjoint), Q = V it is the exact
//! gradient. Each costs one product per weight layer.
//!
//! Storage: every field is sample-major (`batch × n_l`, row-major); weights are
//! row-major `n_l × n_{l+1}` (the layout of `DeepResistiveNetwork.weights`).

use crate::error::{Error, Result};
use crate::factor::{with_threads, Parallelism};
use crate::network::DiodeModel;
use crate::simd::with_avx2;
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

/// A diode on every hidden node: the voltage of its fixed end and its model.
#[derive(Debug, Clone, Copy)]
pub struct HiddenDiode {
    /// Voltage of the source at the diode's other end.
    pub source: f64,
    /// The diode model.
    pub model: DiodeModel,
}

/// A layered network with dense weight matrices (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct DenseLayers<'a> {
    /// Layer sizes `n_0` (clamped inputs), `n_1 … n_L` (free).
    pub sizes: &'a [usize],
    /// `W_l`, row-major `n_l × n_{l+1}`, for `l = 0 … L−1`.
    pub weights: &'a [&'a [f64]],
    /// Conductances to the `+bias_voltage` source, per free layer (each empty or `n_l`).
    pub bias_pos: &'a [&'a [f64]],
    /// Conductances to the `−bias_voltage` source, per free layer (each empty or `n_l`).
    pub bias_neg: &'a [&'a [f64]],
    /// Voltage of the bias sources (`+` and `−`).
    pub bias_voltage: f64,
    /// Voltage gain `a_l` of each weight layer (empty: all 1): the resistors of
    /// layer `l` see `a_l v_i − v_j`, as when node `i` drives them through an ideal
    /// transformer of ratio `a_l` (v₂ = a v₁, i₁ = a i₂), which keeps the network
    /// reciprocal and its equilibrium the minimiser of the co-content
    /// `½ Σ g_ij (a_l v_i − v_j)² + …` (Kendall et al.'s amplifiers, modelled so).
    pub gains: &'a [f64],
    /// Per weight layer (empty: none): with `true`, each node `i` of the lower layer
    /// drives the layer through two ideal transformers, at `+a v_i` and `−a v_i` (an
    /// inverting copy, as Kendall et al.'s differential signals and the VCVS of
    /// Scellier & Mishra's construction provide), so that positive conductances
    /// realise signed weights between hidden layers; `W_l` then has `2 n_l` rows,
    /// the `+` copies first. Not for the input layer, which holds `±` pairs already.
    pub signed: &'a [bool],
    /// Diode from a source (anode) to each hidden node: bounds it from below.
    pub lower: Option<HiddenDiode>,
    /// Diode from each hidden node to a source (cathode): bounds it from above.
    pub upper: Option<HiddenDiode>,
}

fn invalid(msg: String) -> Error {
    Error::InvalidInput(msg)
}

impl DenseLayers<'_> {
    /// Number of free layers `L`.
    pub fn n_free_layers(&self) -> usize {
        self.sizes.len().saturating_sub(1)
    }

    /// Checks shapes and values (conductances finite and > 0, models valid).
    pub fn validate(&self) -> Result<()> {
        let l = self.n_free_layers();
        if l == 0 || self.sizes.contains(&0) {
            return Err(invalid(format!(
                "dense layers need >= 2 non-empty layers, got sizes {:?}",
                self.sizes
            )));
        }
        if self.weights.len() != l || self.bias_pos.len() != l || self.bias_neg.len() != l {
            return Err(invalid(format!(
                "{l} weight layers expected: got {} weight matrices, {} and {} bias vectors",
                self.weights.len(),
                self.bias_pos.len(),
                self.bias_neg.len()
            )));
        }
        if !self.signed.is_empty() && self.signed.len() != l {
            return Err(invalid(format!(
                "{} signed flags for {l} weight layers",
                self.signed.len()
            )));
        }
        if self.is_signed(0) {
            return Err(invalid(
                "the input layer cannot be signed (it holds ± pairs already)".into(),
            ));
        }
        for (i, w) in self.weights.iter().enumerate() {
            let want = self.rows_of(i) * self.sizes[i + 1];
            if w.len() != want {
                return Err(invalid(format!(
                    "weight matrix {i}: {} entries, expected {} x {} = {want}",
                    w.len(),
                    self.rows_of(i),
                    self.sizes[i + 1]
                )));
            }
            if let Some(k) = w.iter().position(|g| !(g.is_finite() && *g > 0.0)) {
                return Err(invalid(format!(
                    "weight matrix {i}: conductance {} at entry {k} must be finite and > 0",
                    w[k]
                )));
            }
        }
        for (i, (p, n)) in self.bias_pos.iter().zip(self.bias_neg).enumerate() {
            for b in [p, n] {
                if !b.is_empty() && b.len() != self.sizes[i + 1] {
                    return Err(invalid(format!(
                        "bias conductances of layer {}: {} entries, expected {}",
                        i + 1,
                        b.len(),
                        self.sizes[i + 1]
                    )));
                }
                if let Some(k) = b.iter().position(|g| !(g.is_finite() && *g > 0.0)) {
                    return Err(invalid(format!(
                        "bias conductance {} of layer {} at entry {k} must be finite and > 0",
                        b[k],
                        i + 1
                    )));
                }
            }
        }
        if !self.gains.is_empty() && self.gains.len() != l {
            return Err(invalid(format!(
                "{} gains for {l} weight layers",
                self.gains.len()
            )));
        }
        if let Some(a) = self.gains.iter().find(|a| !(a.is_finite() && **a != 0.0)) {
            return Err(invalid(format!(
                "layer gain {a} must be finite and nonzero"
            )));
        }
        if !self.bias_voltage.is_finite() {
            return Err(invalid("bias voltage must be finite".into()));
        }
        for d in self.lower.iter().chain(&self.upper) {
            if !d.source.is_finite() {
                return Err(invalid("diode source voltage must be finite".into()));
            }
            d.model.validate()?;
        }
        Ok(())
    }

    /// Whether weight layer `l` is driven by `±` copies of its lower layer.
    pub fn is_signed(&self, l: usize) -> bool {
        self.signed.get(l).copied().unwrap_or(false)
    }

    /// Rows of `W_l`: `n_l`, or `2 n_l` when signed.
    pub fn rows_of(&self, l: usize) -> usize {
        self.sizes[l] * if self.is_signed(l) { 2 } else { 1 }
    }

    /// The gain `a_l` of weight layer `l`.
    pub fn gain(&self, l: usize) -> f64 {
        self.gains.get(l).copied().unwrap_or(1.0)
    }

    /// Total conductance at each node of free layer `l` (1-based), and its bias drive
    /// `(g⁺ − g⁻) V_b`.
    /// (`colsum_in`: the column sums of `W_{l−1}`, if already known.)
    fn node_sums_with(&self, l: usize, colsum_in: Option<&[f64]>) -> (Vec<f64>, Vec<f64>) {
        let n = self.sizes[l];
        let mut s = match colsum_in {
            Some(c) => c.to_vec(),
            None => {
                let partials: Vec<Vec<f64>> = self.weights[l - 1]
                    .par_chunks(COLSUM_BLOCK * n)
                    .map(|blk| {
                        let mut acc = vec![0.0; n];
                        for row in blk.chunks_exact(n) {
                            for (a, &g) in acc.iter_mut().zip(row) {
                                *a += g;
                            }
                        }
                        acc
                    })
                    .collect();
                sum_in_order(partials, n)
            }
        };
        if l < self.n_free_layers() {
            let m = self.sizes[l + 1];
            let a2 = self.gain(l) * self.gain(l);
            for (i, row) in self.weights[l].chunks_exact(m).enumerate() {
                s[i % n] += a2 * row.iter().sum::<f64>();
            }
        }
        let mut b = vec![0.0; n];
        let (p, q) = (self.bias_pos[l - 1], self.bias_neg[l - 1]);
        if !p.is_empty() {
            for ((sj, bj), &g) in s.iter_mut().zip(b.iter_mut()).zip(p) {
                *sj += g;
                *bj += g * self.bias_voltage;
            }
        }
        if !q.is_empty() {
            for ((sj, bj), &g) in s.iter_mut().zip(b.iter_mut()).zip(q) {
                *sj += g;
                *bj -= g * self.bias_voltage;
            }
        }
        (s, b)
    }
}

fn rows<'a>(x: &'a [f64], r: usize, c: usize) -> MatRef<'a, f64> {
    MatRef::from_row_major_slice(x, r, c)
}

fn rows_mut<'a>(x: &'a mut [f64], r: usize, c: usize) -> MatMut<'a, f64> {
    MatMut::from_row_major_slice_mut(x, r, c)
}

fn check_len(what: &str, got: usize, want: usize) -> Result<()> {
    if got != want {
        return Err(invalid(format!("{what}: {got} values, expected {want}")));
    }
    Ok(())
}

/// `C = a · Q⁺ᵀ P_1` (`n_0/2 × n_1`): the input layer's cross products when the
/// inputs are `(v, −v)` pairs with even columns `qh` (`batch × n_0/2`) and P is zero
/// on them; row `2i` of the layer's sums gets `−C_i`, row `2i+1` gets `+C_i`.
fn paired_cross(net: &DenseLayers, qh: &[f64], p1: &[f64], batch: usize, par: Par) -> Vec<f64> {
    paired_cross_into(Vec::new(), net, qh, p1, batch, par)
}

/// [`paired_cross`] into the storage of `c` (its values are overwritten).
fn paired_cross_into(
    mut c: Vec<f64>,
    net: &DenseLayers,
    qh: &[f64],
    p1: &[f64],
    batch: usize,
    par: Par,
) -> Vec<f64> {
    let (h2, m) = (net.sizes[0] / 2, net.sizes[1]);
    c.resize(h2 * m, 0.0);
    matmul(
        rows_mut(&mut c, h2, m),
        Accum::Replace,
        rows(qh, batch, h2).transpose(),
        rows(p1, batch, m),
        net.gain(0),
        par,
    );
    c
}

/// `Σ_s p_i q_i` for every node of a layer of `n` nodes (empty fields: zeros).
fn node_products(pv: &[f64], qv: &[f64], n: usize) -> Vec<f64> {
    let mut d = vec![0.0; n];
    for (pr, qr) in pv.chunks_exact(n).zip(qv.chunks_exact(n)) {
        for ((dj, &a), &b) in d.iter_mut().zip(pr).zip(qr) {
            *dj += a * b;
        }
    }
    d
}

/// The even columns of `x` (`batch × n_0`) if every row is made of `(v, −v)` pairs
/// (the `±` input sources of a deep resistive network), else `None`.
fn paired_half(x: &[f64], batch: usize, n0: usize) -> Option<Vec<f64>> {
    if n0 & 1 != 0 || x.is_empty() || x.len() != batch * n0 {
        return None;
    }
    let pairs_ok = x.chunks_exact(2).all(|p| p[1] == -p[0]);
    pairs_ok.then(|| x.iter().step_by(2).copied().collect())
}

/// The input drive of the first free layer, `X W_0` (`batch × n_1`), for inputs
/// `x` (`batch × n_0`). When the inputs come in `(v, −v)` pairs (the `±` sources of
/// a deep resistive network) it is computed as `X⁺ (W⁺ − W⁻)` with the difference
/// of the pair rows kept in [`Sums`]: half the arithmetic, the same result.
pub fn drive(
    net: &DenseLayers,
    sums: &Sums,
    x: &[f64],
    batch: usize,
    par: Parallelism,
) -> Result<Vec<f64>> {
    sums.check(net)?;
    let (n0, n1) = (net.sizes[0], net.sizes[1]);
    check_len("inputs", x.len(), batch * n0)?;
    if let Some(k) = x.iter().position(|v| !v.is_finite()) {
        return Err(invalid(format!(
            "input value {} at {k} is not finite",
            x[k]
        )));
    }
    let mut d = vec![0.0; batch * n1];
    let half = if sums.pair_diff.is_empty() {
        None
    } else {
        paired_half(x, batch, n0)
    };
    with_threads(par, || {
        match &half {
            Some(h) => matmul(
                rows_mut(&mut d, batch, n1),
                Accum::Replace,
                rows(h, batch, n0 / 2),
                rows(&sums.pair_diff, n0 / 2, n1),
                net.gain(0),
                par.dense(),
            ),
            None => matmul(
                rows_mut(&mut d, batch, n1),
                Accum::Replace,
                rows(x, batch, n0),
                rows(net.weights[0], n0, n1),
                net.gain(0),
                par.dense(),
            ),
        }
        Ok(())
    })?;
    Ok(d)
}

/// Options of [`relax`].
#[derive(Debug, Clone, Copy)]
pub struct RelaxOptions {
    /// Stop when no voltage moved more than this in a sweep (volts)...
    pub tol: f64,
    /// ...or after this many sweeps.
    pub max_sweeps: usize,
    /// With `true`, run exactly `max_sweeps` sweeps (no tolerance check, no error).
    pub fixed: bool,
}

impl Default for RelaxOptions {
    fn default() -> Self {
        RelaxOptions {
            tol: 1e-12,
            max_sweeps: 10_000,
            fixed: false,
        }
    }
}

/// Current into a hidden node through its diodes, and its derivative in the node
/// voltage `v` (the derivative of the current *leaving* is the negative).
#[inline]
fn diode_current_in(net: &DenseLayers, v: f64) -> (f64, f64) {
    let (mut i, mut g) = (0.0, 0.0);
    if let Some(d) = net.lower {
        let (id, gd) = d.model.law(d.source - v);
        i += id;
        g -= gd;
    }
    if let Some(d) = net.upper {
        let (id, gd) = d.model.law(v - d.source);
        i -= id;
        g -= gd;
    }
    (i, g)
}

/// Bounds that ideal diodes put on a hidden node.
fn ideal_bounds(net: &DenseLayers) -> (f64, f64) {
    let mut lo = f64::NEG_INFINITY;
    let mut hi = f64::INFINITY;
    if let Some(HiddenDiode {
        source,
        model: DiodeModel::Ideal { v_on },
    }) = net.lower
    {
        lo = source - v_on;
    }
    if let Some(HiddenDiode {
        source,
        model: DiodeModel::Ideal { v_on },
    }) = net.upper
    {
        hi = source + v_on;
    }
    (lo, hi)
}

fn smooth_diodes(net: &DenseLayers) -> bool {
    net.lower
        .iter()
        .chain(&net.upper)
        .any(|d| !matches!(d.model, DiodeModel::Ideal { .. }))
}

/// Root of `s v − t − i_in(v) = 0` (increasing in `v`) on `[lo, hi]`, starting
/// near `v0` (or `t / s`).
fn node_root(net: &DenseLayers, s: f64, t: f64, lo: f64, hi: f64, v0: f64) -> f64 {
    let f = |v: f64| {
        let (i, g) = diode_current_in(net, v);
        (s * v - t - i, s - g)
    };
    let x0 = if v0.is_finite() { v0 } else { t / s };
    crate::layered::monotone_root(f, lo, hi, x0)
}

/// Rows per block of a column sum: blocks are summed in parallel, each in row
/// order, then added in block order, so the result does not depend on the number
/// of threads (and the fused pass of [`SgdStep::apply`] gets the same bits).
const COLSUM_BLOCK: usize = 128;

fn sum_in_order(partials: Vec<Vec<f64>>, n: usize) -> Vec<f64> {
    let mut s = vec![0.0; n];
    for p in partials {
        for (x, y) in s.iter_mut().zip(&p) {
            *x += y;
        }
    }
    s
}

/// Per-node constants of the free layers: total conductance `s`, its inverse, and
/// the bias drive `(g⁺ − g⁻) V_b`. They change only with the conductances, so
/// callers that relax many batches compute them once ([`Sums::new`]).
#[derive(Debug, Clone)]
pub struct Sums {
    s: Vec<Vec<f64>>,
    inv: Vec<Vec<f64>>,
    bias: Vec<Vec<f64>>,
    /// Per weight layer, `W⁺ − W⁻` (`n_l × n_{l+1}`) where signed, else empty.
    diff: Vec<Vec<f64>>,
    /// `W_0`'s even rows minus its odd rows (`n_0/2 × n_1`) when `n_0` is even: the
    /// drive of `(v, −v)` input pairs.
    pair_diff: Vec<f64>,
}

impl Sums {
    fn check(&self, net: &DenseLayers) -> Result<()> {
        let ok = self.s.len() == net.n_free_layers()
            && self
                .s
                .iter()
                .enumerate()
                .all(|(l, s)| s.len() == net.sizes[l + 1]);
        if !ok {
            return Err(invalid("node sums computed for another network".into()));
        }
        Ok(())
    }

    /// The constants of `net` (validated first).
    pub fn new(net: &DenseLayers) -> Result<Self> {
        net.validate()?;
        Ok(Self::new_trusted(net))
    }

    /// The constants of a network already known to be valid (e.g. after
    /// [`sgd_check`] and [`sgd_apply`] on a validated one): no validation pass.
    pub fn new_trusted(net: &DenseLayers) -> Self {
        Self::new_trusted_with(net, None)
    }

    /// [`Self::new_trusted`] with the input layer's pair differences and column sums
    /// already computed (by [`SgdStep::apply`], in its pass over `W_0`).
    pub fn new_trusted_with(net: &DenseLayers, input: Option<(Vec<f64>, Vec<f64>)>) -> Self {
        let nl = net.n_free_layers();
        let (known_diff, known_colsum) = match input {
            Some((d, c)) => (Some(d), Some(c)),
            None => (None, None),
        };
        let (mut s, mut inv, mut bias) = (Vec::new(), Vec::new(), Vec::new());
        for l in 1..=nl {
            let col = if l == 1 {
                known_colsum.as_deref()
            } else {
                None
            };
            let (sl, bl) = net.node_sums_with(l, col);
            inv.push(sl.iter().map(|x| 1.0 / x).collect());
            s.push(sl);
            bias.push(bl);
        }
        let diff = (0..nl)
            .map(|l| {
                if !net.is_signed(l) {
                    return Vec::new();
                }
                let half = net.sizes[l] * net.sizes[l + 1];
                let w = net.weights[l];
                w[..half]
                    .iter()
                    .zip(&w[half..])
                    .map(|(p, m)| p - m)
                    .collect()
            })
            .collect();
        let n1 = net.sizes[1];
        let pair_diff = if let Some(d) = known_diff {
            d
        } else if net.sizes[0] & 1 == 0 {
            net.weights[0]
                .chunks_exact(2 * n1)
                .flat_map(|r| r[..n1].iter().zip(&r[n1..]).map(|(p, m)| p - m))
                .collect()
        } else {
            Vec::new()
        };
        Sums {
            s,
            inv,
            bias,
            diff,
            pair_diff,
        }
    }

    /// Takes the input layer's pair differences out (leaving these sums unusable
    /// until replaced), as scratch for the next [`SgdStep::new`].
    pub fn take_pair_diff(&mut self) -> Vec<f64> {
        std::mem::take(&mut self.pair_diff)
    }

    /// The matrix coupling weight layer `l`'s two sides (`n_l × n_{l+1}`).
    fn coupling_matrix<'a>(&'a self, net: &DenseLayers<'a>, l: usize) -> &'a [f64] {
        if net.is_signed(l) {
            &self.diff[l]
        } else {
            net.weights[l]
        }
    }
}

/// The coupling of free layer `l` to its free neighbours for one block of `rows`
/// samples: `V_{l−1} W_{l−1}` (for `l ≥ 2`) `+ V_{l+1} W_lᵀ` (for `l < L`) into
/// `buf`; `false` if neither.
fn coupling(
    net: &DenseLayers,
    sums: &Sums,
    l: usize,
    states: &[&mut [f64]],
    rows: usize,
    buf: &mut Vec<f64>,
) -> bool {
    let n = net.sizes[l];
    let nl = net.n_free_layers();
    if l == 1 && nl == 1 {
        return false;
    }
    buf.resize(rows * n, 0.0);
    let mut accum = Accum::Replace;
    if l >= 2 {
        let m = net.sizes[l - 1];
        matmul(
            rows_mut(buf, rows, n),
            accum,
            self::rows(states[l - 2], rows, m),
            self::rows(sums.coupling_matrix(net, l - 1), m, n),
            net.gain(l - 1),
            Par::Seq,
        );
        accum = Accum::Add;
    }
    if l < nl {
        let m = net.sizes[l + 1];
        matmul(
            rows_mut(buf, rows, n),
            accum,
            self::rows(states[l], rows, m),
            self::rows(sums.coupling_matrix(net, l), n, m).transpose(),
            net.gain(l),
            Par::Seq,
        );
    }
    true
}

/// How a layer's entries are updated from their drive `t`.
#[derive(Clone, Copy)]
enum Rule<'a> {
    /// `t / s` (inverse `inv[j]`).
    Linear(&'a [f64]),
    /// `clip(t / s, lo, hi)`: ideal diodes.
    Clip(&'a [f64], f64, f64),
    /// The root of the node's scalar equation: smooth diodes.
    Smooth(&'a [f64], f64, f64),
    /// `t × d[k]`, a per-entry factor (the adjoint's inverse diagonal; `batch × n`,
    /// indexed by the sample's row in the whole batch).
    Scale(&'a [f64]),
}

/// The update of one entry from its drive `t` and per-entry factor `w`.
#[derive(Clone, Copy)]
enum PassOp {
    /// `t × w`.
    Mul,
    /// `clip(t × w, lo, hi)`.
    Clip(f64, f64),
}

/// `v[j] ← op(Σ parts[·][j], w[j])` for one row; returns the largest change, NaN
/// if a voltage or change is not finite. Plain loops (the update, writing the
/// changes to `dv`, then a four-lane maximum) that the compiler vectorises (one
/// loop with `f64::max` and a running maximum stayed scalar: 6.3 ns per entry
/// against 0.8), for AVX2 where present.
#[inline]
fn fused_pass(v: &mut [f64], parts: [&[f64]; 4], w: &[f64], dv: &mut Vec<f64>, op: PassOp) -> f64 {
    let n = v.len();
    dv.resize(n, 0.0);
    pass(v, parts, w, &mut dv[..n], op)
}

with_avx2! {
    fn pass / pass_avx2 / pass_body(
        v: &mut [f64],
        parts: [&[f64]; 4],
        w: &[f64],
        dv: &mut [f64],
        op: PassOp,
    ) -> f64 {
        let n = v.len();
        let [a, b, c, d] = parts;
        let (a, b, c, d, w, dv) = (&a[..n], &b[..n], &c[..n], &d[..n], &w[..n], &mut dv[..n]);
        match op {
            PassOp::Mul => {
                for j in 0..n {
                    let x = (a[j] + b[j] + c[j] + d[j]) * w[j];
                    dv[j] = (x - v[j]).abs();
                    v[j] = x;
                }
            }
            PassOp::Clip(lo, hi) => {
                for j in 0..n {
                    let x = clip((a[j] + b[j] + c[j] + d[j]) * w[j], lo, hi);
                    dv[j] = (x - v[j]).abs();
                    v[j] = x;
                }
            }
        }
        max_change(dv)
    }
}

with_avx2! {
    /// One `(+, −)` row pair of the input layer's SGD step by pairs:
    /// `g± ← clip(g± − r (d1 ∓ c), lo, hi)`, their difference over `c` and both added
    /// to the column sums `acc` (`+` row first, as the sums from scratch add rows).
    fn pair_update / pair_update_avx2 / pair_update_body(
        plus: &mut [f64],
        minus: &mut [f64],
        d1: &[f64],
        c: &mut [f64],
        acc: &mut [f64],
        r: f64,
        lo: f64,
        hi: f64,
    ) {
        let m = plus.len();
        let (minus, d1, c, acc) = (&mut minus[..m], &d1[..m], &mut c[..m], &mut acc[..m]);
        for j in 0..m {
            let p = clip(plus[j] - r * (d1[j] - c[j]), lo, hi);
            let q = clip(minus[j] - r * (d1[j] + c[j]), lo, hi);
            plus[j] = p;
            minus[j] = q;
            c[j] = p - q;
            acc[j] = acc[j] + p + q;
        }
    }
}

/// The largest entry of `dv` (all ≥ 0 or NaN), NaN if any is infinite or NaN.
#[inline(always)]
fn max_change(dv: &[f64]) -> f64 {
    const LANES: usize = 4;
    let mut lane = [0.0f64; LANES];
    // Σ change × 0 per lane: stays 0 unless a change is infinite or NaN.
    let mut bad = [0.0f64; LANES];
    let mut chunks = dv.chunks_exact(LANES);
    for ch in &mut chunks {
        for k in 0..LANES {
            lane[k] = if ch[k] > lane[k] { ch[k] } else { lane[k] };
            bad[k] += ch[k] * 0.0;
        }
    }
    for &x in chunks.remainder() {
        lane[0] = if x > lane[0] { x } else { lane[0] };
        bad[0] += x * 0.0;
    }
    if bad.iter().any(|&x| x != 0.0) {
        return f64::NAN;
    }
    lane.into_iter().fold(0.0, max_nan)
}

/// `clip(x, lo, hi)` as selects: a NaN stays NaN (and is reported as a change).
#[inline]
fn clip(x: f64, lo: f64, hi: f64) -> f64 {
    let x = if x < lo { lo } else { x };
    if x > hi {
        hi
    } else {
        x
    }
}

/// The larger of two changes, NaN winning.
#[inline]
fn max_nan(a: f64, b: f64) -> f64 {
    if b > a || b.is_nan() {
        b
    } else {
        a
    }
}

/// Samples per block of the relaxation (see [`sweep_blocks`]): about `BLOCK_ENTRIES`
/// voltages of the widest free layer, so that a block's fields stay in a core's cache
/// through its sweeps.
const BLOCK_ENTRIES: usize = 16 * 1024;

/// Rows per block for `net`: a function of the layer widths only, so that results
/// never depend on the number of threads.
fn block_rows(net: &DenseLayers) -> usize {
    let widest = net.sizes[1..].iter().copied().max().unwrap_or(1).max(1);
    (BLOCK_ENTRIES / widest).clamp(4, 64)
}

/// Block coordinate descent to `opts`' stop on blocks of consecutive samples in
/// parallel (the samples are independent problems: each block sweeps to its own
/// tolerance, with its working set in cache, instead of streaming the whole batch
/// through memory at every sweep); `fixed` (layer 1) and `inj` (last layer) are per
/// sample, as in [`sweep_block`]. Returns the largest sweep count of the blocks.
#[allow(clippy::too_many_arguments)]
fn sweep_blocks<'f>(
    net: &DenseLayers,
    sums: &Sums,
    batch: usize,
    states: &mut [Vec<f64>],
    fixed: Option<&[f64]>,
    bias: &[Vec<f64>],
    inj: Option<&[f64]>,
    rule: &(dyn Fn(usize) -> Rule<'f> + Sync),
    opts: RelaxOptions,
    what: &str,
    par: Parallelism,
) -> Result<usize> {
    let br = block_rows(net);
    let nb = batch.div_ceil(br);
    let mut blocks: Vec<Vec<&mut [f64]>> = (0..nb).map(|_| Vec::new()).collect();
    for (l, s) in states.iter_mut().enumerate() {
        let n = net.sizes[l + 1];
        for (b, ch) in s.chunks_mut(br * n).enumerate() {
            blocks[b].push(ch);
        }
    }
    let (n1, nlast) = (net.sizes[1], net.sizes[net.n_free_layers()]);
    let zeros = vec![0.0; net.sizes[1..].iter().copied().max().unwrap_or(0)];
    with_threads(par, || {
        let sweeps = blocks
            .into_par_iter()
            .enumerate()
            .map(|(b, mut st)| {
                let (row0, rows) = (b * br, st[0].len() / n1);
                let fixed = fixed.map(|x| &x[row0 * n1..(row0 + rows) * n1]);
                let inj = inj.map(|x| &x[row0 * nlast..(row0 + rows) * nlast]);
                let mut buf = Vec::new();
                iterate(opts, what, || {
                    sweep_block(
                        net, sums, &mut st, fixed, bias, inj, rows, row0, &mut buf, &zeros, rule,
                    )
                })
            })
            .collect::<Result<Vec<usize>>>()?;
        Ok(sweeps.into_iter().max().unwrap_or(0))
    })
}

/// One sweep over both colour classes of one block of `rows` samples starting at
/// sample `row0`: each free layer's entries are set by `rule(l)` from their drive
/// `t` = coupling + bias + `fixed` (layer 1) + `inj` (last layer), all given for
/// the block's rows. Returns the largest change.
#[allow(clippy::too_many_arguments)]
fn sweep_block<'f>(
    net: &DenseLayers,
    sums: &Sums,
    states: &mut [&mut [f64]],
    fixed: Option<&[f64]>,
    bias: &[Vec<f64>],
    inj: Option<&[f64]>,
    rows: usize,
    row0: usize,
    buf: &mut Vec<f64>,
    zeros: &[f64],
    rule: &(dyn Fn(usize) -> Rule<'f> + Sync),
) -> f64 {
    let nl = net.n_free_layers();
    let mut change = 0.0f64;
    let mut dv = Vec::new();
    let dvb = &mut dv;
    for parity in [1usize, 0] {
        for l in (1..=nl).filter(|l| l % 2 == parity) {
            let n = net.sizes[l];
            let coupled = coupling(net, sums, l, states, rows, buf);
            let b = &bias[l - 1][..];
            let inj = if l == nl { inj } else { None };
            let fixed = if l == 1 { fixed } else { None };
            let rule = rule(l);
            let zeros = &zeros[..n];
            for (si, v) in states[l - 1].chunks_mut(n).enumerate() {
                let row = si * n..(si + 1) * n;
                // t = bias + coupling + fixed + injections (absent parts read as
                // zeros, so that the common rules run as one branch-free pass).
                let c = if coupled { &buf[row.clone()] } else { zeros };
                let f = fixed.map_or(zeros, |x| &x[row.clone()]);
                let i = inj.map_or(zeros, |x| &x[row.clone()]);
                let moved = match rule {
                    Rule::Linear(inv) => fused_pass(v, [b, c, f, i], inv, dvb, PassOp::Mul),
                    Rule::Clip(inv, lo, hi) => {
                        fused_pass(v, [b, c, f, i], inv, dvb, PassOp::Clip(lo, hi))
                    }
                    Rule::Scale(d) => {
                        let k = row0 + si;
                        fused_pass(v, [b, c, f, i], &d[k * n..(k + 1) * n], dvb, PassOp::Mul)
                    }
                    Rule::Smooth(s, lo, hi) => {
                        let mut moved = 0.0f64;
                        for j in 0..n {
                            let t = b[j] + c[j] + f[j] + i[j];
                            let x = node_root(net, s[j], t, lo, hi, v[j]);
                            moved = max_nan(moved, (x - v[j]).abs());
                            v[j] = x;
                        }
                        moved
                    }
                };
                change = max_nan(change, moved);
            }
        }
    }
    change
}

fn check_states<S: AsRef<[f64]>>(
    net: &DenseLayers,
    states: &[S],
    batch: usize,
    what: &str,
) -> Result<()> {
    let nl = net.n_free_layers();
    if states.len() != nl {
        return Err(invalid(format!(
            "{} {what} arrays for {nl} free layers",
            states.len()
        )));
    }
    for (l, s) in states.iter().enumerate() {
        check_len(
            &format!("{what} of layer {}", l + 1),
            s.as_ref().len(),
            batch * net.sizes[l + 1],
        )?;
    }
    Ok(())
}

/// Sweeps until `change <= tol` (or exactly `max_sweeps` with `fixed`).
fn iterate(opts: RelaxOptions, what: &str, mut sweep: impl FnMut() -> f64) -> Result<usize> {
    let mut sweeps = 0;
    loop {
        let change = sweep();
        sweeps += 1;
        if !change.is_finite() {
            return Err(Error::Convergence {
                iterations: sweeps,
                residual: change,
                detail: format!("{what}: non-finite voltages"),
            });
        }
        if opts.fixed {
            if sweeps >= opts.max_sweeps {
                return Ok(sweeps);
            }
        } else if change <= opts.tol {
            return Ok(sweeps);
        } else if sweeps >= opts.max_sweeps {
            return Err(Error::Convergence {
                iterations: sweeps,
                residual: change,
                detail: format!("{what}: voltage change per sweep"),
            });
        }
    }
}

/// Exact block coordinate descent to equilibrium.
///
/// `d1` is [`drive`]'s `X W_0`; `states[l−1]` holds free layer `l`'s voltages
/// (`batch × n_l`) and is both the warm start and the result; `inj` are currents
/// injected into the last layer's nodes (`batch × n_L`, e.g. EP's nudging); `sums`
/// are the network's [`Sums`]. Returns the number of sweeps. With `fixed`, exactly
/// `max_sweeps` sweeps run; otherwise a [`Error::Convergence`] is returned if the
/// voltages still move more than `tol` after `max_sweeps`.
#[allow(clippy::too_many_arguments)]
pub fn relax(
    net: &DenseLayers,
    sums: &Sums,
    d1: &[f64],
    states: &mut [Vec<f64>],
    inj: Option<&[f64]>,
    batch: usize,
    opts: RelaxOptions,
    par: Parallelism,
) -> Result<usize> {
    sums.check(net)?;
    let nl = net.n_free_layers();
    check_len("layer-1 drive", d1.len(), batch * net.sizes[1])?;
    check_states(net, states, batch, "state")?;
    if let Some(inj) = inj {
        check_len("injections", inj.len(), batch * net.sizes[nl])?;
        if inj.iter().any(|v| !v.is_finite()) {
            return Err(invalid("injected currents must be finite".into()));
        }
    }
    let (lo, hi) = ideal_bounds(net);
    if lo > hi {
        return Err(Error::Infeasible {
            diodes: vec![],
            detail: format!("ideal diodes bound every hidden node to [{lo}, {hi}]: empty"),
        });
    }
    let smooth = smooth_diodes(net);
    let rule = |l: usize| -> Rule<'_> {
        let (s, inv) = (&sums.s[l - 1][..], &sums.inv[l - 1][..]);
        if l == nl {
            Rule::Linear(inv)
        } else if smooth {
            Rule::Smooth(s, lo, hi)
        } else {
            Rule::Clip(inv, lo, hi)
        }
    };
    sweep_blocks(
        net,
        sums,
        batch,
        states,
        Some(d1),
        &sums.bias,
        inj,
        &rule,
        opts,
        "dense block coordinate descent",
        par,
    )
}

/// Adjoint of the equilibrium for a cost with gradient `rhs` (`batch × n_L`) at
/// the last layer's nodes: solves the network linearized at `states` (resistors;
/// smooth diodes by their incremental conductance; a hidden node held by an ideal
/// diode is clamped, λ = 0) with the currents `rhs` injected, by the same block
/// coordinate descent. Returns λ per free layer (`batch × n_l`) and the sweeps.
pub fn adjoint(
    net: &DenseLayers,
    sums: &Sums,
    states: &[&[f64]],
    rhs: &[f64],
    batch: usize,
    opts: RelaxOptions,
    par: Parallelism,
) -> Result<(Vec<Vec<f64>>, usize)> {
    sums.check(net)?;
    let nl = net.n_free_layers();
    check_len("adjoint right-hand side", rhs.len(), batch * net.sizes[nl])?;
    check_states(net, states, batch, "state")?;
    let (lo, hi) = ideal_bounds(net);
    let smooth = smooth_diodes(net);
    // Diagonal of the linearized network per hidden entry: 0 where clamped.
    let inv_diag: Vec<Vec<f64>> = (1..=nl)
        .map(|l| {
            let n = net.sizes[l];
            let (s, inv) = (&sums.s[l - 1], &sums.inv[l - 1]);
            states[l - 1]
                .par_chunks(n)
                .flat_map_iter(|v| {
                    (0..n).map(move |j| {
                        if l == nl {
                            inv[j]
                        } else if v[j] <= lo || v[j] >= hi {
                            0.0
                        } else if smooth {
                            1.0 / (s[j] - diode_current_in(net, v[j]).1)
                        } else {
                            inv[j]
                        }
                    })
                })
                .collect()
        })
        .collect();
    let mut lam: Vec<Vec<f64>> = (1..=nl).map(|l| vec![0.0; batch * net.sizes[l]]).collect();
    let zero_bias: Vec<Vec<f64>> = (1..=nl).map(|l| vec![0.0; net.sizes[l]]).collect();
    // λ_j = t_j / diag_j, the diagonal per sample (a node clamped in one sample
    // may be free in another).
    let rule = |l: usize| Rule::Scale(&inv_diag[l - 1]);
    let sweeps = sweep_blocks(
        net,
        sums,
        batch,
        &mut lam,
        None,
        &zero_bias,
        Some(rhs),
        &rule,
        opts,
        "dense adjoint block coordinate descent",
        par,
    )?;
    Ok((lam, sweeps))
}

/// A checked gradient step `g ← clip(g − rates[l] · G_l, lo, hi)` on every weight
/// layer and bias, ready to apply ([`SgdStep::apply`]). `G` are the per-resistor
/// sums of [`branch_products`] for the fields P (zero on the inputs) and Q. When Q's
/// inputs are `(v, −v)` pairs and `0 < lo ≤ hi < ∞`, the input layer's sums are never
/// stored: `C = Q⁺ᵀ P_1` (half the size) updates both rows of each pair in one pass.
pub struct SgdStep {
    rates: Vec<f64>,
    lo: f64,
    hi: f64,
    first: usize,
    /// Input layer by pairs: `C` (`n_0/2 × n_1`) and the upper diagonal sums.
    paired: Option<(Vec<f64>, Vec<f64>)>,
    weights: Vec<Vec<f64>>,
    biases: Vec<(Vec<f64>, Vec<f64>)>,
}

impl SgdStep {
    /// Computes and checks the step against the present conductances of `net`: an
    /// error (nothing to apply) if a result would not be finite and positive.
    /// `scratch` becomes the storage of the input layer's products (e.g. the
    /// previous [`Sums`]' pair differences, [`Sums::take_pair_diff`], so that a
    /// training loop allocates no large array per step; or an empty vector).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        net: &DenseLayers,
        p: Field,
        q: Field,
        batch: usize,
        rates: &[f64],
        lo: f64,
        hi: f64,
        par: Parallelism,
        scratch: Vec<f64>,
    ) -> Result<Self> {
        let nl = net.n_free_layers();
        if rates.len() != nl {
            return Err(invalid(format!("{nl} weight layers: one rate each")));
        }
        if let Some(r) = rates.iter().find(|r| !r.is_finite()) {
            return Err(invalid(format!("learning rates must be finite, not {r}")));
        }
        let (n0, m) = (net.sizes[0], net.sizes[1]);
        let pair = if p.inputs.is_empty() && lo > 0.0 && hi.is_finite() && !net.is_signed(0) {
            paired_half(q.inputs, batch, n0)
        } else {
            None
        };
        let first = usize::from(pair.is_some());
        let (weights, biases) = branch_products_from(net, p, q, batch, par, first, false)?;
        for l in first..nl {
            sgd_check(net.weights[l], &weights[l], rates[l], lo, hi)?;
        }
        for l in 0..nl {
            if !net.bias_pos[l].is_empty() {
                sgd_check(net.bias_pos[l], &biases[l].0, rates[l], lo, hi)?;
            }
            if !net.bias_neg[l].is_empty() {
                sgd_check(net.bias_neg[l], &biases[l].1, rates[l], lo, hi)?;
            }
        }
        let paired = match pair {
            Some(qh) => {
                let c = with_threads(par, || {
                    Ok(paired_cross_into(
                        scratch,
                        net,
                        &qh,
                        p.states[0],
                        batch,
                        par.dense(),
                    ))
                })?;
                let d1 = node_products(p.states[0], q.states[0], m);
                if c.iter().chain(&d1).any(|v| !v.is_finite()) {
                    return Err(invalid("the gradient has non-finite entries".into()));
                }
                Some((c, d1))
            }
            None => None,
        };
        Ok(SgdStep {
            rates: rates.to_vec(),
            lo,
            hi,
            first,
            paired,
            weights,
            biases,
        })
    }

    /// Applies the step to the conductances it was computed for (same shapes). On
    /// the input layer by pairs it also returns what [`Sums`] needs of the new `W_0`
    /// (pair differences, column sums: see [`Sums::new_trusted_with`]), computed in
    /// the same pass.
    #[allow(clippy::needless_range_loop, clippy::type_complexity)]
    pub fn apply(
        &mut self,
        weights: &mut [Vec<f64>],
        bias_pos: &mut [Vec<f64>],
        bias_neg: &mut [Vec<f64>],
        par: Parallelism,
    ) -> Result<Option<(Vec<f64>, Vec<f64>)>> {
        let (lo, hi) = (self.lo, self.hi);
        let nl = self.rates.len();
        if weights.len() != nl || bias_pos.len() != nl || bias_neg.len() != nl {
            return Err(invalid(format!("{nl} weight layers expected")));
        }
        with_threads(par, || {
            let mut input = None;
            if let Some((c, d1)) = &mut self.paired {
                // C is overwritten by the new pair differences, row by row.
                let (r, m) = (self.rates[0], d1.len());
                let pairs = COLSUM_BLOCK / 2;
                let partials: Vec<Vec<f64>> = weights[0]
                    .par_chunks_mut(COLSUM_BLOCK * m)
                    .zip(c.par_chunks_mut(pairs * m))
                    .map(|(blk, cb)| {
                        let mut acc = vec![0.0; m];
                        for (rows2, ci) in blk.chunks_exact_mut(2 * m).zip(cb.chunks_mut(m)) {
                            let (plus, minus) = rows2.split_at_mut(m);
                            pair_update(plus, minus, d1, ci, &mut acc, r, lo, hi);
                        }
                        acc
                    })
                    .collect();
                let colsum = sum_in_order(partials, m);
                input = Some((std::mem::take(c), colsum));
            }
            for l in self.first..nl {
                sgd_apply(&mut weights[l], &self.weights[l], self.rates[l], lo, hi);
            }
            for l in 0..nl {
                if !bias_pos[l].is_empty() {
                    sgd_apply(&mut bias_pos[l], &self.biases[l].0, self.rates[l], lo, hi);
                }
                if !bias_neg[l].is_empty() {
                    sgd_apply(&mut bias_neg[l], &self.biases[l].1, self.rates[l], lo, hi);
                }
            }
            Ok(input)
        })
    }
}

/// Checks that one gradient step `g ← clip(g − rate · grad, lo, hi)` keeps every
/// conductance finite and positive (see [`sgd_apply`]).
pub fn sgd_check(g: &[f64], grad: &[f64], rate: f64, lo: f64, hi: f64) -> Result<()> {
    check_len("gradient", grad.len(), g.len())?;
    if lo > 0.0 && hi.is_finite() && rate.is_finite() {
        // Clipping to [lo, hi] ⊂ (0, ∞) keeps every finite result valid: only the
        // gradient needs checking.
        if grad.par_iter().any(|d| !d.is_finite()) {
            return Err(invalid("the gradient has non-finite entries".into()));
        }
        return Ok(());
    }
    let bad = g.par_iter().zip(grad.par_iter()).any(|(&x, &d)| {
        let y = (x - rate * d).max(lo).min(hi);
        !(y.is_finite() && y > 0.0)
    });
    if bad {
        return Err(invalid(
            "a step would make a conductance non-positive or non-finite".into(),
        ));
    }
    Ok(())
}

/// One gradient step on conductances in place: `g ← clip(g − rate · grad, lo, hi)`
/// (no clipping with `lo = −∞`, `hi = ∞`). Call [`sgd_check`] first: this does not
/// check.
pub fn sgd_apply(g: &mut [f64], grad: &[f64], rate: f64, lo: f64, hi: f64) {
    g.par_iter_mut().zip(grad.par_iter()).for_each(|(x, &d)| {
        *x = (*x - rate * d).max(lo).min(hi);
    });
}

/// A node field over a dense network: input-layer values (`batch × n_0`, or empty
/// for zero), free-layer values, and the values at the `+` and `−` bias sources.
#[derive(Debug, Clone, Copy)]
pub struct Field<'a> {
    /// Input-layer values (`batch × n_0`), or empty: all zero.
    pub inputs: &'a [f64],
    /// Free-layer values, `states[l−1]` of shape `batch × n_l`.
    pub states: &'a [&'a [f64]],
    /// Values at the `+` and `−` bias sources (the same for every sample).
    pub bias: (f64, f64),
}

/// Per-resistor sums over the batch of `(a p_i − p_j)(a q_i − q_j)` for two fields
/// P, Q (`a` the layer's gain, node `i` on the lower side).
/// Returns, per weight layer, a row-major `n_l × n_{l+1}` matrix, and per free
/// layer the sums for its `+` and `−` bias resistors (empty where it has none).
#[allow(clippy::type_complexity)]
pub fn branch_products(
    net: &DenseLayers,
    p: Field,
    q: Field,
    batch: usize,
    par: Parallelism,
) -> Result<(Vec<Vec<f64>>, Vec<(Vec<f64>, Vec<f64>)>)> {
    branch_products_from(net, p, q, batch, par, 0, true)
}

/// [`branch_products`] for the weight layers `first..` only (the others are
/// returned empty); the bias sums of every layer.
#[allow(clippy::type_complexity)]
fn branch_products_from(
    net: &DenseLayers,
    p: Field,
    q: Field,
    batch: usize,
    par: Parallelism,
    first: usize,
    validate: bool,
) -> Result<(Vec<Vec<f64>>, Vec<(Vec<f64>, Vec<f64>)>)> {
    if validate {
        net.validate()?;
    }
    let nl = net.n_free_layers();
    for f in [&p, &q] {
        if !f.inputs.is_empty() {
            check_len("input field", f.inputs.len(), batch * net.sizes[0])?;
        }
        if f.states.len() != nl {
            return Err(invalid(format!(
                "{} state arrays for {nl} free layers",
                f.states.len()
            )));
        }
        for (l, s) in f.states.iter().enumerate() {
            check_len(
                &format!("field of layer {}", l + 1),
                s.len(),
                batch * net.sizes[l + 1],
            )?;
        }
    }
    let fpar = par.dense();
    // Σ_s p_i q_i for every node of a layer (0: inputs).
    let diag = |l: usize| -> Vec<f64> {
        let n = net.sizes[l];
        let (pv, qv): (&[f64], &[f64]) = if l == 0 {
            (p.inputs, q.inputs)
        } else {
            (p.states[l - 1], q.states[l - 1])
        };
        if pv.is_empty() || qv.is_empty() {
            return vec![0.0; n];
        }
        node_products(pv, qv, n)
    };
    with_threads(par, || {
        let diags: Vec<Vec<f64>> = (0..=nl).map(diag).collect();
        let mut weights = Vec::with_capacity(nl);
        for l in 0..nl {
            if l < first {
                weights.push(Vec::new());
                continue;
            }
            let (half, m) = (net.sizes[l], net.sizes[l + 1]);
            let signed = net.is_signed(l);
            let n = net.rows_of(l);
            let mut g = vec![0.0; n * m];
            // cross = P_lᵀ Q_{l+1} + Q_lᵀ P_{l+1}; G = a² diag_l ⊕ diag_{l+1} − a cross.
            // A signed layer's lower side is [P, −P] per sample (its ± copies).
            fn lower<'b>(f: &Field<'b>, l: usize) -> Option<&'b [f64]> {
                if l == 0 {
                    (!f.inputs.is_empty()).then_some(f.inputs)
                } else {
                    Some(f.states[l - 1])
                }
            }
            let side = |f: &Field<'_>| -> Option<Vec<f64>> {
                let x = lower(f, l)?;
                Some(if signed {
                    x.chunks_exact(half)
                        .flat_map(|r| r.iter().copied().chain(r.iter().map(|v| -v)))
                        .collect()
                } else {
                    x.to_vec()
                })
            };
            // (v, −v) input pairs with P zero there: one product of half the size,
            // row 2i gets −a C_i and row 2i+1 gets +a C_i (C = Q⁺ᵀ P_1).
            let pair = if l == 0 && p.inputs.is_empty() {
                paired_half(q.inputs, batch, half)
            } else {
                None
            };
            if let Some(qh) = pair {
                let c = paired_cross(net, &qh, p.states[0], batch, fpar);
                // P is zero on the inputs, so their diagonal term vanishes: the
                // upper side's diagonal is added in the same pass.
                let dn = &diags[1];
                g.par_chunks_mut(2 * m)
                    .zip(c.par_chunks(m))
                    .for_each(|(rows2, ci)| {
                        let (plus, minus) = rows2.split_at_mut(m);
                        for (((gp, gm), &cij), &dj) in plus.iter_mut().zip(minus).zip(ci).zip(dn) {
                            *gp = dj - cij;
                            *gm = dj + cij;
                        }
                    });
                weights.push(g);
                continue;
            } else {
                // cross = P_lᵀ Q_{l+1} + Q_lᵀ P_{l+1}
                let mut accum = Accum::Replace;
                for (lo_f, up_f) in [(&p, &q), (&q, &p)] {
                    if let Some(side_l) = side(lo_f) {
                        matmul(
                            rows_mut(&mut g, n, m),
                            accum,
                            rows(&side_l, batch, n).transpose(),
                            rows(up_f.states[l], batch, m),
                            -net.gain(l),
                            fpar,
                        );
                        accum = Accum::Add;
                    }
                }
            }
            let (dl, dn) = (&diags[l], &diags[l + 1]);
            let a2 = net.gain(l) * net.gain(l);
            g.par_chunks_mut(m).enumerate().for_each(|(i, row)| {
                // (−p)(−q) = p q: both copies of node i share its diagonal
                let di = dl[i % half];
                for (gij, &dj) in row.iter_mut().zip(dn) {
                    *gij += a2 * di + dj;
                }
            });
            weights.push(g);
        }
        // Bias resistors: Σ_s (p_j − p_src)(q_j − q_src).
        let mut biases = Vec::with_capacity(nl);
        for l in 1..=nl {
            let n = net.sizes[l];
            let (pv, qv) = (&p.states[l - 1], &q.states[l - 1]);
            let one = |present: bool, ps: f64, qs: f64| -> Vec<f64> {
                if !present {
                    return Vec::new();
                }
                let mut d = vec![0.0; n];
                for (pr, qr) in pv.chunks_exact(n).zip(qv.chunks_exact(n)) {
                    for ((dj, &a), &b) in d.iter_mut().zip(pr).zip(qr) {
                        *dj += (a - ps) * (b - qs);
                    }
                }
                d
            };
            biases.push((
                one(!net.bias_pos[l - 1].is_empty(), p.bias.0, q.bias.0),
                one(!net.bias_neg[l - 1].is_empty(), p.bias.1, q.bias.1),
            ));
        }
        Ok((weights, biases))
    })
}

#[cfg(test)]
#[path = "tests/dense_tests.rs"]
mod tests;
