//! Numeric sparse Cholesky on a cached symbolic analysis (faer, supernodal or
//! simplicial as faer's flop heuristic chooses, AMD ordering).

use crate::compile::Compiled;
use crate::error::{Error, Result};
use crate::trisolve::{self, Plan, Scratch};
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt::factor::LltRegularization;
use faer::sparse::linalg::cholesky::{LltRef, SymbolicCholesky, SymbolicCholeskyRaw};
use faer::sparse::{SparseColMatRef, SymbolicSparseColMatRef};
use faer::{Conj, MatMut, Par, Side};

/// How much parallelism the solvers may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parallelism {
    /// Everything on the calling thread.
    Serial,
    /// Up to this many threads (0: as many as rayon's pool has).
    Threads(usize),
}

impl Default for Parallelism {
    fn default() -> Self {
        Parallelism::Threads(0)
    }
}

impl Parallelism {
    /// Number of threads this setting allows.
    pub fn n_threads(self) -> usize {
        match self {
            Parallelism::Serial => 1,
            Parallelism::Threads(0) => rayon::current_num_threads(),
            Parallelism::Threads(n) => n,
        }
    }
    /// faer's parallelism for one factorization or solve.
    ///
    /// On two threads faer's parallel supernodal factorization was slower than the
    /// serial one at every size measured on a 2-core machine (2D lattices of 10k to
    /// 4M edges: 534 against 435 ms at 1M edges, 47 against 33 ms at 180k, and 60%
    /// slower when the cores are shared), so two threads factorise serially (a
    /// batch still solves its samples in parallel).
    pub(crate) fn faer(self) -> Par {
        match self.n_threads() {
            0..=2 => Par::Seq,
            n => Par::rayon(n),
        }
    }
}

impl Parallelism {
    /// faer's parallelism for a large dense product (a deep resistive network's
    /// drive and cross products): every allowed thread. Unlike the sparse
    /// factorization (see [`Parallelism::faer`]), a dense product of this size
    /// gains from the second core.
    pub(crate) fn dense(self) -> Par {
        match self.n_threads() {
            0 | 1 => Par::Seq,
            n => Par::rayon(n),
        }
    }
}

