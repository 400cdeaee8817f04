#![allow(clippy::needless_range_loop)]
use super::*;
use crate::network::{Network, SourceValue};
use crate::solve::{solve_batch, Method, SolveOptions};

/// A small random dense network, owned.
struct Owned {
    sizes: Vec<usize>,
    w: Vec<Vec<f64>>,
    bp: Vec<Vec<f64>>,
    bn: Vec<Vec<f64>>,
}

/// Borrowed rows of owned fields, as [`Field`] takes them.
fn refs(v: &[Vec<f64>]) -> Vec<&[f64]> {
    v.iter().map(|x| &x[..]).collect()
}

fn lcg(seed: &mut u64) -> f64 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ((*seed >> 11) as f64) / ((1u64 << 53) as f64)
}

fn random(sizes: &[usize], seed: u64) -> Owned {
    let mut s = seed;
    let w = (0..sizes.len() - 1)
        .map(|l| {
            (0..sizes[l] * sizes[l + 1])
                .map(|_| 0.1 + lcg(&mut s))
                .collect()
        })
        .collect();
    let b = |s: &mut u64| -> Vec<Vec<f64>> {
        sizes[1..]
            .iter()
            .map(|&n| (0..n).map(|_| 0.1 + lcg(s)).collect())
            .collect()
    };
    let bp = b(&mut s);
    let bn = b(&mut s);
    Owned {
        sizes: sizes.to_vec(),
        w,
        bp,
        bn,
    }
}

impl Owned {
    /// The weight and bias arrays as the slices a `DenseLayers` borrows.
    #[allow(clippy::type_complexity)]
    fn slices(&self) -> (Vec<&[f64]>, Vec<&[f64]>, Vec<&[f64]>) {
        fn f(v: &[Vec<f64>]) -> Vec<&[f64]> {
            v.iter().map(|x| &x[..]).collect()
        }
        (f(&self.w), f(&self.bp), f(&self.bn))
    }
}

const VB: f64 = 1.0;

/// The equilibrium of `net` for inputs `x` from zero, to tolerance `tol` (serial):
/// the network's sums and the free layers' voltages.
fn equilibrium(net: &DenseLayers, x: &[f64], batch: usize, tol: f64) -> (Sums, Vec<Vec<f64>>) {
    let sums = Sums::new(net).unwrap();
    let d1 = drive(net, &sums, x, batch, Parallelism::Serial).unwrap();
    let mut st: Vec<Vec<f64>> = net.sizes[1..]
        .iter()
        .map(|&n| vec![0.0; batch * n])
        .collect();
    let opts = RelaxOptions {
        tol,
        ..Default::default()
    };
    relax(
        net,
        &sums,
        &d1,
        &mut st,
        None,
        batch,
        opts,
        Parallelism::Serial,
    )
    .unwrap();
    (sums, st)
}

fn view<'a>(
    o: &'a Owned,
    w: &'a [&'a [f64]],
    bp: &'a [&'a [f64]],
    bn: &'a [&'a [f64]],
    lower: Option<HiddenDiode>,
) -> DenseLayers<'a> {
    DenseLayers {
        sizes: &o.sizes,
        weights: w,
        bias_pos: bp,
        bias_neg: bn,
        bias_voltage: VB,
        gains: &[],
        signed: &[],
        lower,
        upper: None,
    }
}

/// The same circuit as a general `Network`: inputs are the first n_0 nodes; returns
/// the network and the node index of every free layer's first node.
fn as_network(o: &Owned, lower: Option<HiddenDiode>) -> (Network, Vec<usize>) {
    let mut net = Network::new();
    let total: usize = o.sizes.iter().sum();
    let base = net.add_nodes(total + 3).unwrap();
    let mut first = vec![base];
    for l in 0..o.sizes.len() - 1 {
        first.push(first[l] + o.sizes[l]);
    }
    let (vp, vn, vd) = (base + total, base + total + 1, base + total + 2);
    for k in 0..o.sizes[0] {
        net.add_input(base + k).unwrap();
    }
    net.add_voltage_source(vp, SourceValue::Fixed(VB)).unwrap();
    net.add_voltage_source(vn, SourceValue::Fixed(-VB)).unwrap();
    for l in 0..o.sizes.len() - 1 {
        let (n, m) = (o.sizes[l], o.sizes[l + 1]);
        for i in 0..n {
            for j in 0..m {
                net.add_resistors(&[first[l] + i], &[first[l + 1] + j], &[o.w[l][i * m + j]])
                    .unwrap();
            }
        }
        for j in 0..m {
            net.add_resistors(&[vp], &[first[l + 1] + j], &[o.bp[l][j]])
                .unwrap();
            net.add_resistors(&[vn], &[first[l + 1] + j], &[o.bn[l][j]])
                .unwrap();
        }
    }
    if let Some(d) = lower {
        net.add_voltage_source(vd, SourceValue::Fixed(d.source))
            .unwrap();
        for l in 1..o.sizes.len() - 1 {
            for j in 0..o.sizes[l] {
                net.add_diodes(&[vd], &[first[l] + j], &[d.model]).unwrap();
            }
        }
    } else {
        net.add_resistors(&[vd], &[GROUND_FOR_TEST], &[1.0])
            .unwrap();
    }
    (net, first)
}

