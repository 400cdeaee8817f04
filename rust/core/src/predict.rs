//! A cheap refinement of the ideal-diode active set predicted from the linear solution.
//!
//! The first Newton step of a network whose diodes are all ideal solves it with every
//! diode open; the diodes forward-biased there are a first guess of the conducting
//! set. Shorting them moves the voltages around each of them, and on large lattices
//! a few percent of the guesses are wrong (1M-edge lattice: about 3,100 of 50,000),
//! too many for a low-rank correction of the factor built for the guess. Most of those
//! errors are local, and local relaxation finds them: block Gauss–Seidel sweeps in
//! which each cluster of nodes joined by conducting diodes moves as one (an ideal
//! diode is a rigid link, so relaxing its two nodes separately would stall), then
//! a new guess (an open diode forward-biased switches on; a conducting diode whose
//! current, from Kirchhoff's current law over its cluster, runs backwards switches
//! off), a few times over. Each sweep costs O(edges), and a round after the first
//! rebuilds only the clusters its switches touched.
//!
//! The sweeps are bound by memory traffic (1M-edge lattice: about 28 MB a sweep),
//! so the adjacency is compact: free-node indices, single-precision weights, and the
//! part that depends on the topology only cached with the compiled structure. They
//! over-relax (SOR), which leaves fewer wrong guesses for the same sweeps, and run
//! on two threads where allowed with a result independent of the thread count (see
//! [`Topology`]).
//!
//! The result is only a prediction: the solver then takes one Newton step with this
//! active set frozen, and the usual active-set / multiplier iteration corrects
//! whatever is still wrong, so exactness never depends on it.

use crate::compile::Compiled;
use crate::factor::Parallelism;
use crate::network::{DiodeModel, Network, NONE};
use rayon::prelude::*;

/// Free nodes per part of a sweep: the number of parts is the largest power of two
/// not above n_free / PART_NODES, at least 1 (so networks below 65,536 free nodes
/// sweep in one part, serially) and at most [`MAX_PARTS`]. It depends on the network
/// only, never on the thread count, so the prediction is the same on any number of
/// threads.
const PART_NODES: usize = 1 << 15;
const MAX_PARTS: usize = 8;
/// `part` of a node that, or one of whose resistive neighbours, lies in another part.
const SEP: u8 = u8::MAX;
/// Sweep tags: a node relaxed alone in its part's sweep, a node its part's sweep
/// skips (in a cluster, on the separator, or without resistors); other tags are the
/// cluster rooted at the node.
const ALONE: u32 = NONE - 1;
const SKIP: u32 = NONE;
/// Over-relaxation factor of the sweeps. 1M-edge lattice, 4 rounds of 3 sweeps: 217
/// guesses left wrong at 1.4, 234 at 1.3, 215 at 1.5, 319 without (Gauss–Seidel).
const OMEGA: f64 = 1.4;

/// The relaxation's adjacency that depends on the topology only (in free-node
/// indices), built once and cached with the compiled structure.
///
/// The free nodes are cut into contiguous ranges (parts). A cluster whose nodes and
/// their resistive neighbours all lie in one part is interior to it; the others (on
/// the cuts) form the separator. A sweep relaxes the parts' interiors, which share
/// no node, side by side, then the separator (a backward sweep in the reverse
/// order): a Gauss–Seidel ordering whose result does not depend on the threads.
#[derive(Debug)]
pub(crate) struct Topology {
    /// Resistors between free nodes, at each free node: the other end, the resistor.
    ptr: Vec<u32>,
    nbr: Vec<u32>,
    edge: Vec<u32>,
    /// Resistors from a free node to a clamped one: free index, node, resistor.
    to_clamped: Vec<(u32, u32, u32)>,
    /// Free index of each diode's ends (`NONE` at a clamped node).
    end: Vec<[u32; 2]>,
    /// Diodes between two free nodes, at each free node.
    dio_ptr: Vec<u32>,
    dio_k: Vec<u32>,
    /// Parts: boundaries (free indices), part of each free node, separator nodes.
    bounds: Vec<usize>,
    part: Vec<u8>,
    sep: Vec<u32>,
}

/// The number of parts for `n_free` free nodes.
fn n_parts(n_free: usize) -> usize {
    let p = (n_free / PART_NODES).max(1);
    // The largest power of two not above p.
    (1usize << (usize::BITS - 1 - p.leading_zeros())).min(MAX_PARTS)
}

