use super::host::{run, run_ok, CommandLine, Placement};
use super::*;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn args() -> NodeLocalArgs {
    NodeLocalArgs {
        cluster_dns: Some(addr("10.96.0.11:53")),
        cluster_dns_connections: 2,
        setup_interface: Some("nodelocaldns".into()),
        setup_iptables: true,
        skip_teardown: false,
    }
}

#[test]
fn validation() {
    let listen = [addr("169.254.20.10:53"), addr("10.96.0.10:53")];
    assert!(args().validate(&listen).is_ok());
    let mut no_server = args();
    no_server.cluster_dns = None;
    assert!(matches!(
        no_server.validate(&listen),
        Err(NodeLocalError::NoClusterDns)
    ));
    let error = args().validate(&[addr("0.0.0.0:53")]).unwrap_err();
    assert!(error.to_string().contains("0.0.0.0:53"), "{error}");
    let mut plain = args();
    plain.setup_interface = None;
    plain.setup_iptables = false;
    assert!(plain.validate(&[addr("0.0.0.0:53")]).is_ok());
    for name in ["", "a/b", "eth0:1", "has space", "sixteen-chars-xx"] {
        let mut bad = args();
        bad.setup_interface = Some(name.into());
        assert!(bad.validate(&listen).is_err(), "{name:?}");
    }
    assert_eq!(args().given(), Some("--cluster-dns"));
    assert_eq!(NodeLocalArgs::default().given(), None);
}

#[test]
fn route_holds_the_domain_and_reverse_zones() {
    let route = args().route(b"\x07Cluster\x05local\x00").unwrap();
    assert_eq!(route.server, addr("10.96.0.11:53"));
    assert_eq!(route.connections, 2);
    assert!(route.covers(b"\x03web\x07cluster\x05local\x00"));
    assert!(route.covers(b"\x0210\x07in-addr\x04arpa\x00"));
    assert!(route.covers(b"\x011\x03ip6\x04arpa\x00"));
    assert!(!route.covers(b"\x03www\x07example\x03com\x00"));
}

#[test]
fn interface_commands() {
    let listen = [
        addr("169.254.20.10:53"),
        addr("10.96.0.10:53"),
        addr("169.254.20.10:53"),
        addr("[fd00::10]:53"),
    ];
    let setup = args().setup(&listen);
    let lines = |steps: Vec<CommandLine>| -> Vec<String> {
        steps.iter().map(CommandLine::to_string).collect()
    };
    assert_eq!(
        setup.create_step().map(|step| step.to_string()).as_deref(),
        Some("ip link add nodelocaldns type dummy")
    );
    assert_eq!(
        lines(setup.address_steps(&Placement::Interface("nodelocaldns".into()))),
        [
            "ip addr replace 169.254.20.10/32 dev nodelocaldns",
            "ip addr replace 10.96.0.10/32 dev nodelocaldns",
            "ip addr replace fd00::10/128 dev nodelocaldns",
            "ip link set nodelocaldns up",
        ]
    );
    // Without a dummy interface: on lo, IPv4 with scope host.
    assert_eq!(
        lines(setup.address_steps(&Placement::Loopback)),
        [
            "ip addr replace 169.254.20.10/32 dev lo scope host",
            "ip addr replace 10.96.0.10/32 dev lo scope host",
            "ip addr replace fd00::10/128 dev lo",
            "ip link set lo up",
        ]
    );
    // `--setup-interface lo` asks for that at once: lo is never created.
    let mut on_lo = args();
    on_lo.setup_interface = Some("lo".into());
    assert_eq!(on_lo.setup(&listen).create_step(), None);
    let mut none = args();
    none.setup_interface = None;
    assert_eq!(none.setup(&listen).create_step(), None);
}

#[test]
fn iptables_rules_for_each_address_protocol_and_direction() {
    let setup = args().setup(&[addr("169.254.20.10:53"), addr("[fd00::10]:5353")]);
    let rules = setup.rules();
    assert_eq!(rules.len(), 2 * 2 * 5);
    let lines: Vec<String> = rules.iter().map(|r| r.step("-I").to_string()).collect();
    for line in [
        "iptables -w 5 -t raw -I PREROUTING -p udp -d 169.254.20.10/32 --dport 53 -j NOTRACK",
        "iptables -w 5 -t raw -I OUTPUT -p udp -s 169.254.20.10/32 --sport 53 -j NOTRACK",
        "iptables -w 5 -t raw -I OUTPUT -p tcp -d 169.254.20.10/32 --dport 53 -j NOTRACK",
        "iptables -w 5 -t filter -I INPUT -p tcp -d 169.254.20.10/32 --dport 53 -j ACCEPT",
        "iptables -w 5 -t filter -I OUTPUT -p udp -s 169.254.20.10/32 --sport 53 -j ACCEPT",
        "ip6tables -w 5 -t raw -I PREROUTING -p tcp -d fd00::10/128 --dport 5353 -j NOTRACK",
        "ip6tables -w 5 -t filter -I OUTPUT -p udp -s fd00::10/128 --sport 5353 -j ACCEPT",
    ] {
        assert!(lines.iter().any(|l| l == line), "{line}\nnot in {lines:#?}");
    }
    assert_eq!(
        rules[0].step("-D").to_string(),
        "iptables -w 5 -t raw -D PREROUTING -p udp -d 169.254.20.10/32 --dport 53 -j NOTRACK"
    );
    let mut off = args();
    off.setup_iptables = false;
    assert!(off.setup(&[addr("169.254.20.10:53")]).rules().is_empty());
}

#[test]
fn a_missing_program_is_named_with_what_to_install() {
    let step = CommandLine::new("clusterdns-no-such-program", &["x"]);
    let error = run(&step).unwrap_err().to_string();
    assert!(
        error.contains("clusterdns-no-such-program x") && error.contains("install"),
        "{error}"
    );
    let failed = run_ok(&CommandLine::new("sh", &["-c", "echo nope >&2; exit 3"]));
    let error = failed.unwrap_err().to_string();
    assert!(
        error.contains("`sh -c") && error.contains("exit status: 3") && error.contains("nope"),
        "{error}"
    );
}