const GROUND_FOR_TEST: usize = crate::network::GROUND;

fn check_against_direct(sizes: &[usize], lower: Option<HiddenDiode>, seed: u64) {
    check_against_direct_batch(sizes, lower, seed, 3);
}

fn check_against_direct_batch(
    sizes: &[usize],
    lower: Option<HiddenDiode>,
    seed: u64,
    batch: usize,
) {
    let o = random(sizes, seed);
    let (w, bp, bn) = o.slices();
    let net = view(&o, &w, &bp, &bn, lower);
    let mut s = seed ^ 0x5a5a;
    let x: Vec<f64> = (0..batch * sizes[0])
        .map(|_| 4.0 * lcg(&mut s) - 2.0)
        .collect();
    let (_, states) = equilibrium(&net, &x, batch, 1e-14);

    let (gnet, first) = as_network(&o, lower);
    let sopts = SolveOptions {
        method: Method::Direct,
        ..Default::default()
    };
    let sol = solve_batch(&gnet, &x, batch, None, None, &sopts).unwrap();
    let nn = gnet.n_nodes();
    for si in 0..batch {
        for l in 1..sizes.len() {
            for j in 0..sizes[l] {
                let a = states[l - 1][si * sizes[l] + j];
                let b = sol.voltages[si * nn + first[l] + j];
                assert!((a - b).abs() < 1e-10, "layer {l} node {j}: {a} vs {b}");
            }
        }
    }
}

#[test]
fn linear_dense_equals_direct_solver() {
    check_against_direct(&[6, 5, 4], None, 1);
    check_against_direct(&[4, 7, 5, 3, 2], None, 2);
}

#[test]
fn ideal_and_smooth_diodes_equal_direct_solver() {
    for model in [
        DiodeModel::Ideal { v_on: 0.0 },
        DiodeModel::Relu {
            v_on: 0.1,
            g_on: 50.0,
        },
        DiodeModel::Shockley {
            i_s: 1e-14,
            n: 1.0,
            temperature: 300.15,
            gmin: 1e-12,
        },
    ] {
        let d = Some(HiddenDiode {
            source: 0.05,
            model,
        });
        check_against_direct(&[6, 5, 4], d, 3);
        check_against_direct(&[4, 7, 5, 3, 2], d, 4);
    }
}

#[test]
fn blocks_of_samples_equal_direct_solver() {
    // A wide hidden layer makes the relaxation split the batch into blocks of a few
    // samples (here 16384 / 2000 = 8 rows: blocks of 8, 8 and 5), each swept to the
    // tolerance on its own: every sample must still be the circuit's equilibrium.
    let sizes = [6, 2000, 3];
    let o = random(&sizes, 9);
    let (w, bp, bn) = o.slices();
    let net = view(&o, &w, &bp, &bn, None);
    assert_eq!(super::block_rows(&net), 8);
    let d = Some(HiddenDiode {
        source: 0.05,
        model: DiodeModel::Ideal { v_on: 0.0 },
    });
    check_against_direct_batch(&sizes, d, 9, 21);
    check_against_direct_batch(&sizes, None, 10, 17);
}

#[test]
fn non_finite_drive_is_an_error_not_a_clipped_voltage() {
    // An ideal diode clips a hidden node at its bound; a NaN drive must not be
    // clipped into a plausible voltage but reported.
    let sizes = [4, 3, 2];
    let o = random(&sizes, 5);
    let (w, bp, bn) = o.slices();
    let d = Some(HiddenDiode {
        source: 0.05,
        model: DiodeModel::Ideal { v_on: 0.0 },
    });
    let net = view(&o, &w, &bp, &bn, d);
    let sums = Sums::new(&net).unwrap();
    let mut d1 = vec![0.1; 2 * 3];
    d1[4] = f64::NAN;
    let mut states = vec![vec![0.0; 2 * 3], vec![0.0; 2 * 2]];
    let r = relax(
        &net,
        &sums,
        &d1,
        &mut states,
        None,
        2,
        RelaxOptions::default(),
        Parallelism::Serial,
    );
    assert!(matches!(r, Err(Error::Convergence { .. })), "{r:?}");
}