/// Compressed sparse rows: offsets of the entries of each of `n` rows, the entries
/// of pairs (x, y) going to rows x and y.
fn csr_ptr(n: usize, pairs: impl Iterator<Item = (u32, u32)>) -> Vec<u32> {
    let mut ptr = vec![0u32; n + 1];
    for (x, y) in pairs {
        ptr[x as usize + 1] += 1;
        ptr[y as usize + 1] += 1;
    }
    for i in 0..n {
        ptr[i + 1] += ptr[i];
    }
    ptr
}

impl Topology {
    /// The adjacency of `net`, its free nodes cut into `parts` parts.
    pub(crate) fn new(net: &Network, c: &Compiled, parts: usize) -> Self {
        let nf = c.n_free;
        let fo = &c.free_of_node;
        let free = |k: usize, a: &[u32], b: &[u32]| {
            let (fa, fb) = (fo[a[k] as usize], fo[b[k] as usize]);
            (fa != NONE && fb != NONE).then_some((fa, fb))
        };
        let res = (0..net.res_a.len()).filter_map(|k| free(k, &net.res_a, &net.res_b));
        let ptr = csr_ptr(nf, res);
        let mut fill = ptr.clone();
        let m = ptr[nf] as usize;
        let (mut nbr, mut edge) = (vec![0u32; m], vec![0u32; m]);
        let mut to_clamped = Vec::new();
        for k in 0..net.res_a.len() {
            let (a, b) = (net.res_a[k], net.res_b[k]);
            match (fo[a as usize], fo[b as usize]) {
                (NONE, NONE) => {}
                (fa, NONE) => to_clamped.push((fa, b, k as u32)),
                (NONE, fb) => to_clamped.push((fb, a, k as u32)),
                (fa, fb) => {
                    for (x, y) in [(fa, fb), (fb, fa)] {
                        let s = &mut fill[x as usize];
                        nbr[*s as usize] = y;
                        edge[*s as usize] = k as u32;
                        *s += 1;
                    }
                }
            }
        }
        let end: Vec<[u32; 2]> = (0..net.dio_a.len())
            .map(|k| [fo[net.dio_a[k] as usize], fo[net.dio_b[k] as usize]])
            .collect();
        let dio_ptr = csr_ptr(
            nf,
            (0..end.len()).filter_map(|k| free(k, &net.dio_a, &net.dio_b)),
        );
        let mut fill = dio_ptr.clone();
        let mut dio_k = vec![0u32; dio_ptr[nf] as usize];
        for (k, e) in end.iter().enumerate() {
            if e[0] != NONE && e[1] != NONE {
                for x in *e {
                    dio_k[fill[x as usize] as usize] = k as u32;
                    fill[x as usize] += 1;
                }
            }
        }
        let np = parts;
        let bounds: Vec<usize> = (0..=np).map(|p| p * nf / np).collect();
        let mut part = vec![0u8; nf];
        let mut sep = Vec::new();
        for p in 0..np {
            let range = bounds[p] as u32..bounds[p + 1] as u32;
            for x in range.clone() {
                let nbrs = &nbr[ptr[x as usize] as usize..ptr[x as usize + 1] as usize];
                if nbrs.iter().all(|y| range.contains(y)) {
                    part[x as usize] = p as u8;
                } else {
                    part[x as usize] = SEP;
                    sep.push(x);
                }
            }
        }
        Topology {
            ptr,
            nbr,
            edge,
            to_clamped,
            end,
            dio_ptr,
            dio_k,
            bounds,
            part,
            sep,
        }
    }
}

