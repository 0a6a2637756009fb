//! The authoritative answering logic: one query in, one response message out.
//!
//! Hand-written rather than hickory-server's `Catalog`/`Authority` for two reasons: speed (no
//! per-query `Message`, `Name` or record clones: everything is a reference into the snapshot
//! and bytes are copied into a reused buffer) and exact RFC behaviour, which the stock catalog
//! gets wrong in places (the negative-answer SOA TTL of RFC 2308 §3, minimal ANY of RFC 8482,
//! ECS scope of RFC 7871).

use std::net::IpAddr;

use crate::dnssec::cache::{Got, SigCache};
use crate::dnssec::{deny, ZoneSigning};
use crate::gslb::{choose, ClientLocation, GslbName, Outcome, RegionHealth};
use crate::metrics::Metrics;
use crate::names::{is_subdomain, label_offsets, parent};
use crate::snapshot::Snapshot;
use crate::wire::response::Owner;
use crate::wire::{parse, rcode, Ecs, Edns, Parsed, Request, Writer, MIN_UDP_PAYLOAD};
use crate::zone::{rtype, Node, Rr, Zone};
use smallvec::SmallVec;
use std::sync::Arc;

/// Longest CNAME chain followed inside a zone.
const MAX_CNAME_CHAIN: usize = 8;

/// What the server needs to answer one message.
pub struct Ctx<'a> {
    /// The zones and GSLB names answered from.
    pub snap: &'a Snapshot,
    /// Region health for GSLB answers.
    pub health: &'a dyn RegionHealth,
    /// Counters the answer increments.
    pub metrics: &'a Metrics,
    /// Source address of the query.
    pub client: IpAddr,
    /// The query came over TCP (no truncation; AXFR allowed).
    pub tcp: bool,
    /// Where RRSIGs made for signed zones are cached (the caller's own, or a shared one).
    pub sigs: &'a std::sync::Mutex<SigCache>,
}

/// What happened to a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// Nothing to send.
    Drop,
    /// `out` holds the response.
    Reply {
        /// The response code sent.
        rcode: u16,
        /// TC=1 was set because the answer did not fit.
        truncated: bool,
    },
    /// An allowed AXFR over TCP: stream it with [`axfr_messages`].
    Axfr,
}

/// A record to write: borrowed from the snapshot, or made for this answer (RRSIG, NSEC).
#[derive(Clone)]
enum RrRef<'a> {
    Zone(&'a Rr),
    Made(Arc<Rr>),
}

impl std::ops::Deref for RrRef<'_> {
    type Target = Rr;
    fn deref(&self) -> &Rr {
        match self {
            RrRef::Zone(r) => r,
            RrRef::Made(r) => r,
        }
    }
}

type Item<'a> = (Owner<'a>, RrRef<'a>, u32);
/// The records of one section, inline up to a typical answer's size (no allocation per query).
type Items<'a> = SmallVec<[Item<'a>; 8]>;

/// Why an answer has no data, for authenticated denial in signed zones.
#[derive(Clone, Copy)]
enum Denial<'a> {
    /// `name` does not exist.
    NxDomain(&'a [u8]),
    /// `name` exists (as `node`, maybe a wildcard) without the type asked for.
    NoData(&'a [u8], Option<&'a Node>),
    /// A referral to the delegation at `name`.
    Referral(&'a [u8], &'a Node),
}

struct Ans<'a> {
    rcode: u16,
    aa: bool,
    answer: Items<'a>,
    authority: Items<'a>,
    /// Glue for in-zone name servers of a referral: must fit, or TC.
    glue: Items<'a>,
    /// Other additional data: dropped when it does not fit.
    extra: Items<'a>,
    scope: u8,
    /// Class of the records (IN; CH for the server's own TXT records).
    class: u16,
    /// Extended DNS Error info code for the OPT (RFC 8914).
    ede: Option<u16>,
    denial: Option<Denial<'a>>,
}

impl<'a> Ans<'a> {
    fn new() -> Self {
        Ans {
            rcode: rcode::NOERROR,
            aa: true,
            answer: Items::new(),
            authority: Items::new(),
            glue: Items::new(),
            extra: Items::new(),
            scope: 0,
            class: 1,
            ede: None,
            denial: None,
        }
    }
}

