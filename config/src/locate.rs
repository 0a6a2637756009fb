//! Maps a dotted TOML path (`regions[0].azs[1].name`) back to a line and column in the source.

use std::ops::Range;
use toml_edit::{Document, Item, Table, Value};

/// Finds the 1-based (line, column) of the value at `path` in `src`, or of its nearest ancestor
/// that exists (a missing key is reported where its table starts).
pub fn position_of(src: &str, path: &str) -> Option<(usize, usize)> {
    let doc = Document::parse(src).ok()?;
    let mut item: &Item = doc.as_item();
    let mut best = None;
    for seg in segments(path) {
        let next = match seg {
            Seg::Key(k) => item.get(k),
            Seg::Index(i) => item.get(i),
        };
        match next {
            Some(n) => {
                item = n;
                if let Some(span) = item_span(item) {
                    best = Some(span);
                }
            }
            None => break,
        }
    }
    best.map(|offset| line_col(src, offset))
}

/// Like [`position_of`], but the position of the key itself (where an unknown key is reported).
pub fn key_position_of(src: &str, path: &str) -> Option<(usize, usize)> {
    let (parent, key) = match path.rfind('.') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("", path),
    };
    let doc = Document::parse(src).ok()?;
    let mut item: &Item = doc.as_item();
    for seg in segments(parent) {
        item = match seg {
            Seg::Key(k) => item.get(k)?,
            Seg::Index(i) => item.get(i)?,
        };
    }
    let span = item.as_table_like()?.key(key)?.span()?;
    Some(line_col(src, span.start))
}

/// The item at a dotted `path` (`regions[0].pools`), for editing.
pub fn item_mut<'a>(mut item: &'a mut Item, path: &str) -> Option<&'a mut Item> {
    for seg in segments(path) {
        item = match seg {
            Seg::Key(k) => item.get_mut(k)?,
            Seg::Index(i) => item.get_mut(i)?,
        };
    }
    Some(item)
}

/// Finds the dotted path of the key or value that covers byte `offset` (for serde errors, which
/// carry a position but no path).
pub fn path_at(src: &str, offset: usize) -> Option<String> {
    let doc = Document::parse(src).ok()?;
    walk_table(doc.as_table(), "", offset)
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn covers(span: Option<Range<usize>>, offset: usize) -> bool {
    span.is_some_and(|r| r.start <= offset && offset < r.end.max(r.start + 1))
}

fn walk_table(t: &Table, prefix: &str, offset: usize) -> Option<String> {
    for (k, v) in t.iter() {
        let path = join(prefix, k);
        if covers(t.key(k).and_then(|k| k.span()), offset) {
            return Some(path);
        }
        if let Some(p) = walk_item(v, &path, offset) {
            return Some(p);
        }
    }
    None
}

fn walk_item(item: &Item, path: &str, offset: usize) -> Option<String> {
    match item {
        Item::None => None,
        Item::Table(t) => walk_table(t, path, offset),
        Item::ArrayOfTables(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, t)| walk_table(t, &format!("{path}[{i}]"), offset)),
        Item::Value(v) => walk_value(v, path, offset),
    }
}

fn walk_value(v: &Value, path: &str, offset: usize) -> Option<String> {
    let inner = match v {
        Value::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, v)| walk_value(v, &format!("{path}[{i}]"), offset)),
        Value::InlineTable(t) => t.iter().find_map(|(k, v)| {
            let p = join(path, k);
            if covers(t.key(k).and_then(|k| k.span()), offset) {
                Some(p)
            } else {
                walk_value(v, &p, offset)
            }
        }),
        _ => None,
    };
    inner.or_else(|| covers(v.span(), offset).then(|| path.to_string()))
}

fn item_span(item: &Item) -> Option<usize> {
    match item {
        Item::None => None,
        Item::Value(v) => v.span().map(|r| r.start),
        Item::Table(t) => t.span().map(|r| r.start),
        Item::ArrayOfTables(a) => a.span().map(|r| r.start),
    }
}

/// Converts a byte offset into a 1-based line and column (columns count characters).
pub fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let col = src[line_start..offset].chars().count() + 1;
    (line, col)
}

enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

fn segments(path: &str) -> Vec<Seg<'_>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            out.push(Seg::Key(key));
        }
        for idx in rest.split('[').filter(|s| !s.is_empty()) {
            if let Ok(i) = idx.trim_end_matches(']').parse() {
                out.push(Seg::Index(i));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_array_of_tables() {
        let src = "[admin]\nlisten = \"x\"\n\n[[regions]]\nname = \"a\"\n\n[[regions]]\nname = \"b\"\n  [[regions.azs]]\n  name = \"b1\"\n";
        assert_eq!(position_of(src, "admin.listen"), Some((2, 10)));
        assert_eq!(position_of(src, "regions[1].name"), Some((8, 8)));
        assert_eq!(position_of(src, "regions[1].azs[0].name"), Some((10, 10)));
        // Missing key: nearest ancestor.
        assert_eq!(
            position_of(src, "regions[1].azs[0].weight").map(|p| p.0),
            Some(9)
        );
    }

    #[test]
    fn path_of_offset() {
        let src = "[[regions]]\nname = \"a\"\nvips = [\"1.2.3.4\", \"x\"]\n";
        let off = src.find("\"x\"").unwrap();
        assert_eq!(path_at(src, off).as_deref(), Some("regions[0].vips[1]"));
        let off = src.find("name").unwrap();
        assert_eq!(path_at(src, off).as_deref(), Some("regions[0].name"));
    }
}