/// The relaxation of one network's conductances, and scratch.
pub(crate) struct Refiner<'a> {
    t: &'a Topology,
    /// At each free node x, for each entry of its row: the resistor's conductance
    /// over x's resistive conductance (single precision: the sweeps are bound by
    /// memory traffic, and this is only a prediction).
    w: Vec<f32>,
    /// Resistive conductance at each free node.
    diag: Vec<f64>,
    /// Current leaving each free node through current sources and injections.
    fixed: Vec<f64>,
    /// (`fixed` + the current into the clamped neighbours at 0 V here) / `diag`.
    b: Vec<f64>,
    v_on: Vec<f64>,
    threads: bool,
    /// Over-relaxation factor of the sweeps.
    omega: f64,
    /// Clusters of several nodes: cluster of each free node (`NONE`: alone), their
    /// nodes in BFS order and start offsets, conductance to the rest, whether on the
    /// separator, whether dissolved; the clusters in use. A round rebuilds only the
    /// clusters its switches touched (the others moved rigidly and are as built).
    cl: Vec<u32>,
    order: Vec<u32>,
    start: Vec<u32>,
    denom: Vec<f64>,
    on_sep: Vec<bool>,
    dead: Vec<bool>,
    live: Vec<u32>,
    /// Sweep tag of each free node; the separator's lone nodes and clusters.
    tag: Vec<u32>,
    sep_alone: Vec<u32>,
    sep_clusters: Vec<u32>,
    /// Along `order`: the position of each node's BFS parent and the diode joining
    /// them (`NONE` for a root).
    tree: Vec<(u32, u32)>,
}

impl<'a> Refiner<'a> {
    /// The relaxation of `net` (current sources and `inj` at `inj_nodes` fixed); the
    /// sweeps use several threads if `par` allows.
    pub(crate) fn new(
        net: &Network,
        c: &'a Compiled,
        inj_nodes: &[u32],
        inj: &[f64],
        par: Parallelism,
    ) -> Self {
        let t = c
            .relax
            .get_or_init(|| Topology::new(net, c, n_parts(c.n_free)));
        Self::with_topology(t, net, c, inj_nodes, inj, par)
    }

    /// [`Self::new`] on the adjacency `t` (of `net`).
    pub(crate) fn with_topology(
        t: &'a Topology,
        net: &Network,
        c: &Compiled,
        inj_nodes: &[u32],
        inj: &[f64],
        par: Parallelism,
    ) -> Self {
        let nf = c.n_free;
        let fo = &c.free_of_node;
        let mut diag = vec![0.0; nf];
        for &(x, _, k) in &t.to_clamped {
            diag[x as usize] += net.res_g[k as usize];
        }
        let mut w = vec![0f32; t.nbr.len()];
        for (x, d) in diag.iter_mut().enumerate() {
            let row = t.ptr[x] as usize..t.ptr[x + 1] as usize;
            for &k in &t.edge[row.clone()] {
                *d += net.res_g[k as usize];
            }
            let inv = 1.0 / *d;
            for (w, &k) in w[row.clone()].iter_mut().zip(&t.edge[row]) {
                *w = (net.res_g[k as usize] * inv) as f32;
            }
        }
        let v_on = net
            .dio_model
            .iter()
            .map(|m| match *m {
                DiodeModel::Ideal { v_on } => v_on,
                _ => unreachable!("only networks of ideal diodes are refined"),
            })
            .collect();
        let mut fixed = vec![0.0; nf];
        for k in 0..net.is_value.len() {
            let (fa, fb) = (fo[net.is_a[k] as usize], fo[net.is_b[k] as usize]);
            if fa != NONE {
                fixed[fa as usize] += net.is_value[k];
            }
            if fb != NONE {
                fixed[fb as usize] -= net.is_value[k];
            }
        }
        for (&node, &i) in inj_nodes.iter().zip(inj) {
            let f = fo[node as usize];
            if f != NONE {
                fixed[f as usize] -= i;
            }
        }
        Refiner {
            t,
            w,
            diag,
            b: vec![0.0; nf],
            fixed,
            v_on,
            threads: par.n_threads() > 1,
            omega: OMEGA,
            cl: vec![NONE; nf],
            order: Vec::new(),
            start: vec![0],
            denom: Vec::new(),
            on_sep: Vec::new(),
            dead: Vec::new(),
            live: Vec::new(),
            tag: Vec::new(),
            sep_alone: Vec::new(),
            sep_clusters: Vec::new(),
            tree: Vec::new(),
        }
    }

    /// The voltage at free node `x` that would balance its currents with its
    /// neighbours held (`v` holds the free voltages from index `off` on).
    #[inline]
    fn balance(&self, v: &[f64], off: usize, x: usize) -> f64 {
        let row = self.t.ptr[x] as usize..self.t.ptr[x + 1] as usize;
        let mut s = -self.b[x];
        for (&y, &w) in self.t.nbr[row.clone()].iter().zip(&self.w[row]) {
            s += w as f64 * v[y as usize - off];
        }
        s
    }

