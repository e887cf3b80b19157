//! The Redis store: one GCRA state per key for a whole fleet.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use palisade_core::ConfigError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::Deserialize;

use super::{CounterSpec, MemoryCounter, MemoryStore, RateLimitStore, StoreError, Verdict};
use crate::Quota;

/// The tracing target of the store's failure warnings.
const TRACE_TARGET: &str = "palisade::limit::redis";

/// GCRA over one hash per key, in microseconds of Redis's own clock.
///
/// `KEYS[1]`: the key. `ARGV`: emission interval, burst, mitigation
/// timeout (0 for none), all in microseconds but the burst. Fields: `t`,
/// the theoretical arrival time; `b`, the end of a mitigation. Returns
/// `{allowed, remaining, micros}` where `micros` is the time to a whole
/// quota when allowed and the time to wait when refused. Numbers are
/// written with `%.0f`: Lua's default `%.14g` would round epoch
/// microseconds.
const GCRA: &str = r"
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local mitigation = tonumber(ARGV[3])
local tau = interval * (burst - 1)
local state = redis.call('HMGET', KEYS[1], 't', 'b')
local blocked = tonumber(state[2]) or 0
if blocked > now then
  return {0, 0, blocked - now}
end
local tat = tonumber(state[1]) or now
local earliest = tat - tau
if now < earliest then
  if mitigation > 0 then
    redis.call('HSET', KEYS[1], 'b', string.format('%.0f', now + mitigation))
    local ttl = math.max(tat - now, mitigation)
    redis.call('PEXPIRE', KEYS[1], math.ceil(ttl / 1000))
    return {0, 0, math.max(earliest - now, mitigation)}
  end
  return {0, 0, earliest - now}
end
local next_tat = math.max(tat, now) + interval
redis.call('HSET', KEYS[1], 't', string.format('%.0f', next_tat))
redis.call('PEXPIRE', KEYS[1], math.ceil((next_tat - now) / 1000))
local remaining = math.floor(math.min(now + tau + interval - next_tat, tau + interval) / interval)
return {1, remaining, interval * (burst - remaining)}
";

/// What the store does when Redis does not answer within the timeout.
///
/// In a configuration file: `"open"`, `"closed"` or
/// `{ local = { share = 0.5 } }`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum FailurePolicy {
    /// Let the request through and log a (throttled) warning: an outage
    /// of Redis does not take the API down. The default.
    #[default]
    Open,
    /// Refuse the request with 429: nothing passes uncounted.
    Closed,
    /// Count the request in a local in-memory limiter whose quotas are
    /// `share` of the rule's (at least one request): with `n` instances,
    /// `1 / n` keeps the fleet near its limit.
    Local {
        /// The fraction of each quota, in `(0, 1]`.
        share: f64,
    },
}

/// How to reach Redis and what to do when it fails.
///
/// ```
/// use std::time::Duration;
/// use palisade_limit::store::{FailurePolicy, RedisConfig};
///
/// let config = RedisConfig::new("redis://127.0.0.1:6379")
///     .prefix("api")
///     .timeout(Duration::from_millis(20))
///     .on_failure(FailurePolicy::Local { share: 0.25 });
/// assert_eq!(config.timeout_duration(), Duration::from_millis(20));
///
/// let from_file: RedisConfig =
///     serde_json::from_str(r#"{"url": "redis://10.0.0.5", "on_failure": "closed"}"#)?;
/// assert_eq!(from_file.failure_policy(), FailurePolicy::Closed);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[user:password@]host[:port][/db]` (or `rediss://`).
    url: String,
    /// Prepended to every key, then `:`.
    #[serde(default = "default_prefix")]
    prefix: String,
    /// Longest wait for one decision, in milliseconds.
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    /// What to do when Redis fails or is slow.
    #[serde(default)]
    on_failure: FailurePolicy,
    /// After a failure, how long, in milliseconds, the store applies the
    /// policy at once before it asks Redis again.
    #[serde(default = "default_retry_ms")]
    retry_after_failure_ms: u64,
}

fn default_prefix() -> String {
    "palisade".to_owned()
}

const fn default_timeout_ms() -> u64 {
    50
}

const fn default_retry_ms() -> u64 {
    500
}