/// Answers one message into `out`.
pub fn handle(ctx: &Ctx<'_>, msg: &[u8], out: &mut Vec<u8>) -> Handled {
    match parse(msg) {
        Parsed::Drop => {
            ctx.metrics.malformed.increment(1);
            Handled::Drop
        }
        Parsed::Error {
            id,
            flags,
            rcode,
            question,
            edns,
        } => {
            let qtype = question
                .filter(|q| q.len() >= 4)
                .map_or(0, |q| u16::from_be_bytes([q[q.len() - 4], q[q.len() - 3]]));
            ctx.metrics.query(qtype, rcode);
            let mut w = Writer::new(out, id, flags, false, rcode, question, &[]);
            if let Some(e) = edns {
                let nsid = ctx.snap.nsid.as_deref().filter(|_| e.nsid);
                w.opt(ctx.snap.udp_payload, e.dnssec_ok, rcode, None, nsid, None);
            }
            w.finish();
            Handled::Reply {
                rcode,
                truncated: false,
            }
        }
        Parsed::Query(req) => answer(ctx, &req, msg, out),
    }
}

fn answer(ctx: &Ctx<'_>, req: &Request<'_>, msg: &[u8], out: &mut Vec<u8>) -> Handled {
    let ecs = req.edns.and_then(|e| e.ecs);
    if ecs.is_some() {
        &ctx.metrics.ecs_yes
    } else {
        &ctx.metrics.ecs_no
    }
    .increment(1);
    let qname = req.qname_lower();
    let zone = ctx.snap.find_zone(qname);
    let ans = if req.qclass == CLASS_CH {
        chaos(ctx.snap, qname, req.qtype)
    } else if req.qclass != CLASS_IN && req.qclass != CLASS_ANY {
        // QCLASS * (RFC 1035 §3.2.5) matches our IN data, as in Knot
        refused()
    } else if req.qtype == 0 {
        // type 0 is reserved (RFC 6895 §3.1): not a query we implement (as Knot answers)
        let mut a = Ans::new();
        a.rcode = rcode::NOTIMP;
        a.aa = false;
        a
    } else if matches!(req.qtype, rtype::AXFR | rtype::IXFR) {
        match zone {
            Some(z) if *z.origin == *qname && ctx.snap.axfr_allowed(ctx.client) => {
                if ctx.tcp {
                    ctx.metrics.query(req.qtype, rcode::NOERROR);
                    return Handled::Axfr;
                }
                let mut a = Ans::new();
                a.rcode = rcode::NOTIMP;
                a.aa = false;
                a
            }
            _ => refused(),
        }
    } else {
        match zone {
            // not ours: REFUSED with Extended DNS Error 20 "Not Authoritative" (RFC 8914)
            None => Ans {
                ede: Some(EDE_NOT_AUTHORITATIVE),
                ..refused()
            },
            Some(z) => {
                // built in place: an `Ans` is a few kilobytes of inline items, and moving it
                // out of `resolve` cost three memcpys per query (15 % of the answering thread)
                let mut ans = Ans::new();
                resolve(ctx, z, qname, req.qtype, ecs.as_ref(), &mut ans);
                let dnssec_ok = req.edns.is_some_and(|e| e.dnssec_ok);
                if dnssec_ok {
                    ctx.metrics.do_queries.increment(1);
                }
                if let (Some(signing), true) = (&z.signing, dnssec_ok) {
                    sign_answer(ctx, z, signing, qname, &mut ans);
                }
                ans
            }
        }
    };
    let limit = if ctx.tcp {
        u16::MAX as usize
    } else {
        match req.edns {
            Some(e) => e
                .payload
                .clamp(MIN_UDP_PAYLOAD, ctx.snap.udp_payload.max(MIN_UDP_PAYLOAD))
                as usize,
            None => MIN_UDP_PAYLOAD as usize,
        }
    };
    let question = &msg[12..12 + req.qname.len() + 4];
    let truncated = encode(out, req, question, &ans, limit, ctx.snap, ecs);
    ctx.metrics.query(req.qtype, ans.rcode);
    if truncated {
        ctx.metrics.truncated.increment(1);
    }
    Handled::Reply {
        rcode: ans.rcode,
        truncated,
    }
}

