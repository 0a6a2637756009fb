//! AZ-aware backend selection over an immutable pool snapshot.
//!
//! [`Selector::pick`] first chooses an AZ among those with at least one available member (by AZ
//! weight: smooth round robin for `round_robin`, weighted rendezvous hashing on the client for
//! `maglev`, weighted random otherwise), so an AZ with nothing healthy spills its share to the
//! others; then the [`Policy`] chooses inside the AZ. Everything here is lock- and
//! allocation-free per pick: the only shared mutable state is atomic counters.

pub mod hash;
pub mod maglev;
pub mod smooth;

use crate::admin::Labels;
use crate::health::{BackendHealth, PassiveSpec};
use crate::HealthRegistry;
use hash::{fast_rand, hash_bytes, hash_ip, mix64, rand_below};
use maglev::Maglev;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// How a member is chosen inside an AZ (all weight-aware).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Policy {
    /// Smooth weighted round robin.
    #[default]
    RoundRobin,
    /// Fewest active connections relative to weight.
    LeastConnections,
    /// Two weighted-random candidates, the one with fewer connections per weight wins.
    PowerOfTwo,
    /// Consistent hashing on the client IP (Maglev table of 65537 slots).
    Maglev,
    /// Weighted random.
    Random,
}

impl Policy {
    /// The policy's config name (`round_robin`, `maglev`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::RoundRobin => "round_robin",
            Policy::LeastConnections => "least_connections",
            Policy::PowerOfTwo => "power_of_two",
            Policy::Maglev => "maglev",
            Policy::Random => "random",
        }
    }
}

impl std::str::FromStr for Policy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "round_robin" | "roundrobin" | "rr" => Policy::RoundRobin,
            "least_connections" | "leastconn" => Policy::LeastConnections,
            "power_of_two" | "p2c" => Policy::PowerOfTwo,
            "maglev" => Policy::Maglev,
            "random" => Policy::Random,
            _ => return Err(format!("unknown policy {s:?}")),
        })
    }
}

/// One pool member as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSpec {
    /// Instance name (admin targets, logs, metrics).
    pub name: String,
    /// Where connections go.
    pub addr: SocketAddr,
    /// The availability zone it runs in.
    pub az: String,
    /// Relative weight; 0 = never chosen (except fail-open).
    pub weight: u32,
}

impl MemberSpec {
    /// A member with the given name, address, AZ and weight.
    pub fn new(
        name: impl Into<String>,
        addr: SocketAddr,
        az: impl Into<String>,
        weight: u32,
    ) -> Self {
        MemberSpec {
            name: name.into(),
            addr,
            az: az.into(),
            weight,
        }
    }
}

/// Pool-level options.
#[derive(Debug, Clone, Default)]
pub struct SelectorOptions {
    /// When no member is up: `true` picks among all members anyway, `false` returns `None`.
    pub fail_open: bool,
    /// Passive ejection settings for [`Selector::record_connect_failure`].
    pub passive: PassiveSpec,
    /// A member with this many active connections (all pools) is skipped.
    pub max_conns_per_member: Option<u64>,
    /// Region name, used as the admin label of every member.
    pub region: Option<String>,
}

/// What [`Selector::choose`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// A healthy member.
    Member(usize),
    /// No member is up and the pool is `fail_open`: this one is tried anyway.
    FailOpen(usize),
    /// Nothing to try: every member down (not fail-open), saturated, or already excluded.
    None,
}

/// Current share of new traffic for one AZ.
#[derive(Debug, Clone, PartialEq)]
pub struct AzShare {
    /// The AZ's name.
    pub az: String,
    /// Its configured weight.
    pub weight: u32,
    /// Fraction of new connections this AZ receives now (0.0..=1.0).
    pub share: f64,
    /// Members that take new connections now.
    pub up_members: usize,
    /// All members in the AZ.
    pub members: usize,
}

struct Member {
    spec: MemberSpec,
    health: Arc<BackendHealth>,
}

struct Az {
    name: String,
    weight: u32,
    /// Member indices (into `Selector::members`) in this AZ.
    members: Box<[usize]>,
    /// Smooth WRR schedule of positions in `members`.
    schedule: Box<[u32]>,
    rr: AtomicUsize,
    maglev: Option<Maglev>,
}

/// Up to 64 AZs are tracked individually; beyond that everything is one group.
const MAX_AZS: usize = 64;

/// An immutable pool snapshot that picks members. Build one per pool version.
pub struct Selector {
    members: Box<[Member]>,
    azs: Box<[Az]>,
    az_schedule: Box<[u32]>,
    az_rr: AtomicUsize,
    policy: Policy,
    opts: SelectorOptions,
    all_down: AtomicU64,
}

