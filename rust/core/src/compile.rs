//! Topology analysis done once per topology: free-node numbering, floating-node
//! detection, the sparsity pattern of the reduced Laplacian (every resistor *and*
//! diode branch, so that diode iterations only change values), and the symbolic
//! Cholesky factorization with a fill-reducing ordering.

use crate::error::{Error, Result};
use crate::network::{Network, NONE};
use faer::sparse::linalg::cholesky::{
    factorize_symbolic_cholesky, CholeskySymbolicParams, SymbolicCholesky, SymmetricOrdering,
};
use faer::sparse::SymbolicSparseColMatRef;
use faer::Side;
use std::sync::OnceLock;

/// Where a branch writes into the values of the lower-triangular CSC matrix:
/// diagonal of its first node, diagonal of its second node, off-diagonal.
/// `NONE` where the node is clamped.
pub type Slots = [u32; 3];

/// The per-topology analysis of a network.
#[derive(Debug)]
pub struct Compiled {
    /// Number of free (unknown) node voltages.
    pub n_free: usize,
    /// Free index of each node, `NONE` for ground and clamped nodes.
    pub free_of_node: Vec<u32>,
    /// Node of each free index.
    pub node_of_free: Vec<u32>,
    /// Column pointers of the lower triangle of K (CSC, sorted rows, diagonal first).
    pub col_ptr: Vec<u32>,
    /// Row indices of the lower triangle of K.
    pub row_idx: Vec<u32>,
    /// Slots of each resistor.
    pub res_slots: Vec<Slots>,
    /// Slots of each diode.
    pub dio_slots: Vec<Slots>,
    /// Symbolic Cholesky factorization (ordering, elimination tree, supernodes).
    pub symbolic: Option<SymbolicCholesky<u32>>,
    /// Adjacency of the ideal-diode active-set prediction (built on first use).
    pub(crate) relax: OnceLock<crate::predict::Topology>,
}

struct UnionFind {
    parent: Vec<u32>,
}
impl UnionFind {
    fn new(n: usize) -> Self {
        UnionFind {
            parent: (0..n as u32).collect(),
        }
    }
    fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let p = self.parent[x as usize];
            self.parent[x as usize] = self.parent[p as usize];
            x = p;
        }
        x
    }
    fn union(&mut self, a: u32, b: u32) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.parent[ra.max(rb) as usize] = ra.min(rb);
        }
    }
}

