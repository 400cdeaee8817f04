//! Helpers shared by the criterion benches.

/// SplitMix64: a small deterministic generator (no dev-dependency needed).
pub struct Rng(pub u64);
impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    #[allow(dead_code)]
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
    }
}

/// The edges of a side × side grid whose node (r, c) is `first + r side + c`: the
/// horizontal edges row by row, then the vertical ones (ends `a` → `b`).
#[allow(dead_code)]
pub fn grid_edges(first: usize, side: usize) -> (Vec<usize>, Vec<usize>) {
    let id = |r: usize, c: usize| first + r * side + c;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for r in 0..side {
        for c in 0..side - 1 {
            a.push(id(r, c));
            b.push(id(r, c + 1));
        }
    }
    for r in 0..side - 1 {
        for c in 0..side {
            a.push(id(r, c));
            b.push(id(r + 1, c));
        }
    }
    (a, b)
}
