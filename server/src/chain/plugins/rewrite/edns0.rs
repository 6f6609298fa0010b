//! `rewrite edns0` (CoreDNS's plugin/rewrite/edns0.go): EDNS0 options (RFC 6891 §6.1.2) set,
//! appended, replaced or removed in the query, for the upstream it is forwarded to.
//!
//! - `local CODE DATA`: an option of code CODE (0xffee, 65518, Go's base prefixes) holding
//!   DATA: `0x`-prefixed hex, a variable (`{qname}`, `{qtype}`, `{client_ip}`,
//!   `{client_port}`, `{protocol}`, `{server_ip}`, `{server_port}`), or the text itself;
//! - `nsid`: an empty NSID option (RFC 5001), asking the upstream to identify itself;
//! - `subnet V4 V6`: an EDNS Client Subnet option (RFC 7871 §6) with the client's address cut
//!   to V4 or V6 bits.
//!
//! An option matches one of the same code. `set` replaces the first match or adds the option,
//! `append` adds it when none matches, `replace` changes the first match only, `unset` removes
//! every match. The rules start from the client's own options; what goes upstream is the
//! options of the codes the rules set (the client's other options, such as a cookie, never
//! do: the forwarder asks its own query). A variable with no value (the server address of
//! another family than the client's) leaves the options as they are.

use std::net::{IpAddr, SocketAddr};

/// EDNS0 option code of NSID (RFC 5001 §2.3).
const NSID: u16 = 3;
/// EDNS0 option code of Client Subnet (RFC 7871 §6).
const SUBNET: u16 = 8;

/// What an `edns0` rule does with its option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edns0Action {
    /// Replace the first option of the code, or add one.
    Set,
    /// Add the option when there is none of the code.
    Append,
    /// Replace the first option of the code, if there is one.
    Replace,
    /// Remove every option of the code.
    Unset,
}

impl Edns0Action {
    /// The action a word names (any case).
    pub fn parse(word: &str) -> Option<Self> {
        Some(match word.to_ascii_lowercase().as_str() {
            "set" => Edns0Action::Set,
            "append" => Edns0Action::Append,
            "replace" => Edns0Action::Replace,
            "unset" => Edns0Action::Unset,
            _ => return None,
        })
    }
}

/// A value of the query that `edns0 local` can send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variable {
    /// `{qname}`: the question name, dotted, as the query has it.
    Qname,
    /// `{qtype}`: the question type, two bytes.
    Qtype,
    /// `{client_ip}`: the client's address, 4 or 16 bytes.
    ClientIp,
    /// `{client_port}`: the client's port, two bytes.
    ClientPort,
    /// `{protocol}`: `udp` or `tcp`.
    Protocol,
    /// `{server_ip}`: the address the query came to, in the client's family.
    ServerIp,
    /// `{server_port}`: the port the query came to, two bytes.
    ServerPort,
}

impl Variable {
    /// The variable `{name}` names.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "{qname}" => Variable::Qname,
            "{qtype}" => Variable::Qtype,
            "{client_ip}" => Variable::ClientIp,
            "{client_port}" => Variable::ClientPort,
            "{protocol}" => Variable::Protocol,
            "{server_ip}" => Variable::ServerIp,
            "{server_port}" => Variable::ServerPort,
            _ => return None,
        })
    }

    /// Its value for the query in `context` (CoreDNS's `ruleData`); `None` when there is none.
    fn value(self, context: &Context) -> Option<Vec<u8>> {
        Some(match self {
            Variable::Qname => context.qname.as_bytes().to_vec(),
            Variable::Qtype => context.qtype.to_be_bytes().to_vec(),
            Variable::ClientIp => address_bytes(context.client.ip(), v4(context.client.ip()))?,
            Variable::ServerIp => address_bytes(context.server.ip(), v4(context.client.ip()))?,
            Variable::ClientPort => context.client.port().to_be_bytes().to_vec(),
            Variable::ServerPort => context.server.port().to_be_bytes().to_vec(),
            Variable::Protocol => match context.tcp {
                true => b"tcp".to_vec(),
                false => b"udp".to_vec(),
            },
        })
    }
}

/// Whether `ip` counts as IPv4 (an IPv4-mapped IPv6 address does, as Go's `To4`).
fn v4(ip: IpAddr) -> bool {
    ip.to_canonical().is_ipv4()
}

/// `ip` in 4 bytes for an IPv4 client, 16 otherwise (CoreDNS's `ipToWire`); `None` when it
/// has no 4-byte form.
fn address_bytes(ip: IpAddr, four: bool) -> Option<Vec<u8>> {
    match (ip.to_canonical(), four) {
        (IpAddr::V4(ip), true) => Some(ip.octets().to_vec()),
        (IpAddr::V6(_), true) => None,
        (IpAddr::V4(ip), false) => Some(ip.to_ipv6_mapped().octets().to_vec()),
        (IpAddr::V6(ip), false) => Some(ip.octets().to_vec()),
    }
}