/// Runs `f` in a rayon pool of the allowed size (a one-thread pool for `Serial`),
/// or in the current pool when it already has that size.
pub fn with_threads<T: Send>(par: Parallelism, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    let n = par.n_threads().max(1);
    if n == rayon::current_num_threads() {
        return f();
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build()
        .map_err(|e| Error::InvalidInput(format!("thread pool: {e}")))?;
    pool.install(f)
}

/// A numeric factor: values of L for a given symbolic analysis, plus scratch.
pub struct Factor<'a> {
    compiled: &'a Compiled,
    symbolic: &'a SymbolicCholesky<u32>,
    l_values: Vec<f64>,
    mem: MemBuffer,
    par: Par,
    /// Threads the single right-hand-side solves may use.
    threads: usize,
    /// Supernodal layout and the two-thread split of the solves (built on first use).
    layout: Option<std::sync::Arc<(Structure<'a>, Plan)>>,
    y: Vec<f64>,
    scratch: Scratch,
    valid: bool,
}

impl<'a> Factor<'a> {
    /// Allocates the factor storage for `compiled` (which must have free nodes).
    pub fn new(compiled: &'a Compiled, par: Parallelism) -> Self {
        let symbolic = compiled
            .symbolic
            .as_ref()
            .expect("Factor::new needs at least one free node");
        let threads = par.n_threads();
        let par = par.faer();
        let req = symbolic.factorize_numeric_llt_scratch::<f64>(par, Default::default());
        Factor {
            compiled,
            symbolic,
            l_values: vec![0.0; symbolic.len_val()],
            mem: MemBuffer::new(req),
            par,
            threads,
            layout: None,
            y: Vec::new(),
            scratch: Scratch::default(),
            valid: false,
        }
    }

    /// Numeric factorization of the matrix with the compiled pattern and `values`.
    pub fn factorize(&mut self, values: &[f64]) -> Result<()> {
        let n = self.compiled.n_free;
        let pattern = SymbolicSparseColMatRef::new_checked(
            n,
            n,
            &self.compiled.col_ptr,
            None,
            &self.compiled.row_idx,
        );
        let a = SparseColMatRef::new(pattern, values);
        self.valid = false;
        self.symbolic
            .factorize_numeric_llt::<f64>(
                &mut self.l_values,
                a,
                Side::Lower,
                LltRegularization::default(),
                self.par,
                MemStack::new(&mut self.mem),
                Default::default(),
            )
            .map_err(|e| {
                Error::Numerical(format!(
                    "Cholesky factorization failed ({e:?}): the conductance matrix is not positive definite"
                ))
            })?;
        self.valid = true;
        Ok(())
    }

    /// Solves K x = rhs in place (one right-hand side; see [`crate::trisolve`]).
    pub fn solve_in_place(&mut self, rhs: &mut [f64]) {
        debug_assert!(self.valid);
        if simplicial_solve(self.symbolic, &self.l_values, rhs) {
            return;
        }
        let layout = self.layout();
        solve_one(
            &layout,
            self.symbolic,
            &self.l_values,
            rhs,
            self.threads,
            &mut self.y,
            &mut self.scratch,
        );
    }

    /// The factor's layout and the solves' split, built on first use and shared
    /// (the low-rank corrections walk the same layout).
    pub(crate) fn layout(&mut self) -> std::sync::Arc<(Structure<'a>, Plan)> {
        let symbolic = self.symbolic;
        self.layout
            .get_or_insert_with(|| {
                let st = Structure::new(symbolic);
                let plan = Plan::new(&st);
                std::sync::Arc::new((st, plan))
            })
            .clone()
    }

    /// Solves K X = RHS for a column-major block of right-hand sides (scratch allocated here).
    pub fn solve_block(&self, rhs: &mut [f64], ncols: usize, par: Par) {
        debug_assert!(self.valid);
        let llt = LltRef::<'_, u32, f64>::new(self.symbolic, &self.l_values);
        let n = self.compiled.n_free;
        let mut mem = MemBuffer::new(self.symbolic.solve_in_place_scratch::<f64>(ncols, par));
        let mat = MatMut::from_column_major_slice_mut(rhs, n, ncols);
        llt.solve_in_place_with_conj(Conj::No, mat, par, MemStack::new(&mut mem));
    }

    /// The values of L (layout: [`Structure`]).
    pub(crate) fn l_values(&self) -> &[f64] {
        &self.l_values
    }

    /// The fill-reducing permutation (forward, inverse): row i of L is free node
    /// `forward[i]`; `None` for the identity.
    pub(crate) fn perm(&self) -> (Option<&'a [u32]>, Option<&'a [u32]>) {
        match self.symbolic.perm() {
            Some(p) => {
                let (f, i) = p.arrays();
                (Some(f), Some(i))
            }
            None => (None, None),
        }
    }

    /// Solves L y = rhs in place (permuted order).
    pub(crate) fn l_solve(&mut self, rhs: &mut [f64]) {
        self.triangular(rhs, trisolve::l_solve);
    }

    /// Solves Lᵀ x = rhs in place (permuted order).
    pub(crate) fn lt_solve(&mut self, rhs: &mut [f64]) {
        self.triangular(rhs, trisolve::lt_solve);
    }

    /// One of [`trisolve`]'s substitutions with this factor.
    fn triangular(
        &mut self,
        rhs: &mut [f64],
        solve: fn(&Structure, &Plan, &[f64], &mut [f64], usize, &mut Scratch),
    ) {
        debug_assert!(self.valid);
        let layout = self.layout();
        let (st, plan) = &*layout;
        solve(
            st,
            plan,
            &self.l_values,
            rhs,
            self.threads,
            &mut self.scratch,
        );
    }

    /// The values of L (for caching), leaving the factor empty.
    pub fn take_values(&mut self) -> Vec<f64> {
        self.valid = false;
        std::mem::take(&mut self.l_values)
    }

    /// Length of L's values (for memory accounting).
    pub fn len(&self) -> usize {
        self.l_values.len()
    }

    /// Whether the factor holds no values.
    pub fn is_empty(&self) -> bool {
        self.l_values.is_empty()
    }
}

/// Solves K x = rhs in place when the factor is simplicial, with faer's column loops,
/// and returns true; false for a supernodal factor. Small factors (faer chooses
/// simplicial ones below ~15k free nodes on a 2D lattice) are faster this way (10k
/// free nodes: 0.19 ms against 0.27 ms; supernodal at 22k: 1.07 ms against 0.44 ms
/// with [`trisolve`]).
fn simplicial_solve(symbolic: &SymbolicCholesky<u32>, l: &[f64], rhs: &mut [f64]) -> bool {
    if !matches!(symbolic.raw(), SymbolicCholeskyRaw::Simplicial(_)) {
        return false;
    }
    let n = rhs.len();
    let llt = LltRef::<'_, u32, f64>::new(symbolic, l);
    let mut mem = MemBuffer::new(symbolic.solve_in_place_scratch::<f64>(1, Par::Seq));
    let mat = MatMut::from_column_major_slice_mut(rhs, n, 1);
    llt.solve_in_place_with_conj(Conj::No, mat, Par::Seq, MemStack::new(&mut mem));
    true
}

/// Solves K x = rhs in place with the supernodal factor values `l` (one right-hand
/// side): permutation, then [`trisolve`]'s forward and backward substitutions.
fn solve_one(
    layout: &(Structure, Plan),
    symbolic: &SymbolicCholesky<u32>,
    l: &[f64],
    rhs: &mut [f64],
    threads: usize,
    y: &mut Vec<f64>,
    scratch: &mut Scratch,
) {
    let (st, plan) = layout;
    y.resize(rhs.len(), 0.0);
    let fwd = symbolic.perm().map(|p| p.arrays().0);
    match fwd {
        Some(fwd) => y
            .iter_mut()
            .zip(fwd)
            .for_each(|(y, &f)| *y = rhs[f as usize]),
        None => y.copy_from_slice(rhs),
    }
    trisolve::l_solve(st, plan, l, y, threads, scratch);
    trisolve::lt_solve(st, plan, l, y, threads, scratch);
    match fwd {
        Some(fwd) => y.iter().zip(fwd).for_each(|(&y, &f)| rhs[f as usize] = y),
        None => rhs.copy_from_slice(y),
    }
}

/// A read-only factor shared between threads and calls (e.g. cached in the network).
pub struct SharedFactor<'a> {
    compiled: &'a Compiled,
    symbolic: &'a SymbolicCholesky<u32>,
    values: std::sync::Arc<Vec<f64>>,
    /// Layout for single right-hand-side solves (built on first use).
    layout: std::sync::OnceLock<(Structure<'a>, Plan)>,
}

impl<'a> SharedFactor<'a> {
    /// Wraps factor values computed for `compiled`'s symbolic analysis.
    pub fn new(compiled: &'a Compiled, values: std::sync::Arc<Vec<f64>>) -> Self {
        let symbolic = compiled
            .symbolic
            .as_ref()
            .expect("a factor needs at least one free node");
        assert_eq!(
            values.len(),
            symbolic.len_val(),
            "factor values of another analysis"
        );
        SharedFactor {
            compiled,
            symbolic,
            values,
            layout: std::sync::OnceLock::new(),
        }
    }

    /// The shared values.
    pub fn values(&self) -> std::sync::Arc<Vec<f64>> {
        self.values.clone()
    }

    /// Solves K x = rhs in place for one right-hand side on up to `threads` threads
    /// (see [`crate::trisolve`]).
    pub fn solve_one(&self, rhs: &mut [f64], threads: usize) {
        let symbolic = self.symbolic;
        if simplicial_solve(symbolic, &self.values, rhs) {
            return;
        }
        let layout = self.layout.get_or_init(|| {
            let st = Structure::new(symbolic);
            let plan = Plan::new(&st);
            (st, plan)
        });
        solve_one(
            layout,
            symbolic,
            &self.values,
            rhs,
            threads,
            &mut Vec::new(),
            &mut Scratch::default(),
        );
    }

    /// Solves K X = RHS for a column-major block of right-hand sides.
    pub fn solve_block(&self, rhs: &mut [f64], ncols: usize, par: Par) {
        let llt = LltRef::<'_, u32, f64>::new(self.symbolic, &self.values);
        let n = self.compiled.n_free;
        let mut mem = MemBuffer::new(self.symbolic.solve_in_place_scratch::<f64>(ncols, par));
        let mat = MatMut::from_column_major_slice_mut(rhs, n, ncols);
        llt.solve_in_place_with_conj(Conj::No, mat, par, MemStack::new(&mut mem));
    }
}

/// Supernode starts (and the end), pattern starts and lengths, value starts, rows.
type Layout<'a> = (Vec<usize>, Vec<usize>, Vec<usize>, Vec<usize>, &'a [u32]);

