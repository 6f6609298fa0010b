//! `rewrite rcode` (CoreDNS's plugin/rewrite/rcode.go): for a question name that matches, a
//! response with rcode FROM leaves with rcode TO.
//!
//! The rcode is the header's four bits extended by the OPT record's eight (RFC 6891 §6.1.3),
//! so codes up to 23 (BADCOOKIE) can be matched and set; a code above 15 cannot be set in a
//! response without OPT (CoreDNS fails to write it; the caller answers SERVFAIL).

use super::ttl::number;
use super::Matcher;
use crate::chain::plugins::message::opt_ttl_offset;

/// The rcode mnemonics CoreDNS reads (miekg/dns's `StringToRcode`).
const RCODES: &[(&str, u16)] = &[
    ("NOERROR", 0),
    ("FORMERR", 1),
    ("SERVFAIL", 2),
    ("NXDOMAIN", 3),
    ("NOTIMP", 4),
    ("NOTIMPL", 4),
    ("REFUSED", 5),
    ("YXDOMAIN", 6),
    ("YXRRSET", 7),
    ("NXRRSET", 8),
    ("NOTAUTH", 9),
    ("NOTZONE", 10),
    ("DSOTYPENI", 11),
    ("BADSIG", 16),
    ("BADKEY", 17),
    ("BADTIME", 18),
    ("BADMODE", 19),
    ("BADNAME", 20),
    ("BADALG", 21),
    ("BADTRUNC", 22),
    ("BADCOOKIE", 23),
];

/// The largest rcode a number may give (CoreDNS's `isValidRCode`).
const MAX_NUMERIC: u32 = 23;

/// One `rewrite rcode [exact|prefix|suffix|substring|regex] NAME FROM TO` rule.
#[derive(Clone, Debug)]
pub struct RcodeRule {
    matcher: Matcher,
    from: u16,
    to: u16,
}

impl RcodeRule {
    /// A rule matching NAME by `kind` (`exact`, ...; any case), turning rcode FROM into TO
    /// (each a number up to 23 or a mnemonic, any case).
    pub fn new(kind: &str, name: &str, from: &str, to: &str) -> Result<Self, String> {
        let from = parse_rcode(from)
            .ok_or_else(|| format!("invalid matching RCODE '{from}' for a rcode rule"))?;
        let to = parse_rcode(to)
            .ok_or_else(|| format!("invalid replacement RCODE '{to}' for a rcode rule"))?;
        Ok(RcodeRule {
            matcher: Matcher::new("rcode", kind, name)?,
            from,
            to,
        })
    }

    /// Whether the rule applies to the question name `name` (dotted, lowercase).
    pub fn matches(&self, name: &str) -> bool {
        self.matcher.matches(name)
    }

    /// FROM and TO.
    pub fn codes(&self) -> (u16, u16) {
        (self.from, self.to)
    }
}

/// An rcode by number (0 to 23) or mnemonic (any case).
pub fn parse_rcode(text: &str) -> Option<u16> {
    if let Some(code) = number(text).filter(|&n| n <= MAX_NUMERIC) {
        return u16::try_from(code).ok();
    }
    let upper = text.to_ascii_uppercase();
    RCODES
        .iter()
        .find(|(name, _)| *name == upper)
        .map(|(_, code)| *code)
}

/// Applies `rules` (FROM, TO), the last first, to the rcode of `message` (a whole response);
/// `None` when the result cannot be written (above 15 without OPT) or `message` is malformed.
pub fn rewrite_rcode(message: &mut [u8], rules: &[(u16, u16)]) -> Option<()> {
    let opt = opt_ttl_offset(message);
    let extended = match opt {
        Some(at) => u16::from(*message.get(at)?),
        None => 0,
    };
    let current = extended << 4 | u16::from(*message.get(3)? & 0x0F);
    let mut rcode = current;
    for &(from, to) in rules.iter().rev() {
        if rcode == from {
            rcode = to;
        }
    }
    if rcode == current {
        return Some(());
    }
    match opt {
        Some(at) => *message.get_mut(at)? = (rcode >> 4) as u8,
        None if rcode > 0x0F => return None,
        None => {}
    }
    let low = *message.get(3)? & 0xF0;
    *message.get_mut(3)? = low | (rcode & 0x0F) as u8;
    Some(())
}
