//! Each plugin's step in a block's chain: what `hosts`, `template`, `kubernetes`, `any` and
//! `whoami` do with a query and the output buffer, and the small helpers that write their
//! records.

use super::*;
use clusterdns_zone::wire::TYPE_TXT;

/// The `hosts` plugin of a block: its table (swapped when the file changes) and options.
pub struct Hosts {
    table: ArcSwap<HostsTable>,
    plan: HostsPlan,
    /// When the file was last read, and what it held.
    last_read: Mutex<(Instant, Option<String>)>,
}

impl Hosts {
    /// The plugin as `plan` read it at startup or reload.
    pub(super) fn new(plan: &HostsPlan) -> Hosts {
        Hosts {
            table: ArcSwap::from_pointee(plan.table.clone()),
            last_read: Mutex::new((Instant::now(), plan.text.clone())),
            plan: plan.clone(),
        }
    }

    /// Re-reads the hosts file if its `reload` interval has passed, and swaps in a new table if
    /// it changed; a file that cannot be read keeps the current table.
    pub fn refresh(&self) {
        let (Some(path), false) = (&self.plan.file, self.plan.reload.is_zero()) else {
            return;
        };
        let Ok(mut last) = self.last_read.lock() else {
            return;
        };
        if last.0.elapsed() < self.plan.reload {
            return;
        }
        last.0 = Instant::now();
        let text = match std::fs::read_to_string(path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => {
                tracing::warn!(file = %path.display(), %error, "hosts: cannot read the file; keeping its entries");
                return;
            }
        };
        if text == last.1 {
            return;
        }
        match hosts_table(&self.plan, text.as_deref()) {
            Ok(table) => {
                self.table.store(Arc::new(table));
                tracing::info!(file = %path.display(), "hosts: file re-read");
            }
            Err(error) => {
                tracing::warn!(file = %path.display(), %error, "hosts: keeping the entries read before");
            }
        }
        last.1 = text;
    }

    /// The plugin's answer, or `None` to go on down the chain. A name of its zones that it does
    /// not know fails with SERVFAIL unless it falls through (hosts files have no SOA to say
    /// NXDOMAIN with, as CoreDNS reasons).
    pub(super) fn step(
        &self,
        query: &Query,
        packet: &[u8],
        out: &mut [u8],
        transport: Transport,
        cache_bounds: Option<(u32, u32)>,
    ) -> Option<Step> {
        let qname = query.qname();
        let table = self.table.load();
        match table.lookup(qname, query.qtype) {
            HostsAnswer::Records(mut records) => Some(records_step(
                query,
                packet,
                out,
                transport,
                true,
                {
                    if let Some(bounds) = cache_bounds {
                        clamp_ttls(records.iter_mut(), bounds);
                    }
                    &records
                },
                Plugin::Hosts,
            )),
            HostsAnswer::NoData => Some(records_step(
                query,
                packet,
                out,
                transport,
                true,
                &[],
                Plugin::Hosts,
            )),
            HostsAnswer::Pass => None,
            HostsAnswer::NotFound if self.plan.fallthrough.covers(qname) => None,
            HostsAnswer::NotFound => {
                Some(rcode_step(query, packet, out, transport, Rcode::ServFail))
            }
        }
    }
}

/// The cluster zone's answer when the name is the block's to answer from it, else `None`.
pub(super) fn kubernetes_step(
    route: &KubernetesRoute,
    snapshot: &Snapshot,
    query: &Query,
    packet: &[u8],
    out: &mut [u8],
    transport: Transport,
) -> Option<Step> {
    let qname = query.qname();
    let reverse = if snapshot.in_zone(qname) {
        None
    } else {
        Some(
            route
                .reverse
                .iter()
                .find(|z| is_subdomain(qname, z.as_bytes()))?,
        )
    };
    match answer_query(snapshot, query, packet, out, transport) {
        Answered::Response { rcode, .. }
            if rcode == Rcode::NxDomain && route.fallthrough.covers(qname) =>
        {
            None
        }
        Answered::Response { len, rcode } => Some(Step::Reply {
            len,
            rcode: rcode as u16,
            plugin: Plugin::Kubernetes,
        }),
        Answered::Drop => Some(Step::Drop),
        Answered::Outside => {
            // A reverse name no Service or endpoint owns.
            let zone = reverse?;
            if route.fallthrough.covers(qname) {
                return None;
            }
            let zone_len = zone.as_bytes().len();
            Some(
                match reverse_nxdomain(snapshot, query, packet, out, transport, zone_len) {
                    Answered::Response { len, rcode } => Step::Reply {
                        len,
                        rcode: rcode as u16,
                        plugin: Plugin::Kubernetes,
                    },
                    _ => Step::Drop,
                },
            )
        }
    }
}

/// Gives every record the smallest of their TTLs, within `(min, max)`, as CoreDNS's cache
/// writes a response.
pub(super) fn clamp_ttls<'a>(
    records: impl Iterator<Item = &'a mut Record>,
    (min, max): (u32, u32),
) {
    let mut records: Vec<&mut Record> = records.collect();
    let Some(smallest) = records.iter().map(|r| r.ttl).min() else {
        return;
    };
    let ttl = smallest.clamp(min, max);
    for record in records.iter_mut() {
        record.ttl = ttl;
    }
}