#[test]
fn branch_products_equal_per_edge_sums() {
    let sizes = [4, 3, 2];
    let o = random(&sizes, 9);
    let (w, bp, bn) = o.slices();
    let net = view(&o, &w, &bp, &bn, None);
    let batch = 2;
    let mut s = 77u64;
    let mut field = |n: usize| -> Vec<f64> { (0..n).map(|_| lcg(&mut s) - 0.5).collect() };
    let (pi, qi) = (field(batch * 4), field(batch * 4));
    let ps = vec![field(batch * 3), field(batch * 2)];
    let qs = vec![field(batch * 3), field(batch * 2)];
    let p = Field {
        inputs: &pi,
        states: &refs(&ps),
        bias: (0.3, -0.2),
    };
    let q = Field {
        inputs: &qi,
        states: &refs(&qs),
        bias: (1.0, -1.0),
    };
    let (gw, gb) = branch_products(&net, p, q, batch, Parallelism::Serial).unwrap();
    let val = |f: &Field, l: usize, si: usize, i: usize| -> f64 {
        if l == 0 {
            f.inputs[si * sizes[0] + i]
        } else {
            f.states[l - 1][si * sizes[l] + i]
        }
    };
    for l in 0..2 {
        for i in 0..sizes[l] {
            for j in 0..sizes[l + 1] {
                let want: f64 = (0..batch)
                    .map(|si| {
                        (val(&p, l, si, i) - val(&p, l + 1, si, j))
                            * (val(&q, l, si, i) - val(&q, l + 1, si, j))
                    })
                    .sum();
                let got = gw[l][i * sizes[l + 1] + j];
                assert!((want - got).abs() < 1e-14, "{want} vs {got}");
            }
        }
        for j in 0..sizes[l + 1] {
            let want: f64 = (0..batch)
                .map(|si| (val(&p, l + 1, si, j) - 0.3) * (val(&q, l + 1, si, j) - 1.0))
                .sum();
            assert!((want - gb[l].0[j]).abs() < 1e-14);
        }
    }
}

#[test]
fn adjoint_gives_the_derivative_of_a_linear_readout() {
    // C = Σ_s c · v_L(s): dC/dg_e = −Σ_s Δλ_e Δv_e, checked by finite differences.
    let sizes = [4, 5, 3];
    let d = Some(HiddenDiode {
        source: 0.0,
        model: DiodeModel::Ideal { v_on: 0.0 },
    });
    let batch = 2;
    let mut s = 5u64;
    let x: Vec<f64> = (0..batch * 4).map(|_| 4.0 * lcg(&mut s) - 2.0).collect();
    let c: Vec<f64> = (0..batch * 3).map(|_| lcg(&mut s) - 0.5).collect();
    let cost = |o: &Owned| -> (f64, Vec<Vec<f64>>) {
        let (w, bp, bn) = o.slices();
        let net = view(o, &w, &bp, &bn, d);
        let (sums, st) = equilibrium(&net, &x, batch, 1e-15);
        let opts = RelaxOptions {
            tol: 1e-15,
            ..Default::default()
        };
        let cval = st[1].iter().zip(&c).map(|(v, c)| v * c).sum();
        let (lam, _) = adjoint(
            &net,
            &sums,
            &refs(&st),
            &c,
            batch,
            opts,
            Parallelism::Serial,
        )
        .unwrap();
        let p = Field {
            inputs: &[],
            states: &refs(&lam),
            bias: (0.0, 0.0),
        };
        let q = Field {
            inputs: &x,
            states: &refs(&st),
            bias: (VB, -VB),
        };
        let (gw, _) = branch_products(&net, p, q, batch, Parallelism::Serial).unwrap();
        (
            cval,
            gw.into_iter()
                .map(|g| g.into_iter().map(|v| -v).collect())
                .collect(),
        )
    };
    let o = random(&sizes, 11);
    let (_, grad) = cost(&o);
    let h = 1e-6;
    for (l, k) in [(0usize, 3usize), (0, 17), (1, 4), (1, 14)] {
        let mut op = random(&sizes, 11);
        op.w[l][k] += h;
        let mut om = random(&sizes, 11);
        om.w[l][k] -= h;
        let fd = (cost(&op).0 - cost(&om).0) / (2.0 * h);
        assert!(
            (fd - grad[l][k]).abs() < 1e-7 * (1.0 + fd.abs()),
            "{fd} vs {}",
            grad[l][k]
        );
    }
}

