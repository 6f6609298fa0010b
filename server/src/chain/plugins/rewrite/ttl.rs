//! `rewrite ttl` (CoreDNS's plugin/rewrite/ttl.go): for a question name that matches, every
//! record of the response gets a TTL inside `MIN-MAX` (a single value sets it).

use super::Matcher;

/// The upper bound of an open range `MIN-` (CoreDNS's, the largest TTL of RFC 2181 §8).
const OPEN_MAX: u32 = 2_147_483_647;

/// One `rewrite ttl [exact|prefix|suffix|substring|regex] NAME TTL|MIN-MAX` rule.
#[derive(Clone, Debug)]
pub struct TtlRule {
    matcher: Matcher,
    min: u32,
    max: u32,
}

impl TtlRule {
    /// A rule matching NAME by `kind` (`exact`, ...; any case), bounding TTLs by `ttl`.
    pub fn new(kind: &str, name: &str, ttl: &str) -> Result<Self, String> {
        let (min, max) =
            parse_range(ttl).ok_or_else(|| format!("invalid TTL '{ttl}' for a ttl rule"))?;
        Ok(TtlRule {
            matcher: Matcher::new("ttl", kind, name)?,
            min,
            max,
        })
    }

    /// Whether the rule applies to the question name `name` (dotted, lowercase).
    pub fn matches(&self, name: &str) -> bool {
        self.matcher.matches(name)
    }

    /// Its bounds, MIN and MAX.
    pub fn bounds(&self) -> (u32, u32) {
        (self.min, self.max)
    }
}

/// A TTL as CoreDNS's `isValidTTL` reads it: `30` (30-30), `30-300`, `-30` (0-30), `30-`
/// (30 up to 2^31-1); `-` and MIN above MAX are refused.
pub fn parse_range(text: &str) -> Option<(u32, u32)> {
    let mut parts = text.split('-');
    let first = parts.next()?;
    let Some(second) = parts.next() else {
        let ttl = number(first)?;
        return Some((ttl, ttl));
    };
    if parts.next().is_some() || (first.is_empty() && second.is_empty()) {
        return None;
    }
    let min = match first {
        "" => 0,
        digits => number(digits)?,
    };
    let max = match second {
        "" => OPEN_MAX,
        digits => number(digits)?,
    };
    (min <= max).then_some((min, max))
}

/// A decimal number of 32 bits, digits only (Go's `strconv.ParseUint(text, 10, 32)`).
pub(super) fn number(text: &str) -> Option<u32> {
    (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

/// `ttl` bounded by MIN and MAX.
pub fn clamp(ttl: u32, (min, max): (u32, u32)) -> u32 {
    if ttl < min {
        min
    } else if ttl > max {
        max
    } else {
        ttl
    }
}
