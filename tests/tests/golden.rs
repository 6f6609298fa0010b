//! The golden cases (tests/golden/*.golden) at three levels: the zone lookup, the answer function
//! on bytes, and a running server over UDP and over TCP.

use std::collections::HashMap;

use clusterdns_testkit::client;
use clusterdns_testkit::fixture::{snapshot, zone_config, TestServer};
use clusterdns_testkit::golden::{self, load_cases, query_bytes, run_all, Case};
use clusterdns_zone::answer::{parse_query, respond_rcode};
use clusterdns_zone::snapshot::SOA_RECORD_LEN;
use clusterdns_zone::{answer, Answered, Lookup, PodsMode, Rcode, Snapshot, Transport, WireName};

/// The golden files and the cluster they are asked of.
const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/golden");

const MODES: [PodsMode; 3] = [PodsMode::Insecure, PodsMode::Disabled, PodsMode::Verified];

fn cases() -> Vec<Case> {
    match load_cases(GOLDEN) {
        Ok(cases) => cases,
        Err(error) => panic!("golden files do not parse: {error}"),
    }
}

fn snapshots() -> HashMap<&'static str, Snapshot> {
    MODES
        .iter()
        .map(|&mode| {
            (
                mode_name(mode),
                snapshot(golden::cluster(GOLDEN), zone_config(mode)),
            )
        })
        .collect()
}

fn mode_name(mode: PodsMode) -> &'static str {
    match mode {
        PodsMode::Insecure => "insecure",
        PodsMode::Disabled => "disabled",
        PodsMode::Verified => "verified",
    }
}

#[test]
fn golden_corpus_covers_the_specification() {
    let cases = cases();
    assert!(cases.len() >= 80, "only {} golden cases", cases.len());
    for mode in MODES {
        assert!(
            cases.iter().any(|c| c.pods == mode),
            "no case for pods {mode:?}"
        );
    }
}

fn soa(snapshot: &Snapshot, qname: &WireName) -> Vec<u8> {
    let mut record = [0u8; SOA_RECORD_LEN];
    let len = snapshot.write_soa(qname.as_bytes().len(), &mut record);
    record[..len].to_vec()
}

/// Level 1: `Snapshot::lookup`, with the response assembled from what it found.
#[test]
fn golden_zone_lookup() {
    let snapshots = snapshots();
    run_all("zone lookup", &cases(), |case| {
        let snapshot = &snapshots[mode_name(case.pods)];
        let qname = WireName::from_dotted(&case.qname).ok_or("bad qname")?;
        let question = query_bytes(case, 7, None);
        let mut out = question.clone();
        out[2] = 0x80 | 0x01;
        let (rcode, aa, counts, body): (u8, bool, [u16; 3], Vec<u8>) =
            match snapshot.lookup(qname.as_bytes(), case.qtype) {
                Lookup::Answer(found) => {
                    // The records the lookup found, written after the question.
                    let (counts, records) = found.records(&question[12..]);
                    (0, true, counts, records)
                }
                Lookup::NoData => (0, true, [0, 1, 0], soa(snapshot, &qname)),
                Lookup::NxDomain => (3, true, [0, 1, 0], soa(snapshot, &qname)),
                Lookup::PodAddress(ip) => {
                    let mut record = vec![0xC0, 12];
                    let (rtype, data) = match ip {
                        std::net::IpAddr::V4(v4) => (1u16, v4.octets().to_vec()),
                        std::net::IpAddr::V6(v6) => (28u16, v6.octets().to_vec()),
                    };
                    record.extend_from_slice(&rtype.to_be_bytes());
                    record.extend_from_slice(&1u16.to_be_bytes());
                    record.extend_from_slice(&snapshot.config().ttl.to_be_bytes());
                    record.extend_from_slice(&(data.len() as u16).to_be_bytes());
                    record.extend_from_slice(&data);
                    (0, true, [1, 0, 0], record)
                }
                Lookup::NotSynced => (2, false, [0; 3], Vec::new()),
                Lookup::TransferRefused | Lookup::Outside => (5, false, [0; 3], Vec::new()),
            };
        out[3] = rcode;
        if aa {
            out[2] |= 0x04;
        }
        for (i, count) in counts.iter().enumerate() {
            out[6 + i * 2..8 + i * 2].copy_from_slice(&count.to_be_bytes());
        }
        out.extend_from_slice(&body);
        Ok(out)
    });
}

/// Level 2: the answer function on query bytes (with EDNS, so nothing is truncated).
#[test]
fn golden_answer_function() {
    let snapshots = snapshots();
    let mut out = vec![0u8; 65535];
    run_all("answer function", &cases(), |case| {
        let snapshot = &snapshots[mode_name(case.pods)];
        let query = query_bytes(case, 0x1234, Some(4096));
        let transport = Transport::Udp { max_payload: 4096 };
        match answer(snapshot, &query, &mut out, transport) {
            Answered::Response { len, .. } => Ok(out[..len].to_vec()),
            // Outside the zone the server refuses; the answer function hands it back.
            Answered::Outside => {
                let parsed = parse_query(&query).map_err(|e| format!("{e:?}"))?;
                match respond_rcode(&parsed, &query, &mut out, Rcode::Refused, transport) {
                    Answered::Response { len, .. } => Ok(out[..len].to_vec()),
                    _ => Err("no refusal".to_string()),
                }
            }
            Answered::Drop => Err("dropped".into()),
        }
    });
}

fn servers() -> HashMap<&'static str, TestServer> {
    MODES
        .iter()
        .map(|&mode| {
            (
                mode_name(mode),
                TestServer::start(golden::cluster(GOLDEN), zone_config(mode)),
            )
        })
        .collect()
}

/// Level 3a: a running server over UDP.
#[test]
fn golden_server_udp() {
    let servers = servers();
    run_all("server over UDP", &cases(), |case| {
        let addr = servers[mode_name(case.pods)].addr();
        client::udp(addr, &query_bytes(case, 0x4242, Some(4096))).map_err(|e| e.to_string())
    });
}

/// Level 3b: a running server over TCP (one connection for all cases of a mode, pipelined
/// one after another).
#[test]
fn golden_server_tcp() {
    let servers = servers();
    run_all("server over TCP", &cases(), |case| {
        let addr = servers[mode_name(case.pods)].addr();
        client::tcp(addr, &query_bytes(case, 0x4343, None)).map_err(|e| e.to_string())
    });
}
