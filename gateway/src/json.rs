//! JSON helpers for composition: merge parts under keys, trim to a field allow-list.

use serde_json::{Map, Value};

/// Merge `(key, value)` parts into one object (later keys overwrite earlier equal keys).
pub fn merge(parts: Vec<(String, Value)>) -> Value {
    let mut out = Map::with_capacity(parts.len() + 1);
    for (k, v) in parts {
        out.insert(k, v);
    }
    Value::Object(out)
}

/// A compiled allow-list of dotted paths (`user.name`, `orders.items.id`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AllowList {
    /// `None` = keep the whole subtree.
    children: Option<Vec<(String, AllowList)>>,
}

impl AllowList {
    /// Compile dotted paths; a path also keeps everything below it.
    pub fn new<S: AsRef<str>>(paths: &[S]) -> AllowList {
        let mut root = AllowList {
            children: Some(Vec::new()),
        };
        for p in paths {
            let segs: Vec<&str> = p.as_ref().split('.').collect();
            root.insert(&segs);
        }
        root
    }

    fn insert(&mut self, segs: &[&str]) {
        let Some((first, rest)) = segs.split_first() else {
            self.children = None;
            return;
        };
        let Some(children) = self.children.as_mut() else {
            return;
        };
        let pos = match children.iter().position(|(k, _)| k == first) {
            Some(i) => i,
            None => {
                children.push((
                    first.to_string(),
                    AllowList {
                        children: Some(Vec::new()),
                    },
                ));
                children.len() - 1
            }
        };
        children[pos].1.insert(rest);
    }

    /// Keep only allowed fields; arrays apply the same list to each element.
    pub fn trim(&self, v: Value) -> Value {
        let Some(children) = &self.children else {
            return v;
        };
        match v {
            Value::Object(mut map) => {
                let mut out = Map::with_capacity(children.len());
                for (k, sub) in children {
                    if let Some(x) = map.remove(k) {
                        out.insert(k.clone(), sub.trim(x));
                    }
                }
                Value::Object(out)
            }
            Value::Array(items) => Value::Array(items.into_iter().map(|x| self.trim(x)).collect()),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_under_keys() {
        let v = merge(vec![
            ("user".into(), json!({"id": 1})),
            ("cart".into(), json!([1, 2])),
        ]);
        assert_eq!(v, json!({"user": {"id": 1}, "cart": [1, 2]}));
    }

    #[test]
    fn allow_list_trims_objects_and_arrays() {
        let v = json!({
            "user": {"name": "alice", "email": "a@x", "address": {"city": "X", "zip": "1"}},
            "orders": {"items": [{"id": 1, "total": 3, "lines": []}, {"id": 2, "total": 4}]},
            "partial": {"failed": []},
            "cart": {"count": 2}
        });
        let allow = AllowList::new(&[
            "user.name",
            "user.address.city",
            "orders.items.id",
            "partial",
            "cart",
        ]);
        assert_eq!(
            allow.trim(v),
            json!({
                "user": {"name": "alice", "address": {"city": "X"}},
                "orders": {"items": [{"id": 1}, {"id": 2}]},
                "partial": {"failed": []},
                "cart": {"count": 2}
            })
        );
    }
}