/// The CH class: only the server's own TXT records, when configured; anything else is
/// REFUSED, as for any class we do not serve. Like Knot: AA=0 (not zone data), TTL 0.
fn chaos<'a>(snap: &'a Snapshot, qname: &[u8], qtype: u16) -> Ans<'a> {
    match snap.chaos.lookup(qname) {
        Some(rr) if qtype == rtype::TXT => {
            let mut a = Ans::new();
            a.aa = false;
            a.class = CLASS_CH;
            a.answer.push((Owner::Qname, RrRef::Zone(rr), 0));
            a
        }
        _ => refused(),
    }
}

const CLASS_IN: u16 = 1;
/// The CHAOS class (RFC 1035 §3.2.4).
const CLASS_CH: u16 = 3;
/// QCLASS `*` (RFC 1035 §3.2.5).
const CLASS_ANY: u16 = 255;
/// Extended DNS Error "Not Authoritative" (RFC 8914 §4.21).
const EDE_NOT_AUTHORITATIVE: u16 = 20;

fn refused<'a>() -> Ans<'a> {
    let mut a = Ans::new();
    a.rcode = rcode::REFUSED;
    a.aa = false;
    a
}

/// Writes the response; returns whether it had to be truncated.
fn encode(
    out: &mut Vec<u8>,
    req: &Request<'_>,
    question: &[u8],
    ans: &Ans<'_>,
    limit: usize,
    snap: &Snapshot,
    ecs: Option<Ecs>,
) -> bool {
    let nsid = snap
        .nsid
        .as_deref()
        .filter(|_| req.edns.is_some_and(|e| e.nsid));
    let opt_len = req
        .edns
        .map_or(0, |_| Writer::opt_len(ecs.as_ref(), nsid, ans.ede));
    let limit = limit.saturating_sub(opt_len);
    let mut w = Writer::new(
        out,
        req.id,
        req.flags,
        ans.aa,
        ans.rcode,
        Some(question),
        req.qname_lower(),
    );
    w.set_class(ans.class);
    let base = w.len();
    let mut overflow = false;
    for (section, items) in [(0, &ans.answer), (1, &ans.authority), (2, &ans.glue)] {
        w.section(section);
        for (owner, rr, ttl) in items.iter() {
            w.record(*owner, rr, *ttl);
        }
        if w.len() > limit {
            overflow = true;
            break;
        }
    }
    if !overflow {
        for (owner, rr, ttl) in &ans.extra {
            let (len, counts) = (w.len(), w.counts());
            w.record(*owner, rr, *ttl);
            if w.len() > limit {
                w.rollback(len, counts);
                break;
            }
        }
    } else {
        w.rollback(base, [0; 3]);
        w.set_tc();
    }
    if let Some(Edns { dnssec_ok, .. }) = req.edns {
        w.opt(
            snap.udp_payload,
            dnssec_ok,
            ans.rcode,
            ecs.map(|e| (e, ans.scope)),
            nsid,
            ans.ede,
        );
    }
    w.finish();
    overflow
}