    /// Current leaving free node `x` through resistors, current sources and
    /// injections.
    #[inline]
    fn outflow(&self, v: &[f64], off: usize, x: usize) -> f64 {
        self.diag[x] * (v[x - off] - self.balance(v, off, x))
    }

    /// Moves cluster `j` (all its nodes in `v`, from index `off`) towards where its
    /// net outflow vanishes.
    #[inline]
    fn relax_cluster(&self, j: usize, v: &mut [f64], off: usize) {
        let d = self.denom[j];
        if d <= 0.0 {
            return;
        }
        let nodes = &self.order[self.start[j] as usize..self.start[j + 1] as usize];
        let mut f = 0.0;
        for &x in nodes {
            f += self.outflow(v, off, x as usize);
        }
        let shift = -self.omega * f / d;
        for &x in nodes {
            v[x as usize - off] += shift;
        }
    }

    /// Moves free node `x` alone towards its balance.
    #[inline]
    fn relax_alone(&self, x: usize, v: &mut [f64], off: usize) {
        let s = self.balance(v, off, x);
        let vx = &mut v[x - off];
        *vx += self.omega * (s - *vx);
    }

    /// One sweep of part `p` (its free voltages `v`, from index `off`).
    fn sweep_part(&self, v: &mut [f64], off: usize, backward: bool) {
        let n = v.len();
        for i in 0..n {
            let x = off + if backward { n - 1 - i } else { i };
            match self.tag[x] {
                ALONE => self.relax_alone(x, v, off),
                SKIP => {}
                j => self.relax_cluster(j as usize, v, off),
            }
        }
    }

    /// One sweep of the separator.
    fn sweep_sep(&self, v: &mut [f64], backward: bool) {
        if backward {
            for &j in self.sep_clusters.iter().rev() {
                self.relax_cluster(j as usize, v, 0);
            }
            for &x in self.sep_alone.iter().rev() {
                self.relax_alone(x as usize, v, 0);
            }
        } else {
            for &x in &self.sep_alone {
                self.relax_alone(x as usize, v, 0);
            }
            for &j in &self.sep_clusters {
                self.relax_cluster(j as usize, v, 0);
            }
        }
    }

    /// One sweep of the parts' interiors, side by side on several threads if allowed
    /// (they share no node, so the result is the same).
    fn sweep_parts(&self, v: &mut [f64], backward: bool) {
        let np = self.t.bounds.len() - 1;
        let mut slices = Vec::with_capacity(np);
        let mut rest = v;
        for p in 0..np {
            let (a, b) = rest.split_at_mut(self.t.bounds[p + 1] - self.t.bounds[p]);
            slices.push((self.t.bounds[p], a));
            rest = b;
        }
        let run = |(off, s): (usize, &mut [f64])| self.sweep_part(s, off, backward);
        if self.threads && np > 1 {
            slices.into_par_iter().for_each(run);
        } else {
            slices.into_iter().for_each(run);
        }
    }

    /// One sweep: the parts then the separator, or backward the reverse.
    fn sweep(&self, v: &mut [f64], backward: bool) {
        if backward {
            self.sweep_sep(v, true);
            self.sweep_parts(v, true);
        } else {
            self.sweep_parts(v, false);
            self.sweep_sep(v, false);
        }
    }

