//! A small reproducible random number generator for property tests (xorshift64), so that a
//! failing seed can be replayed without a crate.

/// xorshift64: the same sequence for the same non-zero seed.
pub struct XorShift(u64);

impl XorShift {
    /// A generator from `seed` (made odd, so never zero).
    pub fn new(seed: u64) -> XorShift {
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// A number below `n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}
