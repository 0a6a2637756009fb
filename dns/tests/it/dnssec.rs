//! DNSSEC online signing: signatures only for DO queries, DNSKEY at the apex, compact denial,
//! TC/TCP with the larger answers, and validation by a real validating resolver (unbound, with
//! our trust anchor): GSLB answers for a US and a GB client (ECS), NODATA and a name that does
//! not exist come back with AD; a server signing with another key gives SERVFAIL.
//!
//! The unbound test needs `unbound` (Debian package `unbound`; `scripts/test` installs it when
//! missing; `UNBOUND_BIN` overrides the path).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use hickory_proto::rr::{RData, RecordType};
use switchyard_dns::gslb::{AllDown, Policy};
use switchyard_dns::spec::{DnsSpec, GslbSpec, RegionSpec, ZoneText};

use crate::harness::*;

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "switchyard-dnssec-{tag}-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Writes a new key for `zone` into `dir`; returns its path and its DNSKEY text.
fn keygen(dir: &Path, zone: &str, alg: u8) -> (PathBuf, String) {
    let text = switchyard_dns::dnssec::generate(zone, alg).unwrap();
    let key = switchyard_dns::dnssec::parse_key_file(&text).unwrap().key;
    let path = dir.join(format!("{zone}{}.key", key.tag));
    std::fs::write(&path, text).unwrap();
    (path, key.dnskey_text(zone))
}

fn geo_name() -> GslbSpec {
    let region = |name: &str, vip: &str, net: &str| RegionSpec {
        name: name.into(),
        vips: vec![vip.parse().unwrap()],
        weight: 1,
        networks: vec![net.parse().unwrap()],
        ..Default::default()
    };
    GslbSpec {
        name: "api.example.test.".into(),
        policy: Policy::Geo,
        regions: vec![
            region("us-east", "127.0.1.1", "216.160.83.0/24"),
            region("eu-west", "127.0.2.1", "81.2.69.0/24"),
        ],
        ttl: 30,
        all_down: AllDown::FailOpen,
        default_region: Some("us-east".into()),
    }
}

fn signed_spec(key: &Path) -> DnsSpec {
    let mut s = spec(vec![geo_name()]);
    s.zones[0].dnssec_keys = vec![key.to_path_buf()];
    s
}

fn with_do(mut m: Message, ecs: Option<(&str, u8)>) -> Message {
    m = with_edns(m, 1232, ecs);
    m.edns.as_mut().unwrap().set_dnssec_ok(true);
    m
}

fn types(records: &[hickory_proto::rr::Record]) -> Vec<RecordType> {
    records.iter().map(|r| r.record_type()).collect()
}

