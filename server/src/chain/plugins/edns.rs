//! EDNS(0) options on the wire (RFC 6891 §6.1.2): whether a query asks for one (`nsid`), and
//! adding one to a response's OPT record (`nsid`'s NSID, RFC 5001; `acl`'s Extended DNS Error,
//! RFC 8914). A response without an OPT record gets none: an OPT record goes only to a client
//! that sent one (RFC 6891 §7).

use clusterdns_zone::wire::{read_u16, skip_name, HEADER_LEN, TYPE_OPT};

/// The NSID option code (RFC 5001 §2.3).
pub const OPTION_NSID: u16 = 3;
/// The Extended DNS Error option code (RFC 8914 §2).
pub const OPTION_EDE: u16 = 15;

/// Where the OPT record of `message` starts and where its RDATA ends, if it has one.
fn opt_record(message: &[u8]) -> Option<(usize, usize)> {
    let mut at = HEADER_LEN;
    for _ in 0..read_u16(message, 4)? {
        at = skip_name(message, at)? + 4;
    }
    let records = [6, 8, 10]
        .into_iter()
        .map(|i| read_u16(message, i).map(usize::from))
        .sum::<Option<usize>>()?;
    for _ in 0..records {
        let start = at;
        at = skip_name(message, at)?;
        let rtype = read_u16(message, at)?;
        let end = at + 10 + usize::from(read_u16(message, at + 8)?);
        if end > message.len() {
            return None;
        }
        if rtype == TYPE_OPT {
            return Some((start, end));
        }
        at = end;
    }
    None
}

/// Whether the query `packet` has an OPT record holding an option of `code`.
pub fn has_option(packet: &[u8], code: u16) -> bool {
    let Some((start, end)) = opt_record(packet) else {
        return false;
    };
    // The OPT record's owner is the root (one byte): RDATA starts 11 bytes in.
    let mut at = start + 11;
    while at + 4 <= end {
        if read_u16(packet, at) == Some(code) {
            return true;
        }
        at += 4 + read_u16(packet, at + 2).map_or(usize::MAX / 2, usize::from);
    }
    false
}

/// Adds the option `code` with `data` to the OPT record of the response of `len` bytes in `out`;
/// returns the new length. `None` (the response unchanged) when it has no OPT record, or when
/// the option would take it past `limit` bytes.
pub fn add_option(
    out: &mut [u8],
    len: usize,
    limit: usize,
    code: u16,
    data: &[u8],
) -> Option<usize> {
    let (start, end) = opt_record(&out[..len])?;
    let added = 4 + data.len();
    let new_len = len + added;
    let rdlen = usize::from(read_u16(out, start + 9)?) + added;
    if new_len > limit.min(out.len()) || rdlen > usize::from(u16::MAX) {
        return None;
    }
    // Records after the OPT record (a TSIG) move to make room.
    out.copy_within(end..len, end + added);
    out[end..end + 2].copy_from_slice(&code.to_be_bytes());
    out[end + 2..end + 4].copy_from_slice(&(data.len() as u16).to_be_bytes());
    out[end + 4..end + added].copy_from_slice(data);
    out[start + 9..start + 11].copy_from_slice(&(rdlen as u16).to_be_bytes());
    Some(new_len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Message;
    use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};

    /// `example.org A` with an OPT record holding `options` (code, data).
    fn query(options: &[(u16, &[u8])]) -> Vec<u8> {
        let mut packet = vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1];
        packet.extend_from_slice(b"\x07example\x03org\x00\x00\x01\x00\x01");
        let mut rdata = Vec::new();
        for (code, data) in options {
            rdata.extend_from_slice(&code.to_be_bytes());
            rdata.extend_from_slice(&(data.len() as u16).to_be_bytes());
            rdata.extend_from_slice(data);
        }
        packet.extend_from_slice(&[0, 0, 41, 4, 208, 0, 0, 0, 0]);
        packet.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        packet.extend_from_slice(&rdata);
        packet
    }

    #[test]
    fn finds_options_of_a_query() {
        assert!(has_option(&query(&[(OPTION_NSID, b"")]), OPTION_NSID));
        assert!(has_option(
            &query(&[(10, b"12345678"), (OPTION_NSID, b"")]),
            OPTION_NSID
        ));
        assert!(!has_option(&query(&[(10, b"12345678")]), OPTION_NSID));
        assert!(!has_option(&query(&[]), OPTION_NSID));
        let mut plain = query(&[]);
        plain.truncate(plain.len() - 11);
        plain[11] = 0;
        assert!(!has_option(&plain, OPTION_NSID));
        // A truncated option list.
        let mut cut = query(&[(OPTION_NSID, b"ab")]);
        cut.truncate(cut.len() - 1);
        assert!(!has_option(&cut, OPTION_NSID));
    }

    #[test]
    fn adds_an_option_to_the_opt_record() {
        // A "response": the query with QR set is enough for the layout.
        let mut message = query(&[(10, b"12345678")]);
        message[2] |= 0x80;
        let len = message.len();
        let mut out = [0u8; 512];
        out[..len].copy_from_slice(&message);
        let new_len = add_option(&mut out, len, 512, OPTION_NSID, b"Use The Force").expect("added");
        assert_eq!(new_len, len + 4 + 13);
        let decoded = Message::from_vec(&out[..new_len]).expect("decodes");
        let edns = decoded.edns.expect("an OPT record");
        match edns.option(EdnsCode::NSID) {
            Some(EdnsOption::NSID(data)) => assert_eq!(data.as_ref(), b"Use The Force"),
            other => panic!("{other:?}"),
        }
        // No room: unchanged.
        assert_eq!(
            add_option(&mut out, len, len + 5, OPTION_NSID, b"too long"),
            None
        );
        // No OPT record: unchanged.
        let mut plain = query(&[]);
        plain.truncate(plain.len() - 11);
        plain[11] = 0;
        let plain_len = plain.len();
        out[..plain_len].copy_from_slice(&plain);
        assert_eq!(
            add_option(&mut out, plain_len, 512, OPTION_NSID, b"x"),
            None
        );
    }
}