#[test]
fn bad_shapes_and_values_are_errors() {
    let o = random(&[4, 3, 2], 1);
    let mut w: Vec<&[f64]> = o.w.iter().map(|x| &x[..]).collect();
    let bp: Vec<&[f64]> = o.bp.iter().map(|x| &x[..]).collect();
    let bn: Vec<&[f64]> = o.bn.iter().map(|x| &x[..]).collect();
    let bad = vec![-1.0; 6];
    w[1] = &bad;
    let net = view(&o, &w, &bp, &bn, None);
    assert!(matches!(Sums::new(&net), Err(Error::InvalidInput(_))));
    let w: Vec<&[f64]> = o.w.iter().map(|x| &x[..]).collect();
    let net = view(&o, &w, &bp, &bn, None);
    let sums = Sums::new(&net).unwrap();
    assert!(matches!(
        drive(&net, &sums, &[0.0; 7], 2, Parallelism::Serial),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        drive(&net, &sums, &[f64::NAN; 8], 2, Parallelism::Serial),
        Err(Error::InvalidInput(_))
    ));
}

/// Dense Gaussian elimination with partial pivoting (test reference).
fn gauss(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Vec<f64> {
    let n = b.len();
    for c in 0..n {
        let p = (c..n)
            .max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))
            .unwrap();
        a.swap(c, p);
        b.swap(c, p);
        for r in c + 1..n {
            let f = a[r][c] / a[c][c];
            for k in c..n {
                a[r][k] -= f * a[c][k];
            }
            b[r] -= f * b[c];
        }
    }
    let mut x = vec![0.0; n];
    for r in (0..n).rev() {
        let s: f64 = (r + 1..n).map(|k| a[r][k] * x[k]).sum();
        x[r] = (b[r] - s) / a[r][r];
    }
    x
}

#[test]
fn layer_gains_solve_the_transformer_coupled_equations() {
    // Stationarity of ½ Σ g_ij (a_l v_i − v_j)² + biases, assembled and solved
    // densely here, against the block coordinate descent with gains.
    let sizes = [3, 4, 3, 2];
    let gains = [1.5, -0.7, 2.0];
    let o = random(&sizes, 21);
    let (w, bp, bn) = o.slices();
    let mut net = view(&o, &w, &bp, &bn, None);
    net.gains = &gains;
    let x = [0.7, -1.2, 0.4];
    let nf: usize = sizes[1..].iter().sum();
    let off = |l: usize| -> usize { sizes[1..l].iter().sum() };
    let mut h = vec![vec![0.0; nf]; nf];
    let mut r = vec![0.0; nf];
    for l in 0..3 {
        let a = gains[l];
        for i in 0..sizes[l] {
            for j in 0..sizes[l + 1] {
                let g = o.w[l][i * sizes[l + 1] + j];
                let jj = off(l + 1) + j;
                h[jj][jj] += g;
                if l == 0 {
                    r[jj] += a * g * x[i];
                } else {
                    let ii = off(l) + i;
                    h[ii][ii] += a * a * g;
                    h[ii][jj] -= a * g;
                    h[jj][ii] -= a * g;
                }
            }
        }
        for j in 0..sizes[l + 1] {
            let jj = off(l + 1) + j;
            h[jj][jj] += o.bp[l][j] + o.bn[l][j];
            r[jj] += (o.bp[l][j] - o.bn[l][j]) * VB;
        }
    }
    let want = gauss(h, r);
    let (_, st) = equilibrium(&net, &x, 1, 1e-15);
    let got: Vec<f64> = st.concat();
    for (a, b) in got.iter().zip(&want) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }
    // Per-resistor sums see the branch voltage a v_i − v_j.
    let p = Field {
        inputs: &x,
        states: &refs(&st),
        bias: (VB, -VB),
    };
    let (gw, _) = branch_products(&net, p, p, 1, Parallelism::Serial).unwrap();
    let (i, j) = (2, 1);
    let dv = gains[1] * st[0][i] - st[1][j];
    assert!(
        (gw[1][i * sizes[2] + j] - dv * dv).abs() < 1e-12,
        "{} vs {}",
        gw[1][i * sizes[2] + j],
        dv * dv
    );
}

