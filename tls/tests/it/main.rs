//! switchyard-tls against real certificates made by its demo CA: loading every key type, SNI
//! choice, reload (good and broken), checks, and client certificates.

mod certs;
