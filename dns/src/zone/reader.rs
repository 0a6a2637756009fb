//! Our own RFC 1035 §5 master-file reader: presentation format in, owner names and RDATA in wire
//! format out, every error with `source:line:col` and its real cause.
//!
//! Why not hickory-proto's zone parser (it was used before): its lexer decodes `\DDD` as
//! `(d1 << 16) + (d2 << 8) + d3` instead of a decimal byte, so every escape but `\000`-`\009`
//! comes out wrong; unquoted strings keep their backslashes (`c\;d` is cut at the `;`); and
//! labels holding bytes such as `\032` are refused although any byte may appear in a label
//! (RFC 2181 §11). The regression test `hickory_lexer_decodes_ddd_wrongly` keeps the proof.
//! hickory-proto is still used for the RDATA of the less common types (SSHFP, TLSA, NAPTR,
//! SVCB, ...) whose text forms hold no escapes, through `RData::try_from_str`.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use hickory_proto::rr::{RData, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

use super::rtype;
use crate::names::MAX_NAME_LEN;

/// One record as read from the file, ready for the zone builder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Owner name, wire format, case as written.
    pub owner: Vec<u8>,
    /// TTL, seconds (explicit, `$TTL`, or the previous record's).
    pub ttl: u32,
    /// Class code (1 = IN).
    pub class: u16,
    /// Record type code.
    pub rtype: u16,
    /// RDATA in wire format (names uncompressed, case as written).
    pub rdata: Vec<u8>,
    /// The name that CNAME chasing / additional processing follows (wire, case as written).
    pub target: Option<Vec<u8>>,
    /// Where the record starts, for messages: `source:line:col`.
    pub at: String,
}

/// A zone-file problem with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadError {
    /// Position, `source:line:col`.
    pub at: String,
    /// What is wrong.
    pub msg: String,
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.at, self.msg)
    }
}

/// One token: its raw text (escapes not yet decoded) and where it starts.
#[derive(Debug, Clone, Copy)]
struct Tok<'a> {
    raw: &'a str,
    quoted: bool,
    line: usize,
    col: usize,
}

/// One logical entry (parentheses joined): its tokens and whether its line began with a blank
/// (then the owner is the previous one).
struct Line<'a> {
    toks: Vec<Tok<'a>>,
    blank_start: bool,
    line: usize,
}

/// Splits the text into logical entries.
fn lex<'a>(text: &'a str, source: &str) -> Result<Vec<Line<'a>>, ReadError> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let (mut i, mut line, mut line_start) = (0usize, 1usize, 0usize);
    let mut cur = Line {
        toks: Vec::new(),
        blank_start: false,
        line: 1,
    };
    let mut at_line_start = true;
    let mut depth = 0usize;
    let mut paren_at = (0, 0);
    let pos = |line: usize, i: usize, ls: usize| format!("{source}:{line}:{}", i - ls + 1);
    while i < b.len() {
        let c = b[i];
        if at_line_start {
            at_line_start = false;
            if depth == 0 {
                cur.blank_start = c == b' ' || c == b'\t';
                cur.line = line;
            }
        }
        match c {
            b'\n' => {
                i += 1;
                line += 1;
                line_start = i;
                at_line_start = true;
                if depth == 0 && !cur.toks.is_empty() {
                    out.push(std::mem::replace(
                        &mut cur,
                        Line {
                            toks: Vec::new(),
                            blank_start: false,
                            line,
                        },
                    ));
                }
            }
            b' ' | b'\t' | b'\r' => i += 1,
            b';' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'(' => {
                if depth == 0 {
                    paren_at = (line, i - line_start + 1);
                }
                depth += 1;
                i += 1;
            }
            b')' => {
                if depth == 0 {
                    return Err(ReadError {
                        at: pos(line, i, line_start),
                        msg: "')' without '('".into(),
                    });
                }
                depth -= 1;
                i += 1;
            }
            b'"' => {
                let (tl, tc) = (line, i - line_start + 1);
                let start = i + 1;
                i += 1;
                loop {
                    match b.get(i) {
                        None => {
                            return Err(ReadError {
                                at: format!("{source}:{tl}:{tc}"),
                                msg: "unterminated quoted string".into(),
                            })
                        }
                        Some(b'\\') => i += 2,
                        Some(b'"') => break,
                        Some(b'\n') => {
                            line += 1;
                            i += 1;
                            line_start = i;
                        }
                        Some(_) => i += 1,
                    }
                }
                let end = i.min(b.len());
                cur.toks.push(Tok {
                    raw: &text[start..end],
                    quoted: true,
                    line: tl,
                    col: tc,
                });
                i += 1;
            }
            _ => {
                let (tl, tc) = (line, i - line_start + 1);
                let start = i;
                while i < b.len() {
                    match b[i] {
                        b'\\' => i += 2,
                        b' ' | b'\t' | b'\r' | b'\n' | b';' | b'(' | b')' | b'"' => break,
                        _ => i += 1,
                    }
                }
                let end = i.min(b.len());
                cur.toks.push(Tok {
                    raw: &text[start..end],
                    quoted: false,
                    line: tl,
                    col: tc,
                });
            }
        }
    }
    if depth > 0 {
        return Err(ReadError {
            at: format!("{source}:{}:{}", paren_at.0, paren_at.1),
            msg: "'(' without ')'".into(),
        });
    }
    if !cur.toks.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

