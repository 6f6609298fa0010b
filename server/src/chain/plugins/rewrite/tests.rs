use super::*;
use clusterdns_zone::parse_query;
use clusterdns_zone::wire::{TYPE_CNAME, TYPE_SOA};
use hickory_proto::op::Message;

fn rule(
    mode: Processing,
    kind: &str,
    from: &str,
    to: &str,
    answers: Vec<AnswerRewrite>,
) -> NameRule {
    NameRule::new(mode, kind, from, to, answers).unwrap()
}

fn stop(kind: &str, from: &str, to: &str) -> NameRule {
    rule(Processing::Stop, kind, from, to, Vec::new())
}

fn wire(name: &str) -> Vec<u8> {
    WireName::from_dotted(name).unwrap().as_bytes().to_vec()
}

/// The name the rules send on, or what else happened.
fn rewrite(rules: &[NameRule], name: &str) -> Option<String> {
    match rewrite_request(rules, &wire(name)) {
        RequestRewrite::Rewritten(r) => Some(r.qname().to_dotted()),
        RequestRewrite::Unchanged => None,
        RequestRewrite::Invalid(name) => Some(format!("invalid {name}")),
    }
}

#[test]
fn rewrites_with_each_match_kind_as_coredns_normalizes_them() {
    let exact = stop("exact", "A.Example.", "b.example");
    assert_eq!(
        exact.rewrite_question("a.example."),
        Some("b.example.".into())
    );
    assert_eq!(exact.rewrite_question("x.a.example."), None);
    // FROM and TO get a trailing dot: `prefix prefix to` matches `prefix.` only.
    let prefix = stop("prefix", "prefix", "to");
    assert_eq!(prefix.rewrite_question("prefix.nl."), Some("to.nl.".into()));
    assert_eq!(prefix.rewrite_question("prefixed.nl."), None);
    let suffix = stop("suffix", ".schmoogle.com.", ".google.com.");
    assert_eq!(
        suffix.rewrite_question("www.schmoogle.com."),
        Some("www.google.com.".into())
    );
    let glued = stop("SUFFIX", ".ingress.coredns.rocks", "nginx.coredns.rocks");
    assert_eq!(
        glued.rewrite_question("coredns.ingress.coredns.rocks."),
        Some("corednsnginx.coredns.rocks.".into())
    );
    let substring = stop("substring", "from.substring", "to");
    assert_eq!(
        substring.rewrite_question("from.substring.nl."),
        Some("to.nl.".into())
    );
    assert_eq!(substring.rewrite_question("other.nl."), None);
}

#[test]
fn regex_rules_fill_in_groups() {
    let regex = stop(
        "regex",
        r"(.*)-(us-west-1)\.example\.org",
        "{1}.service.{2}.consul",
    );
    assert_eq!(
        regex.rewrite_question("ftp-us-west-1.example.org."),
        Some("ftp.service.us-west-1.consul.".into())
    );
    assert_eq!(regex.rewrite_question("ftp.example.org."), None);
    // TO gets a trailing dot, so a group that ends with one makes an invalid name.
    let whole = stop("regex", r"^(?:www\.)?(.+)\.$", "{1}");
    assert_eq!(
        whole.rewrite_question("www.example.org."),
        Some("example.org.".into())
    );
    let doubled = [stop("regex", r"^(?:www\.)?(.+)$", "{1}")];
    assert_eq!(
        rewrite(&doubled, "www.example.org."),
        Some("invalid example.org..".into())
    );
}

#[test]
fn rejects_bad_rules() {
    let err = |kind, from, to, answers| {
        NameRule::new(Processing::Stop, kind, from, to, answers).unwrap_err()
    };
    assert!(err("regex", "(unclosed", "x", vec![]).contains("invalid regex"));
    assert!(err("regex", "(a)", "{1}.{2}", vec![]).contains("more subexpressions"));
    let long = "a".repeat(10_001);
    assert!(err("regex", &long, "x", vec![]).contains("too long"));
    assert!(err("glob", "a", "b", vec![]).contains("received: glob"));
    let name = AnswerRewrite::Name(RegexRewrite::new("(.*)", "{1}").unwrap());
    assert!(err("prefix", "a", "b", vec![AnswerRewrite::Auto, name]).contains("auto"));
    assert!(RegexRewrite::new("[", "x").is_err());
}

