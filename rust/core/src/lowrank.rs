//! Low-rank corrections of a Cholesky factor: solves with K + U C Uᵀ on the factor
//! L Lᵀ = P K Pᵀ of K, without refactorising.
//!
//! When a few diodes change their conductance after a factorization, the new matrix
//! is K + U C Uᵀ, where each column of U is e_a − e_b over the free nodes of a changed
//! diode and C holds the conductance differences (negative for a diode that stopped
//! conducting). With W = L⁻¹ P U,
//!
//!   P (K + U C Uᵀ) Pᵀ = L (I + W C Wᵀ) Lᵀ,  (I + W C Wᵀ)⁻¹ = I − W (C⁻¹ + WᵀW)⁻¹ Wᵀ,
//!
//! so a solve is one forward solve with L, a dense m × m system (m changed diodes),
//! a correction y − W s and one backward solve: the cost of a plain solve plus the
//! columns of W. A column of W is a sparse forward solve: its nonzeros lie on the
//! elimination-tree paths from the diode's two nodes to the root (the supernodes that
//! are ancestors of their columns), a small part of L on large sparse networks.
//! Columns are kept across Newton steps until the next factorization, so a diode that
//! stays changed costs its column once.

use crate::factor::{Factor, Structure};
use faer::linalg::matmul::matmul;
use faer::linalg::triangular_solve::solve_lower_triangular_in_place;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

/// Columns of W computed together: the supernodes a group's paths share (the top of
/// the tree) are read once per group, with dense products over the group's columns.
/// 1M-edge lattice, 308 columns on two threads: 8 per group 57 ms, 16: 36 ms, 32:
/// 30 ms, 64: 36 ms (with the scratch over the group's supernodes only; over every
/// free node, 8 per group took 86 ms).
const GROUP: usize = 32;

/// A column of W = L⁻¹ P U: the values over whole supernodes of one etree path.
struct Column {
    /// Supernodes of the path, ascending.
    supers: Vec<u32>,
    /// Offset of each supernode's values in `vals`.
    offs: Vec<u32>,
    vals: Vec<f64>,
}

/// Columns of W computed since the last factorization, their Gram matrix, scratch.
pub(crate) struct LowRank {
    /// Column of each diode (`u32::MAX`: none yet).
    slot_of: Vec<u32>,
    diode_of: Vec<u32>,
    cols: Vec<Column>,
    /// Lower triangle of WᵀW over the cached columns, row by row.
    gram: Vec<Vec<f64>>,
    /// Scratch of each thread computing columns (the first also for paths).
    scratch: Vec<Scratch>,
    y: Vec<f64>,
    /// The last dense system S = C⁻¹ + WᵀW, LU-factorised, its columns' slots and
    /// coefficients (the Newton steps after a change of active set reuse it).
    lu: Lu,
    /// Low-rank solves since the last factorization.
    pub(crate) solves: u32,
}

/// An LU factorization of the dense system and what it was built for.
#[derive(Default)]
struct Lu {
    slots: Vec<usize>,
    coef: Vec<f64>,
    a: Vec<f64>,
    piv: Vec<usize>,
}

/// Scratch for computing columns.
#[derive(Default)]
struct Scratch {
    /// Dense scratch over the columns of a group's supernodes × [`GROUP`] columns
    /// (row-major), kept at zero between uses.
    wide: Vec<f64>,
    /// Offset of each supernode's columns in `wide` (valid for the current group's
    /// supernodes), and those supernodes.
    base: Vec<u32>,
    union: Vec<u32>,
    mark: Vec<u32>,
    stamp: u32,
    path: Vec<u32>,
}

/// Largest number of changed diodes handled without refactorising (the dense
/// system costs m³/3 flops and WᵀW m² sparse dot products).
pub(crate) const MAX_RANK: usize = 400;

impl LowRank {
    pub(crate) fn new(n_diodes: usize, n_free: usize) -> Self {
        LowRank {
            slot_of: vec![u32::MAX; n_diodes],
            diode_of: Vec::new(),
            cols: Vec::new(),
            gram: Vec::new(),
            scratch: vec![Scratch::default()],
            y: vec![0.0; n_free],
            lu: Lu::default(),
            solves: 0,
        }
    }

    /// Forgets the columns (the factor changed).
    pub(crate) fn clear(&mut self) {
        for &k in &self.diode_of {
            self.slot_of[k as usize] = u32::MAX;
        }
        self.diode_of.clear();
        self.cols.clear();
        self.gram.clear();
        self.lu = Lu::default();
        self.solves = 0;
    }
}