/// Decodes `\X` and `\DDD` (decimal, 0-255) escapes (RFC 1035 §5.1).
pub fn unescape(raw: &str) -> Result<Vec<u8>, String> {
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let (byte, used) = escape_at(b, i)?;
        out.push(byte);
        i += used;
    }
    Ok(out)
}

/// The byte of the escape starting at `b[i] == '\\'` and how many input bytes it took.
fn escape_at(b: &[u8], i: usize) -> Result<(u8, usize), String> {
    match b.get(i + 1) {
        None => Err("a backslash at the end of a string".into()),
        Some(d) if d.is_ascii_digit() => {
            let digits = b
                .get(i + 1..i + 4)
                .filter(|d| d.iter().all(u8::is_ascii_digit));
            let Some(d) = digits else {
                return Err("\\DDD needs exactly three decimal digits".into());
            };
            let v = (d[0] - b'0') as u32 * 100 + (d[1] - b'0') as u32 * 10 + (d[2] - b'0') as u32;
            if v > 255 {
                return Err(format!("\\{v} is not a byte (at most \\255)"));
            }
            Ok((v as u8, 4))
        }
        Some(&c) => Ok((c, 2)),
    }
}

/// Parses a domain name in presentation format: `@`, absolute (`a.b.`) or relative to
/// `origin`. Labels may hold any byte through escapes; an escaped dot is part of a label.
pub fn parse_name(raw: &str, origin: Option<&[u8]>) -> Result<Vec<u8>, String> {
    if raw == "@" {
        return origin
            .map(<[u8]>::to_vec)
            .ok_or_else(|| "'@' with no $ORIGIN".to_string());
    }
    if raw == "." {
        return Ok(vec![0]);
    }
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len() + 2);
    let mut label: Vec<u8> = Vec::with_capacity(63);
    let mut i = 0;
    let mut absolute = false;
    let push = |out: &mut Vec<u8>, label: &mut Vec<u8>| -> Result<(), String> {
        if label.is_empty() {
            return Err(format!("empty label in {raw:?}"));
        }
        if label.len() > 63 {
            return Err(format!("label longer than 63 bytes in {raw:?}"));
        }
        out.push(label.len() as u8);
        out.append(label);
        Ok(())
    };
    while i < b.len() {
        match b[i] {
            b'\\' => {
                let (byte, used) = escape_at(b, i)?;
                label.push(byte);
                i += used;
            }
            b'.' => {
                push(&mut out, &mut label)?;
                i += 1;
                if i == b.len() {
                    absolute = true;
                }
            }
            c => {
                label.push(c);
                i += 1;
            }
        }
    }
    if !absolute {
        push(&mut out, &mut label)?;
        match origin {
            Some(o) => out.extend_from_slice(o),
            None => return Err(format!("relative name {raw:?} with no $ORIGIN")),
        }
    } else {
        out.push(0);
    }
    if out.len() > MAX_NAME_LEN {
        return Err(format!("name {raw:?} is longer than 255 bytes"));
    }
    Ok(out)
}