/// The data of an `edns0 local` option.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LocalData {
    /// Fixed bytes.
    Bytes(Vec<u8>),
    /// A value of the query.
    Variable(Variable),
}

/// The option of an `edns0` rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Edns0Option {
    /// `local CODE DATA`.
    Local {
        /// The option code.
        code: u16,
        /// What it holds.
        data: LocalData,
    },
    /// `nsid`: empty.
    Nsid,
    /// `subnet V4 V6`: the client's subnet of that many bits.
    Subnet {
        /// Prefix length for IPv4 clients.
        v4: u8,
        /// Prefix length for IPv6 clients.
        v6: u8,
    },
}

/// One `rewrite edns0 ...` rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edns0Rule {
    action: Edns0Action,
    option: Edns0Option,
}

impl Edns0Rule {
    /// `local ACTION CODE [DATA]` (no DATA for `unset`). Errors: a code that is not a number
    /// of 16 bits, bad hex after `0x`, a variable clusterdns does not know.
    pub fn local(action: Edns0Action, code: &str, data: &str) -> Result<Self, String> {
        let code = u16::try_from(go_uint(code).ok_or_else(|| {
            format!("invalid EDNS0 local option code {code:?}: not a number of 16 bits")
        })?)
        .map_err(|_| format!("invalid EDNS0 local option code {code:?}: not 16 bits"))?;
        let data = if data.starts_with('{') && data.ends_with('}') {
            LocalData::Variable(Variable::parse(data).ok_or_else(|| variable_error(data))?)
        } else if let Some(hex) = data.strip_prefix("0x") {
            LocalData::Bytes(decode_hex(hex).ok_or_else(|| format!("invalid hex data {data:?}"))?)
        } else {
            LocalData::Bytes(data.as_bytes().to_vec())
        };
        Ok(Edns0Rule {
            action,
            option: Edns0Option::Local { code, data },
        })
    }

    /// `nsid ACTION`.
    pub fn nsid(action: Edns0Action) -> Self {
        Edns0Rule {
            action,
            option: Edns0Option::Nsid,
        }
    }

    /// `subnet ACTION V4 V6` (`subnet unset` has no lengths: give `0`). Errors: a length that
    /// is not a number or longer than the address.
    pub fn subnet(action: Edns0Action, v4: &str, v6: &str) -> Result<Self, String> {
        let length = |text: &str, family: &str, bits: u64| {
            let n = go_uint(text)
                .filter(|&n| n <= u64::from(u16::MAX))
                .ok_or_else(|| {
                    format!("invalid {family} bit mask length {text:?}: not a number")
                })?;
            match n <= bits {
                true => Ok(n as u8),
                false => Err(format!("invalid {family} bit mask length {n}")),
            }
        };
        Ok(Edns0Rule {
            action,
            option: Edns0Option::Subnet {
                v4: length(v4, "IPv4", 32)?,
                v6: length(v6, "IPv6", 128)?,
            },
        })
    }

    /// The rule's action.
    pub fn action(&self) -> Edns0Action {
        self.action
    }

    /// The rule's option.
    pub fn option(&self) -> &Edns0Option {
        &self.option
    }

    /// The code of its option.
    fn code(&self) -> u16 {
        match self.option {
            Edns0Option::Local { code, .. } => code,
            Edns0Option::Nsid => NSID,
            Edns0Option::Subnet { .. } => SUBNET,
        }
    }

    /// Applies the rule to `options`; whether it applied (CoreDNS's `RewriteDone`).
    pub(super) fn apply(&self, options: &mut EdnsOptions, context: &Context) -> bool {
        let code = self.code();
        if self.action == Edns0Action::Unset {
            options.list.retain(|(c, _)| *c != code);
            return true;
        }
        let data = match &self.option {
            Edns0Option::Local {
                data: LocalData::Bytes(bytes),
                ..
            } => bytes.clone(),
            Edns0Option::Local {
                data: LocalData::Variable(variable),
                ..
            } => match variable.value(context) {
                Some(data) => data,
                None => return false,
            },
            Edns0Option::Nsid => Vec::new(),
            Edns0Option::Subnet { v4, v6 } => client_subnet(context.client.ip(), *v4, *v6),
        };
        let found = options.list.iter_mut().find(|(c, _)| *c == code);
        let applied = match (found, self.action) {
            (Some((_, existing)), Edns0Action::Set | Edns0Action::Replace) => {
                *existing = data;
                true
            }
            (None, Edns0Action::Set | Edns0Action::Append) => {
                options.list.push((code, data));
                true
            }
            _ => false,
        };
        if applied && !options.sent.contains(&code) {
            options.sent.push(code);
        }
        applied
    }
}