impl Scratch {
    /// Supernodes on the etree paths from the (permuted) columns `ends` to the root,
    /// ascending, into `self.path`.
    fn path_of(&mut self, st: &Structure, ends: &[usize]) {
        if self.mark.len() != st.n_super() {
            self.mark = vec![0; st.n_super()];
            self.stamp = 0;
        }
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            self.mark.iter_mut().for_each(|m| *m = 0);
            self.stamp = 1;
        }
        self.path.clear();
        for &e in ends {
            let mut s = st.super_of[e];
            while s != u32::MAX && self.mark[s as usize] != self.stamp {
                self.mark[s as usize] = self.stamp;
                self.path.push(s);
                s = st.parent[s as usize];
            }
        }
        self.path.sort_unstable();
    }

    /// Computes the columns of `new` (each: diode, its permuted end columns with
    /// signs), [`GROUP`] at a time: the supernodes the columns of a group share (the
    /// top of the tree, most of the work) are read once for the whole group, with
    /// dense triangular solves and products on the group's active columns.
    fn columns(
        &mut self,
        st: &Structure,
        l: &[f64],
        new: &[(u32, Vec<(usize, f64)>)],
    ) -> Vec<Column> {
        if self.base.len() != st.n_super() {
            self.base = vec![u32::MAX; st.n_super()];
        }
        let mut out = Vec::with_capacity(new.len());
        let mut pairs: Vec<(u32, u32)> = Vec::new();
        let mut xt: Vec<f64> = Vec::new();
        let mut below: Vec<f64> = Vec::new();
        let mut active: Vec<usize> = Vec::with_capacity(GROUP);
        for group in new.chunks(GROUP) {
            let mut cols: Vec<Column> = Vec::with_capacity(group.len());
            pairs.clear();
            for (j, (_, ends)) in group.iter().enumerate() {
                let idx: Vec<usize> = ends.iter().map(|e| e.0).collect();
                self.path_of(st, &idx);
                pairs.extend(self.path.iter().map(|&s| (s, j as u32)));
                cols.push(Column {
                    supers: self.path.clone(),
                    offs: Vec::with_capacity(self.path.len()),
                    vals: Vec::new(),
                });
            }
            pairs.sort_unstable();
            // The dense scratch holds the columns of the group's supernodes only.
            self.union.clear();
            self.union.extend(pairs.iter().map(|p| p.0));
            self.union.dedup();
            let mut len = 0u32;
            for &s in &self.union {
                self.base[s as usize] = len;
                len += (st.begin[s as usize + 1] - st.begin[s as usize]) as u32;
            }
            if self.wide.len() < len as usize * GROUP {
                self.wide.resize(len as usize * GROUP, 0.0);
            }
            let (base, sup) = (&self.base, &st.super_of);
            let loc = |i: usize| {
                let s = sup[i] as usize;
                (base[s] as usize + i - st.begin[s]) * GROUP
            };
            for (j, (_, ends)) in group.iter().enumerate() {
                for &(i, c) in ends {
                    self.wide[loc(i) + j] += c;
                }
            }
            let mut p = 0;
            while p < pairs.len() {
                let s = pairs[p].0 as usize;
                active.clear();
                while p < pairs.len() && pairs[p].0 as usize == s {
                    active.push(pairs[p].1 as usize);
                    p += 1;
                }
                let (b, e) = (st.begin[s], st.begin[s + 1]);
                let (nc, na) = (e - b, active.len());
                let (nr, blk, rows) = st.block(s, l);
                let pl = nr - nc;
                // The active columns' entries at this supernode, nc × na (column-major).
                xt.clear();
                xt.resize(nc * na, 0.0);
                let wb = loc(b);
                for (aj, &j) in active.iter().enumerate() {
                    for c in 0..nc {
                        let w = &mut self.wide[wb + c * GROUP + j];
                        xt[aj * nc + c] = *w;
                        *w = 0.0;
                    }
                }
                let top = MatRef::from_column_major_slice_with_stride(blk, nc, nc, nr);
                solve_lower_triangular_in_place(
                    top,
                    MatMut::from_column_major_slice_mut(&mut xt, nc, na),
                    Par::Seq,
                );
                for (aj, &j) in active.iter().enumerate() {
                    let col = &mut cols[j];
                    col.offs.push(col.vals.len() as u32);
                    col.vals.extend_from_slice(&xt[aj * nc..(aj + 1) * nc]);
                }
                if pl > 0 {
                    // Rows below the diagonal block: the ancestors' entries.
                    below.clear();
                    below.resize(pl * na, 0.0);
                    let bot = MatRef::from_column_major_slice_with_stride(&blk[nc..], pl, nc, nr);
                    matmul(
                        MatMut::from_column_major_slice_mut(&mut below, pl, na),
                        Accum::Replace,
                        bot,
                        MatRef::from_column_major_slice(&xt, nc, na),
                        1.0,
                        Par::Seq,
                    );
                    for (aj, &j) in active.iter().enumerate() {
                        for (r, &row) in rows.iter().enumerate() {
                            self.wide[loc(row as usize) + j] -= below[aj * pl + r];
                        }
                    }
                }
            }
            out.extend(cols);
        }
        out
    }
}

