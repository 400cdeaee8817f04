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
//! off), a few times over. Each sweep costs O(edges).
//!
//! The result is only a prediction: the solver then takes one Newton step with this
//! active set frozen, and the usual active-set / multiplier iteration corrects
//! whatever is still wrong, so exactness never depends on it.

use crate::compile::Compiled;
use crate::network::{DiodeModel, Network, NONE};

/// Adjacency (resistors and diodes) for the relaxation, and scratch.
pub(crate) struct Refiner {
    res_ptr: Vec<u32>,
    res_node: Vec<u32>,
    res_g: Vec<f64>,
    dio_ptr: Vec<u32>,
    dio_k: Vec<u32>,
    /// Resistive conductance at each node.
    diag: Vec<f64>,
    /// Current leaving each node through current sources and injections.
    fixed: Vec<f64>,
    /// Cluster of each free node, clusters' nodes in BFS order, their start offsets.
    cl: Vec<u32>,
    order: Vec<u32>,
    start: Vec<u32>,
    /// Diode joining each node to its BFS parent (`NONE` for a root).
    via: Vec<u32>,
    denom: Vec<f64>,
    acc: Vec<f64>,
}

impl Refiner {
    /// The adjacency of `net` (current sources and `inj` at `inj_nodes` fixed).
    pub(crate) fn new(net: &Network, inj_nodes: &[u32], inj: &[f64]) -> Self {
        let n = net.n_nodes;
        let csr = |a: &[u32], b: &[u32]| {
            let mut ptr = vec![0u32; n + 1];
            for (&x, &y) in a.iter().zip(b) {
                ptr[x as usize + 1] += 1;
                ptr[y as usize + 1] += 1;
            }
            for i in 0..n {
                ptr[i + 1] += ptr[i];
            }
            ptr
        };
        let res_ptr = csr(&net.res_a, &net.res_b);
        let mut fill = res_ptr.clone();
        let m = res_ptr[n] as usize;
        let (mut res_node, mut res_g) = (vec![0u32; m], vec![0.0; m]);
        let mut diag = vec![0.0; n];
        for k in 0..net.res_g.len() {
            let (a, b, g) = (net.res_a[k], net.res_b[k], net.res_g[k]);
            for (x, y) in [(a, b), (b, a)] {
                let s = fill[x as usize] as usize;
                res_node[s] = y;
                res_g[s] = g;
                fill[x as usize] += 1;
            }
            diag[a as usize] += g;
            diag[b as usize] += g;
        }
        let dio_ptr = csr(&net.dio_a, &net.dio_b);
        let mut fill = dio_ptr.clone();
        let mut dio_k = vec![0u32; dio_ptr[n] as usize];
        for k in 0..net.dio_a.len() {
            for x in [net.dio_a[k], net.dio_b[k]] {
                dio_k[fill[x as usize] as usize] = k as u32;
                fill[x as usize] += 1;
            }
        }
        let mut fixed = vec![0.0; n];
        for k in 0..net.is_value.len() {
            fixed[net.is_a[k] as usize] += net.is_value[k];
            fixed[net.is_b[k] as usize] -= net.is_value[k];
        }
        for (&node, &i) in inj_nodes.iter().zip(inj) {
            fixed[node as usize] -= i;
        }
        Refiner {
            res_ptr,
            res_node,
            res_g,
            dio_ptr,
            dio_k,
            diag,
            fixed,
            cl: vec![NONE; n],
            order: Vec::with_capacity(n),
            start: Vec::new(),
            via: vec![NONE; n],
            denom: Vec::new(),
            acc: vec![0.0; n],
        }
    }