impl RedisConfig {
    /// Redis at `url`, prefix `palisade`, a 50 ms timeout, failing open.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: default_prefix(),
            timeout_ms: default_timeout_ms(),
            on_failure: FailurePolicy::Open,
            retry_after_failure_ms: default_retry_ms(),
        }
    }

    /// Names keys `{prefix}:{rule}:{tier}:{digest}`; one prefix per
    /// fleet, so that two fleets can share a Redis.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The longest a decision waits for Redis; then the failure policy
    /// answers.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        self
    }

    /// What to do when Redis fails or is slow.
    #[must_use]
    pub fn on_failure(mut self, policy: FailurePolicy) -> Self {
        self.on_failure = policy;
        self
    }

    /// After a failure, decisions use the failure policy at once for this
    /// long, then ask Redis again; the default is 500 ms.
    #[must_use]
    pub fn retry_after_failure(mut self, pause: Duration) -> Self {
        self.retry_after_failure_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX);
        self
    }

    /// The timeout per decision.
    pub fn timeout_duration(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// The failure policy.
    pub fn failure_policy(&self) -> FailurePolicy {
        self.on_failure
    }

    /// The key prefix.
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redacted(&self.url))
            .field("prefix", &self.prefix)
            .field("timeout_ms", &self.timeout_ms)
            .field("on_failure", &self.on_failure)
            .field("retry_after_failure_ms", &self.retry_after_failure_ms)
            .finish()
    }
}

/// The URL without its credentials, for errors and logs.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// Rate limit state in Redis, shared by every instance that uses the same
/// Redis, prefix and session key.
///
/// Each check is one `EVALSHA` of a Lua script that runs GCRA atomically
/// on Redis's clock (`TIME`), so instances' clocks do not matter and two
/// instances never both take the last request of a burst. A key is
/// `{prefix}:{rule}:{tier}:{digest}` where the digest is the 128-bit keyed
/// hash the layer computed: no raw header, cookie, token or address
/// reaches Redis. Keys expire when their quota is whole again (or their
/// mitigation is over, if later).
///
/// ### Deny cache
///
/// When Redis refuses a key until `T`, the instance refuses it locally
/// until `T` without asking Redis again. The cache is bounded per rule by
/// the rule's `max_keys`, entries leaving it when they expire.
///
/// ### Failures
///
/// A decision waits at most the configured timeout (50 ms by default);
/// then the [`FailurePolicy`] answers. After a failure the store answers
/// by the policy at once for a short pause (500 ms by default) and then
/// asks Redis again; the connection reconnects by itself, so the store
/// recovers without help when Redis returns.
///
/// ### Performance
///
/// A decision costs one round trip to Redis, over one multiplexed
/// connection shared by all requests; a key in the deny cache costs one
/// local cache lookup.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<StoreInner>,
}

struct StoreInner {
    connection: ConnectionManager,
    script: redis::Script,
    prefix: String,
    timeout: Duration,
    policy: FailurePolicy,
    pause: Duration,
    /// The origin of `down_until`.
    started: Instant,
    /// Nanoseconds after `started` until which Redis is not asked.
    down_until: AtomicU64,
    failures: AtomicU64,
    local: MemoryStore,
}

impl RedisStore {
    /// A store on Redis at `config`'s URL.
    ///
    /// Must be called inside a tokio runtime: the connection lives on it.
    /// It does not wait for Redis: the first decisions connect, and until
    /// Redis answers the failure policy applies. Fails if the URL or the
    /// policy's share is invalid, or if no tokio runtime is running.
    pub fn new(config: RedisConfig) -> Result<Self, ConfigError> {
        if let FailurePolicy::Local { share } = config.on_failure
            && !(share > 0.0 && share <= 1.0)
        {
            return Err(ConfigError::OutOfRange {
                what: "redis local fallback share",
                value: share.to_string(),
            });
        }
        if config.timeout_ms == 0 {
            return Err(ConfigError::OutOfRange {
                what: "redis timeout",
                value: "0 ms".to_owned(),
            });
        }
        let invalid = |reason: String| ConfigError::Invalid {
            what: format!("redis url {:?}", redacted(&config.url)),
            reason,
        };
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(invalid(
                "no tokio runtime is running; make the store inside one".to_owned(),
            ));
        }
        let client =
            redis::Client::open(config.url.as_str()).map_err(|e| invalid(e.to_string()))?;
        let timeout = config.timeout_duration();
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout.max(Duration::from_millis(200))))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(Duration::from_millis(500));
        let connection = ConnectionManager::new_lazy_with_config(client, manager)
            .map_err(|e| invalid(e.to_string()))?;
        Ok(Self {
            inner: Arc::new(StoreInner {
                connection,
                script: redis::Script::new(GCRA),
                prefix: config.prefix,
                timeout,
                policy: config.on_failure,
                pause: Duration::from_millis(config.retry_after_failure_ms),
                started: Instant::now(),
                down_until: AtomicU64::new(0),
                failures: AtomicU64::new(0),
                local: MemoryStore::default(),
            }),
        })
    }

    /// Whether the last exchange with Redis failed less than the pause
    /// ago, so that decisions use the failure policy without asking.
    pub fn is_paused(&self) -> bool {
        self.inner.is_paused(Instant::now())
    }
}