/// The message for a `{...}` data that is no variable clusterdns fills.
fn variable_error(data: &str) -> String {
    let label = &data[1..data.len() - 1];
    match label.split_once('/') {
        Some((plugin, name)) if !plugin.is_empty() && !name.is_empty() && !name.contains('/') => {
            format!(
                "{data}: metadata labels need the metadata plugin, which clusterdns does not \
                 have; supported: {{qname}}, {{qtype}}, {{client_ip}}, {{client_port}}, \
                 {{protocol}}, {{server_ip}}, {{server_port}}"
            )
        }
        _ => format!(
            "unsupported variable name {data:?}; supported: {{qname}}, {{qtype}}, {{client_ip}}, \
             {{client_port}}, {{protocol}}, {{server_ip}}, {{server_port}}"
        ),
    }
}

/// The data of an ECS option for `client` (RFC 7871 §6): family, source prefix length, scope
/// 0, and the address cut to the prefix, in as many bytes as the prefix covers.
fn client_subnet(client: IpAddr, v4: u8, v6: u8) -> Vec<u8> {
    let (family, prefix, octets): (u16, u8, Vec<u8>) = match client.to_canonical() {
        IpAddr::V4(ip) => (1, v4, ip.octets().to_vec()),
        IpAddr::V6(ip) => (2, v6, ip.octets().to_vec()),
    };
    let bytes = usize::from(prefix).div_ceil(8);
    let mut out = Vec::with_capacity(4 + bytes);
    out.extend_from_slice(&family.to_be_bytes());
    out.extend_from_slice(&[prefix, 0]);
    out.extend_from_slice(&octets[..bytes]);
    if !prefix.is_multiple_of(8) {
        if let Some(last) = out.last_mut() {
            *last &= 0xFF << (8 - prefix % 8);
        }
    }
    out
}

/// An unsigned number as Go's `strconv.ParseUint(text, 0, 64)` reads it: decimal, `0x` hex,
/// `0o` or a leading `0` octal, `0b` binary; `_` only between digits or after a base prefix.
pub fn go_uint(text: &str) -> Option<u64> {
    let lower = text.to_ascii_lowercase();
    let (digits, radix, prefixed) = if let Some(rest) = lower.strip_prefix("0x") {
        (rest, 16, true)
    } else if let Some(rest) = lower.strip_prefix("0b") {
        (rest, 2, true)
    } else if let Some(rest) = lower.strip_prefix("0o") {
        (rest, 8, true)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (&lower[1..], 8, true)
    } else {
        (lower.as_str(), 10, false)
    };
    if digits.ends_with('_') || digits.contains("__") || (digits.starts_with('_') && !prefixed) {
        return None;
    }
    let clean = digits.replace('_', "");
    if clean.is_empty() || !clean.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(&clean, radix).ok()
}

/// Hex digits in pairs (Go's `hex.DecodeString`).
fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// What a variable may say about the query.
pub(super) struct Context<'a> {
    /// The question name, dotted, as the query has it now.
    pub qname: &'a str,
    /// The question type now.
    pub qtype: u16,
    /// The client's address.
    pub client: SocketAddr,
    /// The address the query came to.
    pub server: SocketAddr,
    /// Over TCP (else UDP).
    pub tcp: bool,
}

/// The options of the query as the rules change them, and the codes they set.
#[derive(Debug, Default)]
pub(super) struct EdnsOptions {
    list: Vec<(u16, Vec<u8>)>,
    sent: Vec<u16>,
}

impl EdnsOptions {
    /// The options in an OPT record's RDATA (validated by the query parser; anything after a
    /// malformed option is left out).
    pub(super) fn parse(rdata: &[u8]) -> Self {
        let mut list = Vec::new();
        let mut at = 0;
        while let (Some(code), Some(len)) = (
            clusterdns_zone::wire::read_u16(rdata, at),
            clusterdns_zone::wire::read_u16(rdata, at + 2),
        ) {
            let Some(data) = rdata.get(at + 4..at + 4 + usize::from(len)) else {
                break;
            };
            list.push((code, data.to_vec()));
            at += 4 + usize::from(len);
        }
        EdnsOptions {
            list,
            sent: Vec::new(),
        }
    }

    /// The OPT RDATA for the upstream: the options of the codes the rules set, in order.
    pub(super) fn upstream(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (code, data) in self.list.iter().filter(|(c, _)| self.sent.contains(c)) {
            out.extend_from_slice(&code.to_be_bytes());
            // Option data longer than 65535 bytes cannot be in a message; clipped.
            let len = u16::try_from(data.len()).unwrap_or(u16::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&data[..usize::from(len)]);
        }
        out
    }
}