/// Looks `qname` up in `zone` (RFC 1034 §4.3.2 with RFC 4592 wildcards, RFC 2308 negative
/// answers and RFC 8482 minimal ANY).
fn resolve<'a>(
    ctx: &Ctx<'_>,
    zone: &'a Zone,
    qname: &'a [u8],
    qtype: u16,
    ecs: Option<&Ecs>,
    ans: &mut Ans<'a>,
) {
    let mut name: &'a [u8] = qname;
    let mut owner = Owner::Qname;
    let mut visited: [&[u8]; MAX_CNAME_CHAIN] = [&[]; MAX_CNAME_CHAIN];
    for hop in 0..=MAX_CNAME_CHAIN {
        if zone.has_cuts {
            if let Some((cut_name, cut)) = find_cut(zone, name, qtype) {
                referral(zone, cut_name, cut, ans);
                ans.aa = !ans.answer.is_empty();
                ans.denial = Some(Denial::Referral(cut_name, cut));
                return;
            }
        }
        let Some(node) = find_node(zone, name) else {
            ans.rcode = rcode::NXDOMAIN;
            ans.denial = Some(Denial::NxDomain(name));
            ans.authority.push((
                Owner::Name(&zone.origin),
                RrRef::Zone(&zone.soa),
                zone.neg_ttl,
            ));
            return;
        };
        if let Some(g) = node
            .gslb
            .as_ref()
            .filter(|_| matches!(qtype, rtype::A | rtype::AAAA | rtype::ANY))
        {
            gslb_answer(ctx, zone, g, owner, qtype, ecs, ans);
            if ans.answer.is_empty() {
                ans.denial = Some(Denial::NoData(name, Some(node)));
            }
            return;
        }
        // RFC 1034 §4.3.2 step 3a: a CNAME is followed unless the query asks for the CNAME
        // itself; ANY asks for what the name owns, which is the CNAME (RFC 8482 §4.1).
        if let (Some(cname), true) = (node.get(rtype::CNAME), chases(qtype)) {
            let rr = &cname.records[0];
            ans.answer.push((owner, RrRef::Zone(rr), rr.ttl));
            if hop < MAX_CNAME_CHAIN {
                visited[hop] = name;
            }
            match rr.target.as_deref() {
                Some(t)
                    if is_subdomain(t, &zone.origin)
                        && !visited[..=hop.min(MAX_CNAME_CHAIN - 1)].contains(&t) =>
                {
                    name = t;
                    owner = Owner::Name(t);
                    continue;
                }
                // out of zone (the resolver goes on from here), a loop, or too long
                _ => return,
            }
        }
        let set = if qtype == rtype::ANY {
            node.sets.first()
        } else {
            node.get(qtype)
        };
        match set {
            Some(set) => {
                for rr in &set.records {
                    ans.answer.push((owner, RrRef::Zone(rr), rr.ttl));
                }
                if matches!(set.rtype, rtype::NS | rtype::MX | rtype::SRV) {
                    for rr in &set.records {
                        add_addresses(zone, rr.target.as_deref(), &mut ans.extra);
                    }
                }
            }
            None => {
                ans.authority.push((
                    Owner::Name(&zone.origin),
                    RrRef::Zone(&zone.soa),
                    zone.neg_ttl,
                ));
                ans.denial = Some(Denial::NoData(name, Some(node)));
            }
        }
        return;
    }
}

/// Adds RRSIGs to the answer and authority RRsets of a signed zone, and the compact NSEC that
/// proves a denial (RFC 9824: a name that does not exist answers NOERROR with NXNAME).
/// Referrals get an NSEC proving the delegation has no DS (or the signed DS). Additional
/// data stays unsigned (a validator looks those names up itself).
fn sign_answer<'a>(
    ctx: &Ctx<'_>,
    zone: &'a Zone,
    signing: &ZoneSigning,
    qname: &'a [u8],
    ans: &mut Ans<'a>,
) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32);
    let mut cache = ctx.sigs.lock().unwrap_or_else(|e| e.into_inner());
    match ans.denial {
        Some(Denial::NxDomain(name)) => {
            ans.rcode = rcode::NOERROR;
            if let Some(n) = deny::nsec(name, &[deny::NXNAME], zone.neg_ttl) {
                ans.authority
                    .push((Owner::Name(name), RrRef::Made(Arc::new(n)), zone.neg_ttl));
            }
        }
        Some(Denial::NoData(name, node)) => {
            let types = node.map(node_types).unwrap_or_default();
            if let Some(n) = deny::nsec(name, &types, zone.neg_ttl) {
                ans.authority
                    .push((Owner::Name(name), RrRef::Made(Arc::new(n)), zone.neg_ttl));
            }
        }
        Some(Denial::Referral(cut_name, cut)) => match cut.get(rtype::DS) {
            Some(ds) => {
                for rr in &ds.records {
                    ans.authority
                        .push((Owner::Name(cut_name), RrRef::Zone(rr), rr.ttl));
                }
            }
            None => {
                if let Some(n) = deny::nsec(cut_name, &node_types(cut), zone.neg_ttl) {
                    ans.authority.push((
                        Owner::Name(cut_name),
                        RrRef::Made(Arc::new(n)),
                        zone.neg_ttl,
                    ));
                }
            }
        },
        None => {}
    }
    let referral = matches!(ans.denial, Some(Denial::Referral(..)));
    for section in [&mut ans.answer, &mut ans.authority] {
        let items = std::mem::take(section);
        let mut i = 0;
        while i < items.len() {
            let (owner, ref first, ttl) = items[i];
            let name: &[u8] = match owner {
                Owner::Qname => qname,
                Owner::Name(n) => n,
            };
            let t = first.rtype;
            let mut j = i + 1;
            while j < items.len() && items[j].1.rtype == t && same_owner(items[j].0, owner, qname) {
                j += 1;
            }
            section.extend(items[i..j].iter().cloned());
            // a referral's NS RRset belongs to the child: not signed (RFC 4035 §2.2)
            if !(referral && t == rtype::NS) {
                let rdatas = items[i..j].iter().map(|it| &it.1.rdata[..]);
                if let Some((sig, got)) = cache.get(signing, name, t, ttl, rdatas, now) {
                    match got {
                        Got::Hit => ctx.metrics.sig_cache_hits.increment(1),
                        Got::Signed => ctx.metrics.signatures.increment(1),
                    }
                    section.push((owner, RrRef::Made(sig), ttl));
                }
            }
            i = j;
        }
    }
}