/// The `any` plugin's answer to ANY: one HINFO record saying so (RFC 8482 §4.2).
pub(super) fn any_record(qname: &[u8]) -> Option<Record> {
    let mut rdata = Vec::new();
    for text in ["ANY obsoleted", "See RFC 8482"] {
        rdata.push(text.len() as u8);
        rdata.extend_from_slice(text.as_bytes());
    }
    Some(Record {
        name: clusterdns_zone::WireName::from_wire(qname)?,
        rtype: TYPE_HINFO,
        class: CLASS_IN,
        ttl: ANY_TTL,
        rdata,
    })
}

/// The `chaos` plugin's answer to a CH query of the TXT type, or `None` for another type or a
/// name it does not answer (then the query is refused, as for any class but IN).
pub(super) fn chaos_step(
    chaos: &Chaos,
    query: &Query,
    packet: &[u8],
    out: &mut [u8],
    transport: Transport,
    slot: u8,
) -> Option<Handled> {
    if query.qtype != TYPE_TXT {
        return None;
    }
    let texts = chaos.answer(query.qname())?;
    let name = clusterdns_zone::WireName::from_wire(query.qname())?;
    let records: Vec<Record> = (texts.iter())
        .map(|text| Record {
            name: name.clone(),
            rtype: TYPE_TXT,
            class: CLASS_CH,
            ttl: 0,
            rdata: [&[text.len() as u8][..], text.as_bytes()].concat(),
        })
        .collect();
    match records_step(
        query,
        packet,
        out,
        transport,
        false,
        &records,
        Plugin::Chaos,
    ) {
        Step::Reply { len, rcode, plugin } => Some(Handled::Reply(Reply::new(
            len,
            (query.qtype, rcode),
            slot,
            plugin,
        ))),
        _ => Some(Handled::Drop),
    }
}

pub(super) fn records_step(
    query: &Query,
    packet: &[u8],
    out: &mut [u8],
    transport: Transport,
    authoritative: bool,
    records: &[Record],
    plugin: Plugin,
) -> Step {
    let mut bytes = Vec::new();
    let counts = [encode_all(records, &mut bytes), 0, 0];
    match respond_records(
        query,
        packet,
        out,
        transport,
        (Rcode::NoError, authoritative),
        &bytes,
        counts,
    ) {
        Answered::Response { len, rcode } => Step::Reply {
            len,
            rcode: rcode as u16,
            plugin,
        },
        _ => Step::Drop,
    }
}

/// The `whoami` plugin's answer: no answer records, the client's address and port in the
/// additional section ([`plugins::whoami`]).
pub(super) fn whoami_step(query: &Query, packet: &[u8], out: &mut [u8], at: &Finish) -> Step {
    let tcp = at.transport == Transport::Tcp;
    let (records, counts) = plugins::whoami::records(query.qclass, at.client, tcp);
    let written = respond_records(
        query,
        packet,
        out,
        at.transport,
        (Rcode::NoError, true),
        &records,
        counts,
    );
    match written {
        Answered::Response { len, rcode } => Step::Reply {
            len,
            rcode: rcode as u16,
            plugin: Plugin::Whoami,
        },
        _ => Step::Drop,
    }
}

pub(super) fn rcode_step(
    query: &Query,
    packet: &[u8],
    out: &mut [u8],
    transport: Transport,
    rcode: Rcode,
) -> Step {
    match respond_rcode(query, packet, out, rcode, transport) {
        Answered::Response { len, rcode } => Step::Reply {
            len,
            rcode: rcode as u16,
            plugin: Plugin::Server,
        },
        _ => Step::Drop,
    }
}

impl Block {
    /// The first deciding template's answer, or `None` when every template skips the name.
    pub(super) fn template_step(
        &self,
        query: &Query,
        packet: &[u8],
        out: &mut [u8],
        at: &Finish,
    ) -> Option<Step> {
        let (qname, qclass, qtype) = (query.qname(), query.qclass, query.qtype);
        let answer = match template::lookup(&self.templates, qname, qclass, qtype, at.client.ip()) {
            TemplateResult::Skip => return None,
            TemplateResult::ServFail => {
                return Some(rcode_step(
                    query,
                    packet,
                    out,
                    at.transport,
                    Rcode::ServFail,
                ))
            }
            TemplateResult::Answer(mut answer) => {
                let positive = answer.rcode == Rcode::NoError && !answer.answer.is_empty();
                if let Some(bounds) = self.cache_ttl_bounds(qname, positive) {
                    let all = [
                        &mut answer.answer,
                        &mut answer.authority,
                        &mut answer.additional,
                    ];
                    clamp_ttls(all.into_iter().flat_map(|list| list.iter_mut()), bounds);
                }
                answer
            }
        };
        let mut records = Vec::new();
        let counts = answer.encode(&mut records);
        let written = respond_records(
            query,
            packet,
            out,
            at.transport,
            (answer.rcode, true),
            &records,
            counts,
        );
        Some(match written {
            Answered::Response { len, rcode } => Step::Reply {
                len,
                rcode: rcode as u16,
                plugin: Plugin::Template,
            },
            _ => Step::Drop,
        })
    }
}