impl LowRank {
    /// Estimated flops of computing the columns of `diodes` not cached yet
    /// (`ends(k)`: the permuted free columns of diode k).
    pub(crate) fn new_column_flops(
        &mut self,
        st: &Structure,
        diodes: &[u32],
        ends: impl Fn(u32, &mut Vec<usize>),
    ) -> f64 {
        let mut flops = 0.0;
        let mut e = Vec::with_capacity(2);
        for &k in diodes {
            if self.slot_of[k as usize] != u32::MAX {
                continue;
            }
            e.clear();
            ends(k, &mut e);
            let sc = &mut self.scratch[0];
            sc.path_of(st, &e);
            for &s in &sc.path {
                let (nc, pl) = st.dims(s as usize);
                flops += (nc * (nc + 2 * pl)) as f64;
            }
        }
        flops
    }

    /// Computes and caches the columns of `new` (each: diode, its permuted end
    /// columns with signs) and their rows of WᵀW. The groups of columns are split
    /// between the pool's threads (each with its own scratch); the rows of WᵀW are
    /// dense products per supernode on one thread ([`gram_rows`]: 8 ms for 308
    /// columns at 1M edges).
    fn add_columns(&mut self, st: &Structure, l: &[f64], new: &[(u32, Vec<(usize, f64)>)]) {
        let groups = new.len().div_ceil(GROUP);
        let nt = rayon::current_num_threads().min(groups).max(1);
        while self.scratch.len() < nt {
            self.scratch.push(Scratch::default());
        }
        let chunk = groups.div_ceil(nt) * GROUP;
        let parts: Vec<Vec<Column>> = self.scratch[..nt]
            .par_iter_mut()
            .zip(new.par_chunks(chunk))
            .map(|(sc, part)| sc.columns(st, l, part))
            .collect();
        let fresh: Vec<Column> = parts.into_iter().flatten().collect();
        let rows = gram_rows(st, &self.cols, &fresh);
        for (((k, _), col), row) in new.iter().zip(fresh).zip(rows) {
            self.gram.push(row);
            self.slot_of[*k as usize] = self.cols.len() as u32;
            self.diode_of.push(*k);
            self.cols.push(col);
        }
    }

