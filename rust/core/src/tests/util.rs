//! Helpers shared by the unit tests.

/// SplitMix64: a small seeded generator, so that test networks are reproducible.
pub(crate) struct Rng(pub(crate) u64);

#[allow(dead_code)]
impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub(crate) fn unif(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [lo, hi).
    pub(crate) fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unif()
    }
    /// Uniform in 0..n.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// Log-uniform in [lo, hi).
    pub(crate) fn log_range(&mut self, lo: f64, hi: f64) -> f64 {
        (lo.ln() + (hi.ln() - lo.ln()) * self.unif()).exp()
    }
}

/// The edges of a side × side grid whose node (r, c) is `first + r side + c`, row by
/// row: each node's right neighbour, then the one below (ends `a` → `b`).
pub(crate) fn grid_edges(first: usize, side: usize) -> (Vec<usize>, Vec<usize>) {
    let id = |r: usize, c: usize| first + r * side + c;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for r in 0..side {
        for c in 0..side {
            if c + 1 < side {
                a.push(id(r, c));
                b.push(id(r, c + 1));
            }
            if r + 1 < side {
                a.push(id(r, c));
                b.push(id(r + 1, c));
            }
        }
    }
    (a, b)
}

/// A network of side × side nodes (node (r, c) is `first + r side + c`, returned
/// with the grid's edges) whose grid edges are resistors of conductances drawn
/// uniformly in [lo, hi), one draw of `rng` per edge in [`grid_edges`]' order.
pub(crate) fn resistor_grid(
    side: usize,
    rng: &mut Rng,
    lo: f64,
    hi: f64,
) -> (crate::network::Network, usize, Vec<usize>, Vec<usize>) {
    let mut net = crate::network::Network::new();
    let first = net.add_nodes(side * side).unwrap();
    let (a, b) = grid_edges(first, side);
    let g: Vec<f64> = a.iter().map(|_| rng.range(lo, hi)).collect();
    net.add_resistors(&a, &b, &g).unwrap();
    (net, first, a, b)
}
