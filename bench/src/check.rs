//! Whether two servers give the same answers: a response reduced to its rcode and the set of
//! its answer-section records in one presentation format (the testkit's [`format_record`],
//! lowercase, TTL kept), so that clusterdns and a server loaded from the zone files of
//! [`zonefile`](crate::zonefile) can be compared record by record whatever order or case each
//! one sends.

use std::collections::BTreeSet;

use clusterdns_testkit::dns::format_record;
use hickory_proto::op::Message;

/// A response reduced to what two servers must agree on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnswerSet {
    /// The response code.
    pub rcode: u16,
    /// The answer-section records, each as `name ttl IN TYPE rdata`, lowercase.
    pub records: BTreeSet<String>,
}

/// Decodes a response into its [`AnswerSet`].
pub fn answer_set(response: &[u8]) -> Result<AnswerSet, String> {
    let message = Message::from_vec(response).map_err(|e| format!("undecodable response: {e}"))?;
    Ok(AnswerSet {
        rcode: u16::from(message.metadata.response_code),
        records: (message.answers.iter())
            .map(|record| format_record(record).to_ascii_lowercase())
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zonefile::{reverse_records, write_cluster_zone, write_reverse_zone, ZoneParams};
    use crate::{build_snapshot, generate, packet, Spec};
    use clusterdns_zone::{answer, Answered, Snapshot, Transport};
    use std::collections::BTreeMap;

    /// Record type codes of the mnemonics the zone files use.
    fn type_code(mnemonic: &str) -> u16 {
        crate::queryfile::qtype_code(mnemonic).expect("known type")
    }

    /// The records of zone-file text by (owner, type), as [`AnswerSet`] holds them.
    fn zone_records(text: &str, into: &mut BTreeMap<(String, String), BTreeSet<String>>) {
        let mut origin = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("$ORIGIN ") {
                origin = rest.to_owned();
                continue;
            }
            if line.starts_with('$') {
                continue;
            }
            let fields: Vec<&str> = line.splitn(5, '\t').collect();
            let [owner, ttl, "IN", rtype, rdata] = fields[..] else {
                panic!("unexpected line {line:?}");
            };
            let owner = match owner {
                "@" => origin.clone(),
                relative => format!("{relative}.{origin}"),
            };
            into.entry((owner.clone(), rtype.to_owned()))
                .or_default()
                .insert(format!("{owner} {ttl} IN {rtype} {rdata}").to_ascii_lowercase());
        }
    }

    fn ask(snapshot: &Snapshot, name: &str, rtype: &str) -> AnswerSet {
        let query = packet::query_packet(7, name, type_code(rtype), Some(4096)).expect("name");
        let mut out = vec![0u8; 65535];
        match answer(
            snapshot,
            &query,
            &mut out,
            Transport::Udp { max_payload: 4096 },
        ) {
            Answered::Response { len, .. } => answer_set(&out[..len]).expect("decodes"),
            other => panic!("{name} {rtype}: {other:?}"),
        }
    }

    /// Every RRset of the zone files is what clusterdns answers, and every name clusterdns
    /// holds answers the same from the zone files (the differences the module docs list
    /// aside).
    #[test]
    fn zone_files_hold_what_clusterdns_answers() {
        let spec = Spec::new(200).seed(3);
        let cluster = generate(&spec).expect("generate");
        let params = ZoneParams {
            domain: spec.domain.clone(),
            ttl: 5,
            serial: 1,
        };
        let mut records = BTreeMap::new();
        let mut text = Vec::new();
        write_cluster_zone(&cluster, &params, &mut text).expect("write");
        zone_records(&String::from_utf8(text).expect("utf-8"), &mut records);
        for (origin, ptrs) in reverse_records(&cluster, &params) {
            let mut text = Vec::new();
            write_reverse_zone(&origin, &ptrs, &params, &mut text).expect("write");
            zone_records(&String::from_utf8(text).expect("utf-8"), &mut records);
        }
        let snapshot = build_snapshot(cluster, spec.zone_config().expect("config"));
        for ((owner, rtype), expected) in &records {
            // The serial differs (clusterdns's is the publish time); the reverse zones' apex
            // records are the zone files' own.
            if rtype == "SOA" || (rtype == "NS" && owner.ends_with(".arpa.")) {
                continue;
            }
            let got = ask(&snapshot, owner, rtype);
            assert_eq!(&got.records, expected, "{owner} {rtype}");
        }
        let mut names = 0;
        for name in snapshot.names() {
            let dotted = name.to_dotted();
            // clusterdns holds only PTR at reverse names; other types are not its to answer.
            let types: &[&str] = if dotted.ends_with(".arpa.") {
                &["PTR"]
            } else {
                &["A", "AAAA", "SRV", "CNAME", "PTR", "TXT"]
            };
            for &rtype in types {
                let got = ask(&snapshot, &dotted, rtype);
                let expected = records
                    .get(&(dotted.clone(), rtype.to_owned()))
                    .cloned()
                    .unwrap_or_default();
                // An ExternalName answers its CNAME for every type; a zone file only for CNAME
                // (other servers send the CNAME for any type too).
                let is_alias = got.records.iter().any(|r| r.contains(" cname "));
                if !is_alias {
                    assert_eq!(got.records, expected, "{dotted} {rtype}");
                }
            }
            names += 1;
        }
        assert!(names > 1000, "{names} names");
    }
}