    /// Clusters: free nodes joined by conducting diodes (BFS trees; a diode closing a
    /// cycle is left conducting), each node of one put at the offset its diodes impose
    /// (Δv = v_on) relative to its root (where the sweeps relax it); and the sweep
    /// tags. `flips`: the diodes switched since the last call (`None`: the first).
    fn clusters(&mut self, v: &mut [f64], on: &[bool], flips: Option<&[u32]>) {
        let new_from = self.denom.len();
        match flips {
            None => {
                for k in 0..on.len() {
                    let [a, b] = self.t.end[k];
                    if on[k] && a != NONE && b != NONE && self.cl[a as usize] == NONE {
                        self.build(a as usize, v, on);
                    }
                }
            }
            Some(flips) => {
                // Dissolve the clusters at the switched diodes, then rebuild from
                // their nodes and the diodes' ends.
                let mut seeds = Vec::new();
                for &k in flips {
                    let [a, b] = self.t.end[k as usize];
                    if a == NONE || b == NONE {
                        continue;
                    }
                    for x in [a, b] {
                        let j = self.cl[x as usize];
                        if j != NONE {
                            let j = j as usize;
                            self.dead[j] = true;
                            for i in self.start[j] as usize..self.start[j + 1] as usize {
                                let y = self.order[i] as usize;
                                self.cl[y] = NONE;
                                self.tag[y] = self.lone_tag(y);
                                seeds.push(y as u32);
                            }
                        }
                        seeds.push(x);
                    }
                }
                for x in seeds {
                    if self.cl[x as usize] == NONE {
                        self.build(x as usize, v, on);
                    }
                }
            }
        }
        let fresh = new_from..self.denom.len();
        let dens: Vec<(f64, bool)> = if self.threads && fresh.len() > 1024 {
            fresh
                .clone()
                .into_par_iter()
                .map(|j| self.cluster_denom(j))
                .collect()
        } else {
            fresh.clone().map(|j| self.cluster_denom(j)).collect()
        };
        for (j, (d, on_sep)) in fresh.zip(dens) {
            self.denom[j] = d;
            self.on_sep[j] = on_sep;
            let root = self.order[self.start[j] as usize] as usize;
            self.tag[root] = if on_sep { SKIP } else { j as u32 };
        }
        let dead = &self.dead;
        self.live.retain(|&j| !dead[j as usize]);
        self.live.extend(new_from as u32..self.denom.len() as u32);
        self.sep_clusters.clear();
        for &j in &self.live {
            if self.on_sep[j as usize] {
                self.sep_clusters.push(j);
            }
        }
        self.sep_alone.clear();
        for &x in &self.t.sep {
            if self.cl[x as usize] == NONE && self.diag[x as usize] > 0.0 {
                self.sep_alone.push(x);
            }
        }
    }

    /// The cluster of `root` (not in one), if a conducting diode joins it to another
    /// free node.
    fn build(&mut self, root: usize, v: &mut [f64], on: &[bool]) {
        let id = self.denom.len() as u32;
        let first = self.order.len();
        self.cl[root] = id;
        self.order.push(root as u32);
        self.tree.push((NONE, NONE));
        let mut head = first;
        while head < self.order.len() {
            let x = self.order[head] as usize;
            head += 1;
            for s in self.t.dio_ptr[x] as usize..self.t.dio_ptr[x + 1] as usize {
                let k = self.t.dio_k[s] as usize;
                if !on[k] {
                    continue;
                }
                let [a, b] = self.t.end[k];
                let y = if a as usize == x { b } else { a } as usize;
                if self.cl[y] != NONE {
                    continue;
                }
                self.cl[y] = id;
                self.tag[y] = SKIP;
                self.tree.push((head as u32 - 1, k as u32));
                v[y] = if y == b as usize {
                    v[x] - self.v_on[k]
                } else {
                    v[x] + self.v_on[k]
                };
                self.order.push(y as u32);
            }
        }
        if first + 1 == self.order.len() {
            self.cl[root] = NONE;
            self.order.pop();
            self.tree.pop();
            return;
        }
        self.start.push(self.order.len() as u32);
        self.denom.push(0.0);
        self.on_sep.push(false);
        self.dead.push(false);
    }

    /// Conductance from cluster `j` to the rest (internal resistors move with it),
    /// and whether it lies on the separator.
    fn cluster_denom(&self, j: usize) -> (f64, bool) {
        let nodes = &self.order[self.start[j] as usize..self.start[j + 1] as usize];
        let p = self.t.part[nodes[0] as usize];
        let mut d = 0.0;
        let mut interior = p != SEP;
        for &x in nodes {
            let x = x as usize;
            let dx = self.diag[x];
            d += dx;
            let row = self.t.ptr[x] as usize..self.t.ptr[x + 1] as usize;
            for (&y, &w) in self.t.nbr[row.clone()].iter().zip(&self.w[row]) {
                if self.cl[y as usize] == j as u32 {
                    d -= w as f64 * dx;
                }
            }
            interior &= self.t.part[x] == p;
        }
        (d, !interior)
    }