/// A TTL: seconds, or BIND units (`1w2d3h4m5s`).
pub fn parse_ttl(raw: &str) -> Result<u32, String> {
    if let Ok(v) = raw.parse::<u32>() {
        return Ok(v);
    }
    let bad = || format!("bad TTL {raw:?}");
    let mut total: u64 = 0;
    let mut num: Option<u64> = None;
    for c in raw.chars() {
        if let Some(d) = c.to_digit(10) {
            num = Some(num.unwrap_or(0) * 10 + d as u64);
            if num > Some(u32::MAX as u64) {
                return Err(bad());
            }
            continue;
        }
        let mult = match c.to_ascii_lowercase() {
            'w' => 604_800,
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
        total += num.take().ok_or_else(bad)? * mult;
    }
    if num.is_some() || total > u32::MAX as u64 || raw.is_empty() {
        return Err(bad());
    }
    Ok(total as u32)
}

fn is_ttl(raw: &str) -> bool {
    raw.as_bytes().first().is_some_and(u8::is_ascii_digit) && parse_ttl(raw).is_ok()
}

fn parse_class(raw: &str) -> Option<u16> {
    let up = raw.to_ascii_uppercase();
    match up.as_str() {
        "IN" => Some(1),
        "CS" => Some(2),
        "CH" => Some(3),
        "HS" => Some(4),
        _ => up.strip_prefix("CLASS").and_then(|n| n.parse().ok()),
    }
}

/// A type mnemonic or `TYPEnnn` (RFC 3597).
fn parse_type(raw: &str) -> Option<u16> {
    let up = raw.to_ascii_uppercase();
    if let Some(n) = up.strip_prefix("TYPE") {
        if let Ok(v) = n.parse() {
            return Some(v);
        }
    }
    match RecordType::from_str(&up) {
        Ok(RecordType::Unknown(_)) | Err(_) => None,
        Ok(t) => Some(t.into()),
    }
}

/// Reads a whole zone file. `origin` (lowercase or not, wire format) applies until `$ORIGIN`.
/// `source` names the text in messages (a file path, or `config`).
pub fn read(text: &str, origin: Option<&[u8]>, source: &str) -> Result<Vec<Entry>, ReadError> {
    let lines = lex(text, source)?;
    let mut origin: Option<Vec<u8>> = origin.map(<[u8]>::to_vec);
    let mut default_ttl: Option<u32> = None;
    let mut last_ttl: Option<u32> = None;
    let mut last_owner: Option<Vec<u8>> = None;
    let mut out = Vec::new();
    for l in lines {
        let first = l.toks[0];
        let err_at = |t: &Tok<'_>, msg: String| ReadError {
            at: format!("{source}:{}:{}", t.line, t.col),
            msg,
        };
        if !l.blank_start && first.raw.starts_with('$') && !first.quoted {
            let arg = l.toks.get(1);
            match first.raw.to_ascii_uppercase().as_str() {
                "$ORIGIN" => {
                    let a = arg.ok_or_else(|| err_at(&first, "$ORIGIN needs a name".into()))?;
                    let n = parse_name(a.raw, origin.as_deref()).map_err(|m| err_at(a, m))?;
                    origin = Some(n);
                }
                "$TTL" => {
                    let a = arg.ok_or_else(|| err_at(&first, "$TTL needs a value".into()))?;
                    default_ttl = Some(parse_ttl(a.raw).map_err(|m| err_at(a, m))?);
                }
                other => {
                    return Err(err_at(
                        &first,
                        format!("directive {other} is not supported"),
                    ))
                }
            }
            continue;
        }
        let mut toks = l.toks.iter().peekable();
        let owner = if l.blank_start {
            last_owner.clone().ok_or_else(|| {
                err_at(
                    &first,
                    "a record with no owner and no previous owner".into(),
                )
            })?
        } else {
            let t = toks.next().expect("a line has tokens");
            parse_name(t.raw, origin.as_deref()).map_err(|m| err_at(t, m))?
        };
        let (mut ttl, mut class) = (None, None);
        let (rtype, type_tok) = loop {
            let Some(t) = toks.next() else {
                return Err(err_at(&first, "no record type".into()));
            };
            if ttl.is_none() && !t.quoted && is_ttl(t.raw) {
                ttl = Some(parse_ttl(t.raw).map_err(|m| err_at(t, m))?);
            } else if class.is_none() && !t.quoted && parse_class(t.raw).is_some() {
                class = parse_class(t.raw);
            } else {
                let rt = parse_type(t.raw)
                    .ok_or_else(|| err_at(t, format!("unknown record type {:?}", t.raw)))?;
                break (rt, *t);
            }
        };
        let rdata_toks: Vec<Tok<'_>> = toks.copied().collect();
        let (rdata, target) = rdata(rtype, &rdata_toks, origin.as_deref()).map_err(|(i, m)| {
            let t = rdata_toks.get(i).unwrap_or(&type_tok);
            err_at(t, m)
        })?;
        let ttl = match ttl.or(default_ttl).or(last_ttl) {
            Some(t) => t,
            None if rtype == rtype::SOA && rdata.len() >= 4 => {
                let n = rdata.len();
                u32::from_be_bytes([rdata[n - 4], rdata[n - 3], rdata[n - 2], rdata[n - 1]])
            }
            None => return Err(err_at(&first, "no TTL, and no $TTL before it".into())),
        };
        last_ttl = Some(ttl);
        last_owner = Some(owner.clone());
        out.push(Entry {
            owner,
            ttl,
            class: class.unwrap_or(1),
            rtype,
            rdata,
            target,
            at: format!("{source}:{}:{}", first.line, first.col),
        });
    }
    Ok(out)
}

