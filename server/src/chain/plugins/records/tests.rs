use super::*;

fn wire(name: &str) -> Vec<u8> {
    WireName::from_dotted(name).unwrap().as_bytes().to_vec()
}

fn rdata(text: &str) -> Vec<u8> {
    parse_record(text).unwrap().rdata
}

#[test]
fn parses_the_header_with_defaults_and_in_either_order() {
    let r = parse_record("Example.ORG A 10.0.0.1").unwrap();
    assert_eq!(r.name, WireName::from_dotted("example.org.").unwrap());
    assert_eq!((r.rtype, r.class, r.ttl), (TYPE_A, 1, DEFAULT_TTL));
    for text in [
        "x. 60 IN A 1.2.3.4",
        "x. IN 60 A 1.2.3.4",
        "x. 1m in a 1.2.3.4",
    ] {
        let r = parse_record(text).unwrap();
        assert_eq!(
            (r.ttl, r.class, r.rdata),
            (60, 1, vec![1, 2, 3, 4]),
            "{text}"
        );
    }
    assert_eq!(parse_record("x. CH TXT a").unwrap().class, 3);
    assert_eq!(parse_record("@ 5 NS a.").unwrap().name, WireName::root());
    assert!(parse_record("x. 60 60 A 1.2.3.4").is_err());
    assert!(parse_record("x. IN IN A 1.2.3.4").is_err());
}

#[test]
fn encodes_each_supported_type() {
    assert_eq!(rdata("x. A 192.0.2.1"), [192, 0, 2, 1]);
    let mut v6 = [0u8; 16];
    v6[..2].copy_from_slice(&[0xfd, 0]);
    v6[15] = 1;
    assert_eq!(rdata("x. AAAA fd00::1"), v6);
    assert_eq!(rdata("x. CNAME target.example"), wire("target.example."));
    assert_eq!(rdata("x. PTR host.example."), wire("host.example."));
    assert_eq!(rdata("x. NS ns0.example.com."), wire("ns0.example.com."));
    let mut mx = vec![0, 10];
    mx.extend(wire("mail.example."));
    assert_eq!(rdata("x. MX 10 mail.example."), mx);
    let mut srv = vec![0, 1, 0, 2, 0x1F, 0x90];
    srv.extend(wire("svc.example."));
    assert_eq!(rdata("x. SRV 1 2 8080 svc.example."), srv);
    let mut soa = wire("ns.invalid.");
    soa.extend(wire("hostmaster.invalid."));
    for value in [1u32, 60, 3600, 60, 60] {
        soa.extend(value.to_be_bytes());
    }
    assert_eq!(
        rdata("invalid. 60 IN SOA ns.invalid hostmaster.invalid (1 60 1h 60 60)"),
        soa
    );
    assert_eq!(
        rdata(r#"x. TXT "hello world" plain "a\"b\065" """#),
        b"\x0bhello world\x05plain\x04a\"bA\x00"
    );
    let long = "a".repeat(300);
    let txt = rdata(&format!("x. TXT \"{long}\""));
    assert_eq!((txt[0], txt[256], txt.len()), (255, 45, 302));
}

#[test]
fn ignores_comments_and_parentheses() {
    let r = parse_record("x. 60 IN SOA a. b. (\n 1 ; serial\n 2 3 4 5 )").unwrap();
    assert_eq!(&r.rdata[r.rdata.len() - 4..], &5u32.to_be_bytes());
    assert!(parse_record("x. SOA a. b. (1 2 3 4 5").is_err());
}

#[test]
fn rejects_what_it_does_not_parse() {
    let err = parse_record("x. 60 IN HTTPS 1 . alpn=h2").unwrap_err();
    assert!(err.contains("HTTPS"), "{err}");
    for bad in [
        "",
        "x.",
        "x. 60 IN",
        "x. A 1.2.3",
        "x. A ::1",
        "x. AAAA 1.2.3.4",
        "x. A 1.2.3.4 extra",
        "x. MX 70000 mail.",
        "x. MX ten mail.",
        "x. CNAME a..b",
        "x. TXT \"open",
        " x. A 1.2.3.4",
        "x. FOO 1",
        "x. TXT \\300",
        "x. A 1.2.3.4 \\",
    ] {
        assert!(parse_record(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn survives_any_cut_of_valid_records() {
    let texts = [
        r#"x. 60 IN TXT "a\"b" \065 ( "c" ) ; note"#,
        "invalid. 60 IN SOA ns.invalid hostmaster.invalid (1 60 1h 60 60)",
        "x. SRV 1 2 8080 svc.example.",
    ];
    for text in texts {
        for end in (0..=text.len()).filter(|&end| text.is_char_boundary(end)) {
            let _ = parse_record(&text[..end]);
            let _ = parse_record(&text[end..]);
        }
    }
}

#[test]
fn reads_ttls_with_units() {
    assert_eq!(parse_ttl("3600"), Some(3600));
    assert_eq!(parse_ttl("1h30m"), Some(5400));
    assert_eq!(parse_ttl("1w"), Some(604_800));
    assert_eq!(parse_ttl("4294967296"), None);
    assert_eq!(parse_ttl("10x"), None);
}

#[test]
fn encodes_records_uncompressed() {
    let record = parse_record("a. 7 IN A 1.2.3.4").unwrap();
    let mut out = Vec::new();
    assert_eq!(encode_all(&[record.clone(), record], &mut out), 2);
    let one = [1, b'a', 0, 0, 1, 0, 1, 0, 0, 0, 7, 0, 4, 1, 2, 3, 4];
    assert_eq!(out, [one, one].concat());
}