    /// Solves (K + U C Uᵀ) x = rhs in place, K being `factor`'s matrix, U the
    /// columns of `diodes` (`ends(k)`: the permuted free columns of diode k with
    /// their signs) and C = `coef`. Returns false, leaving `rhs` unspecified, when the
    /// small system is too ill-conditioned to trust (refactorise instead).
    pub(crate) fn solve(
        &mut self,
        factor: &mut Factor,
        st: &Structure,
        diodes: &[u32],
        coef: &[f64],
        ends: impl Fn(u32, &mut Vec<(usize, f64)>),
        rhs: &mut [f64],
    ) -> bool {
        let m = diodes.len();
        let new: Vec<(u32, Vec<(usize, f64)>)> = diodes
            .iter()
            .filter(|&&k| self.slot_of[k as usize] == u32::MAX)
            .map(|&k| {
                let mut e = Vec::with_capacity(2);
                ends(k, &mut e);
                (k, e)
            })
            .collect();
        if !new.is_empty() {
            self.add_columns(st, factor.l_values(), &new);
        }
        // S = C⁻¹ + WᵀW over the changed diodes.
        let slots: Vec<usize> = diodes
            .iter()
            .map(|&k| self.slot_of[k as usize] as usize)
            .collect();
        let same = self.lu.slots == slots
            && self.lu.coef.len() == m
            && self
                .lu
                .coef
                .iter()
                .zip(coef)
                .all(|(a, b)| a.to_bits() == b.to_bits());
        if !same {
            let mut s = vec![0.0; m * m];
            for i in 0..m {
                for j in 0..m {
                    let (a, b) = (slots[i].max(slots[j]), slots[i].min(slots[j]));
                    s[i * m + j] = self.gram[a][b];
                }
                let inv = 1.0 / coef[i];
                let sum = s[i * m + i] + inv;
                // A diode leaving the factor (negative coefficient) cancels its own
                // penalty: S_kk = uᵀK⁻¹u − 1/|c| is a small difference of two large
                // numbers. Beyond 1e8 of cancellation the correction loses too many
                // digits.
                if sum.is_nan() || sum.abs() <= 1e-8 * inv.abs() {
                    return false;
                }
                s[i * m + i] = sum;
            }
            let mut piv = vec![0; m];
            self.lu = Lu::default();
            if !lu_factor(&mut s, m, &mut piv) {
                return false;
            }
            self.lu = Lu {
                slots: slots.clone(),
                coef: coef.to_vec(),
                a: s,
                piv,
            };
        }
        // Permute, forward solve.
        let (fwd, _) = factor.perm();
        let n = rhs.len();
        for i in 0..n {
            self.y[i] = rhs[fwd.map_or(i, |f| f[i] as usize)];
        }
        factor.l_solve(&mut self.y);
        let mut t: Vec<f64> = slots
            .iter()
            .map(|&c| gather(st, &self.cols[c], &self.y))
            .collect();
        if !lu_apply(&self.lu.a, m, &self.lu.piv, &mut t) {
            return false;
        }
        for (i, &c) in slots.iter().enumerate() {
            scatter_sub(st, &self.cols[c], t[i], &mut self.y);
        }
        factor.lt_solve(&mut self.y);
        let (_, inv) = factor.perm();
        for i in 0..n {
            rhs[i] = self.y[inv.map_or(i, |f| f[i] as usize)];
        }
        self.solves += 1;
        rhs.iter().all(|x| x.is_finite())
    }
}

/// wᵀy for a column w.
fn gather(st: &Structure, w: &Column, y: &[f64]) -> f64 {
    let mut sum = 0.0;
    for (&s, &o) in w.supers.iter().zip(&w.offs) {
        let b = st.begin[s as usize];
        let nc = st.begin[s as usize + 1] - b;
        sum += w.vals[o as usize..o as usize + nc]
            .iter()
            .zip(&y[b..b + nc])
            .map(|(x, z)| x * z)
            .sum::<f64>();
    }
    sum
}

/// y −= a w.
fn scatter_sub(st: &Structure, w: &Column, a: f64, y: &mut [f64]) {
    if a == 0.0 {
        return;
    }
    for (&s, &o) in w.supers.iter().zip(&w.offs) {
        let b = st.begin[s as usize];
        let nc = st.begin[s as usize + 1] - b;
        for (z, x) in y[b..b + nc]
            .iter_mut()
            .zip(&w.vals[o as usize..o as usize + nc])
        {
            *z -= a * x;
        }
    }
}

/// LU factorization with partial pivoting of the dense m × m matrix `a` (row-major,
/// overwritten by the multipliers and U; `piv[k]`: the row swapped with k at step
/// k); false if a pivot vanishes against the matrix's scale.
fn lu_factor(a: &mut [f64], m: usize, piv: &mut [usize]) -> bool {
    let scale = a.iter().fold(0.0f64, |s, x| s.max(x.abs()));
    if !(scale.is_finite() && scale > 0.0) {
        return false;
    }
    for k in 0..m {
        let p = (k..m)
            .max_by(|&i, &j| a[i * m + k].abs().total_cmp(&a[j * m + k].abs()))
            .unwrap_or(k);
        if a[p * m + k].is_nan() || a[p * m + k].abs() <= 1e-14 * scale {
            return false;
        }
        piv[k] = p;
        if p != k {
            for j in 0..m {
                a.swap(k * m + j, p * m + j);
            }
        }
        let piv = a[k * m + k];
        let (top, below) = a.split_at_mut((k + 1) * m);
        let row_k = &top[k * m + k + 1..(k + 1) * m];
        for row in below.chunks_exact_mut(m) {
            let f = row[k] / piv;
            row[k] = f;
            if f != 0.0 {
                for (x, &u) in row[k + 1..].iter_mut().zip(row_k) {
                    *x -= f * u;
                }
            }
        }
    }
    true
}