/// The layout of a Cholesky factor's values as supernodes (a simplicial factor is
/// one single-column supernode per column): supernode s holds columns
/// `begin[s]..begin[s + 1]` (permuted order) as a column-major block whose rows are
/// those columns followed by its pattern (rows below the diagonal block, ascending).
pub(crate) struct Structure<'a> {
    pub(crate) begin: Vec<usize>,
    pat_start: Vec<usize>,
    pat_len: Vec<usize>,
    val_start: Vec<usize>,
    rows: &'a [u32],
    /// Parent supernode in the elimination tree (`u32::MAX` at a root).
    pub(crate) parent: Vec<u32>,
    /// Supernode of each (permuted) column.
    pub(crate) super_of: Vec<u32>,
    /// Estimated flops of one numeric factorization.
    pub(crate) factor_flops: f64,
}

impl<'a> Structure<'a> {
    fn new(symbolic: &'a SymbolicCholesky<u32>) -> Self {
        let (begin, pat_start, pat_len, val_start, rows): Layout<'a> = match symbolic.raw() {
            SymbolicCholeskyRaw::Supernodal(sym) => {
                let ns = sym.n_supernodes();
                let mut begin: Vec<usize> =
                    sym.supernode_begin().iter().map(|&x| x as usize).collect();
                begin.push(sym.supernode_end()[ns - 1] as usize);
                (
                    begin,
                    sym.col_ptr_for_row_idx()[..ns]
                        .iter()
                        .map(|&x| x as usize)
                        .collect(),
                    sym.nnz_per_super()[..ns]
                        .iter()
                        .map(|&x| x as usize)
                        .collect(),
                    sym.col_ptr_for_val()[..ns]
                        .iter()
                        .map(|&x| x as usize)
                        .collect(),
                    sym.row_idx(),
                )
            }
            SymbolicCholeskyRaw::Simplicial(sym) => {
                // Each column stores its diagonal first (faer's convention).
                let cp = sym.col_ptr();
                let n = sym.nrows();
                (
                    (0..=n).collect(),
                    (0..n).map(|j| cp[j] as usize + 1).collect(),
                    (0..n).map(|j| (cp[j + 1] - cp[j]) as usize - 1).collect(),
                    (0..n).map(|j| cp[j] as usize).collect(),
                    sym.row_idx(),
                )
            }
        };
        let ns = begin.len() - 1;
        let n = begin[ns];
        let mut super_of = vec![0u32; n];
        for s in 0..ns {
            super_of[begin[s]..begin[s + 1]]
                .iter_mut()
                .for_each(|x| *x = s as u32);
        }
        let mut factor_flops = 0.0;
        let parent = (0..ns)
            .map(|s| {
                let pat = &rows[pat_start[s]..pat_start[s] + pat_len[s]];
                let (nc, pl) = ((begin[s + 1] - begin[s]) as f64, pat.len() as f64);
                factor_flops += nc * nc * (nc / 3.0 + pl) + nc * pl * pl;
                pat.iter().min().map_or(u32::MAX, |&r| super_of[r as usize])
            })
            .collect();
        Structure {
            begin,
            pat_start,
            pat_len,
            val_start,
            rows,
            parent,
            super_of,
            factor_flops,
        }
    }

    /// Number of supernodes.
    pub(crate) fn n_super(&self) -> usize {
        self.begin.len() - 1
    }

    /// Columns and pattern length of supernode `s`.
    pub(crate) fn dims(&self, s: usize) -> (usize, usize) {
        (self.begin[s + 1] - self.begin[s], self.pat_len[s])
    }

    /// The pattern of supernode `s` (rows below its diagonal block, ascending).
    pub(crate) fn pattern(&self, s: usize) -> &'a [u32] {
        &self.rows[self.pat_start[s]..self.pat_start[s] + self.pat_len[s]]
    }

    /// Rows of supernode `s`'s block, its values in `l`, and its pattern.
    pub(crate) fn block<'l>(&self, s: usize, l: &'l [f64]) -> (usize, &'l [f64], &'a [u32]) {
        let (nc, pl) = self.dims(s);
        let nr = nc + pl;
        (
            nr,
            &l[self.val_start[s]..self.val_start[s] + nr * nc],
            &self.rows[self.pat_start[s]..self.pat_start[s] + pl],
        )
    }
}
