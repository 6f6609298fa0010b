//! The `clusterdns` command line: `--help`, startup inputs and Corefiles refused with one clear
//! line and a non-zero exit, flags a Corefile replaces, and `--check-corefile`'s exit codes and
//! messages. None of these asks a DNS question; every test that does is in the e2e package
//! (`tests/tests/`).
//!
//! Why these live here: cargo builds a package's binary only for that package's own integration
//! tests, so this file is what makes `cargo test --workspace` build `clusterdns` for the e2e
//! tests too (they find it with `clusterdns_testkit::process::clusterdns_binary`).

use std::ffi::OsStr;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use clusterdns_testkit::net::{free_port, loopback};
use clusterdns_testkit::process::Process;
use clusterdns_testkit::temp::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_clusterdns");

fn run<S: AsRef<OsStr>>(args: &[S]) -> Output {
    Command::new(BIN).args(args).output().expect("binary runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Starts the binary with `args` and waits (10 s at most) for it to exit.
fn exit_of<S: AsRef<OsStr>>(args: &[S]) -> (Process, std::process::ExitStatus) {
    let process = Process::spawn(Command::new(BIN).args(args));
    let status = process.wait_exit(Duration::from_secs(10));
    (process, status)
}

/// A default Corefile of kubeadm, k3s, EKS or AKS as shipped (`tests/corefiles/`, beside the
/// e2e tests that run them).
fn shipped_corefile(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("server/ has a parent")
        .join("tests/corefiles")
        .join(format!("{name}.Corefile"))
}

#[test]
fn help_documents_every_flag_with_its_default() {
    let output = run(&["--help"]);
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--manifests",
        "--listen",
        "--threads",
        "--domain",
        "--ttl",
        "--pods",
        "--max-udp-size",
        "--tcp-idle-timeout",
        "--max-tcp-connections",
        "--manifest-poll-ms",
        "--kubeconfig",
        "--startup-timeout",
        "--lameduck",
        "--health",
        "--ready",
        "--metrics",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
    for default in [
        "0.0.0.0:53",
        "[::]:53",
        "cluster.local",
        "default: 5",
        "insecure",
        "default: 4096",
        "0.0.0.0:8080",
        "0.0.0.0:8181",
        "0.0.0.0:9153",
    ] {
        assert!(
            help.contains(default),
            "--help lacks default {default}:\n{help}"
        );
    }
}

#[test]
fn bad_startup_inputs_stop_with_one_clear_line() {
    let dir = TempDir::new("cli-errors");
    let bad = dir.write(
        "bad.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\n\
         spec: {ports: [{port: http}]}\n",
    );
    let output = run(&[
        "--manifests",
        &bad.to_string_lossy(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains("bad.yaml")
            && message.contains("Service default/web")
            && message.contains("spec.ports[0].port"),
        "{message}"
    );

    let missing = dir.path().join("missing.yaml");
    let output = run(&[
        "--manifests",
        &missing.to_string_lossy(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("missing.yaml"),
        "{}",
        stderr(&output)
    );

    let output = run(&["--manifests", &bad.to_string_lossy(), "--ttl", "99999"]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("--ttl"), "{}", stderr(&output));

    let output = run(&["--manifests", &bad.to_string_lossy(), "--domain", "a..b"]);
    assert!(!output.status.success());

    let good = dir.write(
        "good.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: kubernetes, namespace: default}\n\
         spec: {clusterIP: 10.96.0.1, clusterIPs: [10.96.0.1], ports: [{name: https, port: 443, \
         protocol: TCP}]}\n",
    );
    let taken = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let output = run(&[
        "--manifests",
        &good.to_string_lossy(),
        "--listen",
        &format!("127.0.0.1:{port}"),
    ]);
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("cannot bind udp 127.0.0.1"), "{message}");
}

/// A Corefile clusterdns must refuse: the lines the error may name (in `file`, the Corefile
/// itself unless an imported file is at fault) and the token it must quote.
struct Bad {
    what: &'static str,
    corefile: String,
    /// Another file the Corefile imports: name and text.
    extra: Option<(&'static str, &'static str)>,
    /// The file the error must name (the Corefile when `None`).
    file: Option<&'static str>,
    lines: &'static [usize],
    token: &'static str,
}

fn bad_corefiles(port: u16) -> Vec<Bad> {
    let bad = |what, corefile: &str, lines, token| Bad {
        what,
        corefile: corefile.replace("@P@", &port.to_string()),
        extra: None,
        file: None,
        lines,
        token,
    };
    vec![
        // Caddy's parser reports the EOF at the last token; the opening brace is as good.
        bad(
            "unclosed brace",
            ".:@P@ {\n    bind 127.0.0.1\n    errors\n",
            &[1, 3],
            "",
        ),
        bad(
            "stray closing brace",
            ".:@P@ {\n    bind 127.0.0.1\n    errors\n}\n}\n",
            &[5],
            "}",
        ),
        bad(
            "unknown directive",
            ".:@P@ {\n    bind 127.0.0.1\n    errors\n    frobnicate\n}\n",
            &[4],
            "frobnicate",
        ),
        bad(
            "unknown option",
            ".:@P@ {\n    bind 127.0.0.1\n    kubernetes cluster.local {\n        bogus_option yes\n    }\n}\n",
            &[4],
            "bogus_option",
        ),
        bad(
            "bad option value",
            ".:@P@ {\n    bind 127.0.0.1\n    kubernetes cluster.local {\n        ttl abc\n    }\n}\n",
            &[4],
            "abc",
        ),
        bad(
            "kubernetes reverse zone not a CIDR",
            ".:@P@ {\n    bind 127.0.0.1\n    kubernetes cluster.local 10.0.0.0/33 {\n    }\n}\n",
            &[3],
            "10.0.0.0/33",
        ),
        bad(
            "kubernetes labels not a selector",
            ".:@P@ {\n    bind 127.0.0.1\n    kubernetes cluster.local {\n        labels app in (web\n    }\n}\n",
            &[4],
            "app in (web",
        ),
        bad(
            "tls:// server block key",
            "tls://.:@P@ {\n    bind 127.0.0.1\n    errors\n}\n",
            &[1],
            "tls://",
        ),
        bad(
            "forward to https://",
            ".:@P@ {\n    bind 127.0.0.1\n    forward . https://1.1.1.1\n}\n",
            &[3],
            "https://1.1.1.1",
        ),
        bad(
            "forward tls CA file missing",
            ".:@P@ {\n    bind 127.0.0.1\n    forward . tls://127.0.0.1 {\n        tls /nonexistent/ca.pem\n    }\n}\n",
            &[4],
            "/nonexistent/ca.pem",
        ),
        bad(
            "bufsize out of range",
            ".:@P@ {\n    bind 127.0.0.1\n    bufsize 5000\n}\n",
            &[3],
            "5000",
        ),
        bad(
            "dns64 prefix RFC 6052 has no format for",
            ".:@P@ {\n    bind 127.0.0.1\n    dns64 {\n        prefix 64:ff9b::/80\n    }\n}\n",
            &[4],
            "64:ff9b::/80",
        ),
        bad(
            "autopath @kubernetes without kubernetes",
            ".:@P@ {\n    bind 127.0.0.1\n    autopath @kubernetes\n}\n",
            &[3],
            "@kubernetes",
        ),
        bad(
            "missing import without a glob",
            ".:@P@ {\n    bind 127.0.0.1\n    import missing.conf\n}\n",
            &[3],
            "missing.conf",
        ),
        Bad {
            what: "zone file that does not parse",
            corefile: format!(
                "example.org:{port} {{\n    bind 127.0.0.1\n    root @D@\n    file db.example.org\n}}\n"
            ),
            extra: Some((
                "db.example.org",
                "$ORIGIN example.org.\n@ 3600 IN SOA ns hostmaster 1 7200 3600 1209600 60\n\
                 www IN A 192.0.2.999\n",
            )),
            file: Some("db.example.org"),
            lines: &[3],
            token: "192.0.2.999",
        },
        Bad {
            what: "signed zone file",
            corefile: format!(
                "example.org:{port} {{\n    bind 127.0.0.1\n    root @D@\n    file db.example.org\n}}\n"
            ),
            extra: Some((
                "db.example.org",
                "$ORIGIN example.org.\n@ 3600 IN SOA ns hostmaster 1 7200 3600 1209600 60\n\
                 @ 3600 IN RRSIG SOA 13 2 3600 20300101000000 20200101000000 1 example.org. AAAA\n",
            )),
            file: Some("db.example.org"),
            lines: &[3],
            token: "RRSIG",
        },
        Bad {
            what: "unknown directive in an imported file",
            corefile: format!(
                ".:{port} {{\n    bind 127.0.0.1\n    import extra.override\n    errors\n}}\n"
            ),
            extra: Some(("extra.override", "cache 30\nfrobnicate\n")),
            file: Some("extra.override"),
            lines: &[2],
            token: "frobnicate",
        },
    ]
}

/// The one line on stderr; fails unless there is exactly one.
fn single_line(stderr: &str, what: &str) -> String {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "{what}: exactly one line on stderr expected:\n{stderr}"
    );
    lines[0].to_string()
}

#[test]
fn bad_corefiles_are_refused_naming_file_line_and_token() {
    let dir = TempDir::new("cli-bad-corefiles");
    let port = free_port();
    for (i, bad) in bad_corefiles(port).into_iter().enumerate() {
        // `@D@` is the case's directory (a `root` for zone files).
        let case = dir.path().join(format!("case{i}"));
        let text = bad.corefile.replace("@D@", &case.display().to_string());
        let corefile = dir.write(&format!("case{i}/Corefile"), &text);
        if let Some((name, text)) = bad.extra {
            dir.write(&format!("case{i}/{name}"), text);
        }
        let file = bad.file.map_or(corefile.clone(), |name| case.join(name));
        let what = bad.what;

        // Starting with it: a non-zero exit and one line naming FILE:LINE and the token.
        let (server, status) = exit_of(&[
            OsStr::new("--corefile"),
            corefile.as_os_str(),
            OsStr::new("--threads"),
            OsStr::new("1"),
        ]);
        assert!(
            !status.success(),
            "{what}: started anyway\n{}",
            server.logs()
        );
        let line = single_line(&server.stderr(), what);
        eprintln!("{what}: {line}");
        assert!(line.starts_with("clusterdns: "), "{what}: {line}");
        let named = bad
            .lines
            .iter()
            .any(|n| line.contains(&format!("{}:{n}", file.display())));
        assert!(
            named,
            "{what}: the error must name {}:{:?}: {line}\n--- Corefile:\n{}",
            file.display(),
            bad.lines,
            bad.corefile
        );
        assert!(
            line.contains(bad.token),
            "{what}: must quote {:?}: {line}",
            bad.token
        );

        // --check-corefile: exit 1 with the same line.
        let check = run(&[OsStr::new("--check-corefile"), corefile.as_os_str()]);
        assert_eq!(check.status.code(), Some(1), "{what}: --check-corefile");
        let checked = single_line(&stderr(&check), what);
        assert_eq!(checked, line, "{what}: --check-corefile and startup differ");
    }
}

/// Flags the Corefile replaces are refused with it rather than silently ignored or merged.
#[test]
fn flags_the_corefile_replaces_are_refused() {
    let dir = TempDir::new("cli-flags");
    let port = free_port();
    let corefile = dir.write(
        "Corefile",
        &format!(".:{port} {{\n    bind 127.0.0.1\n    errors\n}}\n"),
    );
    let addr = loopback(free_port()).to_string();
    for (flag, value) in [
        ("--listen", addr.as_str()),
        ("--domain", "cluster.local"),
        ("--upstream", "127.0.0.1:53"),
        ("--health", addr.as_str()),
        ("--ready", addr.as_str()),
        ("--metrics", addr.as_str()),
        ("--lameduck", "5"),
    ] {
        let (server, status) = exit_of(&[
            OsStr::new("--corefile"),
            corefile.as_os_str(),
            OsStr::new(flag),
            OsStr::new(value),
        ]);
        assert!(!status.success(), "{flag} with a Corefile: started anyway");
        let stderr = server.stderr();
        assert!(
            stderr.contains(flag),
            "{flag}: the error must name it:\n{stderr}"
        );
    }
}

#[test]
fn check_corefile_accepts_the_default_corefiles_as_shipped() {
    for name in ["kubeadm", "k3s", "eks", "aks"] {
        let path = shipped_corefile(name);
        let check = run(&[OsStr::new("--check-corefile"), path.as_os_str()]);
        let stdout = String::from_utf8_lossy(&check.stdout);
        assert!(check.status.success(), "{name}: {}{stdout}", stderr(&check));
        assert!(
            stdout.starts_with(&format!("{}: ok (", path.display())),
            "{name}: {stdout}"
        );
    }
}

#[test]
fn check_corefile_accepts_the_kubernetes_options() {
    let dir = TempDir::new("cli-kubernetes-options");
    let corefile = dir.write(
        "Corefile",
        ".:53 {\n    errors\n    kubernetes cluster.local 10.96.0.0/12 fd00::/120 {\n        \
         labels dns in (on, yes),!legacy\n        namespace_labels team\n        \
         endpoint_pod_names\n        ignore empty_service\n        fallthrough in-addr.arpa\n    \
         }\n    forward . 192.0.2.53\n}\n",
    );
    let check = run(&[OsStr::new("--check-corefile"), corefile.as_os_str()]);
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{}{stdout}", stderr(&check));
    assert!(
        stdout.starts_with(&format!("{}: ok (", corefile.display())),
        "{stdout}"
    );
}