impl StoreInner {
    fn since_start(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.started).as_nanos()).unwrap_or(u64::MAX)
    }

    fn is_paused(&self, now: Instant) -> bool {
        self.since_start(now) < self.down_until.load(Ordering::Relaxed)
    }

    fn failed(&self, now: Instant) {
        let until = self
            .since_start(now)
            .saturating_add(u64::try_from(self.pause.as_nanos()).unwrap_or(u64::MAX));
        self.down_until.store(until, Ordering::Relaxed);
    }

    fn recovered(&self) {
        if self.down_until.load(Ordering::Relaxed) != 0 {
            self.down_until.store(0, Ordering::Relaxed);
        }
    }

    /// The failure policy's answer for one check.
    fn on_failure(
        &self,
        counter: &CounterInner,
        key: u128,
        tier: usize,
        error: StoreError,
    ) -> Result<Verdict, StoreError> {
        let verdict = match (self.policy, &counter.local) {
            (FailurePolicy::Open, _) | (FailurePolicy::Local { .. }, None) => return Err(error),
            (FailurePolicy::Closed, _) => Verdict::refused(self.pause.max(Duration::from_secs(1))),
            (FailurePolicy::Local { .. }, Some(local)) => {
                self.local.check(local, key, tier).into_inner()?
            }
        };
        let n = self.failures.fetch_add(1, Ordering::Relaxed);
        if n.is_multiple_of(1000) {
            let policy = match self.policy {
                FailurePolicy::Closed => "request refused",
                _ => "request counted locally",
            };
            tracing::warn!(
                target: TRACE_TARGET,
                rule = %counter.rule,
                %error,
                failures = n + 1,
                policy,
                "redis rate limit store failed"
            );
        }
        Ok(verdict)
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.inner.prefix)
            .field("timeout", &self.inner.timeout)
            .field("policy", &self.inner.policy)
            .finish_non_exhaustive()
    }
}

/// The Redis state of one rule: key names, GCRA parameters, the deny
/// cache and, with the local failure policy, the local limiter.
#[derive(Clone)]
pub struct RedisCounter {
    inner: Arc<CounterInner>,
}

struct CounterInner {
    rule: String,
    tiers: Vec<Tier>,
    mitigation_us: u64,
    /// `(key, tier)` refused until the instant held.
    denied: moka::sync::Cache<(u128, usize), Instant>,
    local: Option<MemoryCounter>,
}

struct Tier {
    /// `{prefix}:{rule}:{tier}:`
    key_prefix: String,
    interval_us: u64,
    burst: u32,
}

impl RedisCounter {
    /// The number of keys in the deny cache (after pending evictions).
    pub fn denied_len(&self) -> u64 {
        self.inner.denied.run_pending_tasks();
        self.inner.denied.entry_count()
    }
}

impl fmt::Debug for RedisCounter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCounter")
            .field("rule", &self.inner.rule)
            .field("tiers", &self.inner.tiers.len())
            .field("mitigation_us", &self.inner.mitigation_us)
            .finish_non_exhaustive()
    }
}

/// Deny-cache entries leave when their refusal ends.
struct UntilExpiry;

