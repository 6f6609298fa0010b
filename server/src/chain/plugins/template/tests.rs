use super::*;
use clusterdns_zone::wire::{CLASS_IN, TYPE_A, TYPE_AAAA, TYPE_MX, TYPE_PTR, TYPE_SOA, TYPE_TXT};
use clusterdns_zone::WireName;

const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7));

fn config(class: &str, rtype: &str, zones: &[&str]) -> TemplateConfig {
    TemplateConfig {
        class: class.into(),
        rtype: rtype.into(),
        zones: zones.iter().map(|z| z.to_string()).collect(),
        ..TemplateConfig::default()
    }
}

fn ask(template: &Template, name: &str, qtype: u16) -> TemplateResult {
    let qname = WireName::from_dotted(name).unwrap();
    template.answer(qname.as_bytes(), CLASS_IN, qtype, CLIENT)
}

fn answer(result: TemplateResult) -> TemplateAnswer {
    match result {
        TemplateResult::Answer(answer) => answer,
        other => panic!("expected an answer, got {other:?}"),
    }
}

#[test]
fn answers_nxdomain_for_everything() {
    let t = Template::new(&TemplateConfig {
        rcode: Some("NXDOMAIN".into()),
        authority: vec![
            "invalid. 60 {{ .Class }} SOA ns.invalid. hostmaster.invalid. (1 60 60 60 60)".into(),
        ],
        ..config("ANY", "ANY", &["."])
    })
    .unwrap();
    let a = answer(ask(&t, "anything.example.", TYPE_MX));
    assert_eq!(a.rcode, Rcode::NxDomain);
    assert!(a.answer.is_empty() && a.additional.is_empty());
    assert_eq!(
        (
            a.authority[0].rtype,
            a.authority[0].class,
            a.authority[0].ttl
        ),
        (TYPE_SOA, CLASS_IN, 60)
    );
    let mut out = Vec::new();
    assert_eq!(a.encode(&mut out), [0, 1, 0]);
}

#[test]
fn fills_in_the_name_and_match_groups() {
    let t = Template::new(&TemplateConfig {
        matches: vec![r"^ip-(\d+)-(\d+)-(\d+)-(\d+)[.]example[.]$".into()],
        answer: vec!["{{ .Name }} 60 IN A {{ index .Match 1 }}.{{index .Match 2}}.{{ index .Match 3 }}.{{ index .Match 4 }}".into()],
        additional: vec!["{{.Name}} 30 IN TXT \"{{ .Zone }} {{ .Class }} {{ .Type }} {{ .Remote }}\"".into()],
        ..config("IN", "A", &["example."])
    })
    .unwrap();
    let a = answer(ask(&t, "ip-10-1-2-3.example.", TYPE_A));
    assert_eq!(a.rcode, Rcode::NoError);
    assert_eq!(a.answer.len(), 1);
    assert_eq!(a.answer[0].name.to_dotted(), "ip-10-1-2-3.example.");
    assert_eq!((a.answer[0].rtype, a.answer[0].ttl), (TYPE_A, 60));
    assert_eq!(a.answer[0].rdata, [10, 1, 2, 3]);
    assert_eq!(a.additional[0].rtype, TYPE_TXT);
    assert_eq!(
        a.additional[0].rdata,
        b"\x17example. IN A 192.0.2.7".as_slice()
    );
    // Another type, or a name outside the zone, is not this template's.
    assert_eq!(
        ask(&t, "ip-10-1-2-3.example.", TYPE_AAAA),
        TemplateResult::Skip
    );
    assert_eq!(
        ask(&t, "ip-10-1-2-3.example.net.", TYPE_A),
        TemplateResult::Skip
    );
}

#[test]
fn fills_in_named_groups_and_the_template_type_for_any() {
    let t = Template::new(&TemplateConfig {
        matches: vec![r"^(?P<d>[0-9]*)[.](?P<c>[0-9]*)[.](?P<b>[0-9]*)[.](?P<a>[0-9]*)[.]in-addr[.]arpa[.]$".into()],
        answer: vec!["{{ .Name }} 60 IN {{ .Type }} ip-{{ .Group.a }}-{{ .Group.b }}-{{ .Group.c }}-{{ .Group.d }}.example.".into()],
        ..config("IN", "PTR", &["in-addr.arpa."])
    })
    .unwrap();
    let a = answer(ask(&t, "4.3.2.1.in-addr.arpa.", TYPE_ANY));
    assert_eq!(a.answer[0].rtype, TYPE_PTR);
    assert_eq!(
        a.answer[0].rdata,
        WireName::from_dotted("ip-1-2-3-4.example.")
            .unwrap()
            .as_bytes()
    );
    // A group the regex does not have prints as Go prints it, which is no record.
    let missing = Template::new(&TemplateConfig {
        answer: vec!["{{ .Group.nope }}.example. A 10.0.0.1".into()],
        ..config("IN", "A", &["."])
    })
    .unwrap();
    assert_eq!(
        ask(&missing, "x.example.", TYPE_A),
        TemplateResult::ServFail
    );
}