fn same_owner<'n>(a: Owner<'n>, b: Owner<'n>, qname: &'n [u8]) -> bool {
    fn name<'n>(o: Owner<'n>, qname: &'n [u8]) -> &'n [u8] {
        match o {
            Owner::Qname => qname,
            Owner::Name(n) => n,
        }
    }
    name(a, qname) == name(b, qname)
}

/// The types a name has, for its NSEC bitmap (a GSLB name has A/AAAA when a region does).
fn node_types(node: &Node) -> Vec<u16> {
    let mut types: Vec<u16> = node.sets.iter().map(|s| s.rtype).collect();
    if let Some(g) = &node.gslb {
        if g.regions.iter().any(|r| !r.a.is_empty()) || !g.last_resort_a.is_empty() {
            types.push(rtype::A);
        }
        if g.regions.iter().any(|r| !r.aaaa.is_empty()) || !g.last_resort_aaaa.is_empty() {
            types.push(rtype::AAAA);
        }
    }
    types
}

/// Whether a query of `qtype` at a name owning a CNAME follows it: not for CNAME and ANY, whose
/// answer is the CNAME record itself, nor for RRSIG and NSEC, which live beside a CNAME
/// (RFC 4035 §2.5, RFC 2181 §10.1).
fn chases(qtype: u16) -> bool {
    !matches!(
        qtype,
        rtype::CNAME | rtype::ANY | rtype::RRSIG | rtype::NSEC
    )
}

/// The topmost zone cut at or above `name` (a DS query at the cut itself is the parent's).
fn find_cut<'a>(zone: &'a Zone, name: &'a [u8], qtype: u16) -> Option<(&'a [u8], &'a Node)> {
    let mut offs = [0u8; 128];
    let n = label_offsets(name, &mut offs);
    let zone_labels = crate::names::label_count(&zone.origin);
    let name_labels = n.saturating_sub(1);
    // from the label just below the apex down to the name itself
    for depth in zone_labels + 1..=name_labels {
        let off = offs[name_labels - depth] as usize;
        let candidate = &name[off..];
        if let Some(node) = zone.nodes.get(candidate) {
            if node.cut && !(off == 0 && qtype == rtype::DS) {
                return Some((candidate, node));
            }
        } else {
            // nothing exists here, so nothing below either
            return None;
        }
    }
    None
}

fn referral<'a>(zone: &'a Zone, cut_name: &'a [u8], cut: &'a Node, ans: &mut Ans<'a>) {
    let Some(ns) = cut.get(rtype::NS) else { return };
    for rr in &ns.records {
        ans.authority
            .push((Owner::Name(cut_name), RrRef::Zone(rr), rr.ttl));
    }
    for rr in &ns.records {
        let Some(t) = rr.target.as_deref() else {
            continue;
        };
        if is_subdomain(t, cut_name) {
            add_addresses(zone, Some(t), &mut ans.glue);
        } else {
            add_addresses(zone, Some(t), &mut ans.extra);
        }
    }
}

