//! Table tests: the cases of apimachinery's `labels` selector tests and of CoreDNS's
//! `kubernetes` setup tests, and the canonical text sent to the API server.

use std::collections::BTreeMap;

use super::*;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn parse(text: &str) -> LabelSelector {
    LabelSelector::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

#[test]
fn valid_selectors_and_their_canonical_text() {
    for (text, canonical) in [
        ("", ""),
        ("   ", ""),
        ("x=a,y=b,z=c", "x=a,y=b,z=c"),
        ("x==a", "x=a"),
        ("x!=a,y=b", "x!=a,y=b"),
        ("x=", "x="),
        ("x= ", "x="),
        ("x=,z= ", "x=,z="),
        ("x= ,z= ", "x=,z="),
        ("!x", "!x"),
        ("x", "x"),
        ("x in (a)", "x=a"),
        ("x in (b,a,b)", "x in (a,b)"),
        ("x notin (a)", "x!=a"),
        ("x notin (a,b)", "x notin (a,b)"),
        ("x in (a,,b)", "x in (,a,b)"),
        ("x in ()", "x="),
        ("x in (,a)", "x in (,a)"),
        ("x in (a,)", "x in (,a)"),
        ("notin=in", "notin=in"),
        ("in in (in,notin)", "in in (in,notin)"),
        ("x=a, y in(b) ,!z", "x=a,y=b,!z"),
        (
            "app.kubernetes.io/name=web,example.com/tier notin (a.b_c-d)",
            "app.kubernetes.io/name=web,example.com/tier!=a.b_c-d",
        ),
        // CoreDNS's setup tests: the args joined with spaces, and the selector it expects.
        ("environment=prod", "environment=prod"),
        (
            "environment in (production, staging, qa),application=nginx",
            "application=nginx,environment in (production,qa,staging)",
        ),
        ("istio-injection=enabled", "istio-injection=enabled"),
    ] {
        let selector = parse(text);
        assert_eq!(selector.to_string(), canonical, "{text:?}");
        // The canonical text means the same selector.
        assert_eq!(parse(canonical), selector, "{text:?} -> {canonical:?}");
    }
}

#[test]
fn invalid_selectors_are_refused_with_a_reason() {
    for (text, says) in [
        ("x=a||y=b", "label value \"a||y\""),
        ("x==a==b", "expected: ',' or end of string"),
        ("!x=a", "after '!x'"),
        ("x>1", "'>' isn't supported"),
        ("x<5", "'<' isn't supported"),
        ("x=a,", "after ','"),
        (",x=a", "expected: a label key"),
        ("x,,y", "expected: a label key"),
        ("x in (a", "expected: ',' or ')'"),
        ("x in a", "expected: '('"),
        ("x in (a b)", "expected: ',' or ')'"),
        ("x notin", "expected: '('"),
        ("x y", "expected: in, notin"),
        ("x=(a)", "expected: a label value"),
        ("=a", "expected: a label key"),
        ("!", "expected: a label key"),
        // CoreDNS's setup test: an unterminated set.
        ("environment in (production, qa", "expected: ',' or ')'"),
        // Keys and values.
        ("-x=a", "label key \"-x\""),
        ("x-=a", "label key \"x-\""),
        ("a/b/c=d", "label key"),
        ("Example.com/x=a", "is not a lowercase DNS subdomain"),
        ("/x=a", "is not a lowercase DNS subdomain"),
        ("x=-a", "label value \"-a\""),
        ("x in (a,b_)", "label value \"b_\""),
        (
            &format!("x={}", "a".repeat(64)),
            "at most 63 letters, digits",
        ),
        (&format!("{}=a", "k".repeat(64)), "label key"),
    ] {
        match LabelSelector::parse(text) {
            Ok(selector) => panic!("{text:?} parsed as {selector}"),
            Err(error) => assert!(error.to_string().contains(says), "{text:?}: {error}"),
        }
    }
}

#[test]
fn matching() {
    for (text, pairs, expected) in [
        // apimachinery's TestSelectorMatches.
        ("", &[("x", "y")][..], true),
        ("x=y", &[("x", "y")], true),
        ("x=y,z=w", &[("x", "y"), ("z", "w")], true),
        ("x!=y,z!=w", &[("x", "z"), ("z", "a")], true),
        ("notin=in", &[("notin", "in")], true),
        ("x", &[("x", "z")], true),
        ("!x", &[("y", "z")], true),
        ("x=z", &[], false),
        ("x=y", &[("x", "z")], false),
        ("x=y,z=w", &[("x", "w"), ("z", "y")], false),
        ("x!=y,z!=w", &[("x", "z"), ("z", "w")], false),
        ("x", &[("y", "z")], false),
        ("!x", &[("x", "z")], false),
        ("foo=bar", &[("foo", "bar"), ("baz", "blah")], true),
        ("baz=blah", &[("foo", "bar"), ("baz", "blah")], true),
        ("foo=bar,baz=blah", &[("foo", "bar"), ("baz", "blah")], true),
        ("foo=blah", &[("foo", "bar"), ("baz", "blah")], false),
        ("baz=bar", &[("foo", "bar"), ("baz", "blah")], false),
        (
            "foo=bar,foobar=bar,baz=blah",
            &[("foo", "bar"), ("baz", "blah")],
            false,
        ),
        // Sets: `in` needs the label, `notin` and `!=` are true without it.
        ("x in (a,b)", &[("x", "b")], true),
        ("x in (a,b)", &[("x", "c")], false),
        ("x in (a,b)", &[], false),
        ("x notin (a,b)", &[("x", "c")], true),
        ("x notin (a,b)", &[("x", "a")], false),
        ("x notin (a,b)", &[], true),
        ("x!=a", &[], true),
        // The empty value.
        ("x=", &[("x", "")], true),
        ("x=", &[], false),
        ("x in (,a)", &[("x", "")], true),
        ("x!=", &[("x", "a")], true),
        // CoreDNS's README example.
        (
            "environment in (staging, qa),application=nginx",
            &[
                ("environment", "qa"),
                ("application", "nginx"),
                ("tier", "web"),
            ],
            true,
        ),
        (
            "environment in (staging, qa),application=nginx",
            &[("environment", "production"), ("application", "nginx")],
            false,
        ),
        // Every requirement of one key must hold.
        ("x=a,x=b", &[("x", "a")], false),
        ("x,x!=b", &[("x", "a")], true),
    ] {
        let map = labels(pairs);
        assert_eq!(
            parse(text).matches_labels(Some(&map)),
            expected,
            "{text:?} on {pairs:?}"
        );
    }
    // An object without labels at all.
    assert!(parse("!x").matches_labels(None));
    assert!(parse("").matches_labels(None));
    assert!(!parse("x").matches_labels(None));
}