#[test]
fn stops_after_the_first_match_unless_told_to_continue() {
    let rules = [
        stop("exact", "a.example.", "b.example."),
        stop("exact", "b.example.", "c.example."),
    ];
    assert_eq!(rewrite(&rules, "a.example."), Some("b.example.".into()));
    assert_eq!(rewrite(&rules, "b.example."), Some("c.example.".into()));
    assert_eq!(rewrite(&rules, "z.example."), None);
    let rules = [
        rule(
            Processing::Continue,
            "exact",
            "a.example.",
            "b.example.",
            vec![],
        ),
        stop("exact", "b.example.", "c.example."),
        stop("exact", "c.example.", "d.example."),
    ];
    assert_eq!(rewrite(&rules, "a.example."), Some("c.example.".into()));
    let invalid = [stop("substring", "example", "a..b")];
    assert_eq!(
        rewrite(&invalid, "x.example."),
        Some("invalid x.a..b.".into())
    );
}

#[test]
fn reverts_answer_names() {
    let auto = |kind, from, to| rule(Processing::Stop, kind, from, to, vec![AnswerRewrite::Auto]);
    // Exact rules revert without being asked to; the name and the names below it.
    let exact = stop("exact", "a.example.", "b.example.");
    let revert = |r: &NameRule, name| r.rewrite_answer_name("a.example.", "b.example.", name);
    assert_eq!(revert(&exact, "b.example."), Some("a.example.".into()));
    assert_eq!(
        revert(&exact, "lb.b.example."),
        Some("lb.a.example.".into())
    );
    assert_eq!(revert(&exact, "xb.example."), None);
    assert_eq!(revert(&stop("prefix", "a", "b"), "b.example."), None);
    let prefix = auto("prefix", "a", "b");
    assert_eq!(revert(&prefix, "b.example."), Some("a.example.".into()));
    assert_eq!(
        prefix.rewrite_answer_value("a.example.", "b.example.", "www.b.example."),
        Some("www.a.example.".into())
    );
    // Suffix rules swap the suffixes back, label boundary or not.
    let suffix = auto("suffix", ".coredns.rocks", ".service.consul");
    let back = |name| suffix.rewrite_answer_name("x.coredns.rocks.", "x.service.consul.", name);
    assert_eq!(
        back("other.service.consul."),
        Some("other.coredns.rocks.".into())
    );
    assert_eq!(back("other.example."), None);
    // `answer name` rewrites owners with a regex; `answer value` the names they point to.
    let explicit = rule(
        Processing::Stop,
        "regex",
        r"(.*)-(us-west-1)\.coredns\.rocks",
        "{1}.service.{2}.consul",
        vec![
            AnswerRewrite::Name(
                RegexRewrite::new(
                    r"(.*)\.service\.(us-west-1)\.consul",
                    "{1}-{2}.coredns.rocks",
                )
                .unwrap(),
            ),
            AnswerRewrite::Value(RegexRewrite::new(r"(.*)\.consul\.", "{1}.rocks").unwrap()),
        ],
    );
    let (original, rewritten) = (
        "ftp-us-west-1.coredns.rocks.",
        "ftp.service.us-west-1.consul.",
    );
    assert_eq!(
        explicit.rewrite_answer_name(original, rewritten, rewritten),
        Some(original.into())
    );
    assert_eq!(
        explicit.rewrite_answer_value(original, rewritten, "web.consul."),
        Some("web.rocks.".into())
    );
    assert_eq!(
        explicit.rewrite_answer_name(original, rewritten, "web.consul."),
        None
    );
}

/// Appends a wire name, or a pointer when `pointer` is given.
fn label_bytes(out: &mut Vec<u8>, labels: &[&str], pointer: Option<usize>) {
    for label in labels {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    match pointer {
        Some(at) => out.extend_from_slice(&(0xC000 | at as u16).to_be_bytes()),
        None => out.push(0),
    }
}

/// Appends a record header (type, class IN, TTL 60) and leaves the RDLENGTH to `finish`.
fn record_start(out: &mut Vec<u8>, rtype: u16) -> usize {
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&[0, 1, 0, 0, 0, 60, 0, 0]);
    out.len()
}

fn finish(out: &mut [u8], rdata_at: usize) {
    let len = (out.len() - rdata_at) as u16;
    out[rdata_at - 2..rdata_at].copy_from_slice(&len.to_be_bytes());
}

