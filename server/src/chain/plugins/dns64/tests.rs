//! Table tests: RFC 6052 §2.4's examples of address synthesis, and the cases of CoreDNS's
//! dns64_test.go (`TestTo6`, `TestRequestShouldIntercept`, `TestResponseShould`, `TestDNS64`).

use super::*;
use crate::chain::plugins::records::parse_record;
use clusterdns_zone::WireName;

/// NOERROR with QR and RD set.
const NOERROR: u16 = 0x8100;

/// A message with ID 42, `flags`, the question `qname qtype` and the records given in
/// zone-file syntax.
fn message(flags: u16, question: (&str, u16), answer: &[&str], authority: &[&str]) -> Vec<u8> {
    let mut out = vec![0, 42];
    out.extend_from_slice(&flags.to_be_bytes());
    for count in [1, answer.len(), authority.len(), 0] {
        out.extend_from_slice(&(count as u16).to_be_bytes());
    }
    out.extend_from_slice(WireName::from_dotted(question.0).unwrap().as_bytes());
    out.extend_from_slice(&question.1.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    for text in answer.iter().chain(authority) {
        parse_record(text).unwrap().encode(&mut out);
    }
    out
}

/// `records` in zone-file syntax, encoded one after the other.
fn encoded(records: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for text in records {
        parse_record(text).unwrap().encode(&mut out);
    }
    out
}

fn prefix(text: &str) -> Prefix {
    Prefix::parse(text).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn rfc_6052_examples() {
    // RFC 6052 §2.4, the table of 192.0.2.33 under each prefix length.
    let v4 = Ipv4Addr::new(192, 0, 2, 33);
    for (network, embedded) in [
        ("2001:db8::/32", "2001:db8:c000:221::"),
        ("2001:db8:100::/40", "2001:db8:1c0:2:21::"),
        ("2001:db8:122::/48", "2001:db8:122:c000:2:2100::"),
        ("2001:db8:122:300::/56", "2001:db8:122:3c0:0:221::"),
        ("2001:db8:122:344::/64", "2001:db8:122:344:c0:2:2100:0"),
        ("2001:db8:122:344::/96", "2001:db8:122:344::192.0.2.33"),
        ("64:ff9b::/96", "64:ff9b::192.0.2.33"),
    ] {
        assert_embeds(v4, network, embedded);
    }
}

/// `v4` under the prefix `network` is `embedded`.
fn assert_embeds(v4: Ipv4Addr, network: &str, embedded: &str) {
    let want: Ipv6Addr = embedded.parse().unwrap();
    assert_eq!(prefix(network).embed(v4), want, "{v4} under {network}");
}

#[test]
fn coredns_to6_cases() {
    let v4 = Ipv4Addr::new(64, 64, 64, 64);
    for (network, embedded) in [
        ("64:ff9b::/96", "64:ff9b::4040:4040"),
        ("64:ff9b::/64", "64:ff9b::40:4040:4000:0"),
        ("64:ff9b::/56", "64:ff9b:0:40:40:4040::"),
        ("64::/32", "64:0:4040:4040::"),
    ] {
        assert_embeds(v4, network, embedded);
    }
}

#[test]
fn prefixes_accepted_and_refused() {
    assert_eq!(Prefix::WELL_KNOWN, prefix("64:ff9b::/96"));
    assert_eq!(prefix("64:ff9b::/96").to_string(), "64:ff9b::/96");
    // Bits past the length are cleared, as Go's ParseCIDR does.
    assert_eq!(prefix("2001:db8:ffff::1/32").to_string(), "2001:db8::/32");
    for good in ["2002:ac12:b083::/96", "2002:c0a8:a88a::/48", "64:ff9b::/32"] {
        assert_eq!(prefix(good).to_string(), good);
    }
    // From CoreDNS's setup_test.go: /52 and /104 are refused, and so is an IPv4 network; the
    // lengths RFC 6052 has no format for (72, 80, 88) too.
    for (bad, says) in [
        ("64:ff9b::/52", "prefix length must be"),
        ("64:ff9b::/104", "prefix length must be"),
        ("64:ff9b::/72", "prefix length must be"),
        ("64:ff9b::/129", "not a prefix length"),
        ("8.8.8.8/24", "not an IPv6 address"),
        ("64:ff9b::", "not an IPv6 prefix"),
        ("foobar", "not an IPv6 prefix"),
    ] {
        let error = Prefix::parse(bad).expect_err(bad);
        assert!(error.contains(says), "{bad}: {error}");
    }
}

#[test]
fn which_queries_are_intercepted() {
    let v6: IpAddr = "::1".parse().unwrap();
    let v4: IpAddr = "127.0.0.1".parse().unwrap();
    let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
    let only_v6 = Dns64::default();
    let any_client = Dns64 {
        allow_ipv4: true,
        ..Dns64::default()
    };
    // CoreDNS's TestRequestShouldIntercept.
    assert!(any_client.intercepts(TYPE_AAAA, CLASS_IN, v6));
    assert!(any_client.intercepts(TYPE_AAAA, CLASS_IN, v4));
    assert!(!only_v6.intercepts(TYPE_AAAA, CLASS_IN, v4));
    assert!(!only_v6.intercepts(TYPE_A, CLASS_IN, v6));
    // And: IPv6 clients, mapped IPv4 ones, other classes.
    assert!(only_v6.intercepts(TYPE_AAAA, CLASS_IN, v6));
    assert!(!only_v6.intercepts(TYPE_AAAA, CLASS_IN, mapped));
    assert!(!any_client.intercepts(TYPE_AAAA, 3, v6));
}

#[test]
fn which_responses_are_synthesized() {
    let q = ("example.com.", TYPE_AAAA);
    let soa = "example.com. IN SOA foo bar 1 1 1 1 1";
    let aaaa = "example.com. IN AAAA ::1";
    let plain = Dns64::default();
    let all = Dns64 {
        translate_all: true,
        ..Dns64::default()
    };
    // CoreDNS's TestResponseShould: an AAAA record, no; NODATA, yes; NOTIMP, yes; NXDOMAIN,
    // no; an AAAA record with translate_all, yes.
    assert!(!plain.needs_synthesis(&message(NOERROR, q, &[aaaa], &[])));
    assert!(plain.needs_synthesis(&message(NOERROR, q, &[], &[soa])));
    assert!(plain.needs_synthesis(&message(NOERROR | 4, q, &[], &[soa])));
    assert!(!plain.needs_synthesis(&message(NOERROR | 3, q, &[], &[soa])));
    assert!(all.needs_synthesis(&message(NOERROR, q, &[aaaa], &[])));
    // SERVFAIL and REFUSED count as empty answers (RFC 6147 §5.1.3).
    assert!(plain.needs_synthesis(&message(NOERROR | 2, q, &[], &[])));
    assert!(plain.needs_synthesis(&message(NOERROR | 5, q, &[], &[])));
    // A CNAME without AAAA at its end: yes.
    let cname = "example.com. IN CNAME real.example.com.";
    assert!(plain.needs_synthesis(&message(NOERROR, q, &[cname], &[soa])));
    // NXDOMAIN without an SOA, and a truncated response, are passed on (see the module doc).
    assert!(!plain.needs_synthesis(&message(NOERROR | 3, q, &[], &[])));
    assert!(!all.needs_synthesis(&message(NOERROR | 0x0200, q, &[], &[])));
    assert!(!plain.needs_synthesis(&[0, 1]));
}

/// The synthesized records for the AAAA response `aaaa` and the A response `a` under the
/// well-known prefix.
fn synthesize(aaaa: &[u8], a: &[u8]) -> Synthesized {
    Dns64::default().synthesize(aaaa, a).expect("synthesized")
}

// CoreDNS's TestDNS64, "standard flow": each AAAA gets the smaller of its A record's TTL and
// the SOA's (70).
#[test]
fn standard_flow() {
    let aaaa = message(
        NOERROR,
        ("example.com.", TYPE_AAAA),
        &[],
        &["example.com. 70 IN SOA foo bar 1 1 1 1 1"],
    );
    let a = message(
        NOERROR,
        ("example.com.", TYPE_A),
        &[
            "example.com. 60 IN A 192.0.2.42",
            "example.com. 5000 IN A 192.0.2.43",
        ],
        &[],
    );
    let got = synthesize(&aaaa, &a);
    let want = encoded(&[
        "example.com. 60 IN AAAA 64:ff9b::192.0.2.42",
        "example.com. 70 IN AAAA 64:ff9b::192.0.2.43",
    ]);
    assert_eq!(got.records, want);
    assert_eq!(got.counts, [2, 0, 0]);
    assert!(!got.truncated);
}

// "a empty": the name has neither A nor AAAA; the A response's SOA is the authority.
#[test]
fn no_a_records() {
    let soa = "example.com. 3600 IN SOA foo bar 1 7200 900 1209600 86400";
    let aaaa = message(NOERROR, ("example.com.", TYPE_AAAA), &[], &[soa]);
    let a = message(NOERROR, ("example.com.", TYPE_A), &[], &[soa]);
    let got = synthesize(&aaaa, &a);
    assert_eq!(got.records, encoded(&[soa]));
    assert_eq!(got.counts, [0, 1, 0]);
}

// "non-nxdomain error": REFUSED without an SOA; the TTLs are capped at 600.
#[test]
fn an_error_without_soa_caps_ttls_at_600() {
    let aaaa = message(NOERROR | 5, ("example.com.", TYPE_AAAA), &[], &[]);
    let a = message(
        NOERROR,
        ("example.com.", TYPE_A),
        &[
            "example.com. 60 IN A 192.0.2.42",
            "example.com. 5000 IN A 192.0.2.43",
        ],
        &[],
    );
    let got = synthesize(&aaaa, &a);
    let want = encoded(&[
        "example.com. 60 IN AAAA 64:ff9b::192.0.2.42",
        "example.com. 600 IN AAAA 64:ff9b::192.0.2.43",
    ]);
    assert_eq!(got.records, want);
}

// "truncated A response": the TC bit is kept.
#[test]
fn a_truncated_a_response_stays_truncated() {
    let aaaa = message(
        NOERROR,
        ("example.com.", TYPE_AAAA),
        &[],
        &["example.com. 70 IN SOA foo bar 1 1 1 1 1"],
    );
    let a = message(
        NOERROR | 0x0200,
        ("example.com.", TYPE_A),
        &["example.com. 60 IN A 192.0.2.42"],
        &[],
    );
    let got = synthesize(&aaaa, &a);
    assert!(got.truncated);
    assert_eq!(
        got.records,
        encoded(&["example.com. 60 IN AAAA 64:ff9b::192.0.2.42"])
    );
}

// RFC 6147 §5.3.3: a CNAME in front of the A records is kept; every A becomes an AAAA under a
// network-specific prefix; the additional section passes unchanged (§5.3.2).
#[test]
fn cnames_and_other_sections_pass_unchanged() {
    let aaaa = message(
        NOERROR,
        ("www.example.com.", TYPE_AAAA),
        &["www.example.com. 300 IN CNAME web.example.com."],
        &["example.com. 30 IN SOA ns hostmaster 1 7200 900 1209600 30"],
    );
    let mut a = message(
        NOERROR,
        ("www.example.com.", TYPE_A),
        &[
            "www.example.com. 300 IN CNAME web.example.com.",
            "web.example.com. 120 IN A 198.51.100.7",
        ],
        &["example.com. 300 IN NS ns.example.com."],
    );
    // An additional record (glue), after the authority.
    a[11] = 1;
    a.extend_from_slice(&encoded(&["ns.example.com. 300 IN A 192.0.2.53"]));
    let dns64 = Dns64 {
        prefix: prefix("2001:db8:122:344::/64"),
        ..Dns64::default()
    };
    let got = dns64.synthesize(&aaaa, &a).expect("synthesized");
    let want = encoded(&[
        "www.example.com. 300 IN CNAME web.example.com.",
        "web.example.com. 30 IN AAAA 2001:db8:122:344:c6:3364:700:0",
        "example.com. 300 IN NS ns.example.com.",
        "ns.example.com. 300 IN A 192.0.2.53",
    ]);
    assert_eq!(got.records, want);
    assert_eq!(got.counts, [2, 1, 1]);
}

#[test]
fn compressed_names_are_written_out() {
    // The A response as a server sends it: the owner a pointer to the question, the CNAME
    // target a pointer into the CNAME's own owner.
    let mut a = message(NOERROR, ("www.example.com.", TYPE_A), &[], &[]);
    a[7] = 2;
    let question = 12u8;
    a.extend_from_slice(&[0xC0, question, 0, 5, 0, 1, 0, 0, 0, 60, 0, 6]);
    a.extend_from_slice(&[3, b'w', b'e', b'b', 0xC0, question + 4]);
    let web = (a.len() - 6) as u8;
    a.extend_from_slice(&[0xC0, web, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
    let aaaa = message(NOERROR, ("www.example.com.", TYPE_AAAA), &[], &[]);
    let got = synthesize(&aaaa, &a);
    let want = encoded(&[
        "www.example.com. 60 IN CNAME web.example.com.",
        "web.example.com. 60 IN AAAA 64:ff9b::192.0.2.1",
    ]);
    assert_eq!(got.records, want);
    // A malformed A response gives nothing.
    assert!(Dns64::default()
        .synthesize(&aaaa, &a[..a.len() - 1])
        .is_none());
}