    /// Appends to `out` the tree diodes of clusters `js` whose current, from
    /// Kirchhoff's law over the cluster (leaves first), runs backwards.
    fn tree_flips(&self, v: &[f64], js: &[u32], out: &mut Vec<u32>) {
        let mut acc = Vec::new();
        for &j in js {
            let (s0, s1) = (
                self.start[j as usize] as usize,
                self.start[j as usize + 1] as usize,
            );
            acc.clear();
            acc.extend(
                self.order[s0..s1]
                    .iter()
                    .map(|&x| self.outflow(v, 0, x as usize)),
            );
            for i in (s0 + 1..s1).rev() {
                let (up, k) = self.tree[i];
                let x = self.order[i];
                let ax = acc[i - s0];
                acc[up as usize - s0] += ax;
                // The diode supplies the subtree's outflow.
                let current = if x == self.t.end[k as usize][1] {
                    ax
                } else {
                    -ax
                };
                if current < 0.0 {
                    out.push(k);
                }
            }
        }
    }

    /// [`Self::tree_flips`] of all the clusters in use, on several threads if allowed
    /// (in a fixed order).
    fn all_tree_flips(&self, v: &[f64], out: &mut Vec<u32>) {
        const CHUNK: usize = 1024;
        if self.threads && self.live.len() > CHUNK {
            let parts: Vec<Vec<u32>> = self
                .live
                .par_chunks(CHUNK)
                .map(|js| {
                    let mut o = Vec::new();
                    self.tree_flips(v, js, &mut o);
                    o
                })
                .collect();
            out.extend(parts.into_iter().flatten());
        } else {
            self.tree_flips(v, &self.live, out);
        }
    }

    /// No clusters (all free nodes alone).
    fn reset_clusters(&mut self) {
        if self.tag.is_empty() {
            self.tag = (0..self.cl.len()).map(|x| self.lone_tag(x)).collect();
        }
        for &x in &self.order {
            self.cl[x as usize] = NONE;
            self.tag[x as usize] = self.lone_tag(x as usize);
        }
        self.order.clear();
        self.tree.clear();
        self.start.clear();
        self.start.push(0);
        self.denom.clear();
        self.on_sep.clear();
        self.dead.clear();
        self.live.clear();
    }

    /// The sweep tag of free node `x` outside a cluster.
    #[inline]
    fn lone_tag(&self, x: usize) -> u32 {
        if self.t.part[x] == SEP || self.diag[x] <= 0.0 {
            SKIP
        } else {
            ALONE
        }
    }

    /// Refines `on` (conducting ideal diodes) in `rounds` rounds of `sweeps` block
    /// Gauss–Seidel sweeps each, moving `v` (all node voltages; clamped entries are
    /// kept). Returns the number of switches of the last round.
    pub(crate) fn refine(
        &mut self,
        net: &Network,
        c: &Compiled,
        v: &mut [f64],
        on: &mut [bool],
        rounds: usize,
        sweeps: usize,
    ) -> usize {
        let mut vf: Vec<f64> = c.node_of_free.iter().map(|&x| v[x as usize]).collect();
        let mut rhs = self.fixed.clone();
        for &(x, y, k) in &self.t.to_clamped {
            rhs[x as usize] -= net.res_g[k as usize] * v[y as usize];
        }
        for ((b, r), d) in self.b.iter_mut().zip(rhs).zip(&self.diag) {
            *b = if *d > 0.0 { r / d } else { 0.0 };
        }
        self.reset_clusters();
        let mut switched = 0;
        let mut flips: Vec<u32> = Vec::new();
        for round in 0..rounds {
            self.clusters(&mut vf, on, (round > 0).then_some(&flips[..]));
            // Block Gauss–Seidel sweeps, alternating in direction.
            for sweep in 0..sweeps {
                self.sweep(&mut vf, sweep % 2 == 1);
            }
            // Tree diodes carrying a backward current switch off.
            flips.clear();
            self.all_tree_flips(&vf, &mut flips);
            for &k in &flips {
                on[k as usize] = false;
            }
            let volt = |f: u32, node: u32| {
                if f != NONE {
                    vf[f as usize]
                } else {
                    v[node as usize]
                }
            };
            for (k, on) in on.iter_mut().enumerate() {
                let [a, b] = self.t.end[k];
                let dv = volt(a, net.dio_a[k]) - volt(b, net.dio_b[k]);
                let fwd = dv > self.v_on[k];
                if !*on && fwd {
                    *on = true;
                    flips.push(k as u32);
                } else if *on && (a == NONE || b == NONE) && !fwd {
                    // A diode at a clamped node is not in a cluster: by its voltage.
                    *on = false;
                    flips.push(k as u32);
                }
            }
            switched = flips.len();
            if switched == 0 {
                break;
            }
        }
        for (f, &x) in c.node_of_free.iter().enumerate() {
            v[x as usize] = vf[f];
        }
        switched
    }
}