impl Compiled {
    /// Analyses the topology of `net`.
    pub fn new(net: &Network) -> Result<Self> {
        let n = net.n_nodes;
        // Floating nodes: a free node must reach a clamped node (or ground) through
        // branches that conduct at every voltage (resistors, junction diodes).
        let mut uf = UnionFind::new(n);
        for (&a, &b) in net.res_a.iter().zip(&net.res_b) {
            uf.union(a, b);
        }
        for ((&a, &b), m) in net.dio_a.iter().zip(&net.dio_b).zip(&net.dio_model) {
            if m.always_conducts() {
                uf.union(a, b);
            }
        }
        // A two-port fixes each port's differential voltage, not its common mode:
        // its two terminals are joined, its two sides are not (see `crate::mna`).
        for q in net.tr_nodes.iter().chain(&net.gy_nodes) {
            uf.union(q[0], q[1]);
            uf.union(q[2], q[3]);
        }
        let mut anchored = vec![false; n];
        anchored[uf.find(0) as usize] = true;
        for &c in &net.vs_node {
            let r = uf.find(c);
            anchored[r as usize] = true;
        }
        let mut floating = Vec::new();
        let mut free_of_node = vec![NONE; n];
        let mut node_of_free = Vec::new();
        for v in 1..n {
            if net.clamp_of_node[v] != NONE {
                continue;
            }
            if !anchored[uf.find(v as u32) as usize] {
                floating.push(v);
                continue;
            }
            free_of_node[v] = node_of_free.len() as u32;
            node_of_free.push(v as u32);
        }
        if !floating.is_empty() {
            return Err(Error::FloatingNodes { nodes: floating });
        }
        let n_free = node_of_free.len();

        // Pattern of the lower triangle: column min(fa, fb) holds row max(fa, fb).
        let mut count = vec![1u32; n_free]; // the diagonal
        let branch_iter = || {
            net.res_a
                .iter()
                .zip(&net.res_b)
                .chain(net.dio_a.iter().zip(&net.dio_b))
        };
        for (&a, &b) in branch_iter() {
            let (fa, fb) = (free_of_node[a as usize], free_of_node[b as usize]);
            if fa != NONE && fb != NONE {
                count[fa.min(fb) as usize] += 1;
            }
        }
        let mut start = vec![0usize; n_free + 1];
        for j in 0..n_free {
            start[j + 1] = start[j] + count[j] as usize;
        }
        let mut rows = vec![0u32; start[n_free]];
        let mut fill: Vec<usize> = start[..n_free].to_vec();
        for (j, f) in fill.iter_mut().enumerate() {
            rows[*f] = j as u32;
            *f += 1;
        }
        for (&a, &b) in branch_iter() {
            let (fa, fb) = (free_of_node[a as usize], free_of_node[b as usize]);
            if fa != NONE && fb != NONE {
                let c = fa.min(fb) as usize;
                rows[fill[c]] = fa.max(fb);
                fill[c] += 1;
            }
        }
        // Sort and deduplicate each column (duplicate branches add into one entry).
        let mut col_ptr = Vec::with_capacity(n_free + 1);
        let mut row_idx = Vec::with_capacity(rows.len());
        col_ptr.push(0u32);
        for j in 0..n_free {
            let col = &mut rows[start[j]..start[j + 1]];
            col.sort_unstable();
            let mut last = NONE;
            for &r in col.iter() {
                if r != last {
                    row_idx.push(r);
                    last = r;
                }
            }
            if row_idx.len() >= NONE as usize {
                return Err(Error::InvalidInput(
                    "network too large for 32-bit indices".into(),
                ));
            }
            col_ptr.push(row_idx.len() as u32);
        }
        let slot = |a: u32, b: u32| -> Slots {
            let (fa, fb) = (free_of_node[a as usize], free_of_node[b as usize]);
            let diag = |f: u32| if f == NONE { NONE } else { col_ptr[f as usize] };
            let off = if fa != NONE && fb != NONE {
                let c = fa.min(fb) as usize;
                let (s, e) = (col_ptr[c] as usize, col_ptr[c + 1] as usize);
                let pos = row_idx[s..e]
                    .binary_search(&fa.max(fb))
                    .expect("pattern holds every branch");
                (s + pos) as u32
            } else {
                NONE
            };
            [diag(fa), diag(fb), off]
        };
        let res_slots: Vec<Slots> = net
            .res_a
            .iter()
            .zip(&net.res_b)
            .map(|(&a, &b)| slot(a, b))
            .collect();
        let dio_slots: Vec<Slots> = net
            .dio_a
            .iter()
            .zip(&net.dio_b)
            .map(|(&a, &b)| slot(a, b))
            .collect();

        let symbolic = if n_free == 0 {
            None
        } else {
            let pattern =
                SymbolicSparseColMatRef::new_checked(n_free, n_free, &col_ptr, None, &row_idx);
            Some(
                factorize_symbolic_cholesky(
                    pattern,
                    Side::Lower,
                    SymmetricOrdering::Amd,
                    CholeskySymbolicParams::default(),
                )
                .map_err(|e| Error::Numerical(format!("symbolic analysis failed: {e:?}")))?,
            )
        };
        Ok(Compiled {
            n_free,
            free_of_node,
            node_of_free,
            col_ptr,
            row_idx,
            res_slots,
            dio_slots,
            symbolic,
            relax: OnceLock::new(),
        })
    }

    /// Number of stored entries of the lower triangle of K.
    pub fn nnz(&self) -> usize {
        self.row_idx.len()
    }

    /// Number of stored values of the Cholesky factor.
    pub fn factor_len(&self) -> usize {
        self.symbolic.as_ref().map_or(0, |s| s.len_val())
    }
}

/// Adds a branch conductance `g` into `values` at its slots.
#[inline]
pub(crate) fn stamp(values: &mut [f64], s: &Slots, g: f64) {
    if s[0] != NONE {
        values[s[0] as usize] += g;
    }
    if s[1] != NONE {
        values[s[1] as usize] += g;
    }
    if s[2] != NONE {
        values[s[2] as usize] -= g;
    }
}

#[cfg(test)]
#[path = "tests/compile_tests.rs"]
mod tests;
