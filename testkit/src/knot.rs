//! Knot DNS (`knotd`, Debian package `knot`) as a real upstream: authoritative for the zones a
//! test gives it, on a loopback port, with a configuration and zone files in a temp dir of its
//! own. CI installs it (`.ci/run`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::client::ask;
use crate::net::{free_port, loopback};
use crate::process::Process;
use crate::temp::TempDir;

/// How long knotd may take to answer for every zone.
const STARTUP: Duration = Duration::from_secs(10);

/// Where `knotd` is, or a failure saying what to install.
fn knotd() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .map(|dir| dir.join("knotd"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "knotd (Knot DNS) is not installed; these tests need it as their upstream: \
                 install it with `apt-get install knot` (CI installs it in .ci/run)"
            )
        })
}

/// A running knotd; stopped, and its directory removed, when dropped.
pub struct Knot {
    /// Where it answers, over UDP and TCP.
    pub addr: SocketAddr,
    process: Process,
    _dir: TempDir,
}

impl Knot {
    /// Starts knotd authoritative for `zones`, each an origin (no trailing dot) and its records
    /// in zone-file syntax (relative to the origin, default TTL 300), and waits until it answers
    /// the SOA of every one.
    pub fn start(name: &str, zones: &[(&str, &str)]) -> Knot {
        Knot::start_zones(
            name,
            zones.iter().map(|&(o, r)| (o.to_owned(), r.to_owned())),
        )
    }

    /// Starts knotd authoritative for `zones` as [`Knot::start`] does, each zone given only
    /// its own records: the SOA and an `ns` at 192.0.2.53 are added.
    pub fn with_records(name: &str, zones: &[(&str, &str)]) -> Knot {
        Knot::start_zones(
            name,
            zones.iter().map(|&(origin, records)| {
                let head = format!(
                    "@ 3600 IN SOA ns.{origin}. hostmaster.{origin}. 1 7200 3600 1209600 60\n\
                     @ NS ns\nns A 192.0.2.53\n"
                );
                (origin.to_owned(), head + records)
            }),
        )
    }

    fn start_zones(name: &str, zones: impl Iterator<Item = (String, String)>) -> Knot {
        let zones: Vec<(String, String)> = zones.collect();
        let dir = TempDir::new(&format!("knot-{name}"));
        std::fs::create_dir_all(dir.path().join("db")).expect("knotd's database dir");
        let d = dir.path().display();
        let port = free_port();
        let mut config = format!(
            "server:\n    rundir: \"{d}\"\n    listen: 127.0.0.1@{port}\n    udp-workers: 1\n    \
             tcp-workers: 1\n    background-workers: 1\n\
             database:\n    storage: \"{d}/db\"\n\
             log:\n  - target: stderr\n    any: warning\n\
             template:\n  - id: default\n    storage: \"{d}\"\n    zonefile-sync: -1\n    \
             journal-content: none\n\
             zone:\n"
        );
        for (origin, records) in &zones {
            dir.write(
                &format!("{origin}.zone"),
                &format!("$ORIGIN {origin}.\n$TTL 300\n{records}"),
            );
            config.push_str(&format!(
                "  - domain: {origin}.\n    file: \"{origin}.zone\"\n"
            ));
        }
        let config = dir.write("knot.conf", &config);
        let process = Process::spawn(Command::new(knotd()).arg("-c").arg(&config));
        let knot = Knot {
            addr: loopback(port),
            process,
            _dir: dir,
        };
        for (origin, _) in &zones {
            knot.process.wait_until(
                Instant::now(),
                STARTUP,
                &format!("knotd: {origin} SOA"),
                || match ask(
                    knot.addr,
                    origin,
                    RecordType::SOA,
                    Duration::from_millis(100),
                ) {
                    Some(reply) if reply.rcode == ResponseCode::NoError && reply.aa => Ok(()),
                    other => Err(other),
                },
            );
        }
        knot
    }
}