/// Currents of the conducting ideal diodes by Kirchhoff's current law.
///
/// At the solution the multipliers are the diode currents, but a multiplier is
/// μ + ρ (Δv − v_on): the rounding of Δv (eps × the voltages) reaches it multiplied
/// by the penalty ρ. Where the conducting diodes form a forest (each tree holding at
/// most one clamped node, which absorbs the tree's net current), their currents are
/// determined by the other currents at the tree's nodes, known to the rounding of the
/// branch currents themselves: they replace the multipliers there. Diodes in a cycle
/// of conducting diodes, or in a tree joining two clamped nodes, keep their
/// multipliers. `outflow` holds, at every node, the current leaving it through
/// everything but the ideal diodes (overwritten); a current from KCL that comes out
/// negative (a weakly active diode, at rounding level) is set to zero.
pub(crate) fn kcl_currents(
    net: &Network,
    c: &Compiled,
    conducting: impl Fn(usize) -> bool,
    outflow: &mut [f64],
    current: &mut [f64],
) {
    let n = net.n_nodes;
    let mut ptr = vec![0u32; n + 1];
    let on: Vec<usize> = (0..net.dio_a.len()).filter(|&k| conducting(k)).collect();
    if on.is_empty() {
        return;
    }
    for &k in &on {
        ptr[net.dio_a[k] as usize + 1] += 1;
        ptr[net.dio_b[k] as usize + 1] += 1;
    }
    for i in 0..n {
        ptr[i + 1] += ptr[i];
    }
    let mut fill = ptr.clone();
    let mut adj = vec![0u32; ptr[n] as usize];
    for &k in &on {
        for x in [net.dio_a[k], net.dio_b[k]] {
            adj[fill[x as usize] as usize] = k as u32;
            fill[x as usize] += 1;
        }
    }
    let mut tree = vec![NONE; n];
    let mut via = vec![NONE; n];
    let mut order: Vec<u32> = Vec::new();
    let mut used = vec![false; net.dio_a.len()];
    // Roots: clamped nodes first, so that a tree with one clamped node hangs from it.
    let clamped = (0..n as u32).filter(|&x| c.free_of_node[x as usize] == NONE);
    let roots: Vec<u32> = clamped.chain(c.node_of_free.iter().copied()).collect();
    for root in roots {
        let r = root as usize;
        if tree[r] != NONE || ptr[r] == ptr[r + 1] {
            continue;
        }
        let start = order.len();
        tree[r] = r as u32;
        order.push(root);
        let mut good = true;
        let mut head = start;
        while head < order.len() {
            let x = order[head] as usize;
            head += 1;
            for &k in &adj[ptr[x] as usize..ptr[x + 1] as usize] {
                let k = k as usize;
                if used[k] {
                    continue;
                }
                used[k] = true;
                let (a, b) = (net.dio_a[k] as usize, net.dio_b[k] as usize);
                let y = if a == x { b } else { a };
                if tree[y] != NONE {
                    good = false; // a cycle (or a diode from a node to itself)
                    continue;
                }
                if c.free_of_node[y] == NONE {
                    good = false; // a second clamped node
                }
                tree[y] = r as u32;
                via[y] = k as u32;
                order.push(y as u32);
            }
        }
        if !good {
            continue;
        }
        for &x in order[start + 1..].iter().rev() {
            let x = x as usize;
            let k = via[x] as usize;
            let (a, b) = (net.dio_a[k] as usize, net.dio_b[k] as usize);
            // The diode supplies what the subtree below it sends out.
            let (i, parent) = if x == b {
                (outflow[x], a)
            } else {
                (-outflow[x], b)
            };
            outflow[parent] += outflow[x];
            current[k] = i.max(0.0);
        }
    }
}

#[cfg(test)]
#[path = "tests/predict_tests.rs"]
mod tests;
