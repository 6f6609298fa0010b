//! The `rewrite` directive read from Corefile text: the forms CoreDNS's setup_test.go and
//! rewrite_test.go (`TestNewRule`) accept and refuse, the block form real clusters use, and
//! errors that name the file, the line and the word that is wrong.

use std::path::Path;

use super::*;
use crate::config::corefile::parse;

/// The rules of `.:1053 { LINES }`, or the error (the block starts on line 2).
fn read(lines: &str) -> Result<Vec<Rule>, CorefileError> {
    let text = format!(".:1053 {{\n{lines}\n}}\n");
    let corefile = parse(Path::new("Corefile"), &text, &|_| None).expect("the grammar");
    plan(&corefile).map(|plan| plan.ports[0].blocks[0].rewrite.clone())
}

/// The error reading `lines`, checked to be at `line` and to say `says`.
fn refused(lines: &str, line: u32, says: &str) {
    match read(lines) {
        Ok(rules) => panic!("accepted {lines:?}: {rules:?}"),
        Err(error) => {
            let text = error.to_string();
            assert!(
                text.starts_with(&format!("Corefile:{line}: ")),
                "{lines:?}: expected line {line}: {text}"
            );
            assert!(
                text.contains(says),
                "{lines:?}: expected {says:?} in: {text}"
            );
        }
    }
}

#[test]
fn setup_test_cases() {
    // CoreDNS's setup_test.go, with the word each error is at.
    refused("rewrite", 2, "no rule type specified");
    refused("rewrite name", 2, "too few arguments for a name rule");
    assert_eq!(read("rewrite name a.com b.com").unwrap().len(), 1);
    assert_eq!(
        read("rewrite stop {\n    name regex foo bar\n    answer name bar foo\n}")
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        read("rewrite stop name regex foo bar answer name bar foo")
            .unwrap()
            .len(),
        1
    );
    // The third line's `name` reads as an answer rule with `answer` left out, and lacks TO.
    refused(
        "rewrite stop {\n    name regex foo bar\n    answer name bar foo\n    name baz\n}",
        5,
        "name answer rule for regex rule: 2 arguments required",
    );
    refused(
        "rewrite stop {\n    answer name bar foo\n    name regex foo bar\n}",
        3,
        "response rewrites must begin with a name rule",
    );
    refused("rewrite stop", 2, "stop rule must begin with a rule type");
    refused(
        "rewrite continue",
        2,
        "continue rule must begin with a rule type",
    );
    refused(
        "rewrite stop name regex [bad[ bar answer name bar foo",
        2,
        "invalid regex matching pattern \"[bad[\"",
    );
}