type RdataResult = Result<(Vec<u8>, Option<Vec<u8>>), (usize, String)>;

/// Encodes the RDATA of one record from its tokens. Errors carry the index of the bad token.
fn rdata(rtype: u16, t: &[Tok<'_>], origin: Option<&[u8]>) -> RdataResult {
    let get = |i: usize| -> Result<&Tok<'_>, (usize, String)> {
        t.get(i)
            .ok_or_else(|| (t.len(), format!("missing RDATA field {}", i + 1)))
    };
    let name = |i: usize| -> Result<Vec<u8>, (usize, String)> {
        parse_name(get(i)?.raw, origin).map_err(|m| (i, m))
    };
    let num = |i: usize, max: u64| -> Result<u64, (usize, String)> {
        let tok = get(i)?;
        match tok.raw.parse::<u64>() {
            Ok(v) if v <= max => Ok(v),
            _ => Err((i, format!("{:?} is not a number up to {max}", tok.raw))),
        }
    };
    let done = |n: usize| -> Result<(), (usize, String)> {
        if t.len() > n {
            Err((n, format!("unexpected {:?} after the RDATA", t[n].raw)))
        } else {
            Ok(())
        }
    };
    if t.first().is_some_and(|x| x.raw == "\\#" && !x.quoted) {
        return generic(t).map(|r| (r, None));
    }
    let mut out = Vec::new();
    let mut target = None;
    match rtype {
        rtype::A => {
            let a: Ipv4Addr = get(0)?
                .raw
                .parse()
                .map_err(|_| (0, format!("bad IPv4 address {:?}", t[0].raw)))?;
            out.extend_from_slice(&a.octets());
            done(1)?;
        }
        rtype::AAAA => {
            let a: Ipv6Addr = get(0)?
                .raw
                .parse()
                .map_err(|_| (0, format!("bad IPv6 address {:?}", t[0].raw)))?;
            out.extend_from_slice(&a.octets());
            done(1)?;
        }
        rtype::NS | rtype::CNAME | rtype::PTR => {
            let n = name(0)?;
            out.extend_from_slice(&n);
            if rtype != rtype::PTR {
                target = Some(n);
            }
            done(1)?;
        }
        rtype::MX => {
            out.extend_from_slice(&(num(0, 65535)? as u16).to_be_bytes());
            let n = name(1)?;
            out.extend_from_slice(&n);
            target = Some(n);
            done(2)?;
        }
        rtype::SRV => {
            for i in 0..3 {
                out.extend_from_slice(&(num(i, 65535)? as u16).to_be_bytes());
            }
            let n = name(3)?;
            out.extend_from_slice(&n);
            target = Some(n);
            done(4)?;
        }
        rtype::SOA => {
            out.extend_from_slice(&name(0)?);
            out.extend_from_slice(&name(1)?);
            out.extend_from_slice(&(num(2, u32::MAX as u64)? as u32).to_be_bytes());
            for i in 3..7 {
                let v = parse_ttl(get(i)?.raw).map_err(|m| (i, m))?;
                out.extend_from_slice(&v.to_be_bytes());
            }
            done(7)?;
        }
        rtype::TXT | 99 /* SPF */ => {
            if t.is_empty() {
                return Err((0, "TXT needs at least one string".into()));
            }
            for (i, x) in t.iter().enumerate() {
                char_string(x.raw, &mut out).map_err(|m| (i, m))?;
            }
        }
        13 /* HINFO */ => {
            char_string(get(0)?.raw, &mut out).map_err(|m| (0, m))?;
            char_string(get(1)?.raw, &mut out).map_err(|m| (1, m))?;
            done(2)?;
        }
        257 /* CAA */ => {
            out.push(num(0, 255)? as u8);
            let tag = get(1)?.raw;
            if tag.is_empty() || tag.len() > 255 || !tag.bytes().all(|c| c.is_ascii_alphanumeric()) {
                return Err((1, format!("bad CAA tag {tag:?}")));
            }
            out.push(tag.len() as u8);
            out.extend_from_slice(tag.as_bytes());
            out.extend_from_slice(&unescape(get(2)?.raw).map_err(|m| (2, m))?);
            done(3)?;
        }
        39 /* DNAME */ => {
            return Err((0, "DNAME is not supported (no DNAME substitution)".into()))
        }
        rtype::OPT | rtype::AXFR | rtype::IXFR | rtype::ANY | 46 | 47 | 50 | 48 => {
            return Err((
                0,
                format!("type {} cannot be served from a zone file", RecordType::from(rtype)),
            ))
        }
        _ => {
            // the less common types: hickory-proto's RDATA parsers (their text holds no escapes)
            let text: Vec<String> = t
                .iter()
                .map(|x| {
                    if x.quoted {
                        format!("\"{}\"", x.raw)
                    } else {
                        x.raw.to_string()
                    }
                })
                .collect();
            let rt = RecordType::from(rtype);
            let rd = RData::try_from_str(rt, &text.join(" "))
                .map_err(|e| (0, format!("bad {rt} RDATA: {e}")))?;
            let mut enc = BinEncoder::new(&mut out);
            enc.set_name_encoding(NameEncoding::Uncompressed);
            rd.emit(&mut enc)
                .map_err(|e| (0, format!("bad {rt} RDATA: {e}")))?;
        }
    }
    if out.len() > u16::MAX as usize {
        return Err((0, "RDATA longer than 65535 bytes".into()));
    }
    Ok((out, target))
}

/// One `<character-string>` (RFC 1035 §3.3): a length byte and up to 255 bytes.
fn char_string(raw: &str, out: &mut Vec<u8>) -> Result<(), String> {
    let s = unescape(raw)?;
    if s.len() > 255 {
        return Err(format!("a string of {} bytes (at most 255)", s.len()));
    }
    out.push(s.len() as u8);
    out.extend_from_slice(&s);
    Ok(())
}

/// RFC 3597 generic RDATA: `\# <length> <hex>...`.
fn generic(t: &[Tok<'_>]) -> Result<Vec<u8>, (usize, String)> {
    let len: usize = t
        .get(1)
        .and_then(|x| x.raw.parse().ok())
        .ok_or((1, "\\# needs a length".to_string()))?;
    let hex: String = t[2.min(t.len())..].iter().map(|x| x.raw).collect();
    if !hex.len().is_multiple_of(2) || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err((2, "\\# data must be hex digits".into()));
    }
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap_or(0))
        .collect();
    if bytes.len() != len {
        return Err((
            1,
            format!("\\# length {len} but {} bytes of data", bytes.len()),
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests;
