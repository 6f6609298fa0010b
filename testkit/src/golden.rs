//! Golden cases: expected answers in presentation format, grouped by section of the Kubernetes
//! DNS specification (`*.golden` files in a directory, beside the `cluster.yaml` they are asked
//! of). A case names a query and the exact response: rcode, flags (aa, tc) and the records of
//! each section, compared as multisets. Owner names are compared exactly (the answer owner
//! echoes the client's case); SOA serials are `*`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use clusterdns_zone::{Cluster, PodsMode};
use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

use crate::dns::{format_record, query};
use crate::fixture::load_cluster;

/// One golden case.
#[derive(Clone, Debug)]
pub struct Case {
    /// File and line where the case starts.
    pub origin: String,
    /// The case's unique name.
    pub name: String,
    /// The query name exactly as the client sends it.
    pub qname: String,
    /// The query type code.
    pub qtype: u16,
    /// The pods mode the server runs with.
    pub pods: PodsMode,
    /// Expected rcode mnemonic.
    pub rcode: String,
    /// Expected flags among `aa` and `tc`.
    pub flags: BTreeSet<String>,
    /// Expected records of the answer, authority and additional sections (normalized).
    pub sections: [Vec<String>; 3],
}

/// The cluster the cases of `dir` are asked of: `dir/cluster.yaml`.
pub fn cluster(dir: impl AsRef<Path>) -> Cluster {
    load_cluster(&dir.as_ref().join("cluster.yaml"))
}

/// Collapses white space and replaces an SOA serial by `*`.
pub fn normalize(record: &str) -> String {
    let fields: Vec<&str> = record.split_whitespace().collect();
    let mut fields: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
    if fields.get(3).map(String::as_str) == Some("SOA") && fields.len() >= 7 {
        fields[6] = "*".into();
    }
    fields.join(" ")
}

/// Loads every case of every `*.golden` file of `dir`, sorted by file name.
pub fn load_cases(dir: impl AsRef<Path>) -> Result<Vec<Case>, String> {
    let dir = dir.as_ref();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "golden"))
        .collect();
    files.sort();
    let mut cases = Vec::new();
    for file in files {
        let text =
            std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let short = file
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        parse_file(&short, &text, &mut cases)?;
    }
    let mut names = BTreeSet::new();
    for case in &cases {
        if !names.insert(case.name.clone()) {
            return Err(format!(
                "{}: duplicate case name {}",
                case.origin, case.name
            ));
        }
    }
    Ok(cases)
}

fn parse_file(file: &str, text: &str, cases: &mut Vec<Case>) -> Result<(), String> {
    let mut current: Option<(Case, Option<usize>)> = None;
    for (number, line) in text.lines().enumerate() {
        let at = format!("{file}:{}", number + 1);
        if line.trim_start().starts_with('#') {
            continue;
        }
        if line.trim().is_empty() {
            if let Some((case, _)) = current.take() {
                cases.push(case);
            }
            continue;
        }
        if let Some(value) = line.strip_prefix("case:") {
            if let Some((case, _)) = current.take() {
                cases.push(case);
            }
            current = Some((
                Case {
                    origin: at.clone(),
                    name: value.trim().to_string(),
                    qname: String::new(),
                    qtype: 1,
                    pods: PodsMode::Insecure,
                    rcode: String::new(),
                    flags: BTreeSet::new(),
                    sections: Default::default(),
                },
                None,
            ));
            continue;
        }
        let Some((case, section)) = current.as_mut() else {
            return Err(format!("{at}: line outside a case: {line}"));
        };
        if line.starts_with("  ") || line.starts_with('\t') {
            let index = section.ok_or_else(|| format!("{at}: record before a section header"))?;
            case.sections[index].push(normalize(line));
            continue;
        }
        let (key, value) = line
            .split_once(':')
            .ok_or_else(|| format!("{at}: expected `key: value`, got {line}"))?;
        let value = value.trim();
        match key.trim() {
            "query" => {
                let (name, qtype) = value
                    .split_once(char::is_whitespace)
                    .ok_or_else(|| format!("{at}: query needs a name and a type"))?;
                case.qname = name.to_string();
                case.qtype =
                    type_code(qtype.trim()).ok_or_else(|| format!("{at}: bad type {qtype}"))?;
            }
            "pods" => {
                case.pods = match value {
                    "insecure" => PodsMode::Insecure,
                    "disabled" => PodsMode::Disabled,
                    "verified" => PodsMode::Verified,
                    other => return Err(format!("{at}: bad pods mode {other}")),
                }
            }
            "rcode" => case.rcode = value.to_string(),
            "flags" => case.flags = value.split_whitespace().map(str::to_string).collect(),
            "answer" => *section = Some(0),
            "authority" => *section = Some(1),
            "additional" => *section = Some(2),
            other => return Err(format!("{at}: unknown key {other}")),
        }
    }
    if let Some((case, _)) = current.take() {
        cases.push(case);
    }
    Ok(())
}