#[tokio::test]
async fn signatures_follow_the_do_bit_and_denial_is_compact() {
    let dir = tmpdir("do");
    let (key, _) = keygen(&dir, "example.test.", 13);
    let s = serve(signed_spec(&key)).await;
    // no DO: no signatures
    let r = udp(
        s.addr,
        &with_edns(query("www.example.test.", RecordType::A), 1232, None),
    )
    .await;
    assert_eq!(types(&r.answers), [RecordType::A]);
    // DO: the RRset and its RRSIG, over UDP and TCP
    let q = with_do(query("www.example.test.", RecordType::A), None);
    for r in [udp(s.addr, &q).await, tcp(s.addr, &q).await] {
        assert_eq!(types(&r.answers), [RecordType::A, RecordType::RRSIG]);
        assert!(r.edns.as_ref().unwrap().flags().dnssec_ok);
    }
    // DNSKEY at the apex
    let r = udp(
        s.addr,
        &with_do(query("example.test.", RecordType::DNSKEY), None),
    )
    .await;
    assert_eq!(types(&r.answers), [RecordType::DNSKEY, RecordType::RRSIG]);
    // a GSLB answer is signed, and explain says so
    let ex = s
        .handle
        .as_ref()
        .unwrap()
        .explain("api.example.test.", ip("127.0.0.1"), None)
        .unwrap();
    let tag = switchyard_dns::dnssec::parse_key_file(&std::fs::read_to_string(&key).unwrap())
        .unwrap()
        .key
        .tag;
    assert_eq!(
        ex.dnssec.as_deref(),
        Some(&*format!(
            "signed by example.test. key {tag} (algorithm 13) for queries with the DO bit"
        ))
    );
    let r = udp(
        s.addr,
        &with_do(
            query("api.example.test.", RecordType::A),
            Some(("81.2.69.160", 24)),
        ),
    )
    .await;
    assert_eq!(addrs(&r.answers), [ip("127.0.2.1")]);
    assert_eq!(types(&r.answers), [RecordType::A, RecordType::RRSIG]);
    // NODATA: SOA + NSEC at the name, each signed; the bitmap has the name's types
    let r = udp(
        s.addr,
        &with_do(query("www.example.test.", RecordType::MX), None),
    )
    .await;
    assert_eq!(rcode(&r), 0);
    assert!(r.answers.is_empty());
    let mut t = types(&r.authorities);
    t.sort_by_key(|t| u16::from(*t));
    assert_eq!(
        t,
        [
            RecordType::SOA,
            RecordType::RRSIG,
            RecordType::RRSIG,
            RecordType::NSEC
        ]
    );
    let nsec = r
        .authorities
        .iter()
        .find(|r| r.record_type() == RecordType::NSEC)
        .unwrap();
    assert_eq!(nsec.name.to_ascii(), "www.example.test.");
    let RData::DNSSEC(hickory_proto::dnssec::rdata::DNSSECRData::NSEC(n)) = &nsec.data else {
        panic!()
    };
    assert_eq!(n.next_domain_name().to_ascii(), "\\000.www.example.test.");
    let bits: Vec<RecordType> = n.type_bit_maps().collect();
    assert!(
        bits.contains(&RecordType::A)
            && bits.contains(&RecordType::TXT)
            && !bits.contains(&RecordType::MX),
        "{bits:?}"
    );
    // a name that does not exist: NOERROR with NXNAME (RFC 9824); without DO: NXDOMAIN
    let r = udp(
        s.addr,
        &with_do(query("nothere.example.test.", RecordType::A), None),
    )
    .await;
    assert_eq!(rcode(&r), 0);
    let nsec = r
        .authorities
        .iter()
        .find(|r| r.record_type() == RecordType::NSEC)
        .unwrap();
    let RData::DNSSEC(hickory_proto::dnssec::rdata::DNSSECRData::NSEC(n)) = &nsec.data else {
        panic!()
    };
    let bits: Vec<u16> = n.type_bit_maps().map(u16::from).collect();
    assert_eq!(bits, [46, 47, 128], "RRSIG NSEC NXNAME");
    let r = udp(
        s.addr,
        &with_edns(query("nothere.example.test.", RecordType::A), 1232, None),
    )
    .await;
    assert_eq!(rcode(&r), 3);
    // large signed answer: TC over small UDP, whole over TCP
    let q = with_do(query("big.example.test.", RecordType::TXT), None);
    let mut small = q.clone();
    small.edns.as_mut().unwrap().set_max_payload(512);
    let r = udp(s.addr, &small).await;
    assert!(r.metadata.truncation && r.answers.is_empty());
    let r = tcp(s.addr, &q).await;
    assert_eq!(r.answers.len(), 9, "8 TXT + RRSIG");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn missing_or_foreign_keys_are_rejected() {
    let dir = tmpdir("check");
    let (other, _) = keygen(&dir, "other.test.", 13);
    let e = signed_spec(&other).build().unwrap_err().to_string();
    assert!(
        e.contains("the key is for zone other.test., not example.test."),
        "{e}"
    );
    let e = signed_spec(&dir.join("missing.key"))
        .build()
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.key") && e.contains("DNSSEC key"), "{e}");
    std::fs::write(
        dir.join("bad.key"),
        "zone: example.test.\nalgorithm: 13\nprivate-key: AAAA\n",
    )
    .unwrap();
    let e = signed_spec(&dir.join("bad.key"))
        .build()
        .unwrap_err()
        .to_string();
    assert!(e.contains("bad.key"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn unbound_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("UNBOUND_BIN") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("unbound"))
        .chain([PathBuf::from("/usr/sbin/unbound")])
        .find(|p| p.is_file())
}

struct Unbound {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Drop for Unbound {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_udp_tcp_port(ip: &str) -> u16 {
    loop {
        let t = std::net::TcpListener::bind(format!("{ip}:0")).unwrap();
        let port = t.local_addr().unwrap().port();
        if std::net::UdpSocket::bind(format!("{ip}:{port}")).is_ok() {
            return port;
        }
    }
}

/// unbound validating with `anchors` (DNSKEY lines), `stubs` = (zone, our server).
async fn start_unbound(dir: &Path, anchors: &[String], stubs: &[(&str, SocketAddr)]) -> Unbound {
    let bin = unbound_bin().unwrap_or_else(|| {
        panic!(
            "the DNSSEC validation test needs unbound and none was found (UNBOUND_BIN={:?}; else \
             `unbound` on the PATH or /usr/sbin/unbound). Install it with `sudo apt-get install -y \
             unbound`, or run `scripts/test`, which installs it when missing.",
            std::env::var_os("UNBOUND_BIN")
        )
    });
    std::fs::write(dir.join("anchors"), anchors.join("\n") + "\n").unwrap();
    let ip = "127.0.15.1";
    for _ in 0..3 {
        let port = free_udp_tcp_port(ip);
        let d = dir.display();
        let mut conf = format!(
            "server:\n  interface: {ip}\n  port: {port}\n  do-daemonize: no\n  username: \"\"\n  \
             chroot: \"\"\n  directory: \"{d}\"\n  pidfile: \"\"\n  use-syslog: no\n  logfile: \"{d}/unbound.log\"\n  \
             verbosity: 1\n  val-log-level: 2\n  do-ip6: no\n  num-threads: 1\n  \
             outgoing-interface: 127.0.0.1\n  do-not-query-localhost: no\n  qname-minimisation: no\n  \
             access-control: 127.0.0.0/8 allow\n  trust-anchor-file: \"{d}/anchors\"\n  \
             local-zone: \"test.\" nodefault\n  module-config: \"subnetcache validator iterator\"\n  \
             send-client-subnet: 127.0.0.1\n  client-subnet-always-forward: yes\n  \
             max-client-subnet-ipv4: 24\n  harden-referral-path: no\n  target-fetch-policy: \"0 0 0 0 0\"\n\
             stub-zone:\n  name: \".\"\n  stub-addr: 127.0.0.9@9\n"
        );
        for (zone, addr) in stubs {
            conf.push_str(&format!(
                "stub-zone:\n  name: \"{zone}\"\n  stub-addr: {}@{}\n",
                addr.ip(),
                addr.port()
            ));
        }
        std::fs::write(dir.join("unbound.conf"), conf).unwrap();
        let child = Command::new(&bin)
            .arg("-d")
            .arg("-c")
            .arg(dir.join("unbound.conf"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("unbound.stderr")).unwrap())
            .spawn()
            .expect("unbound starts");
        let mut u = Unbound {
            child,
            addr: format!("{ip}:{port}").parse().unwrap(),
            dir: dir.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let probe = query("version.invalid.", RecordType::A).to_vec().unwrap();
        while Instant::now() < deadline {
            if let Ok(Some(_)) = u.child.try_wait() {
                break;
            }
            if udp_raw_from("127.0.0.1", u.addr, &probe, Duration::from_millis(200))
                .await
                .is_some()
            {
                return u;
            }
        }
        let log = std::fs::read_to_string(u.dir.join("unbound.stderr")).unwrap_or_default()
            + &std::fs::read_to_string(u.dir.join("unbound.log")).unwrap_or_default();
        eprintln!("unbound did not start: {log}");
        let _ = u.child.kill();
    }
    panic!("unbound did not start (its log is printed above)");
}

/// Asks unbound with AD and DO set (RFC 6840 §5.7: AD comes back only then).
async fn ask(u: &Unbound, name: &str, t: RecordType, ecs: Option<(&str, u8)>) -> Message {
    let mut q = with_do(query(name, t), ecs);
    q.metadata.authentic_data = true;
    let bytes = q.to_vec().unwrap();
    let raw = udp_raw_from("127.0.0.1", u.addr, &bytes, Duration::from_secs(5))
        .await
        .unwrap_or_else(|| {
            panic!(
                "no answer from unbound for {name}: {}",
                std::fs::read_to_string(u.dir.join("unbound.log")).unwrap_or_default()
            )
        });
    decode(&raw, q.metadata.id)
}

const BAD_ZONE: &str = "$ORIGIN bad.test.\n$TTL 300\n@ SOA ns1 hostmaster 1 3600 900 604800 60\n@ NS ns1\nns1 A 192.0.2.53\nwww A 192.0.2.10\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validating_resolver_says_ad_and_servfail_for_a_wrong_key() {
    let dir = tmpdir("unbound");
    let (key, anchor) = keygen(&dir, "example.test.", 13);
    let good = serve(signed_spec(&key)).await;
    // bad.test. is signed with one key while the resolver trusts another
    let (bad_key, _) = keygen(&dir, "bad.test.", 13);
    let (_, bad_anchor) = keygen(&dir, "bad.test.", 13);
    let mut bs = spec(Vec::new());
    bs.zones = vec![ZoneText {
        origin: None,
        text: BAD_ZONE.into(),
        source: "bad".into(),
        dnssec_keys: vec![bad_key],
    }];
    let bad = serve(bs).await;
    let u = start_unbound(
        &dir,
        &[anchor, bad_anchor],
        &[("example.test.", good.addr), ("bad.test.", bad.addr)],
    )
    .await;
    let log = || std::fs::read_to_string(u.dir.join("unbound.log")).unwrap_or_default();
    for (client, want) in [("216.160.83.56", "127.0.1.1"), ("81.2.69.160", "127.0.2.1")] {
        let r = ask(&u, "api.example.test.", RecordType::A, Some((client, 32))).await;
        assert_eq!(rcode(&r), 0, "{client}: {}", log());
        assert_eq!(addrs(&r.answers), [ip(want)], "{client}: the GSLB choice");
        assert!(
            r.metadata.authentic_data,
            "{client}: AD (validated): {}",
            log()
        );
    }
    let r = ask(&u, "www.example.test.", RecordType::MX, None).await;
    assert_eq!((rcode(&r), r.answers.len()), (0, 0), "NODATA");
    assert!(r.metadata.authentic_data, "NODATA validated: {}", log());
    // compact denial: NOERROR with NXNAME, which this unbound treats as a validated NODATA
    let r = ask(&u, "nothere.example.test.", RecordType::A, None).await;
    assert!(matches!(rcode(&r), 0 | 3) && r.answers.is_empty(), "{r:?}");
    assert!(
        r.metadata.authentic_data,
        "nonexistent name validated: {}",
        log()
    );
    let r = ask(&u, "www.bad.test.", RecordType::A, None).await;
    assert_eq!(rcode(&r), 2, "a wrong key gives SERVFAIL");
    drop(u);
    let _ = std::fs::remove_dir_all(&dir);
}
