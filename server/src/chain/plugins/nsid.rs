//! CoreDNS's `nsid`: the server's identifier (RFC 5001) in the OPT record of every response to a
//! query that asks for it with an empty NSID option. The identifier is the directive's
//! arguments joined by spaces, or the host name (a Pod's name in a cluster).
//!
//! The option is added to the finished response, so it is what every plugin of the block
//! answered, forwarded answers included. A response that has no OPT record (the query had
//! none) gets none (RFC 6891 §7); one the option would take past the client's limit goes
//! without it.

use super::edns::{add_option, has_option, OPTION_NSID};

/// The `nsid` plugin of a block: the identifier's bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nsid {
    data: Box<[u8]>,
}

impl Nsid {
    /// `nsid [DATA...]` as CoreDNS reads it: the arguments joined by one space, else
    /// `hostname`.
    pub fn new(args: &[&str], hostname: &str) -> Nsid {
        let data = match args {
            [] => hostname.to_owned(),
            args => args.join(" "),
        };
        Nsid {
            data: data.into_bytes().into(),
        }
    }

    /// The identifier's bytes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Adds the identifier to the response of `len` bytes in `out` when the query `packet`
    /// asks for it and it fits in `limit` bytes; returns the response's length.
    pub fn apply(&self, packet: &[u8], out: &mut [u8], len: usize, limit: usize) -> usize {
        if !has_option(packet, OPTION_NSID) {
            return len;
        }
        add_option(out, len, limit, OPTION_NSID, &self.data).unwrap_or(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clusterdns_zone::answer::{parse_query, respond_rcode, Transport};
    use clusterdns_zone::{Answered, Rcode};
    use hickory_proto::op::Message;
    use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};

    /// `whoami.example.org A`, with EDNS (and an empty NSID option when `nsid`) or without.
    fn query(edns: bool, nsid: bool) -> Vec<u8> {
        let mut packet = vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, u8::from(edns)];
        packet.extend_from_slice(b"\x06whoami\x07example\x03org\x00\x00\x01\x00\x01");
        if edns {
            packet.extend_from_slice(&[0, 0, 41, 16, 0, 0, 0, 0, 0]);
            match nsid {
                true => packet.extend_from_slice(&[0, 4, 0, 3, 0, 0]),
                false => packet.extend_from_slice(&[0, 0]),
            }
        }
        packet
    }

    /// The NSID the response to `packet` carries after `nsid` applied.
    fn answered(nsid: &Nsid, packet: &[u8], limit: usize) -> Option<Vec<u8>> {
        let query = parse_query(packet).expect("a query");
        let mut out = [0u8; 512];
        let udp = Transport::Udp { max_payload: 4096 };
        let Answered::Response { len, .. } =
            respond_rcode(&query, packet, &mut out, Rcode::NoError, udp)
        else {
            panic!("no response");
        };
        let len = nsid.apply(packet, &mut out, len, limit);
        let message = Message::from_vec(&out[..len]).expect("decodes");
        match message.edns?.option(EdnsCode::NSID)? {
            EdnsOption::NSID(data) => Some(data.as_ref().to_vec()),
            other => panic!("{other:?}"),
        }
    }

    // The README's example: `nsid Use The Force`, and `dig +nsid`.
    #[test]
    fn readme_example() {
        let nsid = Nsid::new(&["Use", "The", "Force"], "pod-1");
        assert_eq!(nsid.data(), b"Use The Force");
        assert_eq!(
            answered(&nsid, &query(true, true), 512),
            Some(b"Use The Force".to_vec())
        );
        // Not asked: nothing added.
        assert_eq!(answered(&nsid, &query(true, false), 512), None);
        assert_eq!(answered(&nsid, &query(false, false), 512), None);
        // No room: the response goes without it.
        assert_eq!(answered(&nsid, &query(true, true), 60), None);
    }

    // CoreDNS's setup_test.go: no argument is the host name.
    #[test]
    fn the_host_name_by_default() {
        assert_eq!(Nsid::new(&[], "pod-1").data(), b"pod-1");
        assert_eq!(Nsid::new(&["ps0"], "pod-1").data(), b"ps0");
    }
}
