use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A directory under the system's temp dir, removed when dropped.
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn new(name: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "clusterdns-corefile-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self { path }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

const COREFILE: &str = "/etc/coredns/Corefile";

fn no_env(_: &str) -> Option<String> {
    None
}

fn parse_text(text: &str) -> Result<Corefile, CorefileError> {
    parse(Path::new(COREFILE), text, &no_env)
}

fn parse_ok(text: &str) -> Corefile {
    parse_text(text).unwrap_or_else(|error| panic!("{error}"))
}

/// The error `text` gives, checked to name `COREFILE:line` and to say `says`.
fn parse_error(text: &str, line: u32, says: &str) -> CorefileError {
    let error = parse_text(text).expect_err("an error");
    assert_error(&error, Path::new(COREFILE), line, says);
    error
}

fn assert_error(error: &CorefileError, file: &Path, line: u32, says: &str) {
    let shown = error.to_string();
    assert!(
        shown.starts_with(&format!("{}:{line}: ", file.display())),
        "{shown}"
    );
    assert!(shown.contains(says), "{shown:?} does not say {says:?}");
}

fn texts(tokens: &[Token]) -> Vec<&str> {
    tokens.iter().map(|token| token.text.as_str()).collect()
}

/// Each directive as its words, name first.
fn lines(directives: &[Directive]) -> Vec<Vec<&str>> {
    directives
        .iter()
        .map(|directive| {
            let mut words = vec![directive.name.text.as_str()];
            words.extend(texts(&directive.args));
            words
        })
        .collect()
}

/// Each key as (zones, port).
fn keys(block: &ServerBlock) -> Vec<(Vec<&str>, u16)> {
    block
        .keys
        .iter()
        .map(|key| (key.zones.iter().map(String::as_str).collect(), key.port))
        .collect()
}

const KUBEADM: &str = "\
.:53 {
errors
health {
   lameduck 5s
}
ready
kubernetes cluster.local in-addr.arpa ip6.arpa {
   pods insecure
   fallthrough in-addr.arpa ip6.arpa
   ttl 30
}
prometheus :9153
forward . /etc/resolv.conf {
   max_concurrent 1000
}
cache 30 {
   disable success cluster.local
   disable denial cluster.local
}
loop
reload
loadbalance
}
";

#[test]
fn kubeadm_default() {
    let corefile = parse_ok(KUBEADM);
    assert_eq!(corefile.files, vec![PathBuf::from(COREFILE)]);
    let [block] = corefile.blocks.as_slice() else {
        panic!("{corefile:?}")
    };
    assert_eq!(keys(block), vec![(vec!["."], 53)]);
    assert_eq!(block.keys[0].token.text, ".:53");
    assert_eq!(
        lines(&block.directives),
        vec![
            vec!["errors"],
            vec!["health"],
            vec!["ready"],
            vec!["kubernetes", "cluster.local", "in-addr.arpa", "ip6.arpa"],
            vec!["prometheus", ":9153"],
            vec!["forward", ".", "/etc/resolv.conf"],
            vec!["cache", "30"],
            vec!["loop"],
            vec!["reload"],
            vec!["loadbalance"],
        ]
    );
    let kubernetes = &block.directives[3];
    assert_eq!(
        lines(&kubernetes.block),
        vec![
            vec!["pods", "insecure"],
            vec!["fallthrough", "in-addr.arpa", "ip6.arpa"],
            vec!["ttl", "30"],
        ]
    );
    assert_eq!(kubernetes.name.at.line, 7);
    assert_eq!(&*kubernetes.name.at.file, Path::new(COREFILE));
    assert_eq!(kubernetes.block[2].args[0].at.line, 10);
    assert_eq!(
        lines(&block.directives[1].block),
        vec![vec!["lameduck", "5s"]]
    );
    assert_eq!(
        lines(&block.directives[5].block),
        vec![vec!["max_concurrent", "1000"]]
    );
    assert_eq!(block.directives[6].block.len(), 2);
    assert!(block.directives[0].block.is_empty());
}

