//! Unbound (Debian package `unbound`) as a real DNS-over-TLS upstream (RFC 7858) on loopback,
//! with a CA and a server certificate made at run time by the `openssl` command (Debian package
//! `openssl`). It forwards every name to one server the test gives (Knot DNS), so it never asks
//! anything beyond loopback. CI installs both (`.ci/run`).

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;

use crate::client::ask;
use crate::net::{free_port, loopback};
use crate::process::Process;
use crate::temp::TempDir;

/// How long unbound may take to answer.
const STARTUP: Duration = Duration::from_secs(10);

/// Where `program` is (searched in PATH and the sbin directories), or a failure saying which
/// Debian package to install.
fn program(program: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([
            "/usr/sbin".into(),
            "/usr/local/sbin".into(),
            "/usr/bin".into(),
        ])
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{program} is not installed; the DNS-over-TLS tests need it: install it with \
                 `apt-get install {package}` (CI installs it in .ci/run)"
            )
        })
}

/// Runs `openssl args` in `dir`; fails the test with its output when it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new(program("openssl", "openssl"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A CA and a server certificate it signed (P-256 keys, valid two days), as PEM files in a
/// temp dir of their own, removed when dropped.
pub struct Certificates {
    /// The CA's certificate: what a client trusts (`tls CA`).
    pub ca: PathBuf,
    /// The server's certificate.
    pub cert: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
    dir: TempDir,
}

impl Certificates {
    /// A new CA, and a server certificate for the DNS names `names` and the address 127.0.0.1.
    pub fn generate(name: &str, names: &[&str]) -> Certificates {
        let dir = TempDir::new(&format!("certs-{name}"));
        let d = dir.path();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let ca_subject = format!("/CN=clusterdns {name} test CA");
        let mut ca = vec!["req", "-x509", "-days", "2", "-subj", &ca_subject];
        ca.extend(ec);
        ca.extend(["-keyout", "ca.key", "-out", "ca.pem"]);
        openssl(d, &ca);
        let mut request = vec!["req", "-subj", "/CN=clusterdns test server"];
        request.extend(ec);
        request.extend(["-keyout", "server.key", "-out", "server.csr"]);
        openssl(d, &request);
        let sans: Vec<String> = (names.iter().map(|n| format!("DNS:{n}")))
            .chain(["IP:127.0.0.1".to_owned()])
            .collect();
        dir.write(
            "server.cnf",
            &format!(
                "subjectAltName={}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n\
                 extendedKeyUsage=serverAuth\n",
                sans.join(",")
            ),
        );
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "server.cnf",
                "-out",
                "server.pem",
            ],
        );
        Certificates {
            ca: d.join("ca.pem"),
            cert: d.join("server.pem"),
            key: d.join("server.key"),
            dir,
        }
    }

    /// The directory the files are in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// A running unbound serving DNS over TLS; stopped, and its directory removed, when dropped.
pub struct Unbound {
    /// Where it answers DNS over TLS (TCP).
    pub dot: SocketAddr,
    /// Where it answers plain DNS (UDP and TCP), to see that it runs.
    pub plain: SocketAddr,
    process: Process,
    _dir: TempDir,
}

impl Unbound {
    /// Starts unbound on free loopback ports with the server certificate of `certs`, forwarding
    /// every name to `forward_to`, and waits until it answers.
    pub fn start(name: &str, certs: &Certificates, forward_to: SocketAddr) -> Unbound {
        Unbound::start_on(name, certs, forward_to, free_port())
    }

    /// [`Unbound::start`] with DNS over TLS on `dot_port` (to start one again where another
    /// was).
    pub fn start_on(
        name: &str,
        certs: &Certificates,
        forward_to: SocketAddr,
        dot_port: u16,
    ) -> Unbound {
        let dir = TempDir::new(&format!("unbound-{name}"));
        let d = dir.path().display();
        let plain = free_port();
        // No validator, no trust anchor, no root priming: every name goes to `forward_to`,
        // `.test` names too (RFC 6761 §6.2, which unbound answers NXDOMAIN itself by default).
        let config = format!(
            "server:\n    username: \"\"\n    chroot: \"\"\n    directory: \"{d}\"\n    \
             pidfile: \"{d}/unbound.pid\"\n    use-syslog: no\n    logfile: \"\"\n    \
             verbosity: 1\n    num-threads: 1\n    so-reuseport: no\n    \
             interface: 127.0.0.1@{dot_port}\n    interface: 127.0.0.1@{plain}\n    \
             tls-port: {dot_port}\n    tls-service-key: \"{}\"\n    tls-service-pem: \"{}\"\n    \
             do-not-query-localhost: no\n    module-config: \"iterator\"\n    \
             local-zone: \"test.\" nodefault\n\
             remote-control:\n    control-enable: no\n\
             forward-zone:\n    name: \".\"\n    forward-addr: {}@{}\n",
            certs.key.display(),
            certs.cert.display(),
            forward_to.ip(),
            forward_to.port(),
        );
        let config = dir.write("unbound.conf", &config);
        let process = Process::spawn(
            Command::new(program("unbound", "unbound"))
                .arg("-d")
                .arg("-c")
                .arg(&config),
        );
        let unbound = Unbound {
            dot: loopback(dot_port),
            plain: loopback(plain),
            process,
            _dir: dir,
        };
        unbound.process.wait_until(
            Instant::now(),
            STARTUP,
            "unbound: an answer over plain DNS and the TLS port open",
            || {
                // unbound answers `localhost` itself (its default local zones): nothing is
                // forwarded while it starts.
                let timeout = Duration::from_millis(200);
                let answered = ask(unbound.plain, "localhost", RecordType::A, timeout);
                let open = TcpStream::connect_timeout(&unbound.dot, Duration::from_millis(200));
                match (answered, open) {
                    (Some(_), Ok(_)) => Ok(()),
                    (answered, open) => Err(format!("{answered:?} {open:?}")),
                }
            },
        );
        unbound
    }

    /// Its output so far, for failure messages.
    pub fn logs(&self) -> String {
        self.process.logs()
    }
}