impl std::fmt::Debug for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Selector")
            .field("policy", &self.policy)
            .field("members", &self.members.len())
            .field("azs", &self.azs.len())
            .finish()
    }
}

impl Selector {
    /// Builds a selector. `az_weights` gives weights by AZ name (missing AZs weigh 1; AZ order
    /// follows first appearance in `members`). Health handles come from `registry` (one per
    /// address); their admin labels are set from the member names, AZs and `opts.region`.
    pub fn new(
        members: Vec<MemberSpec>,
        az_weights: &[(String, u32)],
        policy: Policy,
        registry: &HealthRegistry,
        opts: SelectorOptions,
    ) -> Selector {
        let members: Vec<Member> = members
            .into_iter()
            .map(|spec| {
                let health = registry.handle(spec.addr);
                health.set_labels(Labels {
                    region: opts.region.clone(),
                    az: Some(spec.az.clone()),
                    instance: Some(spec.name.clone()),
                });
                Member { spec, health }
            })
            .collect();
        Self::from_members(members, az_weights, policy, opts)
    }

    /// Builds a selector over already-resolved health handles (tests, benches).
    pub fn with_health(
        members: Vec<(MemberSpec, Arc<BackendHealth>)>,
        az_weights: &[(String, u32)],
        policy: Policy,
        opts: SelectorOptions,
    ) -> Selector {
        let members = members
            .into_iter()
            .map(|(spec, health)| Member { spec, health })
            .collect();
        Self::from_members(members, az_weights, policy, opts)
    }

    fn from_members(
        members: Vec<Member>,
        az_weights: &[(String, u32)],
        policy: Policy,
        opts: SelectorOptions,
    ) -> Selector {
        let mut names: Vec<&str> = Vec::new();
        for m in &members {
            if !names.contains(&m.spec.az.as_str()) {
                names.push(&m.spec.az);
            }
        }
        let collapse = names.len() > MAX_AZS;
        let mut groups: Vec<(String, u32, Vec<usize>)> = if collapse {
            vec![("*".into(), 1, (0..members.len()).collect())]
        } else {
            names
                .iter()
                .map(|n| {
                    let w = az_weights
                        .iter()
                        .find(|(a, _)| a == n)
                        .map_or(1, |(_, w)| *w);
                    let idx = (0..members.len())
                        .filter(|&i| members[i].spec.az == *n)
                        .collect();
                    (n.to_string(), w, idx)
                })
                .collect()
        };
        let azs: Vec<Az> = groups
            .drain(..)
            .map(|(name, weight, idx)| {
                let weights: Vec<u32> = idx.iter().map(|&i| members[i].spec.weight).collect();
                let maglev = (policy == Policy::Maglev).then(|| {
                    let keys: Vec<Vec<u8>> = idx
                        .iter()
                        .map(|&i| {
                            format!("{}/{}", members[i].spec.name, members[i].spec.addr)
                                .into_bytes()
                        })
                        .collect();
                    let refs: Vec<&[u8]> = keys.iter().map(|k| k.as_slice()).collect();
                    Maglev::build(&refs, &weights, maglev::TABLE_SIZE)
                });
                Az {
                    name,
                    weight,
                    schedule: smooth::schedule(&weights, 4096).into(),
                    members: idx.into(),
                    rr: AtomicUsize::new(0),
                    maglev,
                }
            })
            .collect();
        let az_w: Vec<u32> = azs.iter().map(|a| a.weight).collect();
        Selector {
            members: members.into(),
            az_schedule: smooth::schedule(&az_w, 4096).into(),
            azs: azs.into(),
            az_rr: AtomicUsize::new(0),
            policy,
            opts,
            all_down: AtomicU64::new(0),
        }
    }