#[test]
fn paired_inputs_take_the_half_products_with_the_same_results() {
    // (v, −v) pairs: drive and branch products by the half-size products equal the
    // full ones (computed here on inputs whose pairs are broken by one ulp).
    let sizes = [6, 5, 3];
    let o = random(&sizes, 31);
    let (w, bp, bn) = o.slices();
    let net = view(&o, &w, &bp, &bn, None);
    let sums = Sums::new(&net).unwrap();
    let batch = 2;
    let mut s = 8u64;
    let mut x = vec![0.0; batch * 6];
    for p in x.chunks_exact_mut(2) {
        p[0] = 2.0 * lcg(&mut s) - 1.0;
        p[1] = -p[0];
    }
    let mut y = x.clone();
    y[1] = f64::from_bits(y[1].to_bits() + 1); // no longer an exact pair: full path
    let dx = drive(&net, &sums, &x, batch, Parallelism::Serial).unwrap();
    let dy = drive(&net, &sums, &y, batch, Parallelism::Serial).unwrap();
    for (a, b) in dx.iter().zip(&dy) {
        assert!((a - b).abs() < 1e-12 * (1.0 + b.abs()), "{a} vs {b}");
    }
    let st: Vec<Vec<f64>> = vec![
        (0..batch * 5).map(|_| lcg(&mut s)).collect(),
        (0..batch * 3).map(|_| lcg(&mut s)).collect(),
    ];
    let p = Field {
        inputs: &[],
        states: &refs(&st),
        bias: (0.0, 0.0),
    };
    let (gx, _) = branch_products(
        &net,
        p,
        Field {
            inputs: &x,
            states: &refs(&st),
            bias: (1.0, -1.0),
        },
        batch,
        Parallelism::Serial,
    )
    .unwrap();
    let (gy, _) = branch_products(
        &net,
        p,
        Field {
            inputs: &y,
            states: &refs(&st),
            bias: (1.0, -1.0),
        },
        batch,
        Parallelism::Serial,
    )
    .unwrap();
    for (a, b) in gx[0].iter().zip(&gy[0]) {
        assert!((a - b).abs() < 1e-12 * (1.0 + b.abs()), "{a} vs {b}");
    }
}

#[test]
fn sgd_step_by_pairs_equals_the_stored_sums_step() {
    let sizes = [6, 5, 3];
    let o = random(&sizes, 41);
    let (w, bp, bn) = o.slices();
    let net = view(&o, &w, &bp, &bn, None);
    let batch = 3;
    let mut s = 9u64;
    let mut x = vec![0.0; batch * 6];
    for p in x.chunks_exact_mut(2) {
        p[0] = 2.0 * lcg(&mut s) - 1.0;
        p[1] = -p[0];
    }
    let mut field = |n: usize| -> Vec<f64> { (0..n).map(|_| lcg(&mut s) - 0.5).collect() };
    let ps = vec![field(batch * 5), field(batch * 3)];
    let qs = vec![field(batch * 5), field(batch * 3)];
    let p = Field {
        inputs: &[],
        states: &refs(&ps),
        bias: (0.0, 0.0),
    };
    let q = Field {
        inputs: &x,
        states: &refs(&qs),
        bias: (1.0, -1.0),
    };
    let rates = [0.01, 0.02];
    let (lo, hi) = (0.05, 5.0);
    let mut step = SgdStep::new(
        &net,
        p,
        q,
        batch,
        &rates,
        lo,
        hi,
        Parallelism::Serial,
        vec![],
    )
    .unwrap();
    assert!(step.paired.is_some(), "exact pairs take the fused path");
    let (mut w1, mut p1, mut n1) = (o.w.clone(), o.bp.clone(), o.bn.clone());
    step.apply(&mut w1, &mut p1, &mut n1, Parallelism::Serial)
        .unwrap();
    // reference: the stored sums, then the plain clipped step
    let (g, b) = branch_products(&net, p, q, batch, Parallelism::Serial).unwrap();
    for l in 0..2 {
        for (k, (&got, &g0)) in w1[l].iter().zip(&o.w[l]).enumerate() {
            let want = (g0 - rates[l] * g[l][k]).max(lo).min(hi);
            assert!(
                (got - want).abs() < 1e-13,
                "layer {l} entry {k}: {got} vs {want}"
            );
        }
        for (j, &got) in p1[l].iter().enumerate() {
            let want = (o.bp[l][j] - rates[l] * b[l].0[j]).max(lo).min(hi);
            assert!((got - want).abs() < 1e-13);
        }
    }
    // a step that would leave a conductance non-positive without clipping is refused
    let big = [1e9, 1e9];
    let r = SgdStep::new(
        &net,
        p,
        q,
        batch,
        &big,
        f64::NEG_INFINITY,
        f64::INFINITY,
        Parallelism::Serial,
        vec![],
    );
    assert!(matches!(r, Err(Error::InvalidInput(_))));
}