#[test]
fn rejects_unsupported_actions_and_bad_pieces() {
    let bad = |change: &dyn Fn(&mut TemplateConfig)| {
        let mut c = config("IN", "A", &["."]);
        change(&mut c);
        Template::new(&c).unwrap_err()
    };
    let err =
        bad(&|c| c.answer = vec![r#"{{ .Meta "kubernetes/client-namespace" }} A 1.2.3.4"#.into()]);
    assert!(err.contains("unsupported template action"), "{err}");
    assert!(
        bad(&|c| c.answer = vec!["{{ parseInt .Group.b 16 8 }}".into()]).contains("unsupported")
    );
    assert!(bad(&|c| c.answer = vec!["{{- .Name }} A 1.2.3.4".into()]).contains("unsupported"));
    assert!(bad(&|c| c.authority = vec!["{{ .Name A 1.2.3.4".into()]).contains("unclosed"));
    assert!(bad(&|c| c.matches = vec!["(".into()]).contains("could not parse regex"));
    assert!(bad(&|c| c.rcode = Some("NXDOMAINX".into())).contains("unknown rcode"));
    assert!(bad(&|c| c.rcode = Some("YXDOMAIN".into())).contains("not supported"));
    assert!(bad(&|c| c.class = "INET".into()).contains("class"));
    assert!(bad(&|c| c.rtype = "a".into()).contains("type"));
    assert!(bad(&|c| c.zones = vec![]).contains("zone"));
}

#[test]
fn falls_through_only_when_told_to_if_no_regex_matches() {
    let base = TemplateConfig {
        matches: vec![r"^ip-.*[.]example[.]$".into()],
        answer: vec!["{{ .Name }} A 10.0.0.1".into()],
        ..config("IN", "ANY", &["example."])
    };
    let strict = Template::new(&base).unwrap();
    assert_eq!(
        ask(&strict, "www.example.", TYPE_A),
        TemplateResult::ServFail
    );
    let falls = Template::new(&TemplateConfig {
        fallthrough: Some(vec![]),
        ..base.clone()
    })
    .unwrap();
    assert_eq!(ask(&falls, "www.example.", TYPE_A), TemplateResult::Skip);
    let elsewhere = Template::new(&TemplateConfig {
        fallthrough: Some(vec!["other.example.".into()]),
        ..base
    })
    .unwrap();
    assert_eq!(
        ask(&elsewhere, "www.example.", TYPE_A),
        TemplateResult::ServFail
    );
    assert_eq!(
        ask(&elsewhere, "a.other.example.", TYPE_A),
        TemplateResult::Skip
    );

    // Through a server block's templates: the first that does not skip decides.
    let catch_all = Template::new(&TemplateConfig {
        answer: vec!["{{ .Name }} A 10.9.9.9".into()],
        ..config("IN", "A", &["."])
    })
    .unwrap();
    let qname = WireName::from_dotted("www.example.").unwrap();
    let ask_all =
        |templates: &[Template]| lookup(templates, qname.as_bytes(), CLASS_IN, TYPE_A, CLIENT);
    assert!(
        matches!(ask_all(&[falls.clone(), catch_all.clone()]), TemplateResult::Answer(a) if a.answer[0].rdata == [10, 9, 9, 9])
    );
    assert_eq!(ask_all(&[strict, catch_all]), TemplateResult::ServFail);
    assert_eq!(ask_all(&[falls]), TemplateResult::Skip);
}

#[test]
fn servfails_on_its_rcode_and_on_records_that_do_not_parse() {
    let servfail = Template::new(&TemplateConfig {
        rcode: Some("SERVFAIL".into()),
        ..config("ANY", "ANY", &["."])
    })
    .unwrap();
    assert_eq!(ask(&servfail, "x.", TYPE_A), TemplateResult::ServFail);
    for answer in [
        "{{ .Name }} 60 IN TXT \"{{ index .Match 2 }}\"",
        "{{ .Name }}",
        "{{ .Name }} HTTPS 1 . alpn=h2",
    ] {
        let t = Template::new(&TemplateConfig {
            answer: vec![answer.into()],
            ..config("IN", "ANY", &["."])
        })
        .unwrap();
        assert_eq!(
            ask(&t, "x.example.", TYPE_A),
            TemplateResult::ServFail,
            "{answer}"
        );
    }
}