#[test]
fn rules_coredns_accepts_and_refuses() {
    // rewrite_test.go's TestNewRule: the words after `rewrite`, and whether they make a rule.
    let table: &[(&str, bool)] = &[
        ("foo", false),
        ("name", false),
        ("name a.com", false),
        ("name a.com b.com c.com", false),
        ("name a.com b.com", true),
        ("name exact a.com b.com", true),
        ("name prefix a.com b.com", true),
        ("name suffix a.com b.com", true),
        ("name substring a.com b.com", true),
        (r"name regex ([a])\.com new-{1}.com", true),
        (r"name regex ([a]\.com new-{1}.com", false),
        (
            r"name regex (dns)\.(core)\.(rocks) {2}.{1}.{3} answer name (core)\.(dns)\.(rocks) {2}.{1}.{3}",
            true,
        ),
        (
            r"name regex (adns)\.(core)\.(rocks) {2}.{1}.{3} answer name (core)\.(adns)\.(rocks) {2}.{1}.{3} too.long way.too.long",
            false,
        ),
        (
            r"name regex (bdns)\.(core)\.(rocks) {2}.{1}.{3} NoAnswer name (core)\.(bdns)\.(rocks) {2}.{1}.{3}",
            false,
        ),
        (
            r"name regex (cdns)\.(core)\.(rocks) {2}.{1}.{3} answer ttl (core)\.(cdns)\.(rocks) {2}.{1}.{3}",
            false,
        ),
        (
            r"name substring fcore.dns.rocks dns.fcore.rocks answer name (fcore)\.(dns)\.(rocks) {2}.{1}.{3}",
            true,
        ),
        ("name substring a.com b.com c.com", false),
        ("type", false),
        ("type a", false),
        ("type any a a", false),
        ("type any a", true),
        ("type XY WV", false),
        ("type ANY WV", false),
        ("class", false),
        ("class IN", false),
        ("class ch in in", false),
        ("class ch in", true),
        ("class XY WV", false),
        ("class IN WV", false),
        ("edns0", false),
        ("edns0 unknown-rule-type set", false),
        ("edns0 unknown-rule-type unset", false),
        ("edns0 local", false),
        ("edns0 local set", false),
        ("edns0 local set 0xffee", false),
        ("edns0 local set invalid-uint abcdefg", false),
        ("edns0 local set 65518 abcdefg", true),
        ("edns0 local set 0xffee abcdefg", true),
        ("edns0 local set 0xffee abcdefg revert", true),
        ("edns0 local append 0xffee abcdefg", true),
        ("edns0 local append 0xffee abcdefg revert", true),
        ("edns0 local replace 0xffee abcdefg", true),
        ("edns0 local replace 0xffee abcdefg revert", true),
        ("edns0 local unset 0xffee", true),
        ("edns0 local unset 0xffee abcdefg", false),
        ("edns0 local unset 0xffee revert", false),
        ("edns0 local foo 0xffee abcdefg", false),
        ("edns0 local set 0xffee 0xabcdefg", false),
        ("edns0 nsid set junk", false),
        ("edns0 nsid set", true),
        ("edns0 nsid set revert", true),
        ("edns0 nsid append", true),
        ("edns0 nsid append revert", true),
        ("edns0 nsid replace", true),
        ("edns0 nsid replace revert", true),
        ("edns0 nsid unset", true),
        ("edns0 nsid unset revert", false),
        ("edns0 nsid foo", false),
        ("edns0 local set invalid-uint {qname}", false),
        ("edns0 local set 0xffee {dummy}", false),
        ("edns0 local set 0xffee {qname}", true),
        ("edns0 local set 0xffee {qtype}", true),
        ("edns0 local set 0xffee {client_ip}", true),
        ("edns0 local set 0xffee {client_port}", true),
        ("edns0 local set 0xffee {protocol}", true),
        ("edns0 local set 0xffee {server_ip}", true),
        ("edns0 local set 0xffee {server_port}", true),
        ("edns0 local set 0xffee {server_port} revert", true),
        ("edns0 local append 0xffee {dummy}", false),
        ("edns0 local append 0xffee {qname}", true),
        ("edns0 local replace 0xffee {client_ip}", true),
        ("edns0 local replace 0xffee {server_port} revert", true),
        ("edns0 subnet set -1 56", false),
        ("edns0 subnet set 24 -56", false),
        ("edns0 subnet set 33 56", false),
        ("edns0 subnet set 24 129", false),
        ("edns0 subnet set 24 56", true),
        ("edns0 subnet set 24 56 revert", true),
        ("edns0 subnet append 24 56", true),
        ("edns0 subnet append 24 56 72", false),
        ("edns0 subnet append 24 56 revert", true),
        ("edns0 subnet replace 24 56", true),
        ("edns0 subnet replace 24 56 revert", true),
        ("edns0 subnet unset", true),
        ("edns0 subnet unset 24 56", false),
        ("edns0 subnet unset revert", false),
        ("unknown-action name a.com b.com", false),
        ("stop name a.com b.com", true),
        ("continue name a.com b.com", true),
        ("unknown-action type any a", false),
        ("stop type any a", true),
        ("continue type any a", true),
        ("stop class ch in", true),
        ("continue class ch in", true),
        ("stop edns0 local set 0xffee abcdefg", true),
        ("continue edns0 nsid set", true),
        ("continue edns0 local set 0xffee {client_port}", true),
        ("stop edns0 subnet set 24 56", true),
        ("continue edns0 subnet unset", true),
        // ttl_test.go, rcode_test.go and cname_target_test.go.
        ("ttl", false),
        ("ttl a.com", false),
        ("ttl a.com 5", true),
        ("ttl exact a.com 5", true),
        ("ttl prefix a.com 5", true),
        ("ttl suffix a.com 5", true),
        ("ttl substring a.com 5", true),
        (r"ttl regex (.*)\.coredns\.rocks 15", true),
        (r"ttl regex ([a]\.com 5", false),
        ("ttl glob a.com 5", false),
        ("ttl a.com -1", true),
        ("ttl a.com 10-", true),
        ("ttl a.com -", false),
        ("ttl a.com 20-10", false),
        ("ttl a.com five", false),
        ("ttl exact a.com 5 6", false),
        ("rcode", false),
        ("rcode a.com 2", false),
        ("rcode a.com SERVFAIL NOERROR", true),
        ("rcode a.com 2 0", true),
        (r"rcode regex (.*)\.coredns\.rocks SERVFAIL NOERROR", true),
        ("rcode a.com SERVFAIL BOGUS", false),
        ("rcode a.com 24 0", false),
        ("rcode glob a.com 2 0", false),
        ("rcode exact a.com 2 0 1", false),
        ("cname a.com", false),
        ("cname a.com b.com", true),
        ("cname exact a.com b.com", true),
        (
            r"cname regex (.*).cdn.example.net. {1}.other.cdn.com.",
            true,
        ),
        ("cname glob a.com b.com", false),
        (r"cname regex ([a]\.com b.com", false),
        ("cname exact a.com b.com c.com", false),
    ];
    for (words, ok) in table {
        let line = format!("rewrite {words}");
        assert_eq!(read(&line).is_ok(), *ok, "{line}: {:?}", read(&line).err());
    }
}

