//! CoreDNS's `header`: the AA, RA and RD flags of the answers of the plugins after it set or
//! cleared (`response set ra`), and the query's flags changed for them (`query set rd`).
//!
//! Rules apply in the order written, so the last one about a flag wins. A query rule changes
//! what the plugins after `header` see; what a client sees of it is the RD bit their answers
//! echo, so clusterdns applies it there: a `query` rule on `rd` sets the answer's RD, and a
//! `response` rule after it still wins. Query rules on AA and RA change nothing a client sees
//! (an answer does not echo them). Where this differs from CoreDNS: `forward` asks upstreams
//! with RD set whatever a query rule says (its questions are its own, not the client's).

use clusterdns_zone::wire::{FLAG_AA, FLAG_RA, FLAG_RD};

/// A flag `header` sets or clears.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flag {
    /// Authoritative Answer.
    Aa,
    /// Recursion Available.
    Ra,
    /// Recursion Desired.
    Rd,
}

impl Flag {
    /// The flag named `text` (`aa`, `ra`, `rd`, any case).
    pub fn parse(text: &str) -> Option<Flag> {
        match text.to_ascii_lowercase().as_str() {
            "aa" => Some(Flag::Aa),
            "ra" => Some(Flag::Ra),
            "rd" => Some(Flag::Rd),
            _ => None,
        }
    }

    fn bit(self) -> u16 {
        match self {
            Flag::Aa => FLAG_AA,
            Flag::Ra => FLAG_RA,
            Flag::Rd => FLAG_RD,
        }
    }
}

/// Whom a rule is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selector {
    /// The query, as the plugins after `header` see it.
    Query,
    /// The response those plugins write.
    Response,
}

/// The `header` plugin of a block, folded into what it does to an answer's flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    set: u16,
    clear: u16,
}

impl Header {
    /// The rules `(selector, flag, set)` in the order written.
    pub fn new(rules: &[(Selector, Flag, bool)]) -> Header {
        let mut header = Header::default();
        // Query rules first: a response rule acts on the answer after them.
        let ordered = (rules.iter().filter(|r| r.0 == Selector::Query))
            .chain(rules.iter().filter(|r| r.0 == Selector::Response));
        for &(selector, flag, set) in ordered {
            if selector == Selector::Query && flag != Flag::Rd {
                continue;
            }
            let bit = flag.bit();
            if set {
                header.set |= bit;
                header.clear &= !bit;
            } else {
                header.clear |= bit;
                header.set &= !bit;
            }
        }
        header
    }

    /// Applies the rules to the flags of the response in `out`.
    pub fn apply(&self, out: &mut [u8]) {
        let Some(word) = out.get(2..4) else {
            return;
        };
        let flags = u16::from_be_bytes([word[0], word[1]]);
        let flags = (flags & !self.clear) | self.set;
        out[2..4].copy_from_slice(&flags.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Flag::*;
    use Selector::*;

    /// The flags word of a response with `flags` after `rules`.
    fn applied(rules: &[(Selector, Flag, bool)], flags: u16) -> u16 {
        let mut out = [0, 1, (flags >> 8) as u8, flags as u8, 0, 0];
        Header::new(rules).apply(&mut out);
        u16::from_be_bytes([out[2], out[3]])
    }

    const QR: u16 = 0x8000;

    // The README's examples and CoreDNS's header_test.go.
    #[test]
    fn readme_examples() {
        // response set ra
        assert_eq!(applied(&[(Response, Ra, true)], QR), QR | FLAG_RA);
        // response set ra aa; response clear rd
        let rules = [
            (Response, Ra, true),
            (Response, Aa, true),
            (Response, Rd, false),
        ];
        assert_eq!(applied(&rules, QR | FLAG_RD), QR | FLAG_RA | FLAG_AA);
        // query set rd: the answer echoes it.
        assert_eq!(applied(&[(Query, Rd, true)], QR), QR | FLAG_RD);
        assert_eq!(applied(&[(Query, Rd, false)], QR | FLAG_RD), QR);
        // Other bits (the rcode, TC) are kept.
        assert_eq!(
            applied(&[(Response, Aa, false)], QR | FLAG_AA | 0x0203),
            QR | 0x0203
        );
    }

    #[test]
    fn the_last_rule_wins() {
        assert_eq!(
            applied(&[(Response, Aa, true), (Response, Aa, false)], QR | FLAG_AA),
            QR
        );
        // A response rule acts after a query rule, whatever the order written.
        assert_eq!(applied(&[(Response, Rd, false), (Query, Rd, true)], QR), QR);
        // Query rules on AA and RA change nothing an answer shows.
        assert_eq!(
            applied(&[(Query, Aa, true), (Query, Ra, false)], QR | FLAG_RA),
            QR | FLAG_RA
        );
        assert_eq!(Flag::parse("RA"), Some(Ra));
        assert_eq!(Flag::parse("cd"), None);
    }
}