impl moka::Expiry<(u128, usize), Instant> for UntilExpiry {
    fn expire_after_create(
        &self,
        _key: &(u128, usize),
        until: &Instant,
        created_at: Instant,
    ) -> Option<Duration> {
        Some(until.saturating_duration_since(created_at))
    }

    fn expire_after_update(
        &self,
        _key: &(u128, usize),
        until: &Instant,
        updated_at: Instant,
        _current: Option<Duration>,
    ) -> Option<Duration> {
        Some(until.saturating_duration_since(updated_at))
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The quota scaled by `share`, at least one request and one burst.
fn scaled(quota: &Quota, share: f64) -> Result<Quota, ConfigError> {
    let scale = |n: std::num::NonZeroU32| {
        let v = (f64::from(n.get()) * share).floor() as u32;
        std::num::NonZeroU32::new(v.max(1)).unwrap_or(std::num::NonZeroU32::MIN)
    };
    Ok(Quota::new(scale(quota.requests()), quota.period())?.with_burst(scale(quota.burst())))
}

impl RateLimitStore for RedisStore {
    type Counter = RedisCounter;
    type Check = RedisCheck;

    fn counter(&self, spec: &CounterSpec<'_>) -> Result<RedisCounter, ConfigError> {
        let store = &self.inner;
        let mut tiers = Vec::with_capacity(spec.quotas.len());
        for (index, quota) in spec.quotas.iter().enumerate() {
            let interval = quota.replenish_interval();
            if interval < Duration::from_micros(1) {
                return Err(ConfigError::OutOfRange {
                    what: "quota for the redis store (one request per microsecond at most)",
                    value: format!("{quota:?} of rule {:?}", spec.rule),
                });
            }
            tiers.push(Tier {
                key_prefix: format!("{}:{}:{index}:", store.prefix, spec.rule),
                interval_us: micros(interval),
                burst: quota.burst().get(),
            });
        }
        let local = match store.policy {
            FailurePolicy::Local { share } => {
                let quotas = spec
                    .quotas
                    .iter()
                    .map(|q| scaled(q, share))
                    .collect::<Result<Vec<_>, _>>()?;
                let local_spec = CounterSpec {
                    quotas: &quotas,
                    ..*spec
                };
                Some(store.local.counter(&local_spec)?)
            }
            _ => None,
        };
        let denied = moka::sync::Cache::builder()
            .max_capacity(spec.max_keys.get() as u64)
            .expire_after(UntilExpiry)
            .build();
        Ok(RedisCounter {
            inner: Arc::new(CounterInner {
                rule: spec.rule.to_owned(),
                tiers,
                mitigation_us: spec.mitigation.map_or(0, micros),
                denied,
                local,
            }),
        })
    }

    fn check(&self, counter: &RedisCounter, key: u128, tier: usize) -> RedisCheck {
        let inner = &counter.inner;
        let tier = tier.min(inner.tiers.len().saturating_sub(1));
        let Some(spec) = inner.tiers.get(tier) else {
            return RedisCheck::ready(Ok(Verdict::allowed(0, Duration::ZERO)));
        };

        let now = Instant::now();
        if let Some(until) = inner.denied.get(&(key, tier))
            && until > now
        {
            return RedisCheck::ready(Ok(Verdict::refused(until - now)));
        }
        if self.inner.is_paused(now) {
            let error = StoreError::new("redis failed recently; not asked during the pause");
            return RedisCheck::ready(self.inner.on_failure(inner, key, tier, error));
        }

        let store = self.inner.clone();
        let counter = counter.inner.clone();
        let name = format!("{}{key:032x}", spec.key_prefix);
        let (interval, burst) = (spec.interval_us, spec.burst);
        RedisCheck {
            state: CheckState::Waiting(Box::pin(async move {
                let mut connection = store.connection.clone();
                let mut invocation = store.script.prepare_invoke();
                invocation
                    .key(name)
                    .arg(interval)
                    .arg(burst)
                    .arg(counter.mitigation_us);
                let call = invocation.invoke_async::<(i64, i64, i64)>(&mut connection);
                let error = match tokio::time::timeout(store.timeout, call).await {
                    Ok(Ok((allowed, remaining, wait_us))) => {
                        store.recovered();
                        let time = Duration::from_micros(wait_us.max(0) as u64);
                        if allowed == 1 {
                            let remaining = u32::try_from(remaining.max(0)).unwrap_or(u32::MAX);
                            return Ok(Verdict::allowed(remaining, time));
                        }
                        counter.denied.insert((key, tier), Instant::now() + time);
                        return Ok(Verdict::refused(time));
                    }
                    Ok(Err(error)) => StoreError::with_source("redis command failed", error),
                    Err(_) => StoreError::new(format!(
                        "redis did not answer within {} ms",
                        store.timeout.as_millis()
                    )),
                };
                store.failed(Instant::now());
                store.on_failure(&counter, key, tier, error)
            })),
        }
    }
}

/// The answer of a [`RedisStore`]: ready at once from the deny cache or
/// the failure policy, else after one round trip.
pub struct RedisCheck {
    state: CheckState,
}

type Waiting = Pin<Box<dyn Future<Output = Result<Verdict, StoreError>> + Send>>;

enum CheckState {
    Ready(Option<Result<Verdict, StoreError>>),
    Waiting(Waiting),
}

impl RedisCheck {
    fn ready(result: Result<Verdict, StoreError>) -> Self {
        Self {
            state: CheckState::Ready(Some(result)),
        }
    }
}

impl Future for RedisCheck {
    type Output = Result<Verdict, StoreError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().state {
            CheckState::Ready(result) => Poll::Ready(
                result
                    .take()
                    .unwrap_or_else(|| Err(StoreError::new("redis check polled after it ended"))),
            ),
            CheckState::Waiting(future) => future.as_mut().poll(cx),
        }
    }
}

impl fmt::Debug for RedisCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            CheckState::Ready(_) => "ready",
            CheckState::Waiting(_) => "waiting",
        };
        f.debug_struct("RedisCheck").field("state", &state).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_credentials_in_errors_and_debug() {
        assert_eq!(
            redacted("redis://user:s3cret@host:6379/0"),
            "redis://***@host:6379/0"
        );
        assert_eq!(redacted("redis://host"), "redis://host");
        let shown = format!("{:?}", RedisConfig::new("rediss://:pw@h"));
        assert!(!shown.contains("pw"), "{shown}");
    }

    #[test]
    fn configuration_from_serde_has_defaults() {
        let c: RedisConfig = serde_json::from_str(r#"{"url": "redis://h"}"#).unwrap();
        assert_eq!(c, RedisConfig::new("redis://h"));
        assert_eq!(c.timeout_duration(), Duration::from_millis(50));
        assert_eq!(c.key_prefix(), "palisade");
        let c: RedisConfig = serde_json::from_str(
            r#"{"url": "redis://h", "prefix": "p", "timeout_ms": 5,
                "on_failure": {"local": {"share": 0.5}}}"#,
        )
        .unwrap();
        assert_eq!(c.failure_policy(), FailurePolicy::Local { share: 0.5 });
        assert!(serde_json::from_str::<RedisConfig>(r#"{"url": "r", "bad": 1}"#).is_err());
    }

    #[tokio::test]
    async fn bad_settings_are_named() {
        let err = RedisStore::new(
            RedisConfig::new("redis://h").on_failure(FailurePolicy::Local { share: 1.5 }),
        )
        .unwrap_err();
        assert!(err.to_string().contains("share"), "{err}");
        let err = RedisStore::new(RedisConfig::new("nonsense://x:pw@h")).unwrap_err();
        assert!(err.to_string().contains("redis url"), "{err}");
        assert!(!err.to_string().contains("pw"), "{err}");
    }

    #[test]
    fn no_runtime_is_a_configuration_error() {
        let err = RedisStore::new(RedisConfig::new("redis://127.0.0.1")).unwrap_err();
        assert!(err.to_string().contains("tokio runtime"), "{err}");
    }

    #[test]
    fn scaled_quotas_keep_at_least_one_request() {
        let q = Quota::per_minute(std::num::NonZeroU32::new(10).unwrap());
        let half = scaled(&q, 0.5).unwrap();
        assert_eq!((half.requests().get(), half.burst().get()), (5, 5));
        let tiny = scaled(&q, 0.01).unwrap();
        assert_eq!((tiny.requests().get(), tiny.burst().get()), (1, 1));
        assert_eq!(tiny.period(), q.period());
    }
}
