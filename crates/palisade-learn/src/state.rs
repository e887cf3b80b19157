//! The learned state: the collectors of every endpoint, and the handle to
//! read, mark, snapshot and maintain them.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use http::Method;
use palisade_core::{Endpoint, EndpointCatalogue, SessionSource, SharedClock};

use crate::atomic_set::AtomicSet;
use crate::collector::{Collector, Mark, Origin};
use crate::keyhash::{KeyHasher, Seeds};
use crate::normalize::{self, MAX_DEPTH, Segment};
use crate::observe::Recorder;

/// Shards of the endpoint table; a read takes one shard's read lock.
const SHARDS: usize = 16;
/// At most this many distinct session identifiers are told apart.
pub(crate) const MAX_SOURCES: usize = 32;
/// At most this many hosts are told apart; others count as any host.
pub(crate) const MAX_HOSTS: usize = 32;
/// Capacity of the sets of collapsed parents and kept children.
const MAX_COLLAPSED: usize = 4_096;

/// The settings of the learning layer.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) report_after: u64,
    pub(crate) max_endpoints: usize,
    pub(crate) max_siblings: usize,
    pub(crate) max_hosts: usize,
    pub(crate) candidate_ttl: Duration,
    pub(crate) maintenance_interval: Duration,
}

/// Keys of the endpoint table are already hashes.
#[derive(Default)]
pub(crate) struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn write_usize(&mut self, n: usize) {
        // Endpoints hash as their pointer: spread its bits.
        self.0 = (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type Table = HashMap<u64, Arc<Collector>, BuildHasherDefault<IdentityHasher>>;

/// What the response future needs, reachable from every collector without
/// touching a shared reference count.
pub(crate) struct Shared {
    pub(crate) clock: SharedClock,
    pub(crate) recorders: Vec<Arc<dyn Recorder>>,
    pub(crate) report_after: u64,
    sources: [OnceLock<SessionSource>; MAX_SOURCES],
    sources_lock: Mutex<()>,
}

impl Shared {
    pub(crate) fn new(
        clock: SharedClock,
        recorders: Vec<Arc<dyn Recorder>>,
        report_after: u64,
    ) -> Self {
        Self {
            clock,
            recorders,
            report_after,
            sources: std::array::from_fn(|_| OnceLock::new()),
            sources_lock: Mutex::new(()),
        }
    }

    /// The bit of `source` in a collector's source mask; registers it on
    /// first sight. 0 when the registry is full.
    pub(crate) fn source_bit(&self, source: SessionSource) -> u32 {
        for (i, slot) in self.sources.iter().enumerate() {
            match slot.get() {
                Some(found) if same_source(*found, source) => return 1 << i,
                Some(_) => {}
                None => return self.register_source(source),
            }
        }
        0
    }

    #[cold]
    fn register_source(&self, source: SessionSource) -> u32 {
        let _guard = self
            .sources_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (i, slot) in self.sources.iter().enumerate() {
            let found = slot.get_or_init(|| source);
            if *found == source {
                return 1 << i;
            }
        }
        0
    }

    /// The sources whose bits are set in `mask`.
    pub(crate) fn sources_in(&self, mask: u32) -> Vec<SessionSource> {
        self.sources
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .filter_map(|(_, s)| s.get().copied())
            .collect()
    }
}

/// What the learning layer has learned so far: a cheap handle, shared by
/// the layer, its services and the admin API.
///
/// Reading the state ([`endpoints`](Self::endpoints),
/// [`posture`](Self::posture), [`snapshot`](Self::snapshot),
/// [`openapi`](Self::openapi)) first runs [`maintain`](Self::maintain).
#[derive(Clone)]
pub struct LearnedState {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: Config,
    pub(crate) catalogue: EndpointCatalogue,
    pub(crate) shared: Arc<Shared>,
    seeds: Seeds,
    shards: Box<[RwLock<Table>]>,
    len: AtomicUsize,
    hosts: Box<[OnceLock<Box<str>>]>,
    hosts_lock: Mutex<()>,
    collapsed: AtomicSet,
    kept: AtomicSet,
    maintenance: Mutex<()>,
    last_maintenance: AtomicU64,
    dropped: AtomicU64,
}

/// Where the host of a request stands in the host registry.
pub(crate) enum HostSlot {
    Known(u8),
    /// Not registered yet, and the registry has room.
    New,
}

impl Inner {
    pub(crate) fn new(config: Config, catalogue: EndpointCatalogue, shared: Arc<Shared>) -> Self {
        let hosts = (0..config.max_hosts.min(MAX_HOSTS))
            .map(|_| OnceLock::new())
            .collect();
        Self {
            config,
            catalogue,
            shared,
            seeds: Seeds::random(),
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            len: AtomicUsize::new(0),
            hosts,
            hosts_lock: Mutex::new(()),
            collapsed: AtomicSet::new(MAX_COLLAPSED),
            kept: AtomicSet::new(MAX_COLLAPSED),
            maintenance: Mutex::new(()),
            last_maintenance: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    fn shard(&self, key: u64) -> &RwLock<Table> {
        &self.shards[(key >> 59) as usize % SHARDS]
    }

    pub(crate) fn lookup(&self, key: u64) -> Option<Arc<Collector>> {
        let shard = self
            .shard(key)
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        shard.get(&key).cloned()
    }

    /// The table key of a declared or matched endpoint (odd).
    pub(crate) fn endpoint_key(endpoint: Endpoint) -> u64 {
        let mut hasher = IdentityHasher::default();
        endpoint.hash(&mut hasher);
        hasher.finish() | 1
    }

    /// Index of `host` in the host registry: 0 (any host) when there is no
    /// host, the registry is full or host tracking is off.
    pub(crate) fn host_slot(&self, host: Option<&str>) -> HostSlot {
        let Some(host) = host else {
            return HostSlot::Known(0);
        };
        for (i, slot) in self.hosts.iter().enumerate() {
            match slot.get() {
                Some(found) if found.eq_ignore_ascii_case(host) => {
                    return HostSlot::Known(i as u8 + 1);
                }
                Some(_) => {}
                None => return HostSlot::New,
            }
        }
        HostSlot::Known(0)
    }

    /// Registers a host seen on a 2xx response; its index.
    fn register_host(&self, host: &str) -> u8 {
        let _guard = self
            .hosts_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !is_host_name(host) {
            return 0;
        }
        for (i, slot) in self.hosts.iter().enumerate() {
            let found = slot.get_or_init(|| host.to_ascii_lowercase().into());
            if found.eq_ignore_ascii_case(host) {
                return i as u8 + 1;
            }
        }
        0
    }

    fn host_name(&self, index: u8) -> Box<str> {
        match index
            .checked_sub(1)
            .and_then(|i| self.hosts.get(usize::from(i)))
        {
            Some(slot) => slot.get().cloned().unwrap_or_else(|| "*".into()),
            None => "*".into(),
        }
    }

    fn hasher(&self, host_index: u8, method: &Method) -> KeyHasher {
        let mut hasher = self.seeds.hasher();
        let method = method.as_str().as_bytes();
        hasher.word(u64::from(host_index) << 32 | method.len() as u64);
        hasher.bytes(method);
        hasher
    }

    /// Walks the normalised segments of `path`, calling `each` with a
    /// literal or `None` for a placeholder; the table key (even), or `None`
    /// for a path too deep to learn. Allocates nothing.
    pub(crate) fn walk_path(
        &self,
        method: &Method,
        host_index: u8,
        path: &str,
        mut each: impl FnMut(Option<&str>),
    ) -> Option<u64> {
        let mut hasher = self.hasher(host_index, method);
        let collapsing = !self.collapsed.is_empty();
        for (depth, segment) in normalize::segments(path).enumerate() {
            if depth == MAX_DEPTH {
                return None;
            }
            let variable =
                normalize::is_variable(segment) || (collapsing && self.collapses(&hasher, segment));
            let segment = (!variable).then_some(segment);
            feed(&mut hasher, segment);
            each(segment);
        }
        Some(hasher.finish() & !1)
    }

    /// Whether `segment` is a placeholder because its parent has too many
    /// children, and it is not one of the children kept by name.
    fn collapses(&self, parent: &KeyHasher, segment: &str) -> bool {
        if !self.collapsed.contains(parent.finish()) {
            return false;
        }
        let mut child = parent.clone();
        feed(&mut child, Some(segment));
        !self.kept.contains(child.finish())
    }

    fn segments_key(&self, method: &Method, host_index: u8, segments: &[Segment]) -> u64 {
        let mut hasher = self.hasher(host_index, method);
        for segment in segments {
            feed(&mut hasher, literal(segment));
        }
        hasher.finish() & !1
    }

    /// The collector for a declared or matched endpoint, made on first
    /// sight; these are few and fixed by the application, so they are
    /// admitted whatever the cap.
    pub(crate) fn admit_endpoint(&self, key: u64, endpoint: Endpoint) -> Arc<Collector> {
        let origin = if self.catalogue.endpoints().contains(&endpoint) {
            Origin::Declared
        } else {
            Origin::Matched
        };
        self.insert_with(key, true, || {
            let collector = Collector::new(
                endpoint.method().clone(),
                (0, endpoint.host().to_string().into()),
                normalize::parse_template(endpoint.template()),
                endpoint.template().into(),
                origin,
                self.shared.clone(),
            );
            let _ = collector.endpoint.set(endpoint);
            collector
        })
        .expect("admitted whatever the cap")
    }

    /// The collector for a discovered path answered with a 2xx, made if
    /// the table has room.
    pub(crate) fn admit_path(
        &self,
        method: &Method,
        host: Option<&str>,
        path: &str,
    ) -> Option<Arc<Collector>> {
        let host_index = match self.host_slot(host) {
            HostSlot::Known(i) => i,
            HostSlot::New => host.map_or(0, |h| self.register_host(h)),
        };
        let mut segments = Vec::new();
        let key = self.walk_path(method, host_index, path, |s| {
            segments.push(match s {
                Some(name) => Segment::Literal(name.into()),
                None => Segment::Variable,
            });
        })?;
        if let Some(found) = self.lookup(key) {
            return Some(found);
        }
        let found = self.insert_with(key, false, || {
            Collector::new(
                method.clone(),
                (host_index, self.host_name(host_index)),
                segments.clone(),
                normalize::template(&segments).into(),
                Origin::Discovered,
                self.shared.clone(),
            )
        });
        if found.is_none() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            self.maintain_if_due();
        }
        found
    }

    fn insert_with(
        &self,
        key: u64,
        always: bool,
        make: impl FnOnce() -> Collector,
    ) -> Option<Arc<Collector>> {
        let mut shard = self
            .shard(key)
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = shard.get(&key) {
            return Some(found.clone());
        }
        if !always && self.len.load(Ordering::Relaxed) >= self.config.max_endpoints {
            return None;
        }
        let collector = Arc::new(make());
        shard.insert(key, collector.clone());
        self.len.fetch_add(1, Ordering::Relaxed);
        Some(collector)
    }

    fn remove(&self, key: u64) -> Option<Arc<Collector>> {
        let mut shard = self
            .shard(key)
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let removed = shard.remove(&key);
        if removed.is_some() {
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
        removed
    }

    pub(crate) fn all(&self) -> Vec<(u64, Arc<Collector>)> {
        let mut all = Vec::with_capacity(self.len.load(Ordering::Relaxed));
        for shard in self.shards.iter() {
            let shard = shard.read().unwrap_or_else(PoisonError::into_inner);
            all.extend(shard.iter().map(|(k, c)| (*k, c.clone())));
        }
        all
    }

    pub(crate) fn now_secs(&self) -> u64 {
        self.shared.clock.now().as_secs()
    }

    /// Runs maintenance from a request that found the table full, at most
    /// once per maintenance interval, and never waits for it.
    #[cold]
    fn maintain_if_due(&self) {
        let now = self.now_secs();
        let last = self.last_maintenance.load(Ordering::Relaxed);
        if now < last.saturating_add(self.config.maintenance_interval.as_secs()) {
            return;
        }
        if let Ok(guard) = self.maintenance.try_lock() {
            self.maintain_locked(now);
            drop(guard);
        }
    }

    pub(crate) fn maintain(&self) {
        let _guard = self
            .maintenance
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.maintain_locked(self.now_secs());
    }

    fn is_candidate(&self, c: &Collector) -> bool {
        c.origin == Origin::Discovered
            && c.mark() == Mark::None
            && c.successful() < self.config.report_after
    }

    fn maintain_locked(&self, now: u64) {
        self.last_maintenance.store(now, Ordering::Relaxed);

        // Candidates that never reached the threshold age out.
        let ttl = self.config.candidate_ttl.as_secs();
        for (key, c) in self.all() {
            if self.is_candidate(&c)
                && c.last_seen.load(Ordering::Relaxed).saturating_add(ttl) < now
            {
                self.remove(key);
            }
        }

        // Parents with too many candidate children: the children become
        // one placeholder, deepest first changes nothing, so loop until
        // stable.
        for _ in 0..MAX_DEPTH {
            if !self.collapse_once() {
                break;
            }
        }
    }

    /// Collapses the children of every parent that has more than
    /// `max_siblings` distinct literal children among candidates; whether
    /// anything changed.
    fn collapse_once(&self) -> bool {
        type Parent = (Method, u8, Vec<Segment>);
        let all = self.all();
        let mut children: HashMap<Parent, std::collections::HashSet<&str>> = HashMap::new();
        for (_, c) in &all {
            if !self.is_candidate(c) {
                continue;
            }
            for (i, segment) in c.segments.iter().enumerate() {
                if let Segment::Literal(name) = segment {
                    let parent = (c.method.clone(), c.host_index, c.segments[..i].to_vec());
                    children.entry(parent).or_default().insert(name);
                }
            }
        }
        let crowded: Vec<Parent> = children
            .into_iter()
            .filter(|(_, names)| names.len() > self.config.max_siblings)
            .map(|(parent, _)| parent)
            .collect();
        let mut changed = false;
        for (method, host_index, prefix) in crowded {
            let parent_hash = {
                let mut hasher = self.hasher(host_index, &method);
                prefix.iter().for_each(|s| feed(&mut hasher, literal(s)));
                hasher
            };
            if !self.collapsed.insert(parent_hash.finish()) {
                tracing::warn!(
                    target: crate::TRACE_TARGET,
                    "too many collapsed parents; paths under {} stay literal",
                    normalize::template(&prefix)
                );
                continue;
            }
            let i = prefix.len();
            let under = |c: &Collector| {
                c.method == method
                    && c.host_index == host_index
                    && c.segments.len() > i
                    && c.segments[..i] == prefix[..]
            };
            // Reported, saved and ignored children keep their names, and
            // candidates with the same name stay with them.
            let mut kept = std::collections::HashSet::new();
            for (_, c) in &all {
                if let (true, false, Segment::Literal(name)) = (
                    under(c),
                    self.is_candidate(c),
                    &c.segments.get(i).unwrap_or(&Segment::Variable),
                ) {
                    let mut child = parent_hash.clone();
                    feed(&mut child, Some(name));
                    self.kept.insert(child.finish());
                    kept.insert(name.clone());
                }
            }
            for (key, c) in &all {
                if !under(c) || !self.is_candidate(c) {
                    continue;
                }
                match &c.segments[i] {
                    Segment::Literal(name) if !kept.contains(name) => {}
                    _ => continue,
                }
                let mut segments = c.segments.clone();
                segments[i] = Segment::Variable;
                let new_key = self.segments_key(&method, host_index, &segments);
                if let Some(old) = self.remove(*key) {
                    let target = self.insert_with(new_key, true, || {
                        Collector::new(
                            method.clone(),
                            (host_index, c.host.clone()),
                            segments.clone(),
                            normalize::template(&segments).into(),
                            Origin::Discovered,
                            self.shared.clone(),
                        )
                    });
                    if let Some(target) = target {
                        target.absorb(&old);
                    }
                    changed = true;
                }
            }
        }
        changed
    }

    /// Counts a collector restored from a snapshot.
    pub(crate) fn restore(&self, key: u64, collector: Collector) {
        let collector = Arc::new(collector);
        let mut shard = self
            .shard(key)
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(old) = shard.insert(key, collector) {
            drop(old);
        } else {
            self.len.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The key of a template restored from a snapshot.
    pub(crate) fn restored_key(
        &self,
        method: &Method,
        host: &str,
        segments: &[Segment],
        origin: Origin,
        endpoint: Option<Endpoint>,
    ) -> (u64, u8) {
        match (origin, endpoint) {
            (Origin::Declared | Origin::Matched, Some(e)) => (Self::endpoint_key(e), 0),
            _ => {
                let host_index = match self.host_slot((host != "*").then_some(host)) {
                    HostSlot::Known(i) => i,
                    HostSlot::New => self.register_host(host),
                };
                (self.segments_key(method, host_index, segments), host_index)
            }
        }
    }

    pub(crate) fn host_of(&self, index: u8) -> Box<str> {
        self.host_name(index)
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }
}

/// Names are interned, so equal sources almost always share a pointer.
fn same_source(a: SessionSource, b: SessionSource) -> bool {
    a.kind() == b.kind() && (std::ptr::eq(a.name(), b.name()) || a.name() == b.name())
}

/// A DNS name or IPv4 address: letters, digits, `-` and `.`, no empty
/// label at either end, at most 253 bytes.
fn is_host_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && !host.starts_with('.')
        && !host.ends_with('.')
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

fn literal(segment: &Segment) -> Option<&str> {
    match segment {
        Segment::Literal(name) => Some(name),
        Segment::Variable => None,
    }
}

/// Feeds one normalised segment to a key hasher; literals and
/// placeholders cannot be confused.
fn feed(hasher: &mut KeyHasher, segment: Option<&str>) {
    match segment {
        Some(name) => {
            hasher.word(1 << 32 | name.len() as u64);
            hasher.bytes(name.as_bytes());
        }
        None => hasher.word(u64::MAX),
    }
}

impl fmt::Debug for LearnedState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LearnedState")
            .field("endpoints", &self.inner.len())
            .field("max_endpoints", &self.inner.config.max_endpoints)
            .finish_non_exhaustive()
    }
}