    /// Current leaving node `x` through resistors, current sources and injections.
    #[inline]
    fn outflow(&self, v: &[f64], x: usize) -> f64 {
        let mut f = self.fixed[x];
        let vx = v[x];
        for s in self.res_ptr[x] as usize..self.res_ptr[x + 1] as usize {
            f += self.res_g[s] * (vx - v[self.res_node[s] as usize]);
        }
        f
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
        let v_on = |k: usize| match net.dio_model[k] {
            DiodeModel::Ideal { v_on } => v_on,
            _ => unreachable!("only networks of ideal diodes are refined"),
        };
        let free = |x: u32| c.free_of_node[x as usize] != NONE;
        let mut switched = 0;
        for _ in 0..rounds {
            // Clusters: free nodes joined by conducting diodes (BFS trees; a diode
            // closing a cycle is left conducting). The nodes of a cluster are put at
            // the offsets its diodes impose (Δv = v_on), relative to its root.
            self.cl.iter_mut().for_each(|x| *x = NONE);
            self.order.clear();
            self.start.clear();
            self.denom.clear();
            for &root in &c.node_of_free {
                if self.cl[root as usize] != NONE {
                    continue;
                }
                let id = self.start.len() as u32;
                self.start.push(self.order.len() as u32);
                self.cl[root as usize] = id;
                self.via[root as usize] = NONE;
                self.order.push(root);
                let mut head = self.order.len() - 1;
                while head < self.order.len() {
                    let x = self.order[head] as usize;
                    head += 1;
                    for s in self.dio_ptr[x] as usize..self.dio_ptr[x + 1] as usize {
                        let k = self.dio_k[s] as usize;
                        if !on[k] {
                            continue;
                        }
                        let (a, b) = (net.dio_a[k], net.dio_b[k]);
                        if !free(a) || !free(b) {
                            continue;
                        }
                        let y = if a as usize == x { b } else { a } as usize;
                        if self.cl[y] != NONE {
                            continue;
                        }
                        self.cl[y] = id;
                        self.via[y] = k as u32;
                        v[y] = if y == b as usize {
                            v[x] - v_on(k)
                        } else {
                            v[x] + v_on(k)
                        };
                        self.order.push(y as u32);
                    }
                }
                // Conductance from the cluster to the rest (internal resistors
                // move with it).
                let first = self.start[id as usize] as usize;
                if first + 1 == self.order.len() {
                    self.denom.push(self.diag[root as usize]);
                    continue;
                }
                let mut d = 0.0;
                for &x in &self.order[first..] {
                    let x = x as usize;
                    d += self.diag[x];
                    for s in self.res_ptr[x] as usize..self.res_ptr[x + 1] as usize {
                        if self.cl[self.res_node[s] as usize] == id {
                            d -= self.res_g[s];
                        }
                    }
                }
                self.denom.push(d);
            }
            self.start.push(self.order.len() as u32);
            let nc = self.denom.len();
            // Block Gauss–Seidel sweeps, alternating in direction.
            for sweep in 0..sweeps {
                for j in 0..nc {
                    let j = if sweep % 2 == 0 { j } else { nc - 1 - j };
                    let d = self.denom[j];
                    if d <= 0.0 {
                        continue;
                    }
                    let nodes = self.start[j] as usize..self.start[j + 1] as usize;
                    let mut f = 0.0;
                    for &x in &self.order[nodes.clone()] {
                        f += self.outflow(v, x as usize);
                    }
                    let shift = -f / d;
                    for &x in &self.order[nodes] {
                        v[x as usize] += shift;
                    }
                }
            }
            // Currents of the tree diodes by Kirchhoff's law over each cluster,
            // leaves first.
            for &x in &self.order {
                self.acc[x as usize] = self.outflow(v, x as usize);
            }
            let mut reverse = vec![];
            for &x in self.order.iter().rev() {
                let x = x as usize;
                let k = self.via[x];
                if k == NONE {
                    continue;
                }
                let k = k as usize;
                let (a, b) = (net.dio_a[k] as usize, net.dio_b[k] as usize);
                // The diode supplies the subtree's outflow.
                let (i, parent) = if x == b {
                    (self.acc[x], a)
                } else {
                    (-self.acc[x], b)
                };
                self.acc[parent] += self.acc[x];
                if i < 0.0 {
                    reverse.push(k);
                }
            }
            switched = 0;
            for k in reverse {
                on[k] = false;
                switched += 1;
            }
            for (k, on) in on.iter_mut().enumerate() {
                let (a, b) = (net.dio_a[k], net.dio_b[k]);
                let fwd = v[a as usize] - v[b as usize] > v_on(k);
                if !*on && fwd {
                    *on = true;
                    switched += 1;
                } else if *on && !(free(a) && free(b)) && !fwd {
                    // A diode at a clamped node is not in a cluster: by its voltage.
                    *on = false;
                    switched += 1;
                }
            }
            if switched == 0 {
                break;
            }
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