#[test]
fn reads_a_file() {
    let dir = TempDir::new("read");
    let path = dir.write("Corefile", KUBEADM);
    let corefile = read(&path, &no_env).unwrap();
    assert_eq!(corefile, parse(&path, KUBEADM, &no_env).unwrap());
    assert_eq!(corefile.files, vec![path.clone()]);

    let missing = dir.path.join("missing");
    let error = read(&missing, &no_env).unwrap_err();
    assert_error(&error, &missing, 0, "cannot read the Corefile");

    std::fs::write(&path, b". {\n  log\n  \xff\n}\n").unwrap();
    assert_error(&read(&path, &no_env).unwrap_err(), &path, 3, "not UTF-8");
}

#[test]
fn k3s_imports() {
    let overrides = TempDir::new("k3s-override");
    let custom = TempDir::new("k3s-custom");
    custom.write("b.server", "b.example:5353 {\n    whoami\n}\n");
    custom.write("a.server", "# first by name\na.example {\n    log\n}\n");
    custom.write("c.override", "this is not imported: wrong suffix\n");
    let text = format!(
        "\
.:53 {{
errors
health
ready
kubernetes cluster.local in-addr.arpa ip6.arpa {{
  pods insecure
  fallthrough in-addr.arpa ip6.arpa
}}
hosts /etc/coredns/NodeHosts {{
  ttl 60
  reload 15s
  fallthrough
}}
prometheus :9153
forward . /etc/resolv.conf
cache 30
loop
reload
loadbalance
import {}/*.override
}}
import {}/*.server
",
        overrides.path.display(),
        custom.path.display()
    );
    let corefile = parse_ok(&text);
    let [main, a, b] = corefile.blocks.as_slice() else {
        panic!("{corefile:?}")
    };
    assert_eq!(main.directives.len(), 11);
    assert_eq!(main.directives[10].name.text, "loadbalance");
    assert_eq!(keys(a), vec![(vec!["a.example."], 53)]);
    assert_eq!(keys(b), vec![(vec!["b.example."], 5353)]);
    assert_eq!(lines(&a.directives), vec![vec!["log"]]);
    let whoami = &b.directives[0].name;
    assert_eq!(&*whoami.at.file, custom.path.join("b.server"));
    assert_eq!(whoami.at.line, 2);
    assert_eq!(
        corefile.files,
        vec![
            PathBuf::from(COREFILE),
            custom.path.join("a.server"),
            custom.path.join("b.server")
        ]
    );
}

#[test]
fn relative_imports_inside_a_block_and_from_imported_files() {
    let dir = TempDir::new("relative");
    dir.write(
        "custom/extra.override",
        "rewrite name a.example b.example\nimport more.conf\n",
    );
    dir.write("custom/more.conf", "log {\n    class error\n}\n");
    dir.write("custom/x.server", "x.example {\n    import more.conf\n}\n");
    let path = dir.write(
        "Corefile",
        ". {\n    errors\n    import custom/*.override\n    cache\n}\nimport custom/*.server\n",
    );
    let corefile = read(&path, &no_env).unwrap();
    let [main, x] = corefile.blocks.as_slice() else {
        panic!("{corefile:?}")
    };
    assert_eq!(
        lines(&main.directives),
        vec![
            vec!["errors"],
            vec!["rewrite", "name", "a.example", "b.example"],
            vec!["log"],
            vec!["cache"],
        ]
    );
    assert_eq!(
        lines(&main.directives[2].block),
        vec![vec!["class", "error"]]
    );
    assert_eq!(
        &*main.directives[2].name.at.file,
        dir.path.join("custom/more.conf")
    );
    assert_eq!(lines(&x.directives), vec![vec!["log"]]);
    // A file imported twice (not a cycle) is listed once.
    assert_eq!(
        corefile.files,
        vec![
            path,
            dir.path.join("custom/extra.override"),
            dir.path.join("custom/more.conf"),
            dir.path.join("custom/x.server"),
        ]
    );
}

#[test]
fn multiple_blocks_and_ports() {
    let corefile = parse_ok(
        "\
cluster.local:53 Example.ORG. {
kubernetes
}
.:1053 {
forward . 8.8.8.8
}

other.example,
  more.example:54, third.example {
log
} .:5300 {
}
",
    );
    let found: Vec<_> = corefile.blocks.iter().map(keys).collect();
    assert_eq!(
        found,
        vec![
            vec![(vec!["cluster.local."], 53), (vec!["example.org."], 53)],
            vec![(vec!["."], 1053)],
            vec![
                (vec!["other.example."], 53),
                (vec!["more.example."], 54),
                (vec!["third.example."], 53)
            ],
            vec![(vec!["."], 5300)],
        ]
    );
    assert_eq!(corefile.blocks[2].keys[0].token.text, "other.example");
    assert_eq!(corefile.blocks[2].keys[1].token.at.line, 9);
    assert!(corefile.blocks[3].directives.is_empty());
}

#[test]
fn dns_scheme_prefix() {
    let corefile = parse_ok("dns://example.org:1053 DNS://.  {\n    whoami\n}\n");
    let block = &corefile.blocks[0];
    assert_eq!(
        keys(block),
        vec![(vec!["example.org."], 1053), (vec!["."], 53)]
    );
    assert_eq!(block.keys[0].token.text, "dns://example.org:1053");
}

#[test]
fn key_errors() {
    parse_error(":53 {\n}\n", 1, "names no zone");
    parse_error(".:0 {\n}\n", 1, "\"0\"");
    parse_error("\n.:65536 {\n}\n", 2, "is not 1 to 65535");
    parse_error(".: {\n}\n", 1, "without a port");
    parse_error("a..b {\n}\n", 1, "not a valid zone name");
    parse_error("a,b {\n}\n", 1, "holds a ','");
    parse_error(
        "a, {\n}\n",
        1,
        "expected another server block key after 'a,'",
    );
    parse_error("10.0.0.0/33 {\n}\n", 1, "not a valid CIDR");
    parse_error("::/0 {\n}\n", 1, "not a valid CIDR");
    parse_error("{\n}\n", 1, "needs a key");
    parse_error("\"\" {\n}\n", 1, "empty server block key");
}

#[test]
fn cidr_keys() {
    let zones = |key: &str| {
        let corefile = parse_ok(&format!("{key} {{\n}}\n"));
        corefile.blocks[0].keys[0].zones.clone()
    };
    assert_eq!(zones("10.0.0.0/8"), ["10.in-addr.arpa."]);
    assert_eq!(zones("172.16.0.0/16:5353"), ["16.172.in-addr.arpa."]);
    assert_eq!(zones("192.168.1.0/24"), ["1.168.192.in-addr.arpa."]);
    // Host bits are ignored, as Go's ParseCIDR does.
    assert_eq!(zones("192.168.1.77/24"), ["1.168.192.in-addr.arpa."]);
    assert_eq!(zones("0.0.0.0/0"), ["in-addr.arpa."]);
    let split = zones("10.0.0.0/9");
    assert_eq!(split.len(), 128);
    assert_eq!(split[0], "0.10.in-addr.arpa.");
    assert_eq!(split[127], "127.10.in-addr.arpa.");
    let split = zones("10.1.16.0/20");
    assert_eq!(split.len(), 16);
    assert_eq!(split[0], "16.1.10.in-addr.arpa.");
    assert_eq!(split[15], "31.1.10.in-addr.arpa.");
    assert_eq!(
        zones("10.0.0.0/15"),
        ["0.10.in-addr.arpa.", "1.10.in-addr.arpa."]
    );
    assert_eq!(zones("fd00::/8"), ["d.f.ip6.arpa."]);
    assert_eq!(zones("FD00::/8"), ["d.f.ip6.arpa."]);
    // CoreDNS's own test cases (plugin/normalize_test.go).
    assert_eq!(
        zones("2001:db8::/29"),
        ["8", "9", "a", "b", "c", "d", "e", "f"].map(|n| format!("{n}.b.d.0.1.0.0.2.ip6.arpa."))
    );
    assert_eq!(
        zones("2001:db8::/114"),
        ["0", "1", "2", "3"].map(|n| format!(
            "{n}.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa."
        ))
    );
    let split = zones("10.9.3.0/18");
    assert_eq!(split.len(), 64);
    assert_eq!(
        split[..3],
        [
            "0.9.10.in-addr.arpa.",
            "1.9.10.in-addr.arpa.",
            "2.9.10.in-addr.arpa."
        ]
    );
    let error = parse_text("::fFFF:B:F/115 {\n}\n").unwrap_err();
    assert!(error.message.contains("not a valid CIDR"), "{error}");
}

#[test]
fn quoted_words() {
    let corefile = parse_ok(
        ". {\n    template IN A {\n        answer \"{{ .Name }} 60 IN A 1.2.3.4\"\n    }\n    \
         log \"say \\\"hi\\\"\" \"back\\slash\" \"\" \"two\nlines\" after\n    \"{\"\n}\n",
    );
    let block = &corefile.blocks[0];
    assert_eq!(
        texts(&block.directives[0].block[0].args),
        ["{{ .Name }} 60 IN A 1.2.3.4"]
    );
    let log = &block.directives[1];
    assert_eq!(
        texts(&log.args),
        ["say \"hi\"", "back\\slash", "", "two\nlines", "after"]
    );
    assert_eq!(log.args[4].at.line, 6);
    // A quoted brace is a word, not a block.
    assert_eq!(lines(&block.directives[2..]), vec![vec!["{"]]);
    parse_error(". {\n    log \"open\n}\n", 2, "unterminated quoted word");
}

#[test]
fn comments() {
    let corefile = parse_ok(
        "# a Corefile\n. { # the root\n    log # every query\n    errors#no space\n    \
         whoami \"# not a comment\"\n    # cache 30\n}\n# the end",
    );
    assert_eq!(
        lines(&corefile.blocks[0].directives),
        vec![
            vec!["log"],
            vec!["errors"],
            vec!["whoami", "# not a comment"]
        ]
    );
}

#[test]
fn environment_substitution() {
    let env = |name: &str| match name {
        "ZONE" => Some("cluster.local".to_owned()),
        "UPSTREAM" => Some("10.0.0.1 10.0.0.2".to_owned()),
        "PORT" => Some("1053".to_owned()),
        _ => None,
    };
    let corefile = parse(
        Path::new(COREFILE),
        "{$ZONE}:{%PORT%} {\n    forward . {$UPSTREAM}\n    log x{$UNSET}y {$} {$ZONE\n}\n",
        &env,
    )
    .unwrap();
    let block = &corefile.blocks[0];
    assert_eq!(keys(block), vec![(vec!["cluster.local."], 1053)]);
    assert_eq!(block.keys[0].token.text, "cluster.local:1053");
    // One word per written word, whatever the value holds.
    assert_eq!(texts(&block.directives[0].args), [".", "10.0.0.1 10.0.0.2"]);
    assert_eq!(texts(&block.directives[1].args), ["xy", "{$}", "{$ZONE"]);
}

#[test]
fn snippets() {
    let corefile = parse_ok(
        "\
(common) {
errors
cache 30 {
    success 100
}
}
(both) {
import common
log
}
(keys) { extra.example {
import common
} }
a.example {
import both
whoami
}
import keys
",
    );
    let [a, extra] = corefile.blocks.as_slice() else {
        panic!("{corefile:?}")
    };
    assert_eq!(
        lines(&a.directives),
        vec![
            vec!["errors"],
            vec!["cache", "30"],
            vec!["log"],
            vec!["whoami"]
        ]
    );
    assert_eq!(lines(&a.directives[1].block), vec![vec!["success", "100"]]);
    // Pasted tokens keep where the snippet wrote them.
    assert_eq!(a.directives[0].name.at.line, 2);
    assert_eq!(keys(extra), vec![(vec!["extra.example."], 53)]);
    assert_eq!(
        lines(&extra.directives),
        vec![vec!["errors"], vec!["cache", "30"]]
    );
    parse_error(
        "(a) {\n}\n(a) {\n}\n",
        3,
        "defined again (first at /etc/coredns/Corefile:1)",
    );
    parse_error("(a)\n. {\n}\n", 1, "needs its body");
}

#[test]
fn single_block_without_braces() {
    let corefile =
        parse_ok("example.org:1053\nwhoami\nforward . 1.1.1.1 {\n    max_fails 3\n}\nlog\n");
    let [block] = corefile.blocks.as_slice() else {
        panic!("{corefile:?}")
    };
    assert_eq!(keys(block), vec![(vec!["example.org."], 1053)]);
    assert_eq!(
        lines(&block.directives),
        vec![vec!["whoami"], vec!["forward", ".", "1.1.1.1"], vec!["log"]]
    );
    // Keys alone are a block without directives; `{` may open on the next line.
    assert!(parse_ok("example.org\n").blocks[0].directives.is_empty());
    let corefile = parse_ok("example.org\n{\n    log\n}\n");
    assert_eq!(lines(&corefile.blocks[0].directives), vec![vec!["log"]]);
    assert!(parse_ok("").blocks.is_empty());
    assert!(parse_ok("\u{feff}# only a comment\n").blocks.is_empty());
}

#[test]
fn empty_blocks_and_crlf() {
    let corefile = parse_ok(". {\r\n    health { }\r\n    log {\r\n    }\r\n}\r\n");
    assert_eq!(
        lines(&corefile.blocks[0].directives),
        vec![vec!["health"], vec!["log"]]
    );
}

#[test]
fn error_unclosed_brace() {
    parse_error(
        ". {\n    log\n    cache 30 {\n        success 100\n}\n",
        1,
        "unclosed '{'",
    );
    parse_error(". {\n    cache 30 {\n", 2, "unclosed '{'");
}

#[test]
fn error_stray_close_brace() {
    parse_error(". {\n    log\n}\n}\n", 4, "unexpected '}'");
    parse_error(". {\n    log }\n}\n", 2, "unexpected '}'");
    parse_error("example.org\nlog\n}\n", 3, "unexpected '}'");
}

#[test]
fn error_brace_placement() {
    parse_error(". { log\n}\n", 1, "unexpected \"log\" after '{'");
    parse_error(". {\n    {\n    }\n}\n", 2, "unexpected '{'");
    parse_error(
        ". {\n    cache {\n    } log\n}\n",
        3,
        "unexpected \"log\" after '}'",
    );
}

#[test]
fn error_unsupported_scheme() {
    let error = parse_error(
        ". {\n}\ntls://.:853 {\n}\n",
        3,
        "unknown scheme \"tls://\" in server block key \"tls://.:853\": only dns:// is supported",
    );
    assert_eq!(error.line, 3);
    parse_error("grpc://. {\n}\n", 1, "\"grpc://\"");
}

#[test]
fn error_missing_import_file() {
    let dir = TempDir::new("missing");
    let path = dir.write("Corefile", ". {\n    log\n    import missing.conf\n}\n");
    let error = read(&path, &no_env).unwrap_err();
    assert_error(&error, &path, 3, "cannot import \"missing.conf\"");
    assert!(error
        .message
        .contains(&dir.path.join("missing.conf").display().to_string()));
    let path = dir.write("Corefile", ". {\n    import\n}\n");
    assert_error(
        &read(&path, &no_env).unwrap_err(),
        &path,
        2,
        "'import' needs",
    );
    let path = dir.write("Corefile", ". {\n    import a b\n}\n");
    assert_error(
        &read(&path, &no_env).unwrap_err(),
        &path,
        2,
        "takes one argument",
    );
    let path = dir.write("Corefile", "import */*.server\n");
    assert_error(&read(&path, &no_env).unwrap_err(), &path, 1, "one '*'");
    let path = dir.write("Corefile", "import custom\n");
    std::fs::create_dir(dir.path.join("custom")).unwrap();
    assert_error(
        &read(&path, &no_env).unwrap_err(),
        &path,
        1,
        "is a directory",
    );
}

#[test]
fn error_import_cycle() {
    let dir = TempDir::new("cycle");
    dir.write("a.conf", "import b.conf\n");
    let b = dir.write("b.conf", "log\nimport a.conf\n");
    let path = dir.write("Corefile", ". {\n    import a.conf\n}\n");
    let error = read(&path, &no_env).unwrap_err();
    assert_error(&error, &b, 2, "import cycle: ");
    assert!(error.message.contains("a.conf → "), "{error}");
    let path = dir.write("Corefile", "import Corefile\n");
    assert_error(&read(&path, &no_env).unwrap_err(), &path, 1, "import cycle");
}

#[test]
fn error_duplicate_zone_port() {
    parse_error(
        "cluster.local {\n}\n. {\n}\nCluster.Local.:53 {\n}\n",
        5,
        "zone cluster.local.:53 defined more than once (first at /etc/coredns/Corefile:1)",
    );
    parse_error(". .:53 {\n}\n", 1, "zone .:53 defined more than once");
    parse_error(
        "10.0.0.0/8 {\n}\n10.in-addr.arpa {\n}\n",
        3,
        "10.in-addr.arpa.:53",
    );
    // Other ports, and blocks that bind addresses or filter by view, may overlap.
    parse_ok(". {\n}\n.:1053 {\n}\n");
    parse_ok(". {\n    bind 10.0.0.1\n}\n. {\n    bind 10.0.0.2\n}\n");
    parse_ok(". {\n    view internal\n}\n. {\n}\n");
}

#[test]
fn error_snippet_recursion() {
    parse_error(
        "(a) {\n    import b\n}\n(b) {\n    import a\n}\n. {\n    import a\n}\n",
        5,
        "snippet \"a\" imports itself: a → b → a",
    );
    parse_error(
        "(self) {\n    import self\n}\nimport self\n",
        2,
        "imports itself",
    );
}

#[test]
fn error_nesting_too_deep() {
    let text = format!(". {{\n{}", "a {\n".repeat(10_000));
    parse_error(&text, 65, "nested more than 64 deep");
}

#[test]
fn deep_snippet_chains_are_cut_off() {
    let mut text = String::from("(s0) {\n    log\n}\n");
    for level in 1..200 {
        let below = level - 1;
        text.push_str(&format!("(s{level}) {{\n    import s{below}\n}}\n"));
    }
    text.push_str(". {\n    import s199\n}\n");
    let error = parse_text(&text).unwrap_err();
    assert!(
        error.message.contains("imports nested more than 100 deep"),
        "{error}"
    );
}

#[test]
fn exponential_snippets_are_cut_off() {
    let mut text = String::from("(s0) {\n    a b c d e f g h\n}\n");
    for level in 1..40 {
        let below = level - 1;
        text.push_str(&format!(
            "(s{level}) {{\n    import s{below}\n    import s{below}\n}}\n"
        ));
    }
    text.push_str(". {\n    import s39\n}\n");
    let error = parse_text(&text).unwrap_err();
    assert!(error.message.contains("more than 1000000 words"), "{error}");
}

#[test]
fn odd_input_does_not_panic() {
    for text in [
        "{",
        "}",
        "\"",
        "\\",
        "#",
        "(",
        "()",
        "() {",
        "import",
        "import \"\"",
        ". {\n import\n",
        "{$",
        "{%}",
        "{$}}",
        "{%%}",
        "a\r\rb",
        ". {\n\"a\nb\" {\n}\n}\n",
        "\u{feff}",
        ":",
        "/",
        "1.2.3.4/32",
        "::/",
        "dns://",
        "dns://:",
        "a:99999999999999999999",
        "0/0",
    ] {
        let _ = parse_text(text);
    }
}

#[test]
fn glob_patterns() {
    let dir = TempDir::new("glob");
    for name in ["a.server", "b.server", ".hidden.server", "a.other", "ab"] {
        dir.write(name, "");
    }
    dir.write("sub/x.server", "");
    let names = |pattern: &str| -> Vec<String> {
        glob(&dir.path.join(pattern))
            .unwrap()
            .iter()
            .map(|path| path.strip_prefix(&dir.path).unwrap().display().to_string())
            .collect()
    };
    assert_eq!(
        names("*.server"),
        [".hidden.server", "a.server", "b.server"]
    );
    assert_eq!(names("a?"), ["ab"]);
    assert_eq!(names("a.*"), ["a.other", "a.server"]);
    assert_eq!(names("*/x.server"), ["sub/x.server"]);
    assert_eq!(names("s*/*.server"), ["sub/x.server"]);
    assert_eq!(names("*.none"), Vec::<String>::new());
    assert_eq!(names("nodir/*.server"), Vec::<String>::new());
    assert_eq!(names("a.server"), ["a.server"]);
    assert_eq!(names("\\a.server"), ["a.server"]);
    assert!(glob(&dir.path.join("[ab")).is_err());
}
