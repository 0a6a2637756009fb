//! Scale-out through etcd (being written).