/// A and AAAA records of an in-zone name, for the additional section.
fn add_addresses<'a>(zone: &'a Zone, target: Option<&'a [u8]>, into: &mut Items<'a>) {
    let Some(t) = target.filter(|t| is_subdomain(t, &zone.origin)) else {
        return;
    };
    let Some(node) = zone.nodes.get(t) else {
        return;
    };
    for set in node
        .sets
        .iter()
        .filter(|s| matches!(s.rtype, rtype::A | rtype::AAAA))
    {
        for rr in &set.records {
            into.push((Owner::Name(t), RrRef::Zone(rr), rr.ttl));
        }
    }
}

/// The node for `name`: exact, else the wildcard at the closest encloser (RFC 4592 §3.3.1).
fn find_node<'a>(zone: &'a Zone, name: &[u8]) -> Option<&'a Node> {
    if let Some(n) = zone.nodes.get(name) {
        return Some(n);
    }
    if !zone.has_wildcards {
        return None;
    }
    let mut encloser = parent(name)?;
    while !zone.nodes.contains_key(encloser) {
        encloser = parent(encloser)?;
    }
    let mut wild = [0u8; 258];
    wild[..2].copy_from_slice(b"\x01*");
    wild[2..2 + encloser.len()].copy_from_slice(encloser);
    zone.nodes.get(&wild[..2 + encloser.len()])
}

fn gslb_answer<'a>(
    ctx: &Ctx<'_>,
    zone: &'a Zone,
    g: &'a GslbName,
    owner: Owner<'a>,
    qtype: u16,
    ecs: Option<&Ecs>,
    ans: &mut Ans<'a>,
) {
    let loc = if g.policy.uses_location() {
        ctx.snap.locate(ctx.client, ecs, true)
    } else {
        ClientLocation::default()
    };
    let choice = choose(g, &loc, ctx.health, rand::random(), None);
    g.note_outcome(choice.outcome);
    if choice.outcome == Outcome::AllDownServfail {
        ans.rcode = rcode::SERVFAIL;
        ans.aa = false;
        return;
    }
    for i in choice.indices() {
        g.regions[i].answers.increment(1);
    }
    ans.scope = choice.scope;
    choice.each_record(g, qtype == rtype::AAAA, |rr| {
        ans.answer.push((owner, RrRef::Zone(rr), g.ttl))
    });
    if ans.answer.is_empty() {
        ans.authority.push((
            Owner::Name(&zone.origin),
            RrRef::Zone(&zone.soa),
            zone.neg_ttl,
        ));
    }
}

/// The messages of a zone transfer (AXFR, RFC 5936): SOA, every record, SOA again, packed into
/// messages of up to ~16 KiB. Returns nothing if `msg` is not an allowed AXFR.
pub fn axfr_messages(ctx: &Ctx<'_>, msg: &[u8]) -> Vec<Vec<u8>> {
    let Parsed::Query(req) = parse(msg) else {
        return Vec::new();
    };
    let Some(zone) = ctx.snap.find_zone(req.qname_lower()) else {
        return Vec::new();
    };
    if *zone.origin != *req.qname_lower() || !ctx.snap.axfr_allowed(ctx.client) {
        return Vec::new();
    }
    let question = &msg[12..12 + req.qname.len() + 4];
    let mut records = zone.transfer_records();
    records.push(&zone.soa);
    let mut out = Vec::new();
    let mut i = 0;
    while i < records.len() {
        let mut buf = Vec::with_capacity(16 * 1024);
        let first = out.is_empty();
        let mut w = Writer::new(
            &mut buf,
            req.id,
            req.flags,
            true,
            rcode::NOERROR,
            first.then_some(question),
            req.qname_lower(),
        );
        while i < records.len() && w.len() < 16 * 1024 {
            w.record(Owner::Name(&records[i].owner), records[i], records[i].ttl);
            i += 1;
        }
        w.finish();
        out.push(buf);
    }
    out
}