#[test]
fn the_block_form_real_clusters_use() {
    // AKS's and Gardener's documented custom domain, kubespray's `answer auto` variant, and
    // `continue` blocks of the README.
    for text in [
        r"rewrite stop {
            name regex (.*)\.foo\.example\.com {1}.default.svc.cluster.local
            answer name (.*)\.default\.svc\.cluster\.local {1}.foo.example.com
            answer value (.*)\.default\.svc\.cluster\.local {1}.foo.example.com
        }",
        "rewrite stop {
            name suffix .foo.example.com .default.svc.cluster.local
            answer auto
        }",
        "rewrite continue {
            name suffix .coredns.rocks .service.consul answer auto
        }",
        r"rewrite continue {
            ttl regex (.*)\.coredns\.rocks 15
        }",
        r"rewrite continue {
            rcode regex (.*)\.coredns\.rocks SERVFAIL NOERROR
        }",
        "rewrite {
            stop name exact a.example b.example
        }",
        "rewrite name {
            regex (.*)\\.a\\.example {1}.b.example
            answer auto
        }",
    ] {
        let rules = read(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(rules.len(), 1, "{text}");
    }
    let rules = read("rewrite continue {\n name exact a.example b.example\n}").unwrap();
    assert_eq!(rules[0].mode(), Processing::Continue);
    // Each directive is a rule, in the order written, whatever the plugin order.
    let rules = read(
        "rewrite stop type ANY HINFO\nhosts {\n fallthrough\n}\nrewrite continue {\n ttl a.example 5\n}",
    )
    .unwrap();
    assert!(matches!(rules[0].action(), Action::Type(_)));
    assert!(matches!(rules[1].action(), Action::Ttl(_)));
}