/// Solves A x = b in place with [`lu_factor`]'s result; false if x is not finite.
fn lu_apply(a: &[f64], m: usize, piv: &[usize], b: &mut [f64]) -> bool {
    // The row swaps were applied to whole rows (the multipliers too): all of them
    // first, then the unit lower triangle.
    for (k, &p) in piv.iter().enumerate() {
        b.swap(k, p);
    }
    for k in 0..m {
        let bk = b[k];
        for i in k + 1..m {
            let f = a[i * m + k];
            if f != 0.0 {
                b[i] -= f * bk;
            }
        }
    }
    for k in (0..m).rev() {
        let mut x = b[k];
        for j in k + 1..m {
            x -= a[k * m + j] * b[j];
        }
        b[k] = x / a[k * m + k];
    }
    b.iter().all(|x| x.is_finite())
}

/// Rows of WᵀW for the `fresh` columns: row i holds the products with every `old`
/// column, with the fresh columns before i, and with itself. Computed supernode by
/// supernode: the columns through a supernode are its values times theirs, a dense
/// product where many columns share it (the top of the elimination tree, where most
/// of the work is).
fn gram_rows(st: &Structure, old: &[Column], fresh: &[Column]) -> Vec<Vec<f64>> {
    let no = old.len();
    let mut rows: Vec<Vec<f64>> = (0..fresh.len()).map(|i| vec![0.0; no + i + 1]).collect();
    // (supernode, column, offset) for every column through a supernode some fresh
    // column passes through.
    let mut touched = vec![false; st.n_super()];
    for c in fresh {
        for &s in &c.supers {
            touched[s as usize] = true;
        }
    }
    let mut entries: Vec<(u32, u32, u32)> = Vec::new();
    for (ci, c) in old.iter().chain(fresh).enumerate() {
        for (&s, &o) in c.supers.iter().zip(&c.offs) {
            if touched[s as usize] {
                entries.push((s, ci as u32, o));
            }
        }
    }
    entries.sort_unstable();
    let col = |ci: usize| if ci < no { &old[ci] } else { &fresh[ci - no] };
    let (mut vf, mut vo, mut prod) = (Vec::new(), Vec::new(), Vec::new());
    for group in entries.chunk_by(|x, y| x.0 == y.0) {
        let s = group[0].0 as usize;
        let nc = st.begin[s + 1] - st.begin[s];
        let vals =
            |&(_, ci, o): &(u32, u32, u32)| &col(ci as usize).vals[o as usize..o as usize + nc];
        // The fresh columns are last (indices no..), after every old one.
        let first_fresh = group.partition_point(|e| (e.1 as usize) < no);
        let (nf, na) = (group.len() - first_fresh, group.len());
        if nc * nf * na < 4096 {
            for (fi, ef) in group[first_fresh..].iter().enumerate() {
                let i = ef.1 as usize - no;
                let a = vals(ef);
                for eo in &group[..first_fresh + fi + 1] {
                    let j = eo.1 as usize;
                    rows[i][j] += a.iter().zip(vals(eo)).map(|(x, y)| x * y).sum::<f64>();
                }
            }
            continue;
        }
        // Dense: (nf × nc) times (nc × na).
        vf.clear();
        for ef in &group[first_fresh..] {
            vf.extend_from_slice(vals(ef));
        }
        vo.clear();
        for eo in group {
            vo.extend_from_slice(vals(eo));
        }
        prod.clear();
        prod.resize(nf * na, 0.0);
        matmul(
            MatMut::from_column_major_slice_mut(&mut prod, nf, na),
            Accum::Replace,
            MatRef::from_column_major_slice(&vf, nc, nf).transpose(),
            MatRef::from_column_major_slice(&vo, nc, na),
            1.0,
            Par::Seq,
        );
        for (fi, ef) in group[first_fresh..].iter().enumerate() {
            let i = ef.1 as usize - no;
            for (oi, eo) in group[..first_fresh + fi + 1].iter().enumerate() {
                rows[i][eo.1 as usize] += prod[oi * nf + fi];
            }
        }
    }
    rows
}

#[cfg(test)]
#[path = "tests/lowrank_tests.rs"]
mod tests;
