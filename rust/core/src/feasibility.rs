//! Feasibility of the ideal-diode constraints: the constraints Δv ≤ v_on together
//! with the clamps form a system of difference constraints, feasible exactly when
//! its constraint graph has no negative cycle (Bellman–Ford). A negative cycle names
//! the diodes that the sources force beyond their thresholds.

use crate::error::{Error, Result};
use crate::network::{DiodeModel, Network, NONE};
use std::collections::VecDeque;

/// Checks that some node voltages satisfy every ideal-diode constraint given the
/// clamped values in `v` (ground and clamped entries are read). `tol` is the slack
/// allowed for rounding.
pub fn check(net: &Network, v: &[f64], tol: f64) -> Result<()> {
    // Graph over nodes touched by ideal diodes plus ground. Constraint x_a − x_b ≤ w is
    // the edge b → a of weight w. Clamped node c: x_c − x_0 ≤ v_c and x_0 − x_c ≤ −v_c.
    let mut local = vec![NONE; 0];
    local.resize(net.n_nodes, NONE);
    let mut nodes: Vec<u32> = vec![0];
    local[0] = 0;
    let mut edges: Vec<(u32, u32, f64, u32)> = Vec::new(); // (from, to, weight, diode or NONE)
    let id = |x: u32, nodes: &mut Vec<u32>, local: &mut Vec<u32>| -> u32 {
        if local[x as usize] == NONE {
            local[x as usize] = nodes.len() as u32;
            nodes.push(x);
        }
        local[x as usize]
    };
    for (k, m) in net.dio_model.iter().enumerate() {
        if let DiodeModel::Ideal { v_on } = *m {
            let a = id(net.dio_a[k], &mut nodes, &mut local);
            let b = id(net.dio_b[k], &mut nodes, &mut local);
            edges.push((b, a, v_on, k as u32));
        }
    }
    if edges.is_empty() {
        return Ok(());
    }
    for (i, &node) in nodes.iter().enumerate().skip(1) {
        if net.clamp_of_node[node as usize] != NONE {
            let x = v[node as usize];
            edges.push((0, i as u32, x, NONE));
            edges.push((i as u32, 0, -x, NONE));
        }
    }
    let m = nodes.len();
    // Adjacency (CSR by source).
    let mut start = vec![0usize; m + 1];
    for e in &edges {
        start[e.0 as usize + 1] += 1;
    }
    for i in 0..m {
        start[i + 1] += start[i];
    }
    let mut adj = vec![0usize; edges.len()];
    let mut fill = start.clone();
    for (j, e) in edges.iter().enumerate() {
        adj[fill[e.0 as usize]] = j;
        fill[e.0 as usize] += 1;
    }
    // Shortest paths from a virtual source joined to every node with weight 0 (SPFA).
    // A shortest path has at most m − 1 edges; a path of m edges means a negative cycle.
    let mut dist = vec![0.0f64; m];
    let mut pred = vec![usize::MAX; m]; // edge index
    let mut len = vec![0usize; m];
    let mut inq = vec![true; m];
    let mut queue: VecDeque<usize> = (0..m).collect();
    while let Some(u) = queue.pop_front() {
        inq[u] = false;
        for &j in &adj[start[u]..start[u + 1]] {
            let (_, to, w, _) = edges[j];
            let to = to as usize;
            let nd = dist[u] + w;
            if nd < dist[to] - tol {
                dist[to] = nd;
                pred[to] = j;
                len[to] = len[u] + 1;
                if len[to] >= m {
                    return Err(cycle_error(net, &edges, m, tol));
                }
                if !inq[to] {
                    inq[to] = true;
                    queue.push_back(to);
                }
            }
        }
    }
    Ok(())
}

/// Extracts a negative cycle with classic Bellman–Ford (only on the error path): a
/// node still relaxed in round m lies on, or downstream of, a negative cycle, and
/// walking m predecessor steps back from it lands on the cycle.
fn cycle_error(net: &Network, edges: &[(u32, u32, f64, u32)], m: usize, tol: f64) -> Error {
    let mut dist = vec![0.0f64; m];
    let mut pred = vec![usize::MAX; m];
    let mut last = usize::MAX;
    for _ in 0..m {
        last = usize::MAX;
        for (j, &(from, to, w, _)) in edges.iter().enumerate() {
            let (f, t) = (from as usize, to as usize);
            if dist[f] + w < dist[t] - tol {
                dist[t] = dist[f] + w;
                pred[t] = j;
                last = t;
            }
        }
        if last == usize::MAX {
            break;
        }
    }
    let mut diodes = Vec::new();
    let mut total = 0.0;
    if last != usize::MAX {
        let mut x = last;
        for _ in 0..m {
            x = edges[pred[x]].0 as usize;
        }
        let first = x;
        loop {
            let e = edges[pred[x]];
            total += e.2;
            if e.3 != NONE {
                diodes.push(e.3 as usize);
            }
            x = e.0 as usize;
            if x == first {
                break;
            }
        }
    }
    diodes.sort_unstable();
    diodes.dedup();
    let names: Vec<String> = diodes
        .iter()
        .map(|&k| format!("{k} ({}→{})", net.dio_a[k], net.dio_b[k]))
        .collect();
    Error::Infeasible {
        diodes,
        detail: format!(
            "the sources force the diodes {} beyond their thresholds by {:.6e} V in all",
            names.join(", "),
            -total
        ),
    }
}

#[cfg(test)]
#[path = "tests/feasibility_tests.rs"]
mod tests;
