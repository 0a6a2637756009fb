//! RRSIG creation (RFC 4034 §3.1.8.1): the "to be signed" bytes are built from our
//! pre-encoded RDATA in canonical form and signed by the zone key (hickory-proto / ring).

use hickory_proto::dnssec::TBS;

use super::ZoneSigning;
use crate::names::label_count;
use crate::zone::{rtype, Rr};

/// Lowercases the domain names inside RDATA of the types RFC 4034 §6.2 lists (those we serve
/// with names: NS, CNAME, PTR, SOA, MX, SRV). Our RDATA names are uncompressed.
pub fn canonical_rdata(rtype: u16, rdata: &[u8]) -> Vec<u8> {
    let mut out = rdata.to_vec();
    let lower_name = |b: &mut [u8], mut at: usize| -> usize {
        while at < b.len() && b[at] != 0 {
            let len = b[at] as usize;
            let end = (at + 1 + len).min(b.len());
            b[at + 1..end].make_ascii_lowercase();
            at = end;
        }
        at + 1
    };
    match rtype {
        rtype::NS | rtype::CNAME | rtype::PTR => {
            lower_name(&mut out, 0);
        }
        rtype::MX => {
            lower_name(&mut out, 2);
        }
        rtype::SRV => {
            lower_name(&mut out, 6);
        }
        rtype::SOA => {
            let after = lower_name(&mut out, 0);
            lower_name(&mut out, after);
        }
        _ => {}
    }
    out
}

/// Signs one RRset: `owner` (lowercase wire), `rtype`, the `ttl` it is served with and its
/// RDATA. `now` is the Unix time in seconds; `jitter` seconds are added to the expiration so
/// that signatures made together do not all expire together.
pub fn rrsig(
    z: &ZoneSigning,
    owner: &[u8],
    rtype: u16,
    ttl: u32,
    rdatas: &[&[u8]],
    now: u32,
    jitter: u32,
) -> Result<Rr, String> {
    let key = z.active();
    let mut labels = label_count(owner) as u8;
    if owner.starts_with(b"\x01*") {
        labels -= 1;
    }
    let inception = now.saturating_sub(z.inception_offset.as_secs() as u32);
    let expiration = now
        .saturating_add(z.validity.as_secs() as u32)
        .saturating_add(jitter);
    let mut rdata = Vec::with_capacity(18 + z.apex.len() + 64);
    rdata.extend_from_slice(&rtype.to_be_bytes());
    rdata.push(key.algorithm);
    rdata.push(labels);
    rdata.extend_from_slice(&ttl.to_be_bytes());
    rdata.extend_from_slice(&expiration.to_be_bytes());
    rdata.extend_from_slice(&inception.to_be_bytes());
    rdata.extend_from_slice(&key.tag.to_be_bytes());
    rdata.extend_from_slice(&z.apex);
    let tbs = tbs(&rdata, owner, rtype, ttl, rdatas);
    let sig = key
        .signer
        .sign(&TBS::from(&tbs[..]))
        .map_err(|e| format!("signing: {e}"))?;
    rdata.extend_from_slice(&sig);
    Ok(Rr {
        owner: owner.into(),
        rtype: rtype::RRSIG,
        ttl,
        rdata: rdata.into_boxed_slice(),
        target: None,
    })
}

/// RRSIG RDATA without the signature, then every RR in canonical form and order.
fn tbs(prefix: &[u8], owner: &[u8], rtype: u16, ttl: u32, rdatas: &[&[u8]]) -> Vec<u8> {
    let mut canon: Vec<Vec<u8>> = rdatas.iter().map(|r| canonical_rdata(rtype, r)).collect();
    canon.sort();
    canon.dedup();
    let mut out = Vec::with_capacity(prefix.len() + canon.len() * (owner.len() + 32));
    out.extend_from_slice(prefix);
    for r in &canon {
        out.extend_from_slice(owner);
        out.extend_from_slice(&rtype.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(&ttl.to_be_bytes());
        out.extend_from_slice(&(r.len() as u16).to_be_bytes());
        out.extend_from_slice(r);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dnssec::{generate, parse_key_file};
    use hickory_proto::dnssec::rdata::{DNSSECRData, RRSIG};
    use hickory_proto::dnssec::{PublicKey, TBS};
    use hickory_proto::rr::{DNSClass, Name, RData, Record};
    use hickory_proto::serialize::binary::{BinDecoder, Restrict};

    /// Our TBS bytes equal hickory-proto's for the same RRset, and the signature verifies.
    #[test]
    fn signatures_verify_against_hickorys_tbs() {
        let kf = parse_key_file(&generate("example.test.", 13).unwrap()).unwrap();
        let z = ZoneSigning {
            keys: vec![kf.key],
            validity: std::time::Duration::from_secs(86400),
            inception_offset: std::time::Duration::from_secs(3600),
            apex: b"\x07example\x04test\x00"[..].into(),
        };
        let owner = b"\x03www\x07example\x04test\x00";
        // MX with an upper-case exchange: canonical form lowercases it
        let mx1 = b"\x00\x0a\x04MAIL\x07example\x04test\x00".to_vec();
        let mx2 = b"\x00\x05\x02mx\x07example\x04test\x00".to_vec();
        let rr = rrsig(&z, owner, rtype::MX, 300, &[&mx1, &mx2], 1_700_000_000, 7).unwrap();
        let mut d = BinDecoder::new(&rr.rdata);
        let data = RData::read(
            &mut d,
            hickory_proto::rr::RecordType::RRSIG,
            Restrict::new(rr.rdata.len() as u16),
        )
        .unwrap();
        let RData::DNSSEC(DNSSECRData::RRSIG(sig)) = data else {
            panic!("{data:?}")
        };
        let sig: RRSIG = sig;
        let input = sig.input();
        assert_eq!((input.num_labels, input.original_ttl), (3, 300));
        assert_eq!(input.sig_expiration.get(), 1_700_000_000 + 86400 + 7);
        assert_eq!(input.sig_inception.get(), 1_700_000_000 - 3600);
        let name = Name::from_ascii("www.example.test.").unwrap();
        let records: Vec<Record> = [&mx1, &mx2]
            .iter()
            .map(|b| {
                let mut d = BinDecoder::new(b);
                let data = RData::read(
                    &mut d,
                    hickory_proto::rr::RecordType::MX,
                    Restrict::new(b.len() as u16),
                )
                .unwrap();
                let mut r = Record::from_rdata(name.clone(), 300, data);
                r.dns_class = DNSClass::IN;
                r
            })
            .collect();
        let theirs = TBS::from_input(&name, DNSClass::IN, input, records.iter()).unwrap();
        let prefix_len = rr.rdata.len() - sig.sig().len();
        let ours = tbs(
            &rr.rdata[..prefix_len],
            owner,
            rtype::MX,
            300,
            &[&mx1, &mx2],
        );
        assert_eq!(ours, theirs.as_ref());
        z.active()
            .signer
            .to_public_key()
            .unwrap()
            .verify(&ours, sig.sig())
            .unwrap();
    }
}