/// The code of a type mnemonic (`A`, `IXFR`, `TYPE65`...).
pub fn type_code(mnemonic: &str) -> Option<u16> {
    match mnemonic.to_ascii_uppercase().as_str() {
        "IXFR" => Some(251),
        "AXFR" => Some(252),
        "ANY" => Some(255),
        other => match other.strip_prefix("TYPE") {
            Some(number) => number.parse().ok(),
            None => RecordType::from_str(other).ok().map(u16::from),
        },
    }
}

/// A query for the case: header (RD set) and question, with an EDNS OPT of `payload` if given.
pub fn query_bytes(case: &Case, id: u16, payload: Option<u16>) -> Vec<u8> {
    query(id, &case.qname, case.qtype, payload)
}

/// Compares a response with the case; the error lists every difference.
pub fn check(case: &Case, response: &[u8]) -> Result<(), String> {
    let message = Message::from_vec(response)
        .map_err(|e| format!("{}: undecodable response: {e}", case.name))?;
    let mut problems = Vec::new();
    let rcode = message.metadata.response_code.to_string().to_uppercase();
    let rcode = match rcode.as_str() {
        "NO ERROR" | "NOERROR" => "NOERROR".to_string(),
        "NON-EXISTENT DOMAIN" | "NXDOMAIN" => "NXDOMAIN".to_string(),
        "SERVER FAILURE" | "SERVFAIL" => "SERVFAIL".to_string(),
        "QUERY REFUSED" | "REFUSED" => "REFUSED".to_string(),
        "NOT IMPLEMENTED" | "NOTIMP" => "NOTIMP".to_string(),
        "FORM ERROR" | "FORMAT ERROR" | "FORMERR" => "FORMERR".to_string(),
        other => other.to_string(),
    };
    if rcode != case.rcode {
        problems.push(format!("rcode {rcode}, expected {}", case.rcode));
    }
    let mut flags = BTreeSet::new();
    if message.metadata.authoritative {
        flags.insert("aa".to_string());
    }
    if message.metadata.truncation {
        flags.insert("tc".to_string());
    }
    if flags != case.flags {
        problems.push(format!("flags {flags:?}, expected {:?}", case.flags));
    }
    match message.queries.first() {
        Some(q) if q.name.to_string() == case.qname || format!("{}.", q.name) == case.qname => {}
        other => problems.push(format!(
            "question {:?} does not echo {}",
            other.map(|q| q.name.to_string()),
            case.qname
        )),
    }
    let sections = [&message.answers, &message.authorities, &message.additionals];
    for (index, (records, expected)) in sections.iter().zip(&case.sections).enumerate() {
        let mut got: Vec<String> = records
            .iter()
            .map(|r| normalize(&format_record(r)))
            .collect();
        let mut want = expected.clone();
        got.sort();
        want.sort();
        if got != want {
            let label = ["answer", "authority", "additional"][index];
            problems.push(format!(
                "{label}:\n      got  {got:#?}\n      want {want:#?}"
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} ({}) {} {}:\n    {}",
            case.name,
            case.origin,
            case.qname,
            case.qtype,
            problems.join("\n    ")
        ))
    }
}

/// Runs `check` over every case with responses from `respond`, failing with every mismatch.
pub fn run_all(
    level: &str,
    cases: &[Case],
    mut respond: impl FnMut(&Case) -> Result<Vec<u8>, String>,
) {
    let mut failures = Vec::new();
    for case in cases {
        match respond(case).and_then(|response| check(case, &response)) {
            Ok(()) => {}
            Err(problem) => failures.push(problem),
        }
    }
    assert!(
        failures.is_empty(),
        "{level}: {} of {} golden cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
