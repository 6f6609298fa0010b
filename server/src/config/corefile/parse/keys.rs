//! Server-block keys: `[dns://]zone[:port]` to a zone and port, CIDRs to their reverse
//! zones (split on octet or nibble boundaries as CoreDNS does), and the duplicate check.

use super::*;

/// The key `token` writes: `[dns://]zone[:port]`, the zone a name or a CIDR.
pub(super) fn parse_key(token: Token) -> Result<BlockKey, CorefileError> {
    let written = token.text.as_str();
    let address = match written.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("dns") => rest,
        Some((scheme, _)) => {
            return Err(CorefileError::at(
                &token,
                format!(
                    "unknown scheme {:?} in server block key {written:?}: only dns:// is supported \
                     (tls://, https://, https3://, grpc:// and quic:// are not)",
                    format!("{scheme}://")
                ),
            ))
        }
        None => written,
    };
    if address.contains(',') {
        return Err(CorefileError::at(
            &token,
            format!(
                "server block key {written:?} holds a ',': separate keys with \", \" or spaces"
            ),
        ));
    }
    let (host, port) = match address.rsplit_once(':') {
        Some((_, "")) => {
            return Err(CorefileError::at(
                &token,
                format!("server block key {written:?} ends in ':' without a port"),
            ))
        }
        Some((host, port)) if port.bytes().all(|byte| byte.is_ascii_digit()) => {
            match port.parse::<u16>() {
                Ok(number) if number > 0 => (host, number),
                _ => {
                    return Err(CorefileError::at(
                        &token,
                        format!("port {port:?} in server block key {written:?} is not 1 to 65535"),
                    ))
                }
            }
        }
        _ => (address, DEFAULT_PORT),
    };
    if host.is_empty() {
        return Err(CorefileError::at(
            &token,
            format!(
                "server block key {written:?} names no zone (the root zone is \".\": \".:{port}\")"
            ),
        ));
    }
    let zones = if host.contains('/') {
        reverse_zones(host).ok_or_else(|| {
            CorefileError::at(
                &token,
                format!("{host:?} in server block key {written:?} is not a valid CIDR"),
            )
        })?
    } else {
        vec![zone_name(host).ok_or_else(|| {
            CorefileError::at(
                &token,
                format!("{host:?} in server block key {written:?} is not a valid zone name"),
            )
        })?]
    };
    Ok(BlockKey { token, zones, port })
}

/// `host` lowercased and fully qualified, if it is a domain name of letters, digits, `-` and `_`
/// (labels of 1 to 63, 255 octets in all).
pub(super) fn zone_name(host: &str) -> Option<String> {
    if host == "." {
        return Some(".".to_owned());
    }
    let name = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    let valid = name.len() + 2 <= 255
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
        });
    valid.then(|| name + ".")
}

/// The reverse zones of CIDR `cidr`, as CoreDNS's `cidr.Split` and `cidr.Reverse` make them: a
/// prefix off an octet (IPv4) or nibble (IPv6) boundary becomes every zone one boundary down.
pub(crate) fn reverse_zones(cidr: &str) -> Option<Vec<String>> {
    // CoreDNS refuses IPv6 written from "::" or with a leading zero (IPv4-mapped forms).
    if cidr.starts_with(':') || (cidr.starts_with('0') && cidr.contains(':')) {
        return None;
    }
    let (address, length) = cidr.split_once('/')?;
    if length.is_empty() || !length.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let length: u32 = length.parse().ok()?;
    let (value, width, digit, suffix) = match address.parse::<IpAddr>().ok()? {
        IpAddr::V4(ip) => (u128::from(u32::from(ip)), 32, 8, "in-addr.arpa."),
        IpAddr::V6(ip) => (u128::from(ip), 128, 4, "ip6.arpa."),
    };
    if length > width {
        return None;
    }
    let all = u128::MAX >> (128 - width);
    let network = if length == 0 {
        0
    } else {
        value & (all >> (width - length) << (width - length))
    };
    let rounded = length.div_ceil(digit) * digit;
    let step = if rounded == 0 {
        0
    } else {
        1u128 << (width - rounded)
    };
    let count = 1u128 << (rounded - length);
    let digits = rounded / digit;
    Some(
        (0..count)
            .map(|index| {
                let subnet = network | (index * step);
                let mut zone = String::new();
                for position in (0..digits).rev() {
                    let value = (subnet >> (width - digit * (position + 1))) & ((1 << digit) - 1);
                    zone.push_str(&if digit == 8 {
                        format!("{value}.")
                    } else {
                        format!("{value:x}.")
                    });
                }
                zone + suffix
            })
            .collect(),
    )
}

/// Fails on a zone and port served twice, naming the second key; blocks with a directive of
/// [`OVERLAP_DIRECTIVES`] are left to that directive's reader.
pub(super) fn check_duplicates(blocks: &[ServerBlock]) -> Result<(), CorefileError> {
    let mut seen: HashMap<(&str, u16), &Position> = HashMap::new();
    let checked = blocks.iter().filter(|block| {
        !block
            .directives
            .iter()
            .any(|directive| OVERLAP_DIRECTIVES.contains(&directive.name.text.as_str()))
    });
    for key in checked.flat_map(|block| &block.keys) {
        for zone in &key.zones {
            match seen.entry((zone, key.port)) {
                Entry::Occupied(first) => {
                    return Err(CorefileError::at(
                        &key.token,
                        format!(
                            "zone {zone}:{} defined more than once (first at {})",
                            key.port,
                            describe(first.get())
                        ),
                    ))
                }
                Entry::Vacant(slot) => {
                    slot.insert(&key.token.at);
                }
            }
        }
    }
    Ok(())
}