#[test]
fn restores_a_compressed_response_for_answer_auto() {
    let rules = [rule(
        Processing::Stop,
        "regex",
        r"(.*)-(us-west-1)\.example\.org",
        "{1}.service.{2}.consul",
        vec![AnswerRewrite::Auto],
    )];
    let mut query = vec![0xBE, 0xEF, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    label_bytes(&mut query, &["FTP-us-west-1", "Example", "org"], None);
    query.extend_from_slice(&[0, 1, 0, 1]);
    let parsed = parse_query(&query).unwrap();
    let RequestRewrite::Rewritten(rewritten) = rewrite_request(&rules, parsed.qname()) else {
        panic!("the rule matches");
    };
    assert_eq!(
        rewritten.qname().to_dotted(),
        "ftp.service.us-west-1.consul."
    );

    // The upstream's answer, compressed every way it can be.
    let mut response = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 2, 0, 1, 0, 1];
    label_bytes(
        &mut response,
        &["ftp", "service", "us-west-1", "consul"],
        None,
    );
    response.extend_from_slice(&[0, 1, 0, 1]);
    let consul = 12 + 4 + 8 + 10;
    // ftp.service.us-west-1.consul. CNAME lb.ftp.service.us-west-1.consul.
    label_bytes(&mut response, &[], Some(12));
    let rdata = record_start(&mut response, TYPE_CNAME);
    let lb = response.len();
    label_bytes(&mut response, &["lb"], Some(12));
    finish(&mut response, rdata);
    // lb.ftp.service.us-west-1.consul. A 10.0.0.1
    label_bytes(&mut response, &[], Some(lb));
    let rdata = record_start(&mut response, 1);
    response.extend_from_slice(&[10, 0, 0, 1]);
    finish(&mut response, rdata);
    // consul. SOA ns.consul. hostmaster.consul. 1 2 3 4 5
    label_bytes(&mut response, &[], Some(consul));
    let rdata = record_start(&mut response, TYPE_SOA);
    label_bytes(&mut response, &["ns"], Some(consul));
    label_bytes(&mut response, &["hostmaster"], Some(consul));
    for value in 1u32..=5 {
        response.extend_from_slice(&value.to_be_bytes());
    }
    finish(&mut response, rdata);
    // OPT
    response.extend_from_slice(&[0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 0]);

    let mut out = Vec::new();
    rewritten
        .restore_response(&response, &parsed, &query, &mut out)
        .unwrap();
    let message = Message::from_vec(&out).unwrap();
    assert_eq!(message.metadata.id, 0xBEEF);
    assert_eq!(message.queries.len(), 1);
    assert_eq!(
        message.queries[0].name().to_string(),
        "FTP-us-west-1.Example.org."
    );
    let records = |section: &[hickory_proto::rr::Record]| -> Vec<String> {
        section.iter().map(ToString::to_string).collect()
    };
    assert_eq!(
        records(&message.answers),
        [
            "ftp-us-west-1.example.org. 60 IN CNAME lb.ftp-us-west-1.example.org.",
            "lb.ftp-us-west-1.example.org. 60 IN A 10.0.0.1",
        ]
    );
    assert_eq!(
        records(&message.authorities),
        ["consul. 60 IN SOA ns.consul. hostmaster.consul. 1 2 3 4 5"]
    );
    assert_eq!(message.edns.map(|e| e.max_payload()), Some(1232));
    // The rewritten names were compressed again (the A owner points at the CNAME target).
    assert!(out.len() < 170, "{} bytes", out.len());

    // Truncated or looping input is refused, not followed.
    assert!(rewritten
        .restore_response(&response[..response.len() - 3], &parsed, &query, &mut out)
        .is_none());
    let mut looping = response.clone();
    looping[12 + 30 + 4..12 + 30 + 6].copy_from_slice(&[0xC0, 46]);
    assert!(rewritten
        .restore_response(&looping, &parsed, &query, &mut out)
        .is_none());
    // A corrupted byte anywhere is not a panic (RDATA of other types is copied as it is).
    for at in 0..response.len() {
        for value in [0x00, 0x01, 0x3F, 0x40, 0xC0, 0xFF] {
            let mut corrupt = response.clone();
            corrupt[at] = value;
            let _ = rewritten.restore_response(&corrupt, &parsed, &query, &mut out);
        }
    }
}

#[test]
fn puts_the_question_back_when_nothing_else_changes() {
    let rules = [stop("prefix", "www", "web")];
    let mut query = vec![0, 7, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    label_bytes(&mut query, &["www", "example"], None);
    query.extend_from_slice(&[0, 28, 0, 1]);
    let parsed = parse_query(&query).unwrap();
    let RequestRewrite::Rewritten(rewritten) = rewrite_request(&rules, parsed.qname()) else {
        panic!("the rule matches");
    };
    let mut response = vec![0, 9, 0x81, 0x83, 0, 0, 0, 0, 0, 0, 0, 0];
    let mut out = Vec::new();
    rewritten
        .restore_response(&response, &parsed, &query, &mut out)
        .unwrap();
    let message = Message::from_vec(&out).unwrap();
    assert_eq!(message.queries[0].name().to_string(), "www.example.");
    assert_eq!(u16::from(message.metadata.response_code), 3);
    response.truncate(5);
    assert!(rewritten
        .restore_response(&response, &parsed, &query, &mut out)
        .is_none());
}