#[test]
fn malformed_rules_are_refused_at_the_word_that_is_wrong() {
    // A block after a whole rule on the line: CoreDNS reads no rule there.
    refused(
        "rewrite name exact a.example b.example {\n    answer auto\n}",
        3,
        "a block follows only",
    );
    refused(
        "rewrite stop {\n    name exact a.example b.example {\n        answer auto\n    }\n}",
        4,
        "no block inside a rewrite block",
    );
    refused("rewrite stop glob a b", 2, "invalid rule type \"glob\"");
    refused(
        "rewrite stop {\n    name glob a.example b.example answer auto\n}",
        3,
        "received: glob",
    );
    // Regex errors at FROM, group errors at TO.
    refused(
        "rewrite stop {\n    name regex (a)\\.example\n    {1}.{2}.b.example\n}",
        4,
        "uses more subexpressions",
    );
    refused(
        "rewrite stop {\n    name regex (a)\\.example {1}.b\n    answer name (unclosed x\n}",
        4,
        "name answer rule for regex rule: invalid regex",
    );
    refused(
        "rewrite stop {\n    name suffix .a .b\n    answer auto\n    answer name x y\n}",
        5,
        "auto name answer rule cannot be combined",
    );
    refused(
        "rewrite stop {\n    name suffix .a .b\n    answer\n}",
        4,
        "invalid arguments for suffix rule",
    );
    refused(
        "rewrite stop {\n    name suffix .a .b\n    answer auto\n    answer\n}",
        5,
        "type missing for answer rule",
    );
    refused(
        "rewrite stop {\n    name suffix .a .b\n    answer bogus x y\n}",
        4,
        "invalid type \"bogus\" for answer rule",
    );
    refused(
        "rewrite name suffix .a .b extra",
        2,
        "invalid arguments for suffix rule",
    );
    refused("rewrite type ANY BOGUS", 2, "invalid type \"BOGUS\"");
    refused("rewrite type BOGUS A", 2, "invalid type \"BOGUS\"");
    refused("rewrite class CH IN IN", 2, "exactly two arguments");
    refused("rewrite class CH BOGUS", 2, "invalid class \"BOGUS\"");
    refused(
        "rewrite continue {\n    ttl a.example.\n    soon\n}",
        4,
        "invalid TTL 'soon'",
    );
    refused(
        "rewrite continue {\n    ttl regex\n    (unclosed 5\n}",
        4,
        "invalid regex",
    );
    refused(
        "rewrite continue {\n    rcode a.example\n    SERVFAIL\n    BOGUS\n}",
        5,
        "invalid replacement RCODE 'BOGUS'",
    );
    refused(
        "rewrite continue {\n    rcode a.example\n    BOGUS\n    NOERROR\n}",
        4,
        "invalid matching RCODE 'BOGUS'",
    );
    refused(
        "rewrite edns0 local bogus 0xffee x",
        2,
        "invalid action: \"bogus\"",
    );
    refused("rewrite edns0 bogus set", 2, "invalid rule type \"bogus\"");
    refused(
        "rewrite stop {\n    edns0 local set\n    0xfffff x\n}",
        4,
        "invalid EDNS0 local option code \"0xfffff\"",
    );
    refused(
        "rewrite stop {\n    edns0 local set 0xffee\n    0xabc\n}",
        4,
        "invalid hex data",
    );
    refused(
        "rewrite edns0 local set 0xffee {some-plugin/some-label}",
        2,
        "metadata labels need the metadata plugin",
    );
    refused(
        "rewrite edns0 local set 0xffee {dummy}",
        2,
        "unsupported variable name",
    );
    refused(
        "rewrite edns0 subnet set 24 129",
        2,
        "invalid IPv6 bit mask length 129",
    );
    refused(
        "rewrite edns0 subnet set 33 56",
        2,
        "invalid IPv4 bit mask length 33",
    );
    refused(
        "rewrite edns0 nsid set junk",
        2,
        "unexpected argument \"junk\"",
    );
    refused(
        "rewrite cname glob a b",
        2,
        "unknown cname rewrite type: glob",
    );
    refused("rewrite cname a", 2, "too few arguments for a cname rule");
}

#[test]
fn go_numbers_as_coredns_reads_option_codes() {
    use crate::chain::plugins::rewrite::edns0::go_uint;
    for (text, want) in [
        ("65518", Some(65518)),
        ("0xffee", Some(0xffee)),
        ("0XFFEE", Some(0xffee)),
        ("0o17", Some(15)),
        ("017", Some(15)),
        ("0b101", Some(5)),
        ("0x_ff", Some(0xff)),
        ("0", Some(0)),
        ("1_000", Some(1000)),
        ("_1", None),
        ("1_", None),
        ("0x__f", None),
        ("08", None),
        ("-1", None),
        ("+1", None),
        ("", None),
        ("0x", None),
    ] {
        assert_eq!(go_uint(text), want, "{text}");
    }
}