    /// The selection policy.
    pub fn policy(&self) -> Policy {
        self.policy
    }
    /// The options it was built with.
    pub fn options(&self) -> &SelectorOptions {
        &self.opts
    }
    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }
    /// True when there are no members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
    /// Member `idx` as configured.
    pub fn member(&self, idx: usize) -> &MemberSpec {
        &self.members[idx].spec
    }
    /// The health entry of member `idx`.
    pub fn health(&self, idx: usize) -> &Arc<BackendHealth> {
        &self.members[idx].health
    }
    /// Index of the member with this address, if any.
    pub fn index_of(&self, addr: SocketAddr) -> Option<usize> {
        self.members.iter().position(|m| m.spec.addr == addr)
    }

    /// How many picks found every member down (fail-open or refused).
    pub fn all_down_count(&self) -> u64 {
        self.all_down.load(Ordering::Relaxed)
    }

    /// The index of the member for a new connection from `client`, skipping `exclude`
    /// (members already tried). `None` when nothing may be tried (see [`Choice`]).
    #[inline]
    pub fn pick(&self, client: IpAddr, exclude: &[usize]) -> Option<usize> {
        match self.choose(client, exclude) {
            Choice::Member(i) | Choice::FailOpen(i) => Some(i),
            Choice::None => None,
        }
    }

    /// Like [`pick`](Self::pick) but says whether fail-open was used.
    pub fn choose(&self, client: IpAddr, exclude: &[usize]) -> Choice {
        let under_cap = |i: usize| {
            self.opts
                .max_conns_per_member
                .is_none_or(|m| self.members[i].health.active_conns() < m)
        };
        let avail = |i: usize| {
            let m = &self.members[i];
            m.spec.weight > 0 && !exclude.contains(&i) && m.health.is_up() && under_cap(i)
        };
        if !exclude.is_empty() {
            // another AZ first: AZs that hold none of the members already tried
            let fresh = |a: &Az| !a.members.iter().any(|i| exclude.contains(i));
            if let Some(i) = self.choose_with(client, fresh, avail) {
                return Choice::Member(i);
            }
        }
        if let Some(i) = self.choose_with(client, |_| true, avail) {
            return Choice::Member(i);
        }
        if self.members.iter().any(|m| m.health.is_up()) {
            return Choice::None; // saturated or all healthy ones excluded
        }
        self.all_down.fetch_add(1, Ordering::Relaxed);
        if !self.opts.fail_open {
            return Choice::None;
        }
        let any = |i: usize| !exclude.contains(&i) && under_cap(i);
        match self.choose_with(client, |_| true, any) {
            Some(i) => Choice::FailOpen(i),
            None => Choice::None,
        }
    }

    fn choose_with(
        &self,
        client: IpAddr,
        az_ok: impl Fn(&Az) -> bool,
        avail: impl Fn(usize) -> bool + Copy,
    ) -> Option<usize> {
        let mut mask = 0u64;
        for (k, az) in self.azs.iter().enumerate() {
            if az.weight > 0 && az_ok(az) && az.members.iter().any(|&i| avail(i)) {
                mask |= 1 << k;
            }
        }
        if mask == 0 {
            return None;
        }
        let chash = hash_ip(client);
        let k = if mask.count_ones() == 1 {
            mask.trailing_zeros() as usize
        } else {
            match self.policy {
                Policy::RoundRobin => {
                    let n = self.az_schedule.len();
                    let start = self.az_rr.fetch_add(1, Ordering::Relaxed);
                    (0..n)
                        .map(|j| self.az_schedule[(start + j) % n] as usize)
                        .find(|&k| mask & (1 << k) != 0)?
                }
                Policy::Maglev => self.rendezvous_az(chash, mask),
                _ => self.random_az(mask),
            }
        };
        self.choose_in_az(&self.azs[k], chash, avail)
    }

    /// Weighted rendezvous hashing: when an AZ disappears only its clients move.
    fn rendezvous_az(&self, chash: u64, mask: u64) -> usize {
        let mut best = (f64::MIN, 0);
        for (k, az) in self.azs.iter().enumerate() {
            if mask & (1 << k) == 0 {
                continue;
            }
            let h = mix64(chash ^ hash_bytes(az.name.as_bytes(), 7));
            let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64; // (0,1)
            let score = az.weight as f64 / -u.ln();
            if score > best.0 {
                best = (score, k);
            }
        }
        best.1
    }

    fn random_az(&self, mask: u64) -> usize {
        let total: u64 = self
            .azs
            .iter()
            .enumerate()
            .filter(|(k, _)| mask & (1 << k) != 0)
            .map(|(_, a)| a.weight as u64)
            .sum();
        let mut r = rand_below(total);
        for (k, az) in self.azs.iter().enumerate() {
            if mask & (1 << k) == 0 {
                continue;
            }
            if r < az.weight as u64 {
                return k;
            }
            r -= az.weight as u64;
        }
        mask.trailing_zeros() as usize
    }

    fn choose_in_az(
        &self,
        az: &Az,
        chash: u64,
        avail: impl Fn(usize) -> bool + Copy,
    ) -> Option<usize> {
        match self.policy {
            Policy::RoundRobin => {
                let n = az.schedule.len();
                if n == 0 {
                    return az.members.iter().copied().find(|&i| avail(i));
                }
                let start = az.rr.fetch_add(1, Ordering::Relaxed);
                (0..n)
                    .map(|j| az.members[az.schedule[(start + j) % n] as usize])
                    .find(|&i| avail(i))
                    .or_else(|| az.members.iter().copied().find(|&i| avail(i)))
            }
            Policy::Random => self.weighted_random(az, avail),
            Policy::LeastConnections => {
                let n = az.members.len();
                let start = az.rr.fetch_add(1, Ordering::Relaxed);
                let mut best: Option<usize> = None;
                for j in 0..n {
                    let i = az.members[(start + j) % n];
                    if avail(i) && best.is_none_or(|b| self.less_loaded(i, b)) {
                        best = Some(i);
                    }
                }
                best
            }
            Policy::PowerOfTwo => {
                let a = self.weighted_random(az, avail)?;
                let b = self.weighted_random(az, avail)?;
                Some(if self.less_loaded(b, a) { b } else { a })
            }
            Policy::Maglev => {
                let pos = |p: usize| az.members[p];
                let found = az
                    .maglev
                    .as_ref()
                    .and_then(|m| m.lookup(chash, 32, |p| avail(pos(p))))
                    .map(pos);
                // beyond 32 probes (most of the AZ down): a deterministic scan from the hash
                found.or_else(|| {
                    let n = az.members.len();
                    let s = (chash % n as u64) as usize;
                    (0..n).map(|j| az.members[(s + j) % n]).find(|&i| avail(i))
                })
            }
        }
    }

    /// (conns+1)/weight of `a` strictly below that of `b`.
    #[inline]
    fn less_loaded(&self, a: usize, b: usize) -> bool {
        let (ma, mb) = (&self.members[a], &self.members[b]);
        let la = (ma.health.active_conns() + 1) as u128 * mb.spec.weight.max(1) as u128;
        let lb = (mb.health.active_conns() + 1) as u128 * ma.spec.weight.max(1) as u128;
        la < lb
    }

    fn weighted_random(&self, az: &Az, avail: impl Fn(usize) -> bool + Copy) -> Option<usize> {
        let weight = |i: usize| self.members[i].spec.weight.max(1) as u64;
        let total: u64 = az
            .members
            .iter()
            .filter(|&&i| avail(i))
            .map(|&i| weight(i))
            .sum();
        if total == 0 {
            return None;
        }
        let mut r = rand_below(total);
        for &i in az.members.iter().filter(|&&i| avail(i)) {
            if r < weight(i) {
                return Some(i);
            }
            r -= weight(i);
        }
        None
    }

    /// Passive health: a connect to member `idx` failed (or it reset). Ejects it after the pool's
    /// threshold, unless that would eject more than `max_ejected_percent` of the pool (at least
    /// one member may always be ejected). Returns true if this call ejected it.
    pub fn record_connect_failure(&self, idx: usize) -> bool {
        let n = self.members.len();
        let pct = self.opts.passive.max_ejected_percent as usize;
        self.members[idx]
            .health
            .record_connect_failure(&self.opts.passive, || {
                let ejected = self
                    .members
                    .iter()
                    .filter(|m| m.health.is_ejected())
                    .count();
                ejected == 0 || (ejected + 1) * 100 <= pct * n
            })
    }

    /// Passive health: a connection to member `idx` was established.
    #[inline]
    pub fn record_success(&self, idx: usize) {
        self.members[idx].health.record_success();
    }

    /// Current traffic share per AZ (for status and metrics): AZs with an up member split the
    /// traffic by weight; the others get 0.
    pub fn shares(&self) -> Vec<AzShare> {
        let ups: Vec<usize> = self
            .azs
            .iter()
            .map(|a| {
                a.members
                    .iter()
                    .filter(|&&i| self.members[i].health.is_up() && self.members[i].spec.weight > 0)
                    .count()
            })
            .collect();
        let total: u64 = self
            .azs
            .iter()
            .zip(&ups)
            .filter(|(_, &u)| u > 0)
            .map(|(a, _)| a.weight as u64)
            .sum();
        self.azs
            .iter()
            .zip(ups)
            .map(|(a, up)| AzShare {
                az: a.name.clone(),
                weight: a.weight,
                share: if up > 0 && total > 0 {
                    a.weight as f64 / total as f64
                } else {
                    0.0
                },
                up_members: up,
                members: a.members.len(),
            })
            .collect()
    }

    /// Every member with its health, for status pages.
    pub fn members(&self) -> impl Iterator<Item = (&MemberSpec, &Arc<BackendHealth>)> {
        self.members.iter().map(|m| (&m.spec, &m.health))
    }
}

/// A random client address, for benches and tests.
pub fn random_client() -> IpAddr {
    IpAddr::V4((fast_rand() as u32).into())
}

#[cfg(test)]
mod tests;
